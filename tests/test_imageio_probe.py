"""Header-only checks, and truncated or lying files refused as damaged whatever their format.

`probe_image` is what the bot process runs on an upload; `load_image` (the worker's and the
isolated child's decode) runs the same checks first and then finds what only decoding can.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
import pytest
from imagefiles import (
    animated,
    bmp_claiming,
    encode,
    gif_claiming,
    jpeg_claiming,
    noise,
    png_claiming,
    png_with_corrupt_pixels,
    solid,
    tiff_claiming,
    with_exif_orientation,
)
from PIL import Image

from stylecore.imageio import (
    EmptyImage,
    ImageInfo,
    ImageLimits,
    ImageTooLarge,
    ImageTooSmall,
    NotAnImage,
    TruncatedImage,
    load_image,
    probe_image,
)

# --- what the header says ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "save", "name"),
    [
        ("PNG", {}, "PNG"),
        ("JPEG", {}, "JPEG"),
        ("JPEG", {"progressive": True}, "JPEG"),
        ("GIF", {}, "GIF"),
        ("BMP", {}, "BMP"),
        ("TIFF", {}, "TIFF"),
        ("TIFF", {"compression": "tiff_adobe_deflate"}, "TIFF"),
        ("TIFF", {"compression": "tiff_lzw", "tile": (16, 16)}, "TIFF"),
        ("WEBP", {}, "WEBP"),
        ("WEBP", {"lossless": True}, "WEBP"),
        ("WEBP", {"icc_profile": b"not really a profile"}, "WEBP"),  # an extended (VP8X) container
    ],
)
def test_every_allowed_format_is_read_from_its_header(fmt: str, save: dict, name: str) -> None:
    data = encode(noise(48, 20), fmt, **save)
    assert probe_image(data) == ImageInfo(name, 48, 20, 1)
    assert load_image(data).size == (48, 20)


def test_big_endian_and_bigtiff_headers_are_read() -> None:
    big_endian = encode(Image.fromarray(np.full((18, 40), 1000, dtype=">u2")), "TIFF")
    assert big_endian[:4] == b"MM\x00\x2a"
    assert probe_image(big_endian) == ImageInfo("TIFF", 40, 18, 1)
    bigtiff = encode(noise(40, 18), "TIFF", big_tiff=True)
    assert bigtiff[:4] == b"II\x2b\x00"
    assert probe_image(bigtiff) == ImageInfo("TIFF", 40, 18, 1)
    assert load_image(bigtiff).size == (40, 18)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animation_is_reported(fmt: str) -> None:
    info = probe_image(animated(fmt))
    assert info.frames == 3 and info.animated


def test_multi_page_tiff_is_reported() -> None:
    data = encode(solid((1, 2, 3)), "TIFF", save_all=True, append_images=[solid((4, 5, 6))])
    assert probe_image(data).frames == 2


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_size_is_as_displayed_after_the_exif_orientation(fmt: str) -> None:
    data = with_exif_orientation(solid((0, 0, 255), (40, 20)), fmt, 6)
    assert (probe_image(data).width, probe_image(data).height) == (20, 40)
    assert load_image(data).size == (20, 40)


@pytest.mark.parametrize("fmt", ["PPM", "ICO", "TGA", "PCX", "EPS"])
def test_formats_outside_the_allow_list_are_refused(fmt: str) -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\n"
    data = eps if fmt == "EPS" else encode(solid((1, 2, 3)), fmt)
    with pytest.raises(NotAnImage) as info:
        probe_image(data)
    assert "PNG" in info.value.user_message


def test_limits_are_checked_in_order_bytes_then_pixels_then_sides() -> None:
    with pytest.raises(EmptyImage):
        probe_image(b"")
    with pytest.raises(ImageTooLarge) as info:
        probe_image(b"x" * 2000, ImageLimits(max_bytes=1000))  # not an image either: bytes come first
    assert "1000 bytes" in info.value.user_message
    with pytest.raises(ImageTooLarge) as info:
        probe_image(png_claiming(8000, 6000))  # also truncated: the pixel limit is the better answer
    assert "40 megapixels" in info.value.user_message
    with pytest.raises(ImageTooSmall):
        probe_image(encode(solid((1, 2, 3), (100, 10))))
    assert probe_image(encode(solid((1, 2, 3), (100, 10))), ImageLimits(min_side=10)).height == 10


# --- truncated and lying files -------------------------------------------------------------

CUT_FORMATS = [
    ("JPEG", {}),
    ("JPEG", {"progressive": True}),
    ("PNG", {}),
    ("WEBP", {}),
    ("WEBP", {"lossless": True}),
    ("GIF", {}),
    ("TIFF", {}),
    ("TIFF", {"compression": "tiff_adobe_deflate"}),
    ("TIFF", {"compression": "tiff_lzw"}),
    ("BMP", {}),
]


@pytest.mark.parametrize(("fmt", "save"), CUT_FORMATS)
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, -1])
def test_a_cut_off_file_is_refused_as_truncated(fmt: str, save: dict, keep: float) -> None:
    data = encode(noise(96, 64, seed=5), fmt, **save)
    assert load_image(data).size == (96, 64)  # the whole file is fine
    cut = data[:-1] if keep == -1 else data[: int(len(data) * keep)]
    with pytest.raises(TruncatedImage) as info:
        probe_image(cut)
    assert "cut off or damaged" in info.value.user_message
    with pytest.raises(TruncatedImage):
        load_image(cut)


LIARS: dict[str, Callable[[int, int], bytes]] = {
    "JPEG": jpeg_claiming,
    "PNG": png_claiming,
    "GIF": gif_claiming,
    "TIFF": tiff_claiming,
    "TIFF-deflate": lambda w, h: tiff_claiming(w, h, compression="tiff_adobe_deflate"),
    "TIFF-lzw": lambda w, h: tiff_claiming(w, h, compression="tiff_lzw"),
    "TIFF-packbits": lambda w, h: tiff_claiming(w, h, compression="packbits"),
    "BMP": bmp_claiming,
}


@pytest.mark.parametrize("fmt", sorted(LIARS))
def test_a_header_claiming_more_than_the_data_holds_is_refused(fmt: str) -> None:
    data = LIARS[fmt](6000, 6000)
    assert len(data) < 4000
    with pytest.raises(TruncatedImage):
        probe_image(data)
    with pytest.raises(TruncatedImage):
        load_image(data)


def test_the_grey_jpeg_case() -> None:
    # 6000x6000 claimed, ~700 bytes of data ending in a proper end marker: libjpeg would
    # fill the missing 99.99% with grey and report success.
    data = jpeg_claiming(6000, 6000)
    assert data.endswith(b"\xff\xd9") and len(data) < 1000
    with pytest.raises(TruncatedImage) as info:
        load_image(data)
    assert "scan data" in str(info.value)


def test_corrupt_pixel_data_behind_a_sound_header_is_refused() -> None:
    data = png_with_corrupt_pixels()
    assert probe_image(data).width == 64  # complete, plausible chunks
    with pytest.raises(TruncatedImage):
        load_image(data)  # but not a zlib stream inside


# --- what must not be refused --------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP"])
def test_data_after_the_end_of_an_image_is_ignored(fmt: str) -> None:
    data = encode(noise(40, 30), fmt) + b"\x00trailing bytes some tools append"
    assert probe_image(data).width == 40
    assert load_image(data).size == (40, 30)


@pytest.mark.parametrize(
    ("fmt", "save"),
    [
        ("PNG", {"compress_level": 9}),
        ("JPEG", {"quality": 1, "optimize": True}),
        ("GIF", {}),
        ("WEBP", {"lossless": True}),
    ],
)
def test_flat_images_at_maximum_compression_are_not_mistaken_for_truncated(fmt: str, save: dict) -> None:
    # The plausibility checks are lower bounds that real encoders cannot beat: a flat image
    # compressed as hard as its format allows is the closest a real file gets to them.
    flat = Image.new("L", (6000, 4000), 0) if fmt != "WEBP" else Image.new("RGB", (6000, 4000), (0, 0, 0))
    data = encode(flat, fmt, **save)
    assert probe_image(data).pixels == 24_000_000


def test_a_small_first_frame_on_a_large_gif_screen_is_valid() -> None:
    data = bytearray(encode(solid((100, 150, 200)), "GIF"))
    data[6:10] = struct.pack("<HH", 3000, 2000)  # the screen only; the frame stays 32x32
    assert probe_image(bytes(data)) == ImageInfo("GIF", 3000, 2000, 1)


def test_a_file_of_countless_tiny_blocks_is_probed_quickly_and_left_to_the_decoder() -> None:
    gif = encode(solid((100, 150, 200)), "GIF")
    comment = b"\x21\xfe" + b"\x01x" * 400_000 + b"\x00"  # a comment in 400,000 one-byte sub-blocks
    data = gif[:-1] + comment + b"\x3b"
    assert probe_image(data) == ImageInfo("GIF", 32, 32, 1)
    assert load_image(data).getpixel((5, 5)) == (100, 150, 200)
