"""Loading untrusted images safely and encoding results to fit an upload limit.

Everything that reaches the engine comes from strangers on Discord, so loading is
defensive: sizes are checked before any pixel is decoded, decoding is forced while we can
still turn failures into a clear `ImageError`, and every pixel mode is normalised to 8-bit
sRGB so the engine only ever sees one kind of image.
"""

from __future__ import annotations

import io
import math
import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Literal

import numpy as np
import torch
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

MiB = 1024 * 1024
DEFAULT_MAX_BYTES = 25 * MiB
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MIN_SIDE = 16

# Only decoders people actually upload. Pillow can open many more (EPS shells out to
# Ghostscript, some rarely used decoders are less hardened), and nobody sends those to a bot.
# Multi-picture phone JPEGs (MPO) come in through the JPEG opener.
ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")

EncodeFormat = Literal["png", "jpeg", "webp"]
WHITE: tuple[int, int, int] = (255, 255, 255)

_FORMAT_ALIASES: dict[str, EncodeFormat] = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "webp": "webp"}
_EXTENSIONS: dict[str, str] = {"png": "png", "jpeg": "jpg", "webp": "webp"}
_MIME: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_FALLBACK_QUALITIES: tuple[int, ...] = (92, 85, 75, 65, 55, 40)
_MIN_QUALITY = 40
_LOSSY: tuple[EncodeFormat, ...] = ("jpeg", "webp")
_TINY_SIDE = 16
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
    """The file was recognised as an image but its pixel data could not be decoded."""

    default_user_message = "That image looks cut off or damaged; try uploading it again."


class EmptyImage(ImageError):
    default_user_message = "That file is empty."


class ImageTooLarge(ImageError):
    default_user_message = "That image is too large."


class ImageTooSmall(ImageError):
    default_user_message = "That image is too small."


def _human_bytes(n: int) -> str:
    if n >= MiB:
        return f"{n / MiB:.0f} MB" if n % MiB == 0 else f"{n / MiB:.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bytes"


def _too_many_bytes(size: int, max_bytes: int) -> ImageTooLarge:
    return ImageTooLarge(
        f"input is {size} bytes, limit {max_bytes}",
        f"That file is too big; the limit is {_human_bytes(max_bytes)}.",
    )


def _too_many_pixels(width: int, height: int, max_pixels: int) -> ImageTooLarge:
    mp = max_pixels / 1_000_000
    return ImageTooLarge(
        f"image is {width}x{height} = {width * height} pixels, limit {max_pixels}",
        f"That image is too large ({width}×{height}); the limit is {mp:g} megapixels.",
    )


