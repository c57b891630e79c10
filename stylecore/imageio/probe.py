"""Header-only checks of an untrusted upload: cheap enough for the bot's own process.

`probe_image` reads the file's structure, never its pixels: the format by its signature
(only the allow-listed ones), the dimensions against the pixel limit (decompression bombs),
whether it is animated, and whether the data is complete and plausible for the size the
header claims. It allocates nothing in proportion to the pixels and imports neither torch
nor any decoder, so a hostile file costs the caller milliseconds; the full decode then runs
in a disposable process (`stylecore.imageio.isolated`).
"""

from __future__ import annotations

from dataclasses import dataclass

from stylecore.imageio.formats import HeaderCut, HeaderInvalid, identify
from stylecore.imageio.limits import (
    EmptyImage,
    ImageLimits,
    NotAnImage,
    TruncatedImage,
    check_size,
    too_many_bytes,
)


@dataclass(frozen=True)
class ImageInfo:
    """What a header (or, from the isolated decoder, a full decode) says about an upload.

    `width` and `height` are as displayed, after the EXIF orientation. `frames` > 1 means
    animated or multi-page: only the first frame is used. `mode` is Pillow's pixel mode of
    the decoded source (e.g. "I;16", "CMYK"); the header probe leaves it None.
    """

    format: str
    width: int
    height: int
    frames: int = 1
    mode: str | None = None

    @property
    def animated(self) -> bool:
        return self.frames > 1

    @property
    def pixels(self) -> int:
        return self.width * self.height


def probe_image(data: bytes | bytearray | memoryview, limits: ImageLimits | None = None) -> ImageInfo:
    """Check an upload from its header alone; raise `ImageError` (with a user message) if it fails.

    Cheapest refusals first: the byte count, the signature (allow-listed formats only), the
    dimensions (pixel limit, then smallest side), then whether the data is complete and
    plausible for those dimensions. Passing does not prove the pixels decode; the isolated
    decoder does that.
    """
    limits = limits or ImageLimits()
    if isinstance(data, memoryview):
        data = data.tobytes()
    if not data:
        raise EmptyImage("input has zero bytes")
    if len(data) > limits.max_bytes:
        raise too_many_bytes(len(data), limits.max_bytes)
    found = identify(data)
    if found is None:
        raise NotAnImage(f"unrecognised signature {bytes(data[:12])!r}")
    name, parse = found
    try:
        head = parse(data)
    except (HeaderCut, HeaderInvalid) as exc:  # recognised by its signature, but cut short or broken
        raise TruncatedImage(f"{name}: {exc}") from exc
    check_size(head.width, head.height, limits)
    if head.defect:
        raise TruncatedImage(f"{name}: {head.defect}")
    width, height = (head.height, head.width) if head.orientation in (5, 6, 7, 8) else (head.width, head.height)
    return ImageInfo(name, width, height, head.frames)
