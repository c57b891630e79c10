"""What members read about styles: the gallery and a server's own styles (/styles, /stylebot style),
naming and blending styles in /stylize and its form, and the suggestions offered for numbers.
Re-exported by `bot.messages`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# -- suggestions for numbers (size, steps) --------------------------------------------------


def typed_value(value: str) -> str:
    return value


def server_default_value(value: str) -> str:
    return f"{value} (this server's default)"


def named_value(name: str, value: str) -> str:
    return f"{name} — {value}"


def largest_value(value: str) -> str:
    return f"{value} (the most allowed here)"


def server_style_choice(name: str) -> str:
    """How one of the server's own styles reads in the painting suggestions."""
    return f"{name} (this server's style)"[:100]


# -- naming and blending styles --------------------------------------------------------------

MODAL_PAINTING_HELP = "A gallery painting or this server's style; up to three blend equally"
NO_STYLE_GIVEN = "Give me a style: attach a style image, or pick a painting (see /styles for the gallery)."


def too_many_styles(count: int, most: int) -> str:
    return f"That's {count} styles; I can blend at most {most} at once."


def unknown_style(name: str) -> str:
    return f"I don't know a painting or server style called “{name}”. Pick one from the list, or see /styles."


def bad_blend(text: str, count: int) -> str:
    example = ",".join(["2", *["1"] * (count - 1)]) if count > 1 else "1"
    return (
        f"I couldn't read the blend “{text}”: give one weight per style ({count} here), "
        f"in the order of the options, e.g. {example}."
    )


# -- the gallery and server styles ----------------------------------------------------------


def gallery_listing(credits: Sequence[str], own: Sequence[str]) -> str:
    """/styles: how to use what the picture shows, the paintings' attributions, this server's styles."""
    lines = [
        "**Styles you can pick** — use one with `/stylize painting:` (start typing a title or an artist), "
        "or blend up to three with `painting2:`/`style2:` and `blend:`.",
        "**Paintings** (public domain):",
        *(f"-# {credit}" for credit in credits),
    ]
    if own:
        lines.append("**This server's styles:** " + ", ".join(own))
    return fit("\n".join(lines))


def server_styles_listing(styles: Sequence[tuple[str, int | None]], cap: int) -> str:
    rows = [f"• {name}" + (f" — added by <@{who}>" if who else "") for name, who in styles]
    return fit("\n".join([f"**This server's styles** ({len(styles)} of {cap})", *rows]))


_SERVER_STYLES_OFF = "This bot doesn't keep server styles."  # its operator set the cap to 0


def no_server_styles(cap: int) -> str:
    if cap <= 0:
        return _SERVER_STYLES_OFF
    return f"This server has no styles of its own yet. Admins can add up to {cap} with `/stylebot style add`."


def sheet_alt_text(count: int) -> str:
    return f"A grid of {count} style images, each with its name underneath"


def bad_style_name(most: int) -> str:
    return f"A style's name needs a letter or digit and at most {most} characters."


def name_of_a_painting(label: str) -> str:
    return f"That's the name of a gallery painting ({label}); choose another name."


def style_name_taken(name: str) -> str:
    return f"This server already has a style called “{name}”. Remove it first, or choose another name."


def too_many_server_styles(cap: int) -> str:
    if cap <= 0:
        return _SERVER_STYLES_OFF
    return f"This server already has {cap} styles, the most it can keep. Remove one with `/stylebot style remove`."


def style_added(name: str) -> str:
    return f"Added the style “{name}”. Members can pick it in `/stylize painting:` here."


def no_server_style(name: str) -> str:
    return f"This server has no style called “{name}”."


def style_removed(name: str) -> str:
    return f"Removed the style “{name}”. Jobs that already used it keep their copy until their images expire."


def fit(text: str, limit: int = 2000) -> str:
    """Discord's limit on a message's content; a cut listing ends with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- what a result used ---------------------------------------------------------------------


def _weight(value: float) -> str:
    return f"{value:g}"


def _parts(weight: float) -> str:
    return f"{_weight(weight)} part" if weight == 1 else f"{_weight(weight)} parts"


def styles_phrase(info: Mapping[str, Any] | None) -> str | None:
    """The style a job used, or what it blended and how much of each; None when not recorded."""
    styles = list((info or {}).get("styles") or [])
    if not styles:
        return None
    if len(styles) == 1:
        return str(styles[0]["name"])
    return " + ".join(f"{s['name']} ×{_weight(float(s['weight']))}" for s in styles)


def alt_text(info: Mapping[str, Any] | None, settings: str) -> str:
    """A result's alt text (the attachment's description, which screen readers read out): the content,
    the style or blend, the settings (`settings_line`). Discord allows 1,024 characters."""
    info = info or {}
    content = info.get("content") or "an image"
    styles = list(info.get("styles") or [])
    if len(styles) > 1:
        style = "a blend of " + ", ".join(f"{s['name']} ({_parts(float(s['weight']))})" for s in styles)
    else:
        style = styles[0]["name"] if styles else "another image"
    return f"{content} repainted in the style of {style}; {settings}"[:1024]


__all__ = [
    "MODAL_PAINTING_HELP",
    "NO_STYLE_GIVEN",
    "alt_text",
    "bad_blend",
    "bad_style_name",
    "fit",
    "gallery_listing",
    "largest_value",
    "name_of_a_painting",
    "named_value",
    "no_server_style",
    "no_server_styles",
    "server_default_value",
    "server_style_choice",
    "server_styles_listing",
    "sheet_alt_text",
    "style_added",
    "style_name_taken",
    "style_removed",
    "styles_phrase",
    "too_many_server_styles",
    "too_many_styles",
    "typed_value",
    "unknown_style",
]
