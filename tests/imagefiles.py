"""Image files for the image I/O tests: small real files, and real files whose headers lie.

Every "lying" file is a real encoder's output with one header field patched (and its CRC
fixed where the format has one), so only the claim is false, never the syntax.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(img: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def noise(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))


def noise_png(w: int, h: int, seed: int = 0) -> bytes:
    """A small photo stand-in: every pixel random, so no two seeds give the same image."""
    return encode(noise(w, h, seed))


def solid(color: tuple[int, int, int], size: tuple[int, int] = (32, 32)) -> Image.Image:
    return Image.new("RGB", size, color)


def png_claiming(width: int, height: int) -> bytes:
    """A real 32x32 PNG whose IHDR (with a valid CRC) claims other dimensions."""
    data = bytearray(encode(solid((10, 20, 30))))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real 32x32 JPEG, complete with its end marker, whose frame header claims other dimensions.

    libjpeg decodes the few real blocks and fills the rest with grey, so only a check of
    the data against the claimed size can tell it from a flat image.
    """
    data = bytearray(encode(solid((100, 150, 200)), "JPEG", quality=75))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_claiming(width: int, height: int) -> bytes:
    """A real 32x32 GIF whose screen and first image descriptor claim other dimensions."""
    data = bytearray(encode(solid((100, 150, 200)), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    descriptor = data.index(b"\x2c", 13)
    data[descriptor + 5 : descriptor + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def tiff_claiming(width: int, height: int, **save: object) -> bytes:
    """A real 32x32 little-endian TIFF whose ImageWidth and ImageLength tags claim other dimensions."""
    data = bytearray(encode(solid((100, 150, 200)), "TIFF", **save))
    ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * i
        tag, kind = struct.unpack_from("<HH", data, entry)
        if tag in (256, 257):
            value = width if tag == 256 else height
            struct.pack_into("<H" if kind == 3 else "<I", data, entry + 8, value)
    return bytes(data)


def bmp_claiming(width: int, height: int) -> bytes:
    """A real 32x32 24-bit BMP whose header claims other dimensions."""
    data = bytearray(encode(solid((100, 150, 200)), "BMP"))
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


def with_exif_orientation(img: Image.Image, fmt: str, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    if fmt == "TIFF":
        return encode(img, fmt, tiffinfo={0x0112: orientation})
    return encode(img, fmt, exif=exif.tobytes())


def animated(fmt: str, n: int = 3) -> bytes:
    frames = [solid(c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255), (9, 9, 9))[:n]]
    kw = {"lossless": True} if fmt == "WEBP" else {}
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **kw)


def png_with_corrupt_pixels() -> bytes:
    """A PNG whose chunks are complete and plausible but whose IDAT is not a zlib stream.

    The header check passes it; only a real decode can find the damage.
    """
    ihdr = struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0)
    return png_file(ihdr, bytes(np.random.default_rng(3).integers(0, 256, 4000, dtype=np.uint8)))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, body and the CRC of type and body (PNG specification, 5.3)."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_file(ihdr: bytes, idat: bytes) -> bytes:
    """A PNG written by hand from its IHDR fields and its IDAT data, for what Pillow will not write:
    16-bit RGB, bombs built row by row, damaged pixel data."""
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
