"""Untrusted images in, results out: header checks, bounded decoding, isolated decoding, encoding.

Three levels of trust, cheapest first:

- `probe_image(data, limits)`: header only, for the bot's own process (format allow-list,
  dimensions, pixel limit, animation, completeness). No pixels, no torch.
- `IsolatedDecoder.validate(data, limits)`: the full decode in a disposable child process
  with a memory ceiling and a timeout; a decoder crash costs that process only.
- `load_image(source)`: the full decode in the calling process, for the engine's worker,
  which runs in its own process already.

Every failure is an `ImageError` with a `user_message` fit to show the sender. This package
imports no torch; the engine's tensor conversions live in `stylecore.tensors`.
"""

from stylecore.imageio.decode import WHITE, decode_image, load_image, to_rgb
from stylecore.imageio.encode import EncodedImage, EncodeFormat, encode_image, encode_preview, resize_to
from stylecore.imageio.isolated import IsolatedDecoder
from stylecore.imageio.limits import (
    ALLOWED_FORMATS,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_SIDE,
    DecoderFailed,
    EmptyImage,
    ImageError,
    ImageLimits,
    ImageTooLarge,
    ImageTooSmall,
    NotAnImage,
    TruncatedImage,
)
from stylecore.imageio.probe import ImageInfo, probe_image

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MIN_SIDE",
    "WHITE",
    "DecoderFailed",
    "EmptyImage",
    "EncodeFormat",
    "EncodedImage",
    "ImageError",
    "ImageInfo",
    "ImageLimits",
    "ImageTooLarge",
    "ImageTooSmall",
    "IsolatedDecoder",
    "NotAnImage",
    "TruncatedImage",
    "decode_image",
    "encode_image",
    "encode_preview",
    "load_image",
    "probe_image",
    "resize_to",
    "to_rgb",
]
