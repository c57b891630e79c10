"""The isolated decoder: every upload decoded in a disposable child, every outcome an ImageError or an ImageInfo.

Real children throughout: the real decoding child for real images (good, bad, hostile), and
the misbehaving children of `decode_hooks` (crash, hang, garbage) for the parent's side.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from imagefiles import encode, noise, png_claiming, png_with_corrupt_pixels, solid
from PIL import Image

from stylecore.imageio import (
    DecoderFailed,
    ImageError,
    ImageInfo,
    ImageLimits,
    ImageTooLarge,
    IsolatedDecoder,
    NotAnImage,
    TruncatedImage,
)
from stylecore.imageio.limits import MiB

TESTS = Path(__file__).parent


GOOD = encode(solid((10, 20, 30), (40, 24)))


@pytest.fixture(autouse=True)
def hooks_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Children find `decode_hooks` through PYTHONPATH, which they inherit."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))


async def until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# --- the real child ----------------------------------------------------------------------


async def test_a_good_image_is_described() -> None:
    async with IsolatedDecoder() as decoder:
        info = await decoder.validate(GOOD)
    assert info == ImageInfo("PNG", 40, 24, 1, "RGB")
    assert decoder.running == 0


async def test_what_the_child_learns_comes_back() -> None:
    frames = [solid(c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: displayed 24 wide, 40 high
    rotated = encode(solid((0, 0, 255), (40, 24)), "JPEG", exif=exif.tobytes())
    grey16 = encode(Image.fromarray(np.full((20, 30), 40000, dtype=np.uint16)))
    async with IsolatedDecoder() as decoder:
        animated, upright, deep = await asyncio.gather(
            decoder.validate(gif), decoder.validate(rotated), decoder.validate(grey16)
        )
    assert animated.format == "GIF" and animated.frames == 3 and animated.animated
    assert (upright.width, upright.height) == (24, 40)
    assert deep.mode == "I;16" and (deep.width, deep.height) == (30, 20)


async def test_a_kept_copy_is_a_small_jpeg_of_the_decoded_pixels() -> None:
    """`copy` is `validate` plus a re-encoded JPEG: shrunk to the asked side, never enlarged, and
    refused for a bad image exactly as `validate` refuses it."""
    photo = noise(300, 200, seed=4)
    async with IsolatedDecoder() as decoder:
        small = await decoder.copy(encode(photo, "PNG"), max_side=120)
        kept = await decoder.copy(GOOD, max_side=120)
        with pytest.raises(TruncatedImage):
            await decoder.copy(png_with_corrupt_pixels(), max_side=120)
    with Image.open(io.BytesIO(small)) as img:
        assert (img.format, img.size) == ("JPEG", (120, 80))
        near = np.asarray(img.convert("RGB"), dtype=float).mean()
    assert abs(near - np.asarray(photo.resize((120, 80)), dtype=float).mean()) < 8  # the same picture
    with Image.open(io.BytesIO(kept)) as img:
        assert img.size == (40, 24) and img.getpixel((20, 12)) == pytest.approx((10, 20, 30), abs=4)
    assert decoder.running == 0


async def test_bad_images_get_their_own_errors() -> None:
    truncated = encode(solid((200, 100, 0), (96, 96)), "JPEG")
    async with IsolatedDecoder() as decoder:
        with pytest.raises(NotAnImage):
            await decoder.validate(b"just some text, not pixels\n" * 20)
        with pytest.raises(TruncatedImage) as cut:
            await decoder.validate(truncated[: len(truncated) // 2])
        with pytest.raises(ImageTooLarge) as big:
            await decoder.validate(GOOD, ImageLimits(max_pixels=500))
        with pytest.raises(ImageTooLarge) as bomb:
            await decoder.validate(png_claiming(100_000, 100_000))  # 10 gigapixels claimed by a 100-byte file
    assert "damaged" in cut.value.user_message
    assert "megapixels" in big.value.user_message and "megapixels" in bomb.value.user_message


async def test_damage_only_a_decode_can_find_is_reported_from_the_child() -> None:
    async with IsolatedDecoder() as decoder:
        with pytest.raises(TruncatedImage) as info:
            await decoder.validate(png_with_corrupt_pixels())
    assert "damaged" in info.value.user_message


async def test_the_memory_ceiling_stops_a_decode_that_needs_more() -> None:
    big = encode(Image.new("RGBA", (4000, 4000), (1, 2, 3, 4)))  # 64 MB decoded, 48 MB as RGB
    async with IsolatedDecoder(memory_limit=32 * MiB) as decoder:
        with pytest.raises(ImageTooLarge) as info:
            await decoder.validate(big)
        assert "memory" in info.value.user_message
    async with IsolatedDecoder(memory_limit=512 * MiB) as decoder:
        assert (await decoder.validate(big)).pixels == 16_000_000


async def test_a_decoder_that_allocates_wildly_is_held_to_the_ceiling() -> None:
    async with IsolatedDecoder(memory_limit=64 * MiB, entry="decode_hooks:hogs_memory") as decoder:
        with pytest.raises(ImageTooLarge):
            await decoder.validate(GOOD)


# --- children that misbehave -------------------------------------------------------------


@pytest.mark.parametrize("hook", ["exits", "killed", "segfaults", "garbles", "lies"])
async def test_a_crashing_or_confused_child_is_a_clear_error_and_harms_nothing(hook: str) -> None:
    async with IsolatedDecoder(entry=f"decode_hooks:{hook}") as decoder:
        with pytest.raises(DecoderFailed) as info:
            await decoder.validate(GOOD)
        assert decoder.running == 0
    assert info.value.user_message == DecoderFailed.default_user_message
    async with IsolatedDecoder() as decoder:  # this process is fine and decodes as before
        assert (await decoder.validate(GOOD)).width == 40


async def test_a_hanging_child_is_killed_at_the_timeout() -> None:
    async with IsolatedDecoder(timeout=1.5, entry="decode_hooks:hangs") as decoder:
        with pytest.raises(DecoderFailed) as info:
            await decoder.validate(GOOD)
        assert decoder.running == 0
    assert "too long" in info.value.user_message


async def test_cancelling_a_validation_kills_its_child() -> None:
    async with IsolatedDecoder(entry="decode_hooks:hangs") as decoder:
        task = asyncio.create_task(decoder.validate(GOOD))
        await until(lambda: decoder.running == 1)
        (child,) = decoder._children
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert decoder.running == 0 and child.returncode is not None


async def test_close_kills_children_and_refuses_new_work() -> None:
    decoder = IsolatedDecoder(entry="decode_hooks:hangs")
    task = asyncio.create_task(decoder.validate(GOOD))
    await until(lambda: decoder.running == 1)
    await decoder.close()
    with pytest.raises(DecoderFailed):
        await task
    with pytest.raises(RuntimeError):
        await decoder.validate(GOOD)


async def test_children_get_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "secret-token-value")
    async with IsolatedDecoder(entry="decode_hooks:reports_environment") as decoder:
        with pytest.raises(ImageError) as info:
            await decoder.validate(GOOD)
    assert "PYTHONPATH" in str(info.value)  # the report arrived
    assert "DISCORD_TOKEN" not in str(info.value) and "secret-token-value" not in str(info.value)


async def test_no_more_children_than_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    async with IsolatedDecoder(workers=2, entry="decode_hooks:gated") as decoder:
        tasks = [asyncio.create_task(decoder.validate(GOOD)) for _ in range(5)]
        await until(lambda: decoder.waiting == 3 and len(list(tmp_path.glob("*.start"))) == 2)
        assert decoder.running == 2  # the other three wait for a slot, not in a process
        (tmp_path / "release").write_text("")
        results = await asyncio.gather(*tasks)
    assert all(r.width == 40 for r in results)
    live = [int(p.read_text()) for p in tmp_path.glob("*.live")]
    assert len(live) == 5 and max(live) <= 2


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        IsolatedDecoder(workers=0)
    with pytest.raises(ValueError):
        IsolatedDecoder(timeout=0)
    with pytest.raises(ValueError):
        IsolatedDecoder(memory_limit=1024)
    with pytest.raises(ValueError):
        IsolatedDecoder(entry="no_function_here")
