"""Users: the bot's own account, other users, and opening a DM
(https://discord.com/developers/docs/resources/user)."""

from __future__ import annotations

from typing import Any

from .. import payloads as P
from ..errors import DiscordError
from ..recording import RecordedRequest
from ..routing import Route
from .base import Resource


class UsersResource(Resource):
    def routes(self) -> list[Route]:
        return [
            Route("GET", "/users/@me", self.me),
            Route("GET", "/users/{user_id}", self.get_user),
            Route("POST", "/users/@me/channels", self.create_dm),
        ]

    async def me(self, rec: RecordedRequest) -> Any:
        return P.current_user(self.state.bot_user)

    async def get_user(self, rec: RecordedRequest, user_id: str) -> Any:
        u = self.state.users.get(int(user_id))
        if u is None:
            raise DiscordError(404, "Unknown User", 10013)
        return P.user(u)

    async def create_dm(self, rec: RecordedRequest) -> Any:
        """Bots cannot DM other bots (50007)."""
        rid = int(self.body(rec).get("recipient_id", 0))
        u = self.state.users.get(rid)
        if u is None:
            raise DiscordError(400, "Invalid Recipient(s)", 50033)
        if u.bot:
            raise DiscordError(403, "Cannot send messages to this user", 50007)
        return P.channel(self.state.dm_channel(u))
