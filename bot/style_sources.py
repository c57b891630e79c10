"""Where a job's styles come from: an uploaded image, a gallery painting, or one of the server's styles.

Members name paintings and server styles in one option with autocomplete; a suggestion's value says
which kind it is (`painting:<key>` or `server:<name>`) so a server style called like a painting can
never be mistaken for it, and a name typed without picking a suggestion is still looked up (a
painting's title, alias or key, then this server's styles). Every job keeps the name and weight of
each of its styles (`describe`), which its result and the result's alt text show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands

from bot import messages
from bot.db.server_styles import ServerStyles
from bot.errors import BadInput
from stylecore import gallery

PAINTING = "painting:"
SERVER = "server:"
MAX_SUGGESTIONS = 25  # Discord shows at most 25 autocomplete choices


@dataclass(frozen=True)
class StyleSource:
    """One style of a request. `data` is known for paintings and server styles; an upload's bytes are
    fetched (and checked) only once the request is admitted, from `attachment`."""

    kind: str  # "upload", "painting" or "server"
    name: str  # what people read: a file name, a painting's credit line, a server style's name
    data: bytes | None = None
    attachment: discord.Attachment | None = None

    @classmethod
    def upload(cls, attachment: discord.Attachment) -> StyleSource:
        return cls("upload", attachment.filename, attachment=attachment)


def painting_source(painting: gallery.Painting) -> StyleSource:
    return StyleSource("painting", painting.label, gallery.load(painting.key))


async def suggest(styles: ServerStyles, guild_id: int | None, query: str) -> list[app_commands.Choice[str]]:
    """Paintings (by title or artist) and, in a server, its own styles that match what is typed."""
    wanted = gallery.fold_name(query)
    own = [] if guild_id is None else await styles.names(guild_id)
    mine = [n for n in own if not wanted or wanted in gallery.fold_name(n)]
    choices = [app_commands.Choice(name=messages.server_style_choice(n), value=f"{SERVER}{n}") for n in mine]
    choices += [app_commands.Choice(name=p.label, value=f"{PAINTING}{p.key}") for p in gallery.find(query)]
    return choices[:MAX_SUGGESTIONS]


async def resolve(styles: ServerStyles, guild_id: int | None, value: str) -> StyleSource:
    """The style a member named, picked from the suggestions or typed; BadInput names what was not found."""
    text = value.strip()
    if text.startswith(PAINTING):
        try:
            return painting_source(gallery.get(text.removeprefix(PAINTING)))
        except gallery.UnknownPainting:
            raise BadInput(messages.unknown_style(text.removeprefix(PAINTING))) from None
    if text.startswith(SERVER):
        text = text.removeprefix(SERVER)
    else:
        try:
            return painting_source(gallery.get(text))
        except gallery.UnknownPainting:
            pass
    found = None if guild_id is None else await styles.get(guild_id, text)
    if found is not None:
        return StyleSource("server", found.name, found.image)
    matches = gallery.find(text) if text else []
    if len(matches) == 1:  # "starry" or "hokusai": one painting only, so no doubt which
        return painting_source(matches[0])
    raise BadInput(messages.unknown_style(text))


def parse_blend(text: str | None, count: int) -> tuple[float, ...]:
    """Weights for `count` styles from "2,1" (or "2 1", "2:1"); equal weights when not given.

    The engine blends the styles' Gram matrices by these weights (a weighted sum of the style
    targets of Gatys et al. 2016), normalised to sum to one, so only their ratios matter."""
    if text is None or not text.strip():
        return (1.0,) * count
    parts = [p for p in text.replace(":", ",").replace(" ", ",").split(",") if p]
    try:
        weights = tuple(float(p) for p in parts)
    except ValueError:
        raise BadInput(messages.bad_blend(text, count)) from None
    if len(weights) != count or any(not (0 <= w < float("inf")) for w in weights) or sum(weights) <= 0:
        raise BadInput(messages.bad_blend(text, count))
    return weights


def describe(content_name: str, sources: Sequence[StyleSource], weights: Sequence[float]) -> dict[str, Any]:
    """What a job's images were, for people and for its row: `JobRecord.inputs_info`."""
    return {
        "content": content_name,
        "styles": [{"name": s.name, "kind": s.kind, "weight": w} for s, w in zip(sources, weights, strict=True)],
    }
