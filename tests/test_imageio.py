"""Loading hostile or unusual uploads, and encoding results to fit an upload limit."""

from __future__ import annotations

import io
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
from imagefiles import encode, noise, png_claiming, solid
from PIL import Image, ImageCms

from stylecore.imageio import (
    EmptyImage,
    EncodedImage,
    ImageError,
    ImageTooLarge,
    ImageTooSmall,
    NotAnImage,
    TruncatedImage,
    encode_image,
    encode_preview,
    load_image,
    probe_image,
    resize_to,
    to_rgb,
)


def close(a: tuple[int, ...], b: tuple[int, ...], tol: int = 6) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


# --- bad inputs ----------------------------------------------------------------------


def test_random_bytes_are_not_an_image() -> None:
    junk = random.Random(0).randbytes(4000)
    with pytest.raises(NotAnImage) as info:
        load_image(junk)
    assert "PNG" in info.value.user_message and "JPEG" in info.value.user_message


def test_text_file_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"  # the extension lies; the content decides
    path.write_text("just some text, not pixels\n" * 20)
    with pytest.raises(NotAnImage):
        load_image(path)
    with pytest.raises(NotAnImage):
        load_image(str(path))


def test_image_errors_are_value_errors_with_a_user_message() -> None:
    with pytest.raises(ValueError) as info:
        load_image(b"hello")
    assert isinstance(info.value, ImageError)
    assert info.value.user_message.endswith(".")
    assert "BytesIO" not in info.value.user_message  # no internals shown to users


def test_unsupported_but_real_format_is_refused() -> None:
    # PPM decodes fine in Pillow but is outside the allow-list of upload formats.
    with pytest.raises(NotAnImage):
        load_image(encode(solid((1, 2, 3)), "PPM"))


