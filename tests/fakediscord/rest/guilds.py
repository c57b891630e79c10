"""Guilds, their channels, roles and members (https://discord.com/developers/docs/resources/guild)."""

from __future__ import annotations

from typing import Any

from .. import payloads as P
from ..errors import DiscordError
from ..recording import RecordedRequest
from ..routing import Route
from .base import Resource


class GuildsResource(Resource):
    def routes(self) -> list[Route]:
        return [
            Route("GET", "/guilds/{guild_id}", self.get_guild),
            Route("GET", "/guilds/{guild_id}/channels", self.channels),
            Route("GET", "/guilds/{guild_id}/roles", self.roles),
            Route("GET", "/guilds/{guild_id}/members/{user_id}", self.member),
            Route("GET", "/guilds/{guild_id}/members", self.members),
        ]

    async def get_guild(self, rec: RecordedRequest, guild_id: str) -> Any:
        return P.partial_guild(self.guild(guild_id))

    async def channels(self, rec: RecordedRequest, guild_id: str) -> Any:
        return [P.channel(c) for c in self.guild(guild_id).channels.values()]

    async def roles(self, rec: RecordedRequest, guild_id: str) -> Any:
        return [P.role(r) for r in self.guild(guild_id).roles.values()]

    async def member(self, rec: RecordedRequest, guild_id: str, user_id: str) -> Any:
        member = self.guild(guild_id).members.get(int(user_id))
        if member is None:
            raise DiscordError(404, "Unknown Member", 10007)
        return P.member(member)

    async def members(self, rec: RecordedRequest, guild_id: str) -> Any:
        """List Guild Members pages by ``after`` (a user id) and ``limit`` (default 1)."""
        limit = int(rec.query.get("limit", 1))
        after = int(rec.query.get("after", 0))
        members = sorted(self.guild(guild_id).members.values(), key=lambda m: m.id)
        return [P.member(m) for m in members if m.id > after][:limit]
