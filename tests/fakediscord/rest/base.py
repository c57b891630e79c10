"""What every REST resource shares: the ``Context`` and the lookups that answer with Discord's
"Unknown …" errors (https://discord.com/developers/docs/topics/opcodes-and-status-codes#json)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..core import Context
from ..errors import DiscordError
from ..recording import RecordedRequest
from ..routing import Route
from ..state import Channel, Guild, Perm


class Resource:
    """One Discord resource's endpoints; subclasses list them in ``routes()``. Handlers take the
    recorded request plus the path parameters and return JSON-able data or an aiohttp response."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.state = ctx.state

    def routes(self) -> list[Route]:
        raise NotImplementedError

    @staticmethod
    def body(rec: RecordedRequest) -> dict[str, Any]:
        """The JSON object of the request (the ``payload_json`` part of a multipart upload)."""
        return rec.json if isinstance(rec.json, dict) else {}

    @staticmethod
    def no_content() -> web.Response:
        return web.Response(status=204)

    def guild(self, guild_id: str | int) -> Guild:
        guild = self.state.guilds.get(int(guild_id))
        if guild is None:
            raise DiscordError(404, "Unknown Guild", 10004)
        return guild

    def channel(self, channel_id: str | int) -> Channel:
        ch = self.state.channels.get(int(channel_id))
        if ch is None:
            raise DiscordError(404, "Unknown Channel", 10003)
        return ch

    def require(self, channel: Channel, needed: int) -> None:
        """The bot needs VIEW_CHANNEL (else 50001 Missing Access) and every bit of ``needed``
        (else 50013 Missing Permissions) in ``channel``."""
        perms = self.state.bot_permissions(channel)
        if not perms & Perm.VIEW_CHANNEL:
            raise DiscordError(403, "Missing Access", 50001)
        if perms & needed != needed:
            raise DiscordError(403, "Missing Permissions", 50013)
