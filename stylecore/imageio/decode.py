"""Decoding an untrusted image to plain 8-bit sRGB with bounded memory.

Everything that reaches the engine comes from strangers on Discord, so loading is
defensive: the header is checked before any pixel is decoded (`probe_image`), decoding is
forced while failures can still become a clear `ImageError`, and every pixel mode is
normalised to 8-bit sRGB so the engine only ever sees one kind of image.

Memory is bounded by the decoded source plus the RGB result: high-depth pixels are scaled
to 8 bits a strip at a time and transparency is composited without intermediate copies, so
a 40-megapixel float or 16-bit image never has a float64 copy of the whole frame.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from stylecore.imageio.limits import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_SIDE,
    EmptyImage,
    ImageLimits,
    ImageTooLarge,
    NotAnImage,
    TruncatedImage,
    check_size,
    too_many_bytes,
    too_small,
)
from stylecore.imageio.probe import ImageInfo, probe_image

WHITE: tuple[int, int, int] = (255, 255, 255)

# What Pillow's decoders raise on corrupt data: file-level errors plus the parsing errors
# some plugins let escape (struct, zlib, index/key lookups into malformed tables).
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    SyntaxError,
    ValueError,
    struct.error,
    zlib.error,
    IndexError,
    KeyError,
    TypeError,
)
_HIGH_DEPTH = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")
# Pixels per strip when scaling high-depth data: a few MB of temporaries, whatever the image.
_STRIP_PIXELS = 1 << 20
# EXIF orientation (TIFF 6.0 / Exif 2.3 tag 0x0112) -> the transpose that makes the image upright.
_UPRIGHT: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

Source = bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO


def _read_source(source: Source, max_bytes: int) -> bytes:
    """Get the raw bytes without ever holding more than `max_bytes + 1` of them.

    Paths are checked with stat() first and streams are read with a cap, so a huge
    upload is refused before it costs memory.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > max_bytes:
            raise too_many_bytes(len(data), max_bytes)
        return data
    if isinstance(source, (str, os.PathLike)):
        size = os.stat(source).st_size
        if size > max_bytes:
            raise too_many_bytes(size, max_bytes)
        with open(source, "rb") as fh:
            data = fh.read(max_bytes + 1)
    elif hasattr(source, "read"):
        data = source.read(max_bytes + 1)
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("load_image needs a binary stream (opened with 'rb')")
        data = bytes(data)
    else:
        raise TypeError(f"load_image cannot read a {type(source).__name__}")
    if len(data) > max_bytes:
        raise too_many_bytes(len(data), max_bytes)
    return data


def load_image(
    source: Source,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
) -> Image.Image:
    """Decode an untrusted image into a detached, upright, 8-bit sRGB `RGB` image.

    A missing path raises the usual `OSError`: that is a programming error, not a bad
    upload. Everything else wrong with the input raises an `ImageError`.
    """
    data = _read_source(source, max_bytes)
    return decode_image(data, ImageLimits(max_bytes, max_pixels, min_side))[0]


