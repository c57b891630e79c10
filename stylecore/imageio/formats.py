"""Header parsers for the allow-listed formats: structure and size, never pixels.

Each parser reads what its specification puts in front of the pixels — PNG (W3C PNG, 3rd
ed.), JPEG (ITU-T T.81), GIF (GIF89a), BMP (Microsoft BITMAPINFOHEADER family), TIFF 6.0
and BigTIFF, the WebP container (RFC 9649) — and walks the file's blocks far enough to tell
whether the data is complete and plausible for the size the header claims. Nothing here
allocates in proportion to the pixels.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# Walking a file's blocks is linear in their number; a hostile file can hold millions of
# tiny ones. Past this many steps the walk stops and the remaining completeness checks are
# left to the real decoder, so probing stays cheap whatever the file.
_MAX_STEPS = 200_000

# Deflate codes at most 258 bytes in 2 bits, so no zlib stream inflates more than 1032:1.
_DEFLATE_MAX_RATIO = 1032
# A GIF LZW code (3 to 12 bits) never stands for more than 4096 pixels: at most 4096 * 8 / 3
# pixels per byte of code stream.
_LZW_MAX_PIXELS_PER_BYTE = 4096 * 8 // 3 + 1


@dataclass
class Header:
    width: int
    height: int
    frames: int = 1
    orientation: int = 1
    # Why the data is incomplete or implausible, found while parsing but reported only
    # after the size checks, so that a bomb is refused as too large, not as damaged.
    defect: str | None = None


class HeaderCut(Exception):
    """The header itself ends early (or points outside the file)."""


class HeaderInvalid(Exception):
    """The header is not valid for its format."""


def _u16(data: bytes, pos: int, order: str) -> int:
    try:
        return struct.unpack_from(order + "H", data, pos)[0]
    except struct.error as exc:
        raise HeaderCut(f"header ends at byte {len(data)}") from exc


def _u32(data: bytes, pos: int, order: str) -> int:
    try:
        return struct.unpack_from(order + "I", data, pos)[0]
    except struct.error as exc:
        raise HeaderCut(f"header ends at byte {len(data)}") from exc


def _u64(data: bytes, pos: int, order: str) -> int:
    try:
        return struct.unpack_from(order + "Q", data, pos)[0]
    except struct.error as exc:
        raise HeaderCut(f"header ends at byte {len(data)}") from exc


def _i32(data: bytes, pos: int) -> int:
    try:
        return struct.unpack_from("<i", data, pos)[0]
    except struct.error as exc:
        raise HeaderCut(f"header ends at byte {len(data)}") from exc


def _byte(data: bytes, pos: int) -> int:
    if pos >= len(data):
        raise HeaderCut(f"header ends at byte {len(data)}")
    return data[pos]


def _exif_orientation(exif: bytes) -> int:
    """The orientation tag (0x0112) of an EXIF block, 1 when absent or unreadable.

    Orientation is optional metadata; a broken EXIF block must never cost the upload.
    """
    if exif.startswith(b"Exif\x00\x00"):
        exif = exif[6:]
    try:
        order = {b"II": "<", b"MM": ">"}[bytes(exif[:2])]
        ifd = _u32(exif, 4, order)
        for i in range(min(_u16(exif, ifd, order), 512)):
            entry = ifd + 2 + 12 * i
            if _u16(exif, entry, order) == 0x0112:
                value = _u16(exif, entry + 8, order)
                return value if 1 <= value <= 8 else 1
    except (KeyError, HeaderCut):
        pass
    return 1


# --- PNG ---------------------------------------------------------------------------------

_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _png(data: bytes) -> Header:
    if _u32(data, 8, ">") != 13 or data[12:16] != b"IHDR":
        raise HeaderInvalid("first chunk is not IHDR")
    width, height = _u32(data, 16, ">"), _u32(data, 20, ">")
    depth, colour = _byte(data, 24), _byte(data, 25)
    if width == 0 or height == 0 or colour not in _PNG_CHANNELS or depth not in (1, 2, 4, 8, 16):
        raise HeaderInvalid(f"invalid IHDR {width}x{height} depth {depth} colour type {colour}")
    head = Header(width, height)
    idat = 0
    pos = 8
    for _ in range(_MAX_STEPS):
        if pos + 12 > len(data):
            head.defect = "the data ends before the IEND chunk"
            break
        length, kind = _u32(data, pos, ">"), data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            head.defect = f"chunk {kind!r} runs past the end of the data"
            break
        if kind == b"IDAT":
            idat += length
        elif kind == b"acTL" and length >= 8:
            head.frames = max(1, _u32(data, pos + 8, ">"))
        elif kind == b"eXIf":
            head.orientation = _exif_orientation(data[pos + 8 : pos + 8 + length])
        elif kind == b"IEND":
            break
        pos = end
    else:
        return head  # too many chunks to walk cheaply: the decoder has the last word
    if head.defect is None:
        raw = height * (1 + math.ceil(width * _PNG_CHANNELS[colour] * depth / 8))
        if idat * _DEFLATE_MAX_RATIO < raw:
            head.defect = f"{idat} bytes of IDAT cannot hold {raw} bytes of {width}x{height} pixels"
    return head


# --- JPEG --------------------------------------------------------------------------------

_SOF_HUFFMAN = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7}
_SOF_ARITHMETIC = {0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_NO_LENGTH = {0x01, 0xD8, *range(0xD0, 0xD8)}
_NOT_FF = re.compile(rb"[^\xff]")


def _jpeg(data: bytes) -> Header:
    pos = 2
    sof: int | None = None
    width = height = 0
    orientation = 0
    for _ in range(_MAX_STEPS):
        if _byte(data, pos) != 0xFF:
            raise HeaderInvalid(f"no marker at byte {pos}")
        fill = _NOT_FF.search(data, pos)  # any number of 0xFF fill bytes may precede a marker
        if fill is None:
            raise HeaderCut("the data ends inside a marker")
        marker = data[fill.start()]
        pos = fill.start() + 1
        if marker in _NO_LENGTH:
            continue
        if marker == 0xD9:
            raise HeaderInvalid("end of image before any scan")
        length = _u16(data, pos, ">")
        if length < 2:
            raise HeaderInvalid(f"segment {marker:#x} has length {length}")
        if marker in _SOF_HUFFMAN or marker in _SOF_ARITHMETIC:
            sof = marker
            height, width = _u16(data, pos + 3, ">"), _u16(data, pos + 5, ">")
        elif marker == 0xE1 and not orientation and data[pos + 2 : pos + 8] == b"Exif\x00\x00":
            orientation = _exif_orientation(data[pos + 8 : pos + length])
        elif marker == 0xDA:
            scan = pos + length
            break
        pos += length
    else:
        raise HeaderInvalid("too many segments before the first scan")
    if sof is None or width == 0 or height == 0:
        raise HeaderInvalid(f"no usable frame header (SOF {sof}, {width}x{height})")
    head = Header(width, height, orientation=orientation or 1)
    if scan > len(data):
        raise HeaderCut("the first scan header runs past the end of the data")
    # Entropy-coded data never contains FF D9 (0xFF is stuffed or starts a restart marker),
    # so the first one after the scan header ends this image.
    end = data.find(b"\xff\xd9", scan)
    if end < 0:
        head.defect = "no end-of-image marker after the scan data"
    elif sof in _SOF_HUFFMAN:
        # Huffman codes are at least one bit, and every 8x8 block of the full-resolution
        # component codes at least its DC coefficient.
        blocks = math.ceil(width / 8) * math.ceil(height / 8)
        if (end - scan) * 8 < blocks:
            head.defect = f"{end - scan} bytes of scan data cannot code {blocks} blocks of {width}x{height}"
    return head


# --- GIF ---------------------------------------------------------------------------------


def _gif(data: bytes) -> Header:
    screen_w, screen_h = _u16(data, 6, "<"), _u16(data, 8, "<")
    flags = _byte(data, 10)
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    head = Header(screen_w, screen_h, frames=0)
    first_area = first_bytes = 0
    steps = 0
    while steps < _MAX_STEPS:
        steps += 1
        if pos >= len(data):
            head.defect = "the data ends before the GIF trailer"
            break
        block = data[pos]
        if block == 0x3B:  # trailer
            break
        if block == 0x2C:  # image descriptor
            x, y = _u16(data, pos + 1, "<"), _u16(data, pos + 3, "<")
            w, h = _u16(data, pos + 5, "<"), _u16(data, pos + 7, "<")
            local = _byte(data, pos + 9)
            pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0) + 1  # + LZW minimum code size
            if head.frames == 0:
                # Pillow grows the canvas to hold a first frame that overhangs the screen.
                head.width, head.height = max(screen_w, x + w), max(screen_h, y + h)
                first_area = w * h
            head.frames += 1
        elif block == 0x21:  # extension: label, then sub-blocks
            pos += 2
        elif head.frames:
            break  # junk after the last frame instead of a trailer: as decoders do, stop here
        else:
            raise HeaderInvalid(f"unknown block {block:#x} before the first image")
        # Skip sub-blocks (a length byte, then that many bytes) up to the zero terminator.
        start = pos
        while steps < _MAX_STEPS:
            steps += 1
            if pos >= len(data):
                break
            size = data[pos]
            pos += 1 + size
            if size == 0:
                break
        if head.frames == 1 and block == 0x2C:
            first_bytes = pos - start
    else:
        return Header(head.width, head.height, max(1, head.frames))
    if head.frames == 0:
        if head.defect:
            raise HeaderCut(head.defect)
        raise HeaderInvalid("no image in the file")
    if head.defect is None and first_bytes * _LZW_MAX_PIXELS_PER_BYTE < first_area:
        head.defect = f"{first_bytes} bytes of LZW data cannot hold a {first_area}-pixel frame"
    return head


# --- BMP ---------------------------------------------------------------------------------


def _bmp(data: bytes) -> Header:
    offset, header_size = _u32(data, 10, "<"), _u32(data, 14, "<")
    if header_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height, bits, compression = _u16(data, 18, "<"), _u16(data, 20, "<"), _u16(data, 24, "<"), 0
    elif header_size in (40, 52, 56, 64, 108, 124):
        width, height = _i32(data, 18), _i32(data, 22)
        bits, compression = _u16(data, 28, "<"), _u32(data, 30, "<")
    else:
        raise HeaderInvalid(f"unknown BMP header size {header_size}")
    height = abs(height)  # negative: stored top-down
    if width <= 0 or height == 0 or bits == 0:
        raise HeaderInvalid(f"invalid BMP header {width}x{height} at {bits} bits")
    head = Header(width, height)
    if compression in (0, 3, 6):  # uncompressed (BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS)
        stride = (width * bits + 31) // 32 * 4
        need = offset + stride * (height - 1) + math.ceil(width * bits / 8)
        if need > len(data):
            head.defect = f"{len(data)} bytes cannot hold {width}x{height} pixels at {bits} bits from byte {offset}"
    return head


# --- TIFF --------------------------------------------------------------------------------

# Most bytes one byte of each compression can expand to: none; LZW (9- to 12-bit codes of at
# most 4096 bytes); Adobe and old-style Deflate; PackBits (a 2-byte run of 128).
_TIFF_MAX_RATIO = {1: 1, 5: 4096 * 8 // 9 + 1, 8: _DEFLATE_MAX_RATIO, 32946: _DEFLATE_MAX_RATIO, 32773: 64}
_TIFF_INTEGER = {1: "u1", 3: "u2", 4: "u4", 13: "u4", 16: "u8", 18: "u8"}
_TIFF_TAGS = {256, 257, 258, 259, 273, 274, 277, 278, 279, 284, 322, 323, 324, 325}


def _tiff_ifd(data: bytes, pos: int, order: str, big: bool) -> tuple[dict[int, np.ndarray], int]:
    """The integer tags this probe needs from one IFD, as zero-copy arrays, and the next IFD's offset."""
    count = _u64(data, pos, order) if big else _u16(data, pos, order)
    entry_size, inline = (20, 8) if big else (12, 4)
    first = pos + (8 if big else 2)
    if count > 4096:
        raise HeaderInvalid(f"IFD with {count} entries")
    tags: dict[int, np.ndarray] = {}
    for i in range(count):
        entry = first + entry_size * i
        tag, kind = _u16(data, entry, order), _u16(data, entry + 2, order)
        n = _u64(data, entry + 4, order) if big else _u32(data, entry + 4, order)
        if tag not in _TIFF_TAGS or kind not in _TIFF_INTEGER:
            continue
        dtype = np.dtype(order + _TIFF_INTEGER[kind])
        at = entry + (12 if big else 8)
        if n * dtype.itemsize > inline:
            at = _u64(data, at, order) if big else _u32(data, at, order)
        if at + n * dtype.itemsize > len(data):
            raise HeaderCut(f"tag {tag} points past the end of the data")
        tags[tag] = np.frombuffer(data, dtype, int(n), at)
    return tags, _tiff_next(data, pos, order, big)


