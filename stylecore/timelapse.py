"""Animated "watch it paint" clips of a run.

The optimisation is the fun part to watch, so a run can record its previews and hand back
a small looping GIF or WebP. Frames are kept small and few: the clip must upload next to
the result without eating the user's upload limit.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Literal

from PIL import Image

from stylecore.imageio import resize_to, to_rgb

TimelapseFormat = Literal["gif", "webp"]


def _frame(img: Image.Image, max_side: int) -> Image.Image:
    small = resize_to(img, max_side, "long", upscale=False)
    return small if small.mode == "RGB" else to_rgb(small)


def _fit(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    rgb = img if img.mode == "RGB" else to_rgb(img)
    return rgb.copy() if rgb.size == size else rgb.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def encode_timelapse(
    frames: Sequence[Image.Image],
    fmt: TimelapseFormat = "gif",
    duration_ms: int = 120,
    max_side: int = 256,
    *,
    hold_last_ms: int | None = None,
) -> bytes:
    """Encode frames as a looping animation, all at the size of the last (final) frame.

    Multi-scale runs produce previews of growing size; the last frame is the real result,
    so its shape wins and earlier frames are stretched to match. The last frame is shown
    longer (`hold_last_ms`, default one second or `duration_ms` if longer) so that the
    result can be seen before the loop restarts.
    """
    if not frames:
        raise ValueError("a timelapse needs at least one frame")
    if fmt not in ("gif", "webp"):
        raise ValueError(f"timelapse format must be 'gif' or 'webp', got {fmt!r}")
    if duration_ms < 1:
        raise ValueError(f"duration_ms must be >= 1, got {duration_ms}")
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    last = _frame(frames[-1], max_side)
    size = last.size
    images = [_fit(f, size) for f in frames[:-1]]
    images.append(last)
    hold = max(duration_ms, 1000) if hold_last_ms is None else max(1, hold_last_ms)
    durations = [duration_ms] * (len(images) - 1) + [hold]

    buf = io.BytesIO()
    first, rest = images[0], images[1:]
    if fmt == "gif":
        first.save(buf, "GIF", save_all=True, append_images=rest, duration=durations, loop=0, optimize=False)
    else:
        first.save(buf, "WEBP", save_all=True, append_images=rest, duration=durations, loop=0, quality=80, method=4)
    return buf.getvalue()


class TimelapseRecorder:
    """Collects frames during a run, keeping at most `max_frames` whatever the run length.

    The run length is not known up front (and cancelled runs stop early), so instead of a
    fixed sampling rate the recorder halves its frames whenever it is full and from then on
    accepts only every other offer: the kept frames stay evenly spread over the whole run.
    The most recent frame is always kept too, so the clip ends on the result. Frames are
    shrunk on arrival so a long run at 1024 px does not hold megabytes of previews.
    """

    def __init__(
        self,
        max_frames: int = 48,
        *,
        max_side: int = 256,
        fmt: TimelapseFormat = "gif",
        duration_ms: int = 120,
    ) -> None:
        if max_frames < 2:
            raise ValueError(f"max_frames must be >= 2 (first and last), got {max_frames}")
        self.max_frames = max_frames
        self.max_side = max_side
        self.fmt: TimelapseFormat = fmt
        self.duration_ms = duration_ms
        self._kept: list[Image.Image] = []
        self._latest: Image.Image | None = None  # newest offer when the stride skipped it
        self._stride = 1
        self._offered = 0

    def add(self, frame: Image.Image) -> None:
        """Offer one frame (a preview); it is copied, so the caller may reuse its image."""
        index = self._offered
        self._offered += 1
        small = _frame(frame, self.max_side)
        if index % self._stride == 0:
            # One slot is reserved for the newest frame, hence max_frames - 1.
            if len(self._kept) >= self.max_frames - 1:
                self._kept = self._kept[::2]
                self._stride *= 2
            if index % self._stride == 0:
                self._kept.append(small)
                self._latest = None
                return
        self._latest = small

    @property
    def frames(self) -> list[Image.Image]:
        """The frames a clip would contain, oldest first."""
        return self._kept + ([self._latest] if self._latest is not None else [])

    def __len__(self) -> int:
        return len(self._kept) + (self._latest is not None)

    def to_bytes(self, fmt: TimelapseFormat | None = None, duration_ms: int | None = None) -> bytes:
        """Encode the recorded frames; raises ValueError when nothing was recorded."""
        return encode_timelapse(
            self.frames,
            fmt=fmt or self.fmt,
            duration_ms=duration_ms or self.duration_ms,
            max_side=self.max_side,
        )


__all__ = ["TimelapseFormat", "TimelapseRecorder", "encode_timelapse"]
