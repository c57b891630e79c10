"""The built-in painting gallery: shipped files within their limits, attributions, lookup, contact sheets."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from stylecore import gallery
from stylecore.gallery import Painting, UnknownPainting, catalogue, contact_sheet, find, load, paintings
from stylecore.gallery.build import LONG_SIDE, MAX_BYTES, fit_jpeg
from stylecore.gallery.sheet import BACKGROUND, Layout

GALLERY = resources.files("stylecore.gallery")


# --- the shipped files -------------------------------------------------------------------


def test_the_seven_public_domain_paintings_are_shipped():
    keys = [p.key for p in paintings()]
    assert len(keys) == len(set(keys)) == 7
    assert all(re.fullmatch(r"[a-z0-9_]+", k) for k in keys)
    shipped = {entry.name for entry in (GALLERY / "images").iterdir() if entry.name.endswith(".jpg")}
    assert shipped == {f"{k}.jpg" for k in keys}, "every image has a catalogue entry and vice versa"


@pytest.mark.parametrize("painting", paintings(), ids=lambda p: p.key)
def test_each_image_is_a_small_srgb_jpeg(painting: Painting):
    data = load(painting.key)
    assert data == (GALLERY / "images" / f"{painting.key}.jpg").read_bytes()
    assert len(data) <= 250_000
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "JPEG"
        assert img.mode == "RGB"
        assert max(img.size) <= 768
        assert min(img.size) >= 256, "large enough to carry the painting's brushwork"
        assert "icc_profile" not in img.info, "colour profiles are applied when the files are built"
        img.load()


@pytest.mark.parametrize("painting", paintings(), ids=lambda p: p.key)
def test_each_painting_is_attributed_and_public_domain_worldwide(painting: Painting):
    for field in ("title", "artist", "year", "source", "licence"):
        assert getattr(painting, field).strip(), f"{painting.key} has no {field}"
    assert painting.born < painting.died
    this_year = datetime.date.today().year
    # Copyright ends 70 years after the author's death in the EU, the UK and most countries (100 at most
    # anywhere, in Mexico); in the US, 95 years after publication for works of this age.
    published = int(re.search(r"\d{4}", painting.year).group())
    assert painting.died >= published - 1 and published + 95 < this_year
    assert painting.died + 70 < this_year
    if painting.died + 100 < this_year:
        assert painting.licence == "Public domain worldwide"
    else:
        assert painting.licence.startswith("Public domain in the EU, UK, US") and "life + 70" in painting.licence
    assert painting.credit == f"{painting.artist} ({painting.born}–{painting.died}), {painting.title}, {painting.year}"
    assert len(painting.label) <= 100


def test_sources_md_carries_every_attribution():
    sources = (GALLERY / "SOURCES.md").read_text(encoding="utf-8")
    for painting in paintings():
        line = next(row for row in sources.splitlines() if f"images/{painting.key}.jpg" in row)
        assert painting.credit in line
        assert painting.source in line
        assert painting.licence in line


def test_catalogue_file_is_plain_json_with_the_painting_fields():
    raw = json.loads((GALLERY / "paintings.json").read_text(encoding="utf-8"))
    fields = set(Painting.__dataclass_fields__)
    assert all(set(entry) <= fields for entry in raw)


def test_the_build_tool_fits_a_large_painting_within_the_limits_or_says_it_cannot():
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:1000, 0:1536]
    strokes = np.stack([np.sin(xx / 9 + c) * np.cos(yy / 13 - c) for c in range(3)], axis=-1) * 90 + 128
    painting = np.clip(strokes + rng.normal(0, 12, strokes.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(painting).save(buf, format="PNG")
    data, quality = fit_jpeg(buf.getvalue())
    assert len(data) <= MAX_BYTES and quality >= 80
    with Image.open(io.BytesIO(data)) as img:
        assert img.size == (LONG_SIDE, 500)
    with pytest.raises(ValueError, match="no quality"):
        fit_jpeg(buf.getvalue(), max_bytes=5_000)


def test_gallery_imports_neither_torch_nor_discord():
    """The bot's process uses the gallery for autocomplete and must not load the engine.

    `stylecore/__init__` imports the engine itself, so the package is loaded under a bare parent
    module: this checks what the gallery needs, not what its parent package happens to import.
    """
    code = (
        "import sys, types\n"
        "parent = types.ModuleType('stylecore'); parent.__path__ = [sys.argv[1]]\n"
        "sys.modules['stylecore'] = parent\n"
        "from stylecore import gallery\n"
        "assert gallery.load('udnie')[:2] == b'\\xff\\xd8'\n"
        "gallery.contact_sheet([('a', gallery.load('udnie'))])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'discord', 'numpy')))\n"
    )
    package_dir = str(Path(gallery.__file__).parent.parent)
    out = subprocess.run([sys.executable, "-c", code, package_dir], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_an_installed_wheel_ships_the_gallery_and_finds_it_through_importlib_resources(tmp_path: Path):
    """Builds the wheel with the project's own build backend and uses the gallery straight from the zip.

    A source checkout finds its files whatever pyproject.toml says; only a built package shows
    whether package-data ships them. Importing from the zip file also proves no code path assumes
    the files lie on disk.
    """
    root = Path(__file__).resolve().parent.parent
    src = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("stylecore", "bot"):
        shutil.copytree(root / name, src / name, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    build = "import sys, setuptools.build_meta as backend; print(backend.build_wheel(sys.argv[1]))"
    out = subprocess.run(
        [sys.executable, "-c", build, str(tmp_path / "dist")], cwd=src, capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = tmp_path / "dist" / out.stdout.strip().splitlines()[-1]
    use = (
        "import hashlib, importlib.util, json, sys, zipimport\n"
        "from importlib import resources\n"
        "spec = zipimport.zipimporter(sys.argv[1]).find_spec('stylecore')\n"
        "sys.modules['stylecore'] = importlib.util.module_from_spec(spec)  # not executed: no engine import\n"
        "from stylecore import gallery\n"
        "assert gallery.__file__.startswith(sys.argv[1]), gallery.__file__\n"
        "files = {p.key: hashlib.sha256(gallery.load(p.key)).hexdigest() for p in gallery.paintings()}\n"
        "sources = resources.files(gallery) / 'SOURCES.md'\n"
        "files['SOURCES.md'] = hashlib.sha256(sources.read_bytes()).hexdigest()\n"
        "samples = resources.files('stylecore') / 'samples'\n"
        "files.update({f'samples/{e.name}': hashlib.sha256(e.read_bytes()).hexdigest() for e in samples.iterdir()})\n"
        "print(json.dumps(files))\n"
    )
    out = subprocess.run([sys.executable, "-c", use, str(wheel)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    shipped = json.loads(out.stdout)

    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    here = root / "stylecore" / "gallery"
    expected = {p.key: digest(here / "images" / f"{p.key}.jpg") for p in paintings()}
    expected["SOURCES.md"] = digest(here / "SOURCES.md")
    expected.update({f"samples/{p.name}": digest(p) for p in (root / "stylecore" / "samples").iterdir()})
    assert shipped == expected


# --- lookup ------------------------------------------------------------------------------


def keys(query: str) -> list[str]:
    return [p.key for p in find(query)]


def test_find_with_nothing_typed_lists_the_whole_gallery_in_order():
    assert keys("") == keys("   ") == [p.key for p in paintings()]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("starry", "starry_night"),  # title word
        ("scr", "the_scream"),  # a prefix, as typed so far
        ("gogh", "starry_night"),  # artist
        ("van gogh starry", "starry_night"),  # words from artist and title together
        ("HOKUSAI", "great_wave"),  # any case
        ("Kandínsky", "composition_vii"),  # an accent the stored name lacks
        ("americaine", "udnie"),  # no accent where the stored alternative title has one
        ("skrik", "the_scream"),  # the original title
        ("great_wave", "great_wave"),  # the key itself
        ("tarry", "starry_night"),  # inside a word, as a last resort
    ],
)
def test_find_matches_names_and_artists_ignoring_case_and_accents(query: str, expected: str):
    assert keys(query)[0] == expected


def test_find_returns_nothing_for_no_match():
    assert find("rembrandt") == []
    assert find("starry rembrandt") == [], "every typed word must match"


def test_find_ranks_whole_names_over_prefixes_over_words_over_artists_over_fragments(monkeypatch):
    def p(key: str, title: str, artist: str = "Anon") -> Painting:
        return Painting(key, title, artist, 1800, 1870, "1850", "test", "test")

    synthetic = (
        p("fragment", "Midnight"),  # "night" only inside a word
        p("artist", "Birds", artist="Nora Nightingale"),  # "night" begins the artist's name
        p("word", "A Night Sky"),  # "night" begins a word of the title
        p("prefix", "Nightfall"),  # the title begins with "night"
        p("exact", "Night"),
        p("other", "Sunrise"),
    )
    monkeypatch.setattr(catalogue, "_catalogue", lambda: synthetic)
    assert keys("night") == ["exact", "prefix", "word", "artist", "fragment"]
    assert keys("NIGHT") == keys("nîght") == keys("night")


def test_get_and_load_accept_a_key_or_a_title_and_refuse_anything_else():
    assert gallery.get("The Starry Night").key == "starry_night"
    assert gallery.get("starry night").key == "starry_night"
    assert gallery.get("Jeune fille américaine").key == "udnie"
    assert load("The Scream") == load("the_scream")
    with pytest.raises(UnknownPainting, match="no painting called 'mona lisa'"):
        load("mona lisa")
    with pytest.raises(UnknownPainting):
        gallery.get("")


# --- contact sheets ----------------------------------------------------------------------


def solid(size: tuple[int, int], colour: tuple[int, int, int], fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format=fmt)
    return buf.getvalue()


def decode(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("RGB")).astype(int)


def near(pixels: np.ndarray, colour: tuple[int, int, int], tol: int = 3) -> np.ndarray:
    return (np.abs(pixels - np.array(colour)) <= tol).all(axis=-1)


COLOURS = [(200, 40, 40), (40, 180, 60), (50, 70, 210), (220, 200, 30), (190, 60, 200)]
# (source size, size once fitted into a 64 px box): wide, tall and enlarged, square, tiny, JPEG.
SHAPES = [
    ((200, 100), (64, 32)),
    ((30, 60), (32, 64)),
    ((300, 300), (64, 64)),
    ((16, 16), (64, 64)),
    ((90, 45), (64, 32)),
]


def test_contact_sheet_contains_every_thumbnail_in_reading_order_with_its_name():
    items = [
        (f"style {i}", solid(size, colour, "JPEG" if i == 4 else "PNG"))
        for i, ((size, _), colour) in enumerate(zip(SHAPES, COLOURS, strict=True))
    ]
    pixels = decode(contact_sheet(items, columns=3, thumb=64))
    height, width, _ = pixels.shape
    centres = []
    for (_, (w, h)), colour in zip(SHAPES, COLOURS, strict=True):
        ys, xs = np.nonzero(near(pixels, colour, tol=6))
        assert (w - 1) * (h - 1) <= len(ys) <= (w + 1) * (h + 1), f"{colour}: the fitted thumbnail is all there"
        assert xs.max() - xs.min() + 1 in (w - 1, w, w + 1) and ys.max() - ys.min() + 1 in (h - 1, h, h + 1)
        centres.append(((xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2, ys.max()))
        # Under each thumbnail's box, its name: text pixels that are neither background nor thumbnail.
        box_bottom = int((ys.min() + ys.max()) / 2 + 32)
        strip = pixels[box_bottom + 1 : box_bottom + 14, xs.min() : xs.max() + 1]
        assert (~near(strip, BACKGROUND, tol=10)).sum() > 20, f"{colour}: a name is drawn under the image"
    rows = [round(cy) for _, cy, _ in centres]
    assert rows[0] == rows[1] == rows[2] < rows[3] == rows[4], "three per row, then the rest"
    assert centres[0][0] < centres[1][0] < centres[2][0] and centres[3][0] < centres[4][0]
    assert abs(centres[0][0] - centres[3][0]) < 1, "columns line up"
    assert 3 * 64 < width < 3 * 64 * 1.5 and 2 * 64 < height < 2 * 64 * 2


def test_contact_sheet_size_follows_columns_and_thumb_size():
    one = solid((50, 50), COLOURS[0])

    def size(n: int, columns: int, thumb: int) -> tuple[int, int]:
        return decode(contact_sheet([(str(i), one) for i in range(n)], columns=columns, thumb=thumb)).shape[1::-1]

    w4, h4 = size(4, 4, 96)
    w8, h8 = size(8, 4, 96)
    assert w8 == w4 and h4 < h8 < 2 * h4, "a second row adds height, not width"
    assert size(2, 4, 96)[0] < w4, "fewer items than columns make a narrower sheet"
    assert size(4, 2, 96)[0] < w4 and size(4, 2, 96)[1] > h4
    big_w, big_h = size(4, 4, 192)
    assert 1.8 * w4 < big_w < 2.2 * w4 and 1.8 * h4 < big_h < 2.2 * h4


def test_contact_sheet_survives_an_unreadable_image_and_shortens_long_names():
    items = [("broken", b"not an image"), ("A" * 200, solid((64, 64), COLOURS[1]))]
    pixels = decode(contact_sheet(items, columns=2, thumb=64))
    assert near(pixels, COLOURS[1]).sum() >= 63 * 63, "the readable image is still drawn"
    assert pixels.shape[1] < 2 * 64 * 1.5, "a long name does not widen the sheet"


def blocks(pixels: np.ndarray, size: int = 8) -> np.ndarray:
    h, w = (pixels.shape[0] // size) * size, (pixels.shape[1] // size) * size
    return pixels[:h, :w].reshape(h // size, size, w // size, size, 3).mean(axis=(1, 3))


def test_contact_sheet_of_the_whole_gallery_shows_each_painting_in_its_cell():
    items = [(p.title, load(p.key)) for p in paintings()]
    pixels = decode(contact_sheet(items))
    layout = Layout.for_items(len(items), 4, 160)
    assert pixels.shape[1::-1] == layout.size and layout.columns * 160 < layout.size[0]
    for index, (title, data) in enumerate(items):
        with Image.open(io.BytesIO(data)) as img:
            expected = np.asarray(ImageOps.contain(img.convert("RGB"), (160, 160))).astype(int)
        x, y = layout.cell(index)
        h, w, _ = expected.shape
        left, top = x + (160 - w) // 2, y + (160 - h) // 2
        shown = pixels[top : top + h, left : left + w]
        # Compared as 8x8 px block means: the sheet may decode large JPEGs at a reduced scale, which
        # changes fine detail but not the picture; another painting would differ by far more.
        assert np.abs(blocks(shown) - blocks(expected)).mean() < 5, f"{title} is drawn in cell {index}"


@pytest.mark.parametrize(("kwargs", "message"), [({"columns": 0}, "columns"), ({"thumb": 8}, "thumb")])
def test_contact_sheet_refuses_bad_arguments(kwargs: dict[str, int], message: str):
    with pytest.raises(ValueError, match=message):
        contact_sheet([("a", solid((32, 32), COLOURS[0]))], **kwargs)
    with pytest.raises(ValueError, match="at least one"):
        contact_sheet([])
