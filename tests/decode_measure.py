"""40-megapixel samples of every pixel mode, and a child that measures decoding one of them.

Used by tests/test_imageio_memory.py (peak memory per mode) and benchmarks/decode_bench.py
(time per mode). The samples are real files small enough for the upload limit: patterns
with long runs, which every format compresses well, in every mode a decoder may produce.

`measure` runs in a fresh child started like the isolated decoder's (no torch, nothing
else loaded), so the peak it reports is the decode's own: it resets the kernel's
resident-memory high-water mark (VmHWM, via /proc/self/clear_refs) just before decoding.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from imagefiles import png_file
from PIL import Image, ImageCms

from stylecore.imageio.isolated import child_argv

WIDTH, HEIGHT = 8000, 5000  # 40 megapixels, the default limit
TESTS = Path(__file__).resolve().parent


def _levels(hi: float, dtype: object) -> np.ndarray:
    """HEIGHTxWIDTH: 32 vertical bands from 0 to `hi`, mirrored in the top half."""
    row = (np.arange(WIDTH) // (WIDTH // 32)).astype(np.float64) / 31.0 * hi
    out = np.empty((HEIGHT, WIDTH), dtype=dtype)
    out[:] = row.astype(dtype)
    out[: HEIGHT // 2] = out[: HEIGHT // 2, ::-1]
    return out


def _save(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _grey() -> Image.Image:
    return Image.fromarray(_levels(255, np.uint8))


def _rgb() -> Image.Image:
    grey = _grey()
    return Image.merge("RGB", (grey, grey.transpose(Image.Transpose.FLIP_LEFT_RIGHT), grey))


def _png16(channels: int) -> bytes:
    """A 16-bit-per-channel PNG, written by hand: Pillow saves RGB and RGBA as 8 bits only."""
    ihdr = struct.pack(">IIBBBBB", WIDTH, HEIGHT, 16, {3: 2, 4: 6}[channels], 0, 0, 0)
    values = (np.arange(WIDTH) // (WIDTH // 32) * 2000).astype(">u2")
    row = b"\x00" + np.repeat(values, channels).tobytes()
    compressor = zlib.compressobj(6)
    return png_file(ihdr, b"".join(compressor.compress(row) for _ in range(HEIGHT)) + compressor.flush())


def _palette_with_transparency() -> bytes:
    p = _grey().convert("P")
    return _save(p, "PNG", transparency=0)


def _with_alpha(mode: str) -> Image.Image:
    base = _rgb() if mode == "RGBA" else _grey()
    base.putalpha(_grey().transpose(Image.Transpose.FLIP_TOP_BOTTOM))
    return base


def _exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(_rgb(), "JPEG", quality=80, exif=exif.tobytes())


def _srgb_png() -> bytes:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return _save(_rgb(), "PNG", icc_profile=profile)


def _colour_palette_gif() -> bytes:
    p = _grey().convert("P")
    p.putpalette([v for i in range(256) for v in (i, 255 - i, (i * 7) % 256)])
    return _save(p, "GIF")


def _deflate_tiff(img: Image.Image) -> bytes:
    return _save(img, "TIFF", compression="tiff_adobe_deflate")


# name -> (the file's bytes, the mode Pillow decodes it to)
SAMPLES: dict[str, tuple[Callable[[], bytes], str]] = {
    "png-rgb": (lambda: _save(_rgb(), "PNG"), "RGB"),
    "png-rgb-icc": (_srgb_png, "RGB"),
    "png-rgba": (lambda: _save(_with_alpha("RGBA"), "PNG"), "RGBA"),
    "png-la": (lambda: _save(_with_alpha("LA"), "PNG"), "LA"),
    "png-palette-transparency": (_palette_with_transparency, "P"),
    "png-1bit": (lambda: _save(_grey().convert("1"), "PNG"), "1"),
    "png-16bit-grey": (lambda: _save(Image.fromarray(_levels(65535, np.uint16)), "PNG"), "I;16"),
    "png-16bit-rgb": (lambda: _png16(3), "RGB"),
    "png-16bit-rgba": (lambda: _png16(4), "RGBA"),
    "tiff-float32": (lambda: _deflate_tiff(Image.fromarray(_levels(1.0, np.float32))), "F"),
    "tiff-float32-hdr": (lambda: _deflate_tiff(Image.fromarray(_levels(1000.0, np.float32))), "F"),
    "tiff-int32": (lambda: _deflate_tiff(Image.fromarray(_levels(65535, np.int32))), "I"),
    "tiff-16bit-grey": (lambda: _deflate_tiff(Image.fromarray(_levels(65535, np.uint16))), "I;16"),
    "tiff-cmyk": (lambda: _deflate_tiff(_rgb().convert("CMYK")), "CMYK"),
    "jpeg-cmyk": (lambda: _save(_rgb().convert("CMYK"), "JPEG", quality=80), "CMYK"),
    "jpeg-rgb-exif-rotated": (_exif_rotated_jpeg, "RGB"),
    "webp-rgba-lossless": (lambda: _save(_with_alpha("RGBA"), "WEBP", lossless=True, method=0), "RGBA"),
    "webp-rgb-lossy": (lambda: _save(_rgb(), "WEBP", quality=80, method=0), "RGB"),
    "gif-palette": (_colour_palette_gif, "P"),
}


def _status(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(field + ":"))


def measure() -> None:
    """Child entry: decode sys.argv[4] as sys.argv[5] says (decode, probe, or pillow) and print
    the peak memory growth and the time as JSON."""
    from stylecore.imageio import ImageLimits, decode_image, probe_image

    path, what = sys.argv[4], sys.argv[5]
    data = Path(path).read_bytes()
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")  # reset VmHWM to the current resident size
    rss, vm = _status("VmHWM"), _status("VmSize")
    start = time.perf_counter()
    if what == "probe":
        info = probe_image(data, ImageLimits())
        mode = None
    elif what == "pillow":  # the floor: Pillow's own decode and convert, no checks, no care for memory
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            mode = im.mode
            rgb = im.convert("RGB")
        info = probe_image(data, ImageLimits())
        assert rgb.size == im.size
    else:
        image, info = decode_image(data, ImageLimits())
        mode = info.mode
        assert image.mode == "RGB" and image.size == (info.width, info.height)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "peak_growth": _status("VmHWM") - rss,
                "address_space_growth": _status("VmPeak") - vm,
                "seconds": seconds,
                "pixels": info.pixels,
                "mode": mode,
            }
        )
    )


def run_measure(path: Path, what: str = "decode", timeout: float = 300) -> dict:
    """Measure in a fresh child (started like the isolated decoder's) and return its report."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run(
        child_argv("decode_measure:measure", str(path), what),
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"measuring {path.name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