def _tiff_next(data: bytes, pos: int, order: str, big: bool) -> int:
    """The offset of the IFD after the one at `pos` (0 at the last), without reading its entries."""
    if big:
        return _u64(data, pos + 8 + 20 * _u64(data, pos, order), order)
    return _u32(data, pos + 2 + 12 * _u16(data, pos, order), order)


def _tiff(data: bytes) -> Header:
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"\x2b\x00", b"\x00\x2b")
    ifd = _u64(data, 8, order) if big else _u32(data, 4, order)
    if ifd >= len(data):
        raise HeaderCut("the first IFD is past the end of the data")
    tags, following = _tiff_ifd(data, ifd, order, big)

    def first(tag: int, default: int) -> int:
        values = tags.get(tag)
        return int(values[0]) if values is not None and len(values) else default

    width, height = first(256, 0), first(257, 0)
    if width == 0 or height == 0:
        raise HeaderInvalid(f"invalid TIFF size {width}x{height}")
    head = Header(width, height, orientation=first(274, 1) if 1 <= first(274, 1) <= 8 else 1)
    tiled = 324 in tags
    offsets, counts = (tags.get(324), tags.get(325)) if tiled else (tags.get(273), tags.get(279))
    if offsets is not None and counts is not None and len(offsets) and len(offsets) == len(counts):
        ends = offsets.astype(np.uint64) + counts.astype(np.uint64)
        if int(ends.max()) > len(data):
            head.defect = f"pixel data runs to byte {int(ends.max())} of {len(data)}"
        elif ratio := _TIFF_MAX_RATIO.get(first(259, 1)):
            bits = int(tags[258].astype(np.uint64).sum()) if 258 in tags else first(277, 1)
            need = height * math.ceil(width * bits / 8)
            have = int(counts.astype(np.uint64).sum())
            if have * ratio < need:
                head.defect = f"{have} bytes of pixel data cannot hold {need} bytes of {width}x{height} pixels"
    elif offsets is None:
        raise HeaderInvalid("no strip or tile offsets")
    # Later pages are not used, but a chain leading out of the file means the file is cut.
    seen = {ifd}
    while following and head.frames < 10_000:
        if following >= len(data):
            head.defect = head.defect or "a later page is past the end of the data"
            break
        if following in seen:
            break  # a loop: Pillow stops at it too
        seen.add(following)
        head.frames += 1
        following = _tiff_next(data, following, order, big)
    return head


