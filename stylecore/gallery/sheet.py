"""One picture that shows many styles at once: a grid of thumbnails with their names underneath.

A member choosing a style wants to see them side by side in a single message, not page through
attachments, so the gallery and a server's own styles are drawn into one PNG. Items are plain
(name, image bytes) pairs so that built-in paintings and uploaded styles mix freely.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont, ImageOps

BACKGROUND: tuple[int, int, int] = (43, 45, 49)  # reads well in Discord's dark and light themes
TEXT: tuple[int, int, int] = (242, 243, 245)
PLACEHOLDER: tuple[int, int, int] = (88, 91, 98)
MIN_THUMB, MAX_THUMB = 32, 512


@dataclass(frozen=True)
class Layout:
    """Where everything goes; derived from the item count, columns and thumbnail size alone."""

    columns: int
    rows: int
    thumb: int
    gap: int
    label_height: int
    font_size: int

    @classmethod
    def for_items(cls, count: int, columns: int, thumb: int) -> Layout:
        columns = min(columns, count)
        font_size = max(10, thumb // 11)
        return cls(
            columns, math.ceil(count / columns), thumb, max(4, thumb // 16), font_size + font_size // 2, font_size
        )

    @property
    def size(self) -> tuple[int, int]:
        width = self.columns * self.thumb + (self.columns + 1) * self.gap
        height = self.rows * (self.thumb + self.label_height) + (self.rows + 1) * self.gap
        return width, height

    def cell(self, index: int) -> tuple[int, int]:
        """Top-left corner of the `index`-th thumbnail box (reading order)."""
        row, col = divmod(index, self.columns)
        return self.gap + col * (self.thumb + self.gap), self.gap + row * (self.thumb + self.label_height + self.gap)


def _thumbnail(data: bytes, thumb: int) -> Image.Image | None:
    """The image scaled to fit a thumb×thumb box, or None when it cannot be decoded.

    A single unreadable style must not cost the member the whole sheet, so failures become a
    placeholder instead of an exception. JPEG draft mode decodes at a reduced scale, which keeps a
    sheet of dozens of large styles cheap.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > (Image.MAX_IMAGE_PIXELS or 10**9):
                return None
            img.draft("RGB", (thumb, thumb))
            upright = ImageOps.exif_transpose(img)
            rgba = upright.convert("RGBA")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    flat = Image.new("RGB", rgba.size, BACKGROUND)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return ImageOps.contain(flat, (thumb, thumb), Image.Resampling.LANCZOS)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans where installed (it covers accented and non-Latin names), else Pillow's own font.

    Pillow looks a bare file name up in the system's font folders; its bundled font only has
    basic Latin, so "Café" would lose its "é" without a system font.
    """
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        pass
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed-size bitmap font
        return ImageFont.load_default()


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> str:
    """`text` shortened with an ellipsis until it fits `width` pixels."""
    text = " ".join(text.split())
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def contact_sheet(items: Sequence[tuple[str, bytes]], columns: int = 4, thumb: int = 160) -> bytes:
    """A PNG grid of `items` (name, image bytes), `columns` wide, each image fitted into `thumb` px.

    Images keep their aspect ratio and are centred in their box; small ones are enlarged so the
    grid looks even. Names are drawn centred under their image and shortened with "…" when
    they do not fit. An image that cannot be decoded is shown as a grey box, still named.
    """
    if not items:
        raise ValueError("a contact sheet needs at least one item")
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    if not MIN_THUMB <= thumb <= MAX_THUMB:
        raise ValueError(f"thumb must be between {MIN_THUMB} and {MAX_THUMB} px, got {thumb}")
    layout = Layout.for_items(len(items), columns, thumb)
    sheet = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font(layout.font_size)
    for index, (name, data) in enumerate(items):
        x, y = layout.cell(index)
        image = _thumbnail(data, thumb)
        if image is None:
            inset = thumb // 8
            draw.rectangle((x + inset, y + inset, x + thumb - inset, y + thumb - inset), fill=PLACEHOLDER)
        else:
            sheet.paste(image, (x + (thumb - image.width) // 2, y + (thumb - image.height) // 2))
        label = _fit_text(draw, name, font, thumb)
        # Centred by measuring rather than with anchor="mm", which the bitmap fallback font lacks;
        # the vertical extent of "Ag" keeps every name on the same baseline.
        left, _, right, _ = draw.textbbox((0, 0), label, font=font)
        _, top, _, bottom = draw.textbbox((0, 0), "Ag", font=font)
        text_x = x + (thumb - (right - left)) / 2 - left
        text_y = y + thumb + (layout.label_height - (bottom - top)) / 2 - top
        draw.text((text_x, text_y), label, fill=TEXT, font=font)
    out = io.BytesIO()
    sheet.save(out, format="PNG")
    return out.getvalue()
