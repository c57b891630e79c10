"""Timelapse clips: they animate, loop, share one size, and the recorder spans the run."""

from __future__ import annotations

import io
import itertools

import pytest
from PIL import Image

from stylecore.timelapse import TimelapseRecorder, encode_timelapse


def shade(i: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """Frame i: a distinct solid colour, so frames can be told apart after encoding."""
    return Image.new("RGB", size, ((i * 37) % 256, (i * 91) % 256, (255 - i * 23) % 256))


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_encode_timelapse_is_a_looping_animation(fmt: str) -> None:
    frames = [shade(i) for i in range(5)]
    data = encode_timelapse(frames, fmt=fmt, duration_ms=80)
    clip = Image.open(io.BytesIO(data))
    assert clip.format == fmt.upper()
    assert clip.n_frames == 5 and clip.is_animated
    assert clip.info.get("loop") == 0
    assert clip.size == (64, 48)
    clip.seek(2)
    clip.load()
    assert clip.info.get("duration") == 80


def test_frames_are_brought_to_one_small_size() -> None:
    # Multi-scale runs: previews grow; the final frame's shape wins, capped at max_side.
    frames = [shade(0, (100, 50)), shade(1, (200, 100)), shade(2, (1000, 500))]
    clip = Image.open(io.BytesIO(encode_timelapse(frames, max_side=128)))
    assert clip.size == (128, 64)
    assert clip.n_frames == 3


def test_last_frame_is_held_longer() -> None:
    clip = Image.open(io.BytesIO(encode_timelapse([shade(i) for i in range(3)], duration_ms=50)))
    clip.seek(2)
    clip.load()
    assert clip.info["duration"] >= 1000


def test_encode_timelapse_rejects_nothing_to_show() -> None:
    with pytest.raises(ValueError):
        encode_timelapse([])
    with pytest.raises(ValueError):
        encode_timelapse([shade(0)], fmt="mp4")  # type: ignore[arg-type]


def colour_of(img: Image.Image) -> tuple[int, int, int]:
    return img.convert("RGB").getpixel((5, 5))


def test_recorder_keeps_everything_while_under_the_cap() -> None:
    rec = TimelapseRecorder(max_frames=10)
    for i in range(7):
        rec.add(shade(i))
    assert len(rec) == 7
    assert [colour_of(f) for f in rec.frames] == [colour_of(shade(i)) for i in range(7)]


@pytest.mark.parametrize(("max_frames", "offers"), [(5, 23), (8, 100), (9, 64), (48, 250)])
def test_recorder_thins_evenly_and_keeps_first_and_last(max_frames: int, offers: int) -> None:
    rec = TimelapseRecorder(max_frames=max_frames, max_side=16)
    for i in range(offers):
        rec.add(shade(i, (20, 20)))
    kept = [colour_of(f) for f in rec.frames]
    index_of = {colour_of(shade(i, (20, 20))): i for i in range(offers)}
    indices = [index_of[c] for c in kept]
    assert 2 <= len(rec) <= max_frames
    assert len(rec) > max_frames // 2  # thinning does not throw away more than needed
    assert indices[0] == 0 and indices[-1] == offers - 1
    assert indices == sorted(indices)
    gaps = {b - a for a, b in itertools.pairwise(indices[:-1])}
    assert len(gaps) == 1  # evenly spread, apart from the final frame


def test_recorder_shrinks_frames_and_encodes() -> None:
    rec = TimelapseRecorder(max_frames=6, max_side=32, fmt="webp")
    for i in range(10):
        rec.add(shade(i, (400, 200)))
    assert all(max(f.size) == 32 for f in rec.frames)
    clip = Image.open(io.BytesIO(rec.to_bytes()))
    assert clip.format == "WEBP" and clip.n_frames == len(rec) > 1
    assert clip.size == (32, 16)
    gif = Image.open(io.BytesIO(rec.to_bytes(fmt="gif")))
    assert gif.format == "GIF" and gif.n_frames == len(rec)


def test_empty_recorder() -> None:
    rec = TimelapseRecorder()
    assert len(rec) == 0
    with pytest.raises(ValueError):
        rec.to_bytes()
    with pytest.raises(ValueError):
        TimelapseRecorder(max_frames=1)
