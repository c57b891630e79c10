"""The built-in paintings: their attributions, lookup by name for autocomplete, and their bytes.

Everything is read through `importlib.resources`, so the gallery works the same from a source
checkout, an installed wheel or a zipped package. Only the standard library is used here: the
bot's process calls this for every autocomplete keystroke and must not pay for (or import) the
engine.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from dataclasses import dataclass
from importlib import resources

_DATA = "paintings.json"
_IMAGES = "images"


class UnknownPainting(LookupError):
    """A name that matches no painting; the message can be shown to a member as is."""


@dataclass(frozen=True)
class Painting:
    """One gallery painting with everything its attribution needs.

    `year` is text because dates of old works are often approximate ("c. 1831"); `born` and
    `died` are kept as numbers because the public-domain status rests on them: the artist died
    more than 70 years ago (more than 100 for "worldwide") and the work was published more than
    95 years ago.
    """

    key: str
    title: str
    artist: str
    born: int
    died: int
    year: str
    source: str
    licence: str
    aliases: tuple[str, ...] = ()

    @property
    def credit(self) -> str:
        """The attribution line to show wherever the painting or a picture painted in its style goes."""
        return f"{self.artist} ({self.born}–{self.died}), {self.title}, {self.year}"

    @property
    def label(self) -> str:
        """A short display name (Discord caps choice names at 100 characters)."""
        return f"{self.title} — {self.artist}"[:100]


def fold_name(text: str) -> str:
    """Case- and diacritic-insensitive form of `text`, words separated by single spaces: how names
    are compared, here and wherever other styles are looked up by name beside the paintings.

    NFKD splits "é" into "e" plus a combining accent, which is then dropped, so "Americaine"
    finds "américaine"; underscores count as spaces so keys match like titles.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[\W_]+", " ", bare.casefold()).split())


@functools.cache
def _catalogue() -> tuple[Painting, ...]:
    raw = json.loads((resources.files(__package__) / _DATA).read_text(encoding="utf-8"))
    return tuple(Painting(**{**entry, "aliases": tuple(entry.get("aliases", ()))}) for entry in raw)


def paintings() -> list[Painting]:
    """Every built-in painting, in the gallery's display order."""
    return list(_catalogue())


def get(name: str) -> Painting:
    """The painting whose key, title or alternative title is `name` (ignoring case and accents)."""
    wanted = fold_name(name)
    for painting in _catalogue():
        if wanted and wanted in {fold_name(n) for n in (painting.key, painting.title, *painting.aliases)}:
            return painting
    raise UnknownPainting(f"There is no painting called {name!r} in the gallery.")


def _rank(painting: Painting, query: str, words: list[str]) -> int | None:
    """Lower is better; None means no match. Titles outrank artists, whole names outrank parts."""
    names = [fold_name(n) for n in (painting.title, *painting.aliases, painting.key)]
    title_words = {w for n in names for w in n.split()}
    all_words = title_words | set(fold_name(painting.artist).split())
    if query in names:
        return 0
    if any(n.startswith(query) for n in names):
        return 1
    if all(any(t.startswith(w) for t in title_words) for w in words):
        return 2
    if all(any(t.startswith(w) for t in all_words) for w in words):
        return 3
    if query in " ".join([*names, fold_name(painting.artist)]):
        return 4
    return None


def find(query: str) -> list[Painting]:
    """Paintings whose name or artist matches what a member is typing, best match first.

    Built for autocomplete: an empty query lists the whole gallery; otherwise every typed word
    must begin a word of the title, an alternative title or the artist's name (or the query
    must occur somewhere in them), so "gogh", "starry", "scr" and "van gogh starry" all work.
    Ties keep the gallery's order.
    """
    folded = fold_name(query)
    if not folded:
        return paintings()
    words = folded.split()
    ranked = [(rank, i, p) for i, p in enumerate(_catalogue()) if (rank := _rank(p, folded, words)) is not None]
    return [p for _, _, p in sorted(ranked, key=lambda r: (r[0], r[1]))]


def load(key: str) -> bytes:
    """The painting's JPEG (sRGB, long side at most 768 px); `key` may also be its title."""
    painting = get(key)
    return (resources.files(__package__) / _IMAGES / f"{painting.key}.jpg").read_bytes()
