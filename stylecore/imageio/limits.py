"""What an upload may be, and the errors that say why one isn't.

Every check in this package raises an `ImageError` whose `user_message` is safe and useful
to show the person who sent the file; the technical detail stays in `str(exc)` for logs.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

MiB = 1024 * 1024
DEFAULT_MAX_BYTES = 25 * MiB
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MIN_SIDE = 16

# Only decoders people actually upload. Pillow can open many more (EPS shells out to
# Ghostscript, some rarely used decoders are less hardened), and nobody sends those to a bot.
# Multi-picture phone JPEGs (MPO) come in through the JPEG opener.
ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")


@dataclass(frozen=True)
class ImageLimits:
    """The limits one upload is checked against; the bot derives them from its settings."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = DEFAULT_MIN_SIDE

    @property
    def pixel_limit(self) -> int:
        """`max_pixels`, tightened by Pillow's own decompression-bomb limit when that is lower.

        An operator who lowers `Image.MAX_IMAGE_PIXELS` expects it to hold everywhere, the
        header checks included.
        """
        pillow = Image.MAX_IMAGE_PIXELS
        return min(self.max_pixels, pillow) if pillow else self.max_pixels


class ImageError(ValueError):
    """A bad input image; `user_message` is safe and useful to show the person who sent it.

    A ValueError so that callers which only know "bad argument" still catch it; the
    technical detail stays in `str(exc)` for logs.
    """

    default_user_message = "I couldn't read that image."

    def __init__(self, detail: str = "", user_message: str | None = None) -> None:
        self.user_message = user_message or self.default_user_message
        super().__init__(detail or self.user_message)


class NotAnImage(ImageError):
    default_user_message = "That file isn't an image I can read (PNG, JPEG, WebP, GIF, BMP or TIFF)."


class TruncatedImage(ImageError):
    """The file was recognised as an image but its data is cut short or inconsistent."""

    default_user_message = "That image looks cut off or damaged; try uploading it again."


class EmptyImage(ImageError):
    default_user_message = "That file is empty."


class ImageTooLarge(ImageError):
    default_user_message = "That image is too large."


class ImageTooSmall(ImageError):
    default_user_message = "That image is too small."


class DecoderFailed(ImageError):
    """The decoding process crashed or ran out of time: the file is suspect, the caller is fine."""

    default_user_message = "I couldn't read that image: decoding it failed. Try another file or format."


def human_bytes(n: int) -> str:
    if n >= MiB:
        return f"{n / MiB:.0f} MB" if n % MiB == 0 else f"{n / MiB:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bytes"


def too_many_bytes(size: int, max_bytes: int) -> ImageTooLarge:
    return ImageTooLarge(
        f"input is {size} bytes, limit {max_bytes}",
        f"That file is too big; the limit is {human_bytes(max_bytes)}.",
    )


def too_many_pixels(width: int, height: int, max_pixels: int) -> ImageTooLarge:
    mp = max_pixels / 1_000_000
    return ImageTooLarge(
        f"image is {width}x{height} = {width * height} pixels, limit {max_pixels}",
        f"That image is too large ({width}×{height}); the limit is {mp:g} megapixels.",
    )


def too_small(width: int, height: int, min_side: int) -> ImageTooSmall:
    return ImageTooSmall(
        f"image is {width}x{height}, minimum side {min_side}",
        f"That image is too small ({width}×{height}); each side must be at least {min_side} pixels.",
    )


def check_size(width: int, height: int, limits: ImageLimits) -> None:
    """Pixel count first (a bomb is the bigger danger), then the smallest usable side."""
    if width * height > limits.pixel_limit:
        raise too_many_pixels(width, height, limits.pixel_limit)
    if min(width, height) < limits.min_side:
        raise too_small(width, height, limits.min_side)