@pytest.mark.parametrize("make", [lambda p: b"", lambda p: p, lambda p: io.BytesIO()])
def test_zero_bytes(tmp_path: Path, make) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(EmptyImage) as info:
        load_image(make(empty))
    assert "empty" in info.value.user_message


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files(fmt: str) -> None:
    data = encode(noise(96, 96), fmt)
    load_image(data)  # the whole file is fine
    with pytest.raises(TruncatedImage) as info:
        load_image(data[: len(data) // 2])
    assert "damaged" in info.value.user_message


def test_truncation_setting_is_not_changed_globally() -> None:
    from PIL import ImageFile

    data = encode(noise(64, 64), "JPEG")
    with pytest.raises(TruncatedImage):
        load_image(data[: len(data) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_header_claiming_too_many_pixels_is_refused_before_decoding() -> None:
    # 8000 x 6000 = 48 MP: over the 40 MP default but below Pillow's own guard. The pixel
    # data is only 32x32, so an attempted decode would fail as truncated instead.
    with pytest.raises(ImageTooLarge) as info:
        load_image(png_claiming(8000, 6000))
    assert "40" in info.value.user_message and "megapixels" in info.value.user_message


def test_max_pixels_is_configurable() -> None:
    data = encode(solid((5, 5, 5), (100, 100)))
    assert load_image(data, max_pixels=10_000).size == (100, 100)
    with pytest.raises(ImageTooLarge):
        load_image(data, max_pixels=9_999)


@pytest.mark.parametrize("side", [100_000, 10_000])
def test_pillows_decompression_bomb_limit_holds_even_when_max_pixels_is_higher(side: int) -> None:
    # 1e10 px is past Pillow's hard error; 1e8 px only past its warning. Both are refused
    # from the header, before Pillow opens the file, and no warning filter is left changed.
    before = list(warnings.filters)
    with pytest.raises(ImageTooLarge) as info:
        load_image(png_claiming(side, side), max_pixels=10**12)
    assert f"{Image.MAX_IMAGE_PIXELS / 1e6:g} megapixels" in info.value.user_message
    assert list(warnings.filters) == before


def test_a_lowered_pillow_limit_is_honoured_by_the_header_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageTooLarge):
        probe_image(encode(solid((1, 1, 1))))
    with pytest.raises(ImageTooLarge):
        load_image(encode(solid((1, 1, 1))))


def test_too_many_bytes_is_refused_before_decoding(tmp_path: Path) -> None:
    junk = random.Random(1).randbytes(3000)  # not an image: proves size is checked first
    with pytest.raises(ImageTooLarge) as info:
        load_image(junk, max_bytes=2048)
    assert "2 KB" in info.value.user_message
    path = tmp_path / "big.bin"
    path.write_bytes(junk)
    with pytest.raises(ImageTooLarge):
        load_image(path, max_bytes=2048)
    with pytest.raises(ImageTooLarge):
        load_image(io.BytesIO(junk), max_bytes=2048)


def test_byte_limit_is_inclusive() -> None:
    data = encode(solid((9, 9, 9)))
    assert load_image(data, max_bytes=len(data)).size == (32, 32)
    with pytest.raises(ImageTooLarge):
        load_image(data, max_bytes=len(data) - 1)


@pytest.mark.parametrize("size", [(8, 8), (15, 200), (200, 15)])
def test_too_small(size: tuple[int, int]) -> None:
    with pytest.raises(ImageTooSmall) as info:
        load_image(encode(solid((0, 0, 0), size)))
    assert "16" in info.value.user_message


def test_min_side_is_configurable() -> None:
    data = encode(solid((0, 0, 0), (8, 8)))
    assert load_image(data, min_side=8).size == (8, 8)


# --- sources -------------------------------------------------------------------------


def test_every_kind_of_source_gives_the_same_image(tmp_path: Path) -> None:
    data = encode(noise(20, 18))
    path = tmp_path / "x.png"
    path.write_bytes(data)
    expected = np.asarray(noise(20, 18))
    for source in (data, bytearray(data), memoryview(data), path, str(path), io.BytesIO(data)):
        img = load_image(source)
        assert img.mode == "RGB"
        assert np.array_equal(np.asarray(img), expected)


def test_result_is_detached_plain_rgb() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(solid((1, 2, 3)), "PNG", icc_profile=srgb)
    assert Image.open(io.BytesIO(data)).info.get("icc_profile")
    img = load_image(data)
    assert img.mode == "RGB" and img.info == {}
    assert close(img.getpixel((0, 0)), (1, 2, 3), tol=2)  # sRGB -> sRGB leaves pixels alone


def test_broken_metadata_does_not_cost_the_upload() -> None:
    # Garbage EXIF and a garbage ICC profile are optional metadata: ignore, keep the pixels.
    red = solid((255, 0, 0))
    assert close(load_image(encode(red, "JPEG", exif=b"Exif\x00\x00garbage!")).getpixel((5, 5)), (255, 0, 0))
    assert load_image(encode(red, "PNG", icc_profile=b"not a profile")).getpixel((5, 5)) == (255, 0, 0)


def test_multi_picture_phone_jpeg_loads() -> None:
    # MPO files report their own format name but must pass the JPEG allow-list entry.
    data = encode(solid((255, 0, 0)), "MPO", save_all=True, append_images=[solid((0, 0, 255))])
    assert Image.open(io.BytesIO(data)).format == "MPO"
    assert close(load_image(data).getpixel((5, 5)), (255, 0, 0))


# --- modes ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk(fmt: str) -> None:
    img = Image.new("CMYK", (32, 32), (0, 0, 0, 0))
    img.paste((255, 0, 0, 0), (0, 0, 16, 32))  # cyan on the left half
    out = load_image(encode(img, fmt))
    assert out.mode == "RGB"
    assert close(out.getpixel((4, 4)), (0, 255, 255), tol=8)
    assert close(out.getpixel((28, 4)), (255, 255, 255), tol=8)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_with_transparency_goes_over_white(fmt: str) -> None:
    img = Image.new("P", (32, 32), 0)
    img.putpalette([0, 0, 0] + [200, 30, 40] + [0, 0, 0] * 254)
    img.paste(1, (0, 0, 16, 32))
    out = load_image(encode(img, fmt, transparency=0))
    assert out.getpixel((28, 4)) == (255, 255, 255)  # transparent index 0 (black)
    assert out.getpixel((4, 4)) == (200, 30, 40)


def test_palette_without_transparency() -> None:
    img = Image.new("P", (32, 32), 0)
    img.putpalette([12, 34, 56] * 256)
    assert load_image(encode(img)).getpixel((3, 3)) == (12, 34, 56)


def test_la_over_white() -> None:
    img = Image.new("LA", (32, 32), (0, 0))  # transparent black
    img.paste((90, 255), (0, 0, 16, 32))
    out = load_image(encode(img))
    assert out.getpixel((28, 4)) == (255, 255, 255)
    assert out.getpixel((4, 4)) == (90, 90, 90)


def test_rgba_over_white_not_black() -> None:
    img = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (0, 0, 10, 32))
    img.paste((0, 0, 0, 128), (10, 0, 20, 32))
    out = load_image(encode(img))
    assert out.getpixel((25, 4)) == (255, 255, 255)
    assert out.getpixel((4, 4)) == (255, 0, 0)
    assert close(out.getpixel((15, 4)), (127, 127, 127), tol=2)


def test_sixteen_bit_greyscale_png_is_scaled_not_clipped() -> None:
    values = np.zeros((32, 32), dtype=np.uint16)
    values[:, 0:8] = 0
    values[:, 8:16] = 32768
    values[:, 16:24] = 65535
    values[:, 24:32] = 1000
    data = encode(Image.fromarray(values))
    assert Image.open(io.BytesIO(data)).mode == "I;16"  # really a 16-bit file
    out = load_image(data)
    assert [out.getpixel((x, 5))[0] for x in (2, 10, 20, 28)] == [0, 128, 255, 4]
    assert out.getpixel((10, 5)) == (128, 128, 128)


def test_float_and_int32_tiff() -> None:
    f = Image.fromarray(np.full((20, 20), 0.5, dtype=np.float32))
    assert load_image(encode(f, "TIFF")).getpixel((0, 0)) == (128, 128, 128)
    i = Image.fromarray(np.full((20, 20), 65535, dtype=np.int32))
    assert i.mode == "I"
    assert load_image(encode(i, "TIFF")).getpixel((0, 0)) == (255, 255, 255)


def test_float_outside_unit_range_is_stretched() -> None:
    arr = np.zeros((20, 20), dtype=np.float32)
    arr[:, 10:] = 1000.0
    out = to_rgb(Image.fromarray(arr))
    assert out.getpixel((0, 0)) == (0, 0, 0) and out.getpixel((15, 0)) == (255, 255, 255)


@pytest.mark.parametrize(("mode", "dtype"), [("I;16", "<u2"), ("I;16L", "<u2"), ("I;16B", ">u2"), ("I;16N", "=u2")])
def test_every_sixteen_bit_layout_scales_the_same(mode: str, dtype: str) -> None:
    raw = np.array([[0, 32768, 65535, 1000, 128, 129]], dtype=dtype).tobytes()
    img = Image.frombytes(mode, (6, 1), raw)
    assert np.asarray(to_rgb(img))[0, :, 0].tolist() == [0, 128, 255, 4, 0, 1]


def test_float_non_finite_values_and_signed_integers() -> None:
    f = Image.fromarray(np.array([[0.0, 0.5, np.nan, np.inf, -np.inf, 1.0]], dtype=np.float32))
    assert np.asarray(to_rgb(f))[0, :, 0].tolist() == [0, 128, 0, 255, 0, 255]
    i = Image.fromarray(np.array([[-100, 0, 100]], dtype=np.int32))
    assert np.asarray(to_rgb(i))[0, :, 0].tolist() == [0, 128, 255]


@pytest.mark.parametrize(
    ("dtype", "values"),
    [
        (np.float32, lambda rng, shape: rng.normal(0.0, 50.0, shape)),  # stretched over its own range
        (np.float32, lambda rng, shape: rng.uniform(0.0, 1.0, shape)),  # [0, 1]
        (np.int32, lambda rng, shape: rng.integers(-70000, 70000, shape)),  # stretched
        (np.uint16, lambda rng, shape: rng.integers(0, 65536, shape)),  # 16-bit
    ],
)
def test_strip_by_strip_scaling_equals_scaling_the_whole_frame(dtype, values, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small strips force many of them (and a short last one); the range must still be the
    # whole image's, so the result equals the straightforward whole-frame float64 computation.
    import stylecore.imageio.decode as decode

    monkeypatch.setattr(decode, "_STRIP_PIXELS", 37 * 5)
    rng = np.random.default_rng(11)
    arr = values(rng, (53, 37)).astype(dtype)
    x = arr.astype(np.float64)
    if dtype is np.uint16:
        expected = np.rint(x / 257.0)
    elif dtype is np.float32 and x.min() >= 0 and x.max() <= 1:
        expected = np.rint(x * 255.0)
    else:
        expected = np.rint((x - x.min()) / (x.max() - x.min()) * 255.0)
    out = np.asarray(to_rgb(Image.fromarray(arr)))
    assert np.array_equal(out[..., 0], expected.astype(np.uint8))
    assert np.array_equal(out[..., 0], out[..., 2])


@pytest.mark.parametrize("fmt", ["PNG", "BMP"])
def test_one_bit_and_greyscale(fmt: str) -> None:
    img = Image.new("1", (32, 32), 0)
    img.paste(1, (0, 0, 16, 32))
    out = load_image(encode(img, fmt))
    assert out.getpixel((4, 4)) == (255, 255, 255) and out.getpixel((28, 4)) == (0, 0, 0)
    assert load_image(encode(Image.new("L", (32, 32), 77), fmt)).getpixel((1, 1)) == (77, 77, 77)


def test_to_rgb_premultiplied_and_palette_alpha_modes() -> None:
    pa = Image.new("PA", (4, 4))
    pa.putpalette([0, 0, 0, 10, 200, 30] + [0, 0, 0] * 254)
    pa.putpixel((0, 0), (1, 255))
    pa.putpixel((1, 0), (1, 0))
    out = to_rgb(pa)
    assert out.getpixel((0, 0)) == (10, 200, 30) and out.getpixel((1, 0)) == (255, 255, 255)

    rgba = Image.new("RGBA", (4, 4), (200, 100, 50, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))
    out = to_rgb(rgba.convert("RGBa"))
    assert out.getpixel((1, 1)) == (200, 100, 50) and out.getpixel((0, 0)) == (255, 255, 255)

    la = Image.new("LA", (4, 4), (60, 255))
    la.putpixel((0, 0), (0, 0))
    out = to_rgb(la.convert("La"))
    assert out.getpixel((1, 1)) == (60, 60, 60) and out.getpixel((0, 0)) == (255, 255, 255)


# --- orientation and animation ---------------------------------------------------------


def test_exif_orientation_is_applied() -> None:
    img = solid((0, 0, 255), (40, 20))
    img.paste((255, 0, 0), (0, 0, 8, 8))  # marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    out = load_image(encode(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert out.size == (20, 40)
    assert close(out.getpixel((17, 2)), (255, 0, 0), tol=40)  # now top-right
    assert close(out.getpixel((2, 2)), (0, 0, 255), tol=40)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animation_gives_first_frame(fmt: str) -> None:
    frames = [solid(c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    kw = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **kw)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    assert load_image(data).getpixel((16, 16)) == (255, 0, 0)


# --- resize ----------------------------------------------------------------------------


def test_resize_long_and_short_side() -> None:
    img = solid((1, 1, 1), (400, 200))
    assert resize_to(img, 100).size == (100, 50)
    assert resize_to(img, 100, "short").size == (200, 100)
    assert resize_to(solid((1, 1, 1), (200, 400)), 100).size == (50, 100)


def test_resize_does_not_upscale_unless_asked() -> None:
    img = solid((1, 1, 1), (40, 20))
    out = resize_to(img, 100)
    assert out.size == (40, 20) and out is not img
    assert resize_to(img, 100, upscale=True).size == (100, 50)


def test_resize_keeps_at_least_one_pixel() -> None:
    assert resize_to(solid((1, 1, 1), (1000, 2)), 10).size == (10, 1)
    with pytest.raises(ValueError):
        resize_to(solid((1, 1, 1)), 0)


# --- encoding --------------------------------------------------------------------------


def test_png_is_kept_when_it_fits() -> None:
    enc = encode_image(solid((10, 200, 30), (64, 48)), "png", max_bytes=1_000_000)
    assert isinstance(enc, EncodedImage)
    assert enc.fmt == "png" and enc.data.startswith(b"\x89PNG")
    assert (enc.width, enc.height) == (64, 48)
    assert enc.filename == "stylized.png" and enc.content_type == "image/png"
    assert Image.open(io.BytesIO(enc.data)).getpixel((0, 0)) == (10, 200, 30)


def test_noisy_image_falls_back_to_lossy_under_budget() -> None:
    img = noise(512, 512)
    assert len(encode_image(img, "png").data) > 60_000
    enc = encode_image(img, "png", max_bytes=60_000)
    assert enc.fmt in ("jpeg", "webp") and len(enc.data) <= 60_000
    decoded = Image.open(io.BytesIO(enc.data))
    decoded.load()
    assert decoded.format == enc.fmt.upper() and decoded.size == (enc.width, enc.height)
    assert enc.filename == f"stylized.{'jpg' if enc.fmt == 'jpeg' else 'webp'}"


def test_tight_budget_downscales() -> None:
    enc = encode_image(noise(512, 256), "png", max_bytes=6_000)
    assert len(enc.data) <= 6_000
    assert enc.width < 512 and abs(enc.width / enc.height - 2) < 0.05
    assert Image.open(io.BytesIO(enc.data)).size == (enc.width, enc.height)


def test_impossible_budget_raises() -> None:
    with pytest.raises(ImageTooLarge):
        encode_image(noise(64, 64), "png", max_bytes=50)


def test_format_names() -> None:
    img = solid((50, 60, 70))
    assert encode_image(img, "JPG").fmt == "jpeg"
    assert encode_image(img, "webp").data[8:12] == b"WEBP"
    with pytest.raises(ValueError):
        encode_image(img, "bmp")


def test_encode_non_rgb_input() -> None:
    enc = encode_image(Image.new("RGBA", (20, 20), (0, 0, 0, 0)), "jpeg")
    assert close(Image.open(io.BytesIO(enc.data)).getpixel((5, 5)), (255, 255, 255), tol=3)


def test_preview_is_small_jpeg() -> None:
    data = encode_preview(noise(600, 300))
    prev = Image.open(io.BytesIO(data))
    assert prev.format == "JPEG" and prev.size == (256, 128)
    assert Image.open(io.BytesIO(encode_preview(solid((0, 0, 0), (40, 30))))).size == (40, 30)