# --- WebP --------------------------------------------------------------------------------


def _webp(data: bytes) -> Header:
    riff_end = 8 + _u32(data, 4, "<")
    pos = 12
    kind = data[pos : pos + 4]
    body = pos + 8
    if kind == b"VP8 ":
        if data[body + 3 : body + 6] != b"\x9d\x01\x2a":
            raise HeaderInvalid("VP8 frame without its start code")
        head = Header(_u16(data, body + 6, "<") & 0x3FFF, _u16(data, body + 8, "<") & 0x3FFF)
    elif kind == b"VP8L":
        if _byte(data, body) != 0x2F:
            raise HeaderInvalid("VP8L frame without its signature")
        bits = _u32(data, body + 1, "<")
        head = Header((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    elif kind == b"VP8X":
        if len(data) < body + 10:
            raise HeaderCut("VP8X header ends early")
        flags = data[body]
        canvas_w = int.from_bytes(data[body + 4 : body + 7], "little") + 1
        canvas_h = int.from_bytes(data[body + 7 : body + 10], "little") + 1
        head = Header(canvas_w, canvas_h, frames=0 if flags & 0x02 else 1)
    else:
        raise HeaderInvalid(f"unknown first chunk {kind!r}")
    if head.width == 0 or head.height == 0:
        raise HeaderInvalid(f"invalid WebP size {head.width}x{head.height}")
    if riff_end > len(data):
        head.defect = f"the RIFF container claims {riff_end} bytes, the data has {len(data)}"
        head.frames = max(1, head.frames)
        return head
    for _ in range(_MAX_STEPS):
        if pos + 8 > riff_end:
            break
        kind, size = data[pos : pos + 4], _u32(data, pos + 4, "<")
        end = pos + 8 + size + (size & 1)
        if pos + 8 + size > riff_end:
            head.defect = f"chunk {kind!r} runs past the end of the container"
            break
        if kind == b"ANMF":
            head.frames += 1
        elif kind == b"EXIF":
            head.orientation = _exif_orientation(data[pos + 8 : pos + 8 + size])
        pos = end
    head.frames = max(1, head.frames)
    return head


_FORMATS: tuple[tuple[tuple[bytes, ...], str, Callable[[bytes], Header]], ...] = (
    ((b"\x89PNG\r\n\x1a\n",), "PNG", _png),
    ((b"\xff\xd8\xff",), "JPEG", _jpeg),
    ((b"GIF87a", b"GIF89a"), "GIF", _gif),
    ((b"BM",), "BMP", _bmp),
    ((b"II\x2a\x00", b"MM\x00\x2a", b"II\x2b\x00", b"MM\x00\x2b", b"II\x00\x2a", b"MM\x2a\x00"), "TIFF", _tiff),
)


def identify(data: bytes) -> tuple[str, Callable[[bytes], Header]] | None:
    for signatures, name, parse in _FORMATS:
        if data.startswith(signatures):
            return name, parse
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP", _webp
    return None
