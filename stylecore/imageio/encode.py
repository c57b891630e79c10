"""Encoding results to fit an upload limit, and resizing.

Discord refuses uploads over a size limit that depends on the server, so a result is
encoded in the requested format when it fits and degraded gracefully when it does not.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from stylecore.imageio.decode import to_rgb
from stylecore.imageio.limits import ImageTooLarge, human_bytes

EncodeFormat = Literal["png", "jpeg", "webp"]

_FORMAT_ALIASES: dict[str, EncodeFormat] = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "webp": "webp"}
_EXTENSIONS: dict[str, str] = {"png": "png", "jpeg": "jpg", "webp": "webp"}
_MIME: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_FALLBACK_QUALITIES: tuple[int, ...] = (92, 85, 75, 65, 55, 40)
_MIN_QUALITY = 40
_LOSSY: tuple[EncodeFormat, ...] = ("jpeg", "webp")
_TINY_SIDE = 16


def resize_to(
    img: Image.Image, size: int, side: Literal["long", "short"] = "long", *, upscale: bool = False
) -> Image.Image:
    """Scale so the chosen side is `size` px, keeping the aspect ratio.

    Upscaling is off by default because it only adds pixels the network must pay for
    without adding detail. Always returns a new image, so callers can mutate it.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if side not in ("long", "short"):
        raise ValueError(f"side must be 'long' or 'short', got {side!r}")
    w, h = img.size
    ref = max(w, h) if side == "long" else min(w, h)
    if ref == size or (ref < size and not upscale):
        return img.copy()
    scale = size / ref
    ref_is_width = w >= h if side == "long" else w <= h
    new = (size, max(1, round(h * scale))) if ref_is_width else (max(1, round(w * scale)), size)
    # reducing_gap makes big downscales (a 40 MP photo to 512 px) several times cheaper
    # with no visible difference.
    return img.resize(new, Image.Resampling.LANCZOS, reducing_gap=3.0)


@dataclass(frozen=True)
class EncodedImage:
    """Encoded bytes plus what an uploader needs to name and describe them."""

    data: bytes
    fmt: EncodeFormat
    width: int
    height: int

    @property
    def extension(self) -> str:
        return _EXTENSIONS[self.fmt]

    @property
    def filename(self) -> str:
        return f"stylized.{self.extension}"

    @property
    def content_type(self) -> str:
        return _MIME[self.fmt]


def _encode(img: Image.Image, fmt: EncodeFormat, quality: int) -> bytes:
    buf = io.BytesIO()
    if fmt == "png":
        img.save(buf, "PNG")
    elif fmt == "jpeg":
        # 4:4:4 keeps the thin coloured strokes style transfer produces. No optimize or
        # progressive: with those Pillow encodes into a fixed buffer of w*h bytes, which
        # detailed images at high quality overflow ("broken data stream").
        subsampling = 0 if quality >= 90 else 2
        img.save(buf, "JPEG", quality=quality, subsampling=subsampling)
    else:
        img.save(buf, "WEBP", quality=quality, method=4)
    return buf.getvalue()


def _normalise_format(fmt: str) -> EncodeFormat:
    key = fmt.lower().lstrip(".")
    if key not in _FORMAT_ALIASES:
        raise ValueError(f"unsupported output format {fmt!r}; use png, jpeg or webp")
    return _FORMAT_ALIASES[key]


def encode_image(
    img: Image.Image, fmt: str = "png", max_bytes: int | None = None, *, quality: int = 92
) -> EncodedImage:
    """Encode, degrading gracefully until the result fits `max_bytes` (Discord's upload limit).

    Order of sacrifice: first the requested format as asked; then lossy JPEG/WebP at
    falling quality (format before quality, quality before pixels, because a slightly
    lossy full-size image beats a small perfect one); then fewer pixels. Raises
    `ImageTooLarge` only when even a tiny thumbnail cannot fit.
    """
    want = _normalise_format(fmt)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    if max_bytes is not None and max_bytes < 1:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    rgb = img if img.mode == "RGB" else to_rgb(img)

    data = _encode(rgb, want, quality)
    if max_bytes is None or len(data) <= max_bytes:
        return EncodedImage(data, want, *rgb.size)

    qualities = [q for q in _FALLBACK_QUALITIES if q <= quality] or [quality]
    if qualities[0] != quality:
        qualities.insert(0, quality)
    smallest = len(data)
    for q in qualities:
        for lossy in _LOSSY:
            if lossy == want and q == quality:
                continue  # already tried above
            data = _encode(rgb, lossy, q)
            if len(data) <= max_bytes:
                return EncodedImage(data, lossy, *rgb.size)
            smallest = min(smallest, len(data))

    # Shrink from the original each time (never resample a resample). Bytes scale roughly
    # with pixel count, so jump straight towards the estimate, but by at least 0.85.
    floor_q = min(quality, _MIN_QUALITY)
    scale = 1.0
    w, h = rgb.size
    while max(w, h) * scale > _TINY_SIDE:
        estimate = math.sqrt(max_bytes / smallest) * 0.95
        scale *= min(0.85, max(estimate, 0.25))
        small = rgb.resize(
            (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS, reducing_gap=3.0
        )
        attempts: list[int] = []
        for lossy in _LOSSY:
            data = _encode(small, lossy, floor_q)
            if len(data) <= max_bytes:
                return EncodedImage(data, lossy, *small.size)
            attempts.append(len(data))
        smallest = min(attempts)
    raise ImageTooLarge(
        f"cannot encode under {max_bytes} bytes even at {_TINY_SIDE}px",
        f"The result can't be made small enough to upload (limit {human_bytes(max_bytes)}).",
    )


def encode_preview(img: Image.Image, max_side: int = 256, quality: int = 75) -> bytes:
    """A small JPEG for progress messages: cheap to make, quick to upload, never upscaled."""
    small = resize_to(img, max_side, "long", upscale=False)
    rgb = small if small.mode == "RGB" else to_rgb(small)
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