def _read_source(source: bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO, max_bytes: int) -> bytes:
    """Get the raw bytes without ever holding more than `max_bytes + 1` of them.

    Paths are checked with stat() first and streams are read with a cap, so a huge
    upload is refused before it costs memory.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > max_bytes:
            raise _too_many_bytes(len(data), max_bytes)
        return data
    if isinstance(source, (str, os.PathLike)):
        size = os.stat(source).st_size
        if size > max_bytes:
            raise _too_many_bytes(size, max_bytes)
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
        raise _too_many_bytes(len(data), max_bytes)
    return data


def load_image(
    source: bytes | bytearray | memoryview | str | os.PathLike[str] | BinaryIO,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = DEFAULT_MIN_SIDE,
) -> Image.Image:
    """Decode an untrusted image into a detached, upright, 8-bit sRGB `RGB` image.

    The checks run cheapest-first (bytes, then the header's pixel count, then the real
    decode) so a hostile file is refused before it can cost memory or CPU. Pillow's own
    decompression-bomb guard stays on as a second net, with its warning promoted to an
    error, and the header is also compared with `Image.MAX_IMAGE_PIXELS` directly because
    warning filters are process-global and another thread may be changing them. Animated
    files give their first frame. A missing path raises the usual `OSError`: that is a
    programming error, not a bad upload.
    """
    data = _read_source(source, max_bytes)
    if not data:
        raise EmptyImage("input has zero bytes")

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
            raise ImageTooLarge(str(exc), f"That image is too large; the limit is {limit / 1e6:g} megapixels.") from exc
        except UnidentifiedImageError as exc:
            raise NotAnImage(str(exc)) from exc
        except _DECODE_ERRORS as exc:
            # Recognised by its signature, but the header itself is cut short or broken.
            raise TruncatedImage(f"{type(exc).__name__}: {exc}") from exc

    with im:
        width, height = im.size
        pillow_limit = Image.MAX_IMAGE_PIXELS
        effective = min(max_pixels, pillow_limit) if pillow_limit else max_pixels
        if width * height > effective:
            raise _too_many_pixels(width, height, effective)
        if min(width, height) < min_side:
            raise _too_small(width, height, min_side)
        try:
            # Forcing the decode here, not lazily later, is what lets a truncated or
            # corrupt file surface as TruncatedImage instead of deep inside the engine.
            im.load()
        except _DECODE_ERRORS as exc:
            raise TruncatedImage(f"{type(exc).__name__}: {exc}") from exc
        upright = _exif_upright(im)

    try:
        rgb = to_rgb(upright)
    except (ValueError, OSError) as exc:  # an exotic mode (e.g. signed 16-bit TIFF)
        raise NotAnImage(
            f"cannot convert mode {upright.mode}: {exc}", "That image uses a pixel format I can't handle."
        ) from exc
    if min(rgb.size) < min_side:  # cannot change under a rotation, but a plugin might lie
        raise _too_small(*rgb.size, min_side)
    return rgb


def _too_small(width: int, height: int, min_side: int) -> ImageTooSmall:
    return ImageTooSmall(
        f"image is {width}x{height}, minimum side {min_side}",
        f"That image is too small ({width}×{height}); each side must be at least {min_side} pixels.",
    )


def _exif_upright(im: Image.Image) -> Image.Image:
    """Apply the EXIF orientation, ignoring EXIF that is itself broken.

    Phones store photos sideways and rely on this tag; but the tag is optional metadata,
    so a malformed EXIF block must not cost the user their upload.
    """
    try:
        return ImageOps.exif_transpose(im)
    except Exception:
        return im.copy()


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


def _high_depth_to_l(im: Image.Image) -> Image.Image:
    """Scale 16/32-bit and float greyscale to 8 bits instead of letting Pillow clip.

    Pillow's own convert clips values above 255, which turns an ordinary 16-bit PNG
    almost white. 16-bit data is divided by 257 (65535 -> 255); int32 data that fits in
    16 bits is treated the same; float data in [0, 1] is scaled by 255; anything else is
    stretched from its own min..max because there is no standard range to assume.
    """
    arr = np.asarray(im).astype(np.float64)
    if im.mode.startswith("I;16"):
        out = arr / 257.0
    else:
        finite = arr[np.isfinite(arr)]
        lo = float(finite.min()) if finite.size else 0.0
        hi = float(finite.max()) if finite.size else 0.0
        if im.mode == "F" and lo >= 0.0 and hi <= 1.0:
            out = arr * 255.0
        elif im.mode == "I" and lo >= 0 and hi <= 65535:
            out = arr / 257.0
        elif hi > lo:
            out = (arr - lo) / (hi - lo) * 255.0
        else:
            out = np.zeros_like(arr)
    out = np.nan_to_num(out, nan=0.0, posinf=255.0, neginf=0.0)
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))


def _over_background(rgba: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    base = Image.new("RGB", rgba.size, background)
    base.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
    return base


def to_rgb(img: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """Any Pillow mode to plain 8-bit sRGB `RGB`, as a new image with no metadata.

    Transparency is composited over white, not dropped: dropped alpha usually reveals
    black or garbage under transparent pixels, and a sticker or logo on white is what
    the sender saw. Exposed for the engine, which also accepts PIL images directly.
    """
    mode = img.mode
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        out = _high_depth_to_l(img).convert("RGB")
    elif mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        # Premultiplied La has no direct path to RGBA; un-premultiply through LA first.
        rgba = img.convert("LA").convert("RGBA") if mode == "La" else img.convert("RGBA")
        out = _over_background(rgba, background)
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

    @property
    def nbytes(self) -> int:
        return len(self.data)


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
        f"The result can't be made small enough to upload (limit {_human_bytes(max_bytes)}).",
    )


def encode_preview(img: Image.Image, max_side: int = 256, quality: int = 75) -> bytes:
    """A small JPEG for progress messages: cheap to make, quick to upload, never upscaled."""
    small = resize_to(img, max_side, "long", upscale=False)
    rgb = small if small.mode == "RGB" else to_rgb(small)
    buf = io.BytesIO()
    rgb.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image to a 1x3xHxW float32 tensor in [0, 1] (the engine's working format)."""
    rgb = img if img.mode == "RGB" else to_rgb(img)
    arr = np.array(rgb, dtype=np.uint8)  # a writable copy: torch warns on read-only views
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous().float().div_(255.0)


def tensor_to_image(t: torch.Tensor) -> Image.Image:
    """A 1x3xHxW or 3xHxW tensor in [0, 1] back to an RGB image.

    Optimisation overshoots [0, 1] and can produce NaN; clamping (NaN -> 0) and rounding
    rather than truncating keeps a round trip through `image_to_tensor` exact.
    """
    x = t.detach()
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"expected a batch of one image, got shape {tuple(x.shape)}")
        x = x[0]
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"expected 3xHxW or 1x3xHxW, got shape {tuple(t.shape)}")
    x = torch.nan_to_num(x.to("cpu", torch.float32), nan=0.0).clamp_(0.0, 1.0)
    arr = x.mul_(255.0).round_().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(arr)


__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MIN_SIDE",
    "EmptyImage",
    "EncodedImage",
    "ImageError",
    "ImageTooLarge",
    "ImageTooSmall",
    "NotAnImage",
    "TruncatedImage",
    "encode_image",
    "encode_preview",
    "image_to_tensor",
    "load_image",
    "resize_to",
    "tensor_to_image",
    "to_rgb",
]
