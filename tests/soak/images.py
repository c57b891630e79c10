"""Images members send: good photos and paintings of a few small sizes, and bad or hostile files.

Each hostile file comes with the refusal the bot must answer with, derived from the same checks
the bot runs (`IsolatedDecoder.validate` with the bot's limits, or the attachment's metadata),
never written out by hand, so the audit checks the member was told *why*, not just refused.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np
from imagefiles import encode, jpeg_claiming, png_file
from PIL import Image

from bot import messages
from stylecore.imageio import ImageError, ImageLimits, IsolatedDecoder


def photo(width: int, height: int, seed: int) -> bytes:
    """A small structured picture (gradients, shapes and noise) as PNG."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([x / max(1, width - 1), y / max(1, height - 1), (x + y) / max(1, width + height - 2)], -1) * 200
    for _ in range(3):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(3, max(4, width / 3))
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    img = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)
    return encode(Image.fromarray(img))


def png_bomb(side: int = 20_000) -> bytes:
    """A real decompression bomb: a valid 1-bit PNG of side x side black pixels, a few KB on the wire
    and gigabytes once decoded to RGB. Built row by row so making it costs no memory either."""
    row = b"\x00" + bytes((side + 7) // 8)  # filter byte + packed pixels
    z = zlib.compressobj(9)
    parts = [z.compress(row) for _ in range(side)]
    parts.append(z.flush())
    return png_file(struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0), b"".join(parts))


@dataclass(frozen=True)
class Hostile:
    """A bad upload: its bytes and name, and `refusal(what)`, the bot's answer when it comes as the
    content or style image (`what`) of a request."""

    kind: str
    filename: str
    data: bytes
    problem: str | None  # the image checker's sentence; None: refused from metadata, before downloading
    slash_only: bool = False  # not an image by its name: the reply flow ignores such an attachment

    def refusal(self, what: str) -> str:
        if self.problem is None:
            return messages.not_an_image(what, self.filename)
        return messages.unusable_image(what, self.problem)


async def hostile_files(limits: ImageLimits) -> list[Hostile]:
    """The bad uploads, each with the problem the bot's own checker finds in it under `limits`."""
    good = photo(64, 48, 7)
    files = [
        ("not_an_image", "holiday.png", b"GIF? no: just some text that claims to be a picture\n" * 8),
        ("truncated", "cut.png", good[: len(good) * 3 // 5]),
        ("lying_header", "huge.jpg", jpeg_claiming(6000, 6000)),
        ("bomb", "bomb.png", png_bomb()),
        ("tiny", "dot.png", encode(Image.new("RGB", (4, 4), (200, 30, 30)))),
    ]
    out = []
    async with IsolatedDecoder(workers=1) as decoder:
        for kind, name, data in files:
            try:
                await decoder.validate(data, limits)
            except ImageError as exc:
                out.append(Hostile(kind, name, data, exc.user_message))
            else:
                raise AssertionError(f"the {kind} file passed the image checks: it would not test anything")
    out.append(Hostile("text_file", "notes.txt", b"not an image at all", None, slash_only=True))
    return out