def decode_image(data: bytes, limits: ImageLimits) -> tuple[Image.Image, ImageInfo]:
    """The decoded RGB image and what was learned about the source while decoding it.

    The checks run cheapest-first (bytes, header, then the real decode) so a hostile file
    is refused before it can cost memory or CPU. Pillow's own decompression-bomb guard
    stays on as a second net, with its warning promoted to an error; the header is also
    checked against `Image.MAX_IMAGE_PIXELS` directly, because warning filters are
    process-global and another thread may be changing them. Animated files give their
    first frame.
    """
    if not data:
        raise EmptyImage("input has zero bytes")
    probed = probe_image(data, limits)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            # Only the opener of the format the header named: a file that is two formats
            # at once is decoded as the one that was checked.
            im = Image.open(io.BytesIO(data), formats=(probed.format,))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            limit = limits.pixel_limit
            raise ImageTooLarge(str(exc), f"That image is too large; the limit is {limit / 1e6:g} megapixels.") from exc
        except UnidentifiedImageError as exc:
            raise NotAnImage(str(exc)) from exc
        except _DECODE_ERRORS as exc:
            raise TruncatedImage(f"{type(exc).__name__}: {exc}") from exc

    try:
        check_size(*im.size, limits)  # the decoder's view of the size, in case it differs from the header's
        mode = im.mode
        try:
            # Forcing the decode here, not lazily later, is what lets a truncated or
            # corrupt file surface as TruncatedImage instead of deep inside the engine.
            # It must come first: reading EXIF makes some plugins (PNG) load the pixels,
            # and an error swallowed there would leave a half-decoded image behind.
            im.load()
        except _DECODE_ERRORS as exc:
            raise TruncatedImage(f"{type(exc).__name__}: {exc}") from exc
        orientation = _orientation(im)
        try:
            rgb = to_rgb(im)
        except (ValueError, OSError) as exc:  # an exotic mode (e.g. CIELab TIFF)
            raise NotAnImage(
                f"cannot convert mode {mode}: {exc}", "That image uses a pixel format I can't handle."
            ) from exc
    finally:
        # close(), not the context manager: only close() frees the decoded pixels at once.
        im.close()
    # The source is closed (its pixels freed) before the transpose makes a second RGB copy.
    if orientation in _UPRIGHT:
        rgb = rgb.transpose(_UPRIGHT[orientation])
    if min(rgb.size) < limits.min_side:  # cannot change under a rotation, but a plugin might lie
        raise too_small(*rgb.size, limits.min_side)
    return rgb, ImageInfo(probed.format, rgb.width, rgb.height, probed.frames, mode)


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation, 1 when absent or when the EXIF block itself is broken.

    Phones store photos sideways and rely on this tag; but the tag is optional metadata,
    so a malformed EXIF block must not cost the user their upload.
    """
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) else 1


def _to_srgb_with_icc(im: Image.Image) -> Image.Image | None:
    """Convert through the embedded ICC profile, or None when there is none or it is unusable.

    Phone photos are often Display P3 and print-ready files CMYK; feeding their raw
    numbers to the network as if they were sRGB shifts colours visibly.
    """
    icc = im.info.get("icc_profile")
    if not icc:
        return None
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        dst = ImageCms.createProfile("sRGB")
        out = ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None
    return out


def _strips(im: Image.Image) -> list[tuple[int, int]]:
    width, height = im.size
    rows = max(1, _STRIP_PIXELS // max(1, width))
    return [(y, min(height, y + rows)) for y in range(0, height, rows)]


def _strip(im: Image.Image, top: int, bottom: int) -> np.ndarray:
    return np.asarray(im.crop((0, top, im.width, bottom)))


def _high_depth_to_l(im: Image.Image) -> Image.Image:
    """Scale 16/32-bit and float greyscale to 8 bits instead of letting Pillow clip.

    Pillow's own convert clips values above 255, which turns an ordinary 16-bit PNG
    almost white. 16-bit data is divided by 257 (65535 -> 255); int32 data that fits in
    16 bits is treated the same; float data in [0, 1] is scaled by 255; anything else is
    stretched from its own min..max because there is no standard range to assume. The
    work is done a strip at a time into one 8-bit buffer.
    """
    out = np.empty((im.height, im.width), dtype=np.uint8)
    strips = _strips(im)
    if im.mode.startswith("I;16"):
        for top, bottom in strips:
            # (v + 128) // 257 is round(v / 257) exactly: v / 257 never ends in .5 for integers.
            out[top:bottom] = (_strip(im, top, bottom).astype(np.uint32) + 128) // 257
        return Image.fromarray(out)

    lo, hi = np.inf, -np.inf
    for top, bottom in strips:
        arr = _strip(im, top, bottom)
        finite = arr[np.isfinite(arr)] if im.mode == "F" else arr
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    if lo > hi:  # no finite value at all
        lo = hi = 0.0
    for top, bottom in strips:
        arr = _strip(im, top, bottom).astype(np.float64)
        if im.mode == "F" and lo >= 0.0 and hi <= 1.0:
            scaled = arr * 255.0
        elif im.mode == "I" and lo >= 0 and hi <= 65535:
            scaled = arr / 257.0
        elif hi > lo:
            scaled = (arr - lo) / (hi - lo) * 255.0
        else:
            scaled = np.zeros_like(arr)
        scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
        out[top:bottom] = np.clip(np.rint(scaled), 0, 255)
    return Image.fromarray(out)


def _over_background(im: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Composite an RGBA or LA image over a solid colour, using its own alpha as the mask.

    Pasting the image with itself as the mask needs no converted copy of the colours or
    of the alpha band, so the only new allocation is the RGB result.
    """
    out = Image.new("RGB", im.size, background)
    out.paste(im, (0, 0), im)
    return out


def to_rgb(img: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """Any Pillow mode to plain 8-bit sRGB `RGB`, as a new image with no metadata.

    Transparency is composited over white, not dropped: dropped alpha usually reveals
    black or garbage under transparent pixels, and a sticker or logo on white is what
    the sender saw. Exposed for the engine, which also accepts PIL images directly.
    """
    mode = img.mode
    if mode in _HIGH_DEPTH:
        grey = _high_depth_to_l(img)
        out = grey.convert("RGB")
        del grey
    elif mode in ("RGBA", "LA"):
        out = _over_background(img, background)
    elif mode in ("PA", "RGBa", "La") or "transparency" in img.info:
        # Premultiplied La has no direct path to RGBA; un-premultiply through LA first.
        with_alpha = img.convert("LA") if mode == "La" else img.convert("RGBA")
        out = _over_background(with_alpha, background)
        del with_alpha
    elif mode in ("CMYK", "RGB") and img.info.get("icc_profile"):
        out = _to_srgb_with_icc(img) or img.convert("RGB")
    elif mode == "RGB":
        out = img.copy()
    else:  # 1, L, P, CMYK without a profile, RGBX, YCbCr, LAB, HSV
        out = img.convert("RGB")
    if out.mode != "RGB":
        out = out.convert("RGB")
    out.info = {}
    return out
