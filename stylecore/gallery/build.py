"""Maintainer tool: regenerate the gallery's JPEGs and SOURCES.md from full-size originals.

    python -m stylecore.gallery.build ORIGINALS_DIR

ORIGINALS_DIR holds `<key>.jpg` for every entry of paintings.json. Each is decoded to sRGB
(embedded colour profiles applied), scaled so its long side is at most `LONG_SIDE` px and saved
as baseline JPEG at the highest of `QUALITIES` that fits `MAX_BYTES`: the package stays small
while the brushwork the style loss feeds on survives. The attributions in SOURCES.md are
written from paintings.json so the two cannot disagree.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from stylecore.gallery.catalogue import Painting, paintings
from stylecore.imageio import load_image, resize_to

LONG_SIDE = 768
MAX_BYTES = 250_000
QUALITIES: tuple[int, ...] = (92, 90, 88, 86, 84, 82, 80)
HERE = Path(__file__).resolve().parent


def fit_jpeg(data: bytes, *, long_side: int = LONG_SIDE, max_bytes: int = MAX_BYTES) -> tuple[bytes, int]:
    """The image as a JPEG within both limits, and the quality used; ValueError if none fits."""
    img = resize_to(load_image(data), long_side)
    for quality in QUALITIES:
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=quality, optimize=True)
        if out.tell() <= max_bytes:
            return out.getvalue(), quality
    raise ValueError(f"no quality in {QUALITIES} brings the image under {max_bytes} bytes")


def sources_markdown(items: list[Painting]) -> str:
    rows = "\n".join(f"| images/{p.key}.jpg | {p.credit} | {p.licence} | {p.source} |" for p in items)
    return f"""# Gallery paintings

Every artist died more than 70 years ago and every work was published more than 95 years ago, so
all of them are in the public domain in the EU, the UK, the US and every other country whose
copyright ends by 70 years after the author's death. Those whose artist died more than 100 years
ago are beyond the longest term any country applies and so public domain worldwide; for the others,
check before relying on them in one of the few countries with longer terms (Mexico: life + 100).

The image files were taken from the two MIT-licensed repositories named below and scaled to at most
{LONG_SIDE} px on the long side. Keep the attribution wherever a copy goes; `paintings.json` holds
the same data for programs.

| file | painting | status | image taken from |
|---|---|---|---|
{rows}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("originals", type=Path, help="folder with <key>.jpg for every painting")
    args = parser.parse_args(argv)
    items = paintings()
    for painting in items:
        data, quality = fit_jpeg((args.originals / f"{painting.key}.jpg").read_bytes())
        (HERE / "images" / f"{painting.key}.jpg").write_bytes(data)
        print(f"{painting.key}: {len(data)} bytes at quality {quality}")
    (HERE / "SOURCES.md").write_text(sources_markdown(items), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
