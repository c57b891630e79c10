"""The REST routing table: each route is declared once as ``METHOD /path/{param}`` and compiled to a
regular expression; the same ``key`` names the route in rate-limit rules and reports.

Parameters are snowflakes (digits) unless ``PARAM_PATTERNS`` says otherwise; ``{name:regex}``
overrides the pattern for one route (e.g. ``{message_id:@original|\\d+}`` for webhook messages,
https://discord.com/developers/docs/resources/webhook#get-webhook-message).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import DiscordError

Handler = Callable[..., Awaitable[Any]]

PARAM_PATTERNS: dict[str, str] = {"token": r"[^/]+", "emoji": r"[^/]+"}
_PARAM = re.compile(r"\{(\w+)(?::([^}]+))?\}")

# Discord computes per-route limits per top-level resource: channels, guilds and webhooks (id + token)
# (https://discord.com/developers/docs/topics/rate-limits). Interaction callbacks count as a webhook.
MAJOR_PARAMS = ("channel_id", "guild_id", "app_id", "interaction_id", "token")


def _compile(template: str) -> re.Pattern[str]:
    out, pos = [], 0
    for m in _PARAM.finditer(template):
        out.append(re.escape(template[pos : m.start()]))
        name, pattern = m.group(1), m.group(2) or PARAM_PATTERNS.get(m.group(1), r"\d+")
        out.append(f"(?P<{name}>{pattern})")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out))


@dataclass(frozen=True)
class Route:
    """One REST endpoint: ``auth`` routes need the bot token; webhook and interaction-callback routes
    are authenticated by the token in their path instead."""

    method: str
    template: str
    handler: Handler = field(compare=False)
    auth: bool = True
    pattern: re.Pattern[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", _compile(self.template))

    @property
    def key(self) -> str:
        """``"PATCH /channels/{channel_id}/messages/{message_id}"``, with any ``:regex`` left out."""
        return f"{self.method} {_PARAM.sub(lambda m: '{' + m.group(1) + '}', self.template)}"


class Router:
    """Finds the route for a request: None for a path no route knows (the caller records it as
    unhandled), 405 when the path exists under another method."""

    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        keys = [r.key for r in routes]
        dupes = {k for k in keys if keys.count(k) > 1}
        if dupes:
            raise ValueError(f"routes declared twice: {sorted(dupes)}")

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        path_known = False
        for route in self.routes:
            m = route.pattern.fullmatch(path)
            if m is None:
                continue
            path_known = True
            if route.method == method:
                return route, {k: v for k, v in m.groupdict().items() if v is not None}
        if path_known:
            raise DiscordError(405, "405: Method Not Allowed", 0)
        return None

    def keys(self) -> set[str]:
        return {r.key for r in self.routes}
