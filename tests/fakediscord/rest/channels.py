"""Channels and their messages, typing and reactions, with the bot's channel permissions enforced
(https://discord.com/developers/docs/resources/channel, .../resources/message).

Permissions checked as Discord does: reading history needs READ_MESSAGE_HISTORY (without it the
history is empty), sending needs SEND_MESSAGES (+ ATTACH_FILES with files, + READ_MESSAGE_HISTORY
for a reply), a first reaction with an emoji needs ADD_REACTIONS, editing or deleting someone else's
message needs MANAGE_MESSAGES (and only ``flags`` may be edited then: 50005). Ephemeral messages
are invisible here: they exist only for their interaction's webhook.
"""

from __future__ import annotations

from typing import Any

from .. import payloads as P
from ..core import Context
from ..errors import DiscordError, form_error
from ..recording import RecordedRequest
from ..routing import Route
from ..state import Channel, Message, MessageFlag, Perm
from .base import Resource

_MESSAGE = "/channels/{channel_id}/messages/{message_id}"
# Create Message: "If enforce_nonce is true and a message was created by the same author with the same
# nonce in the past few minutes, that message is returned and no new message is created."
NONCE_WINDOW = 5 * 60.0


class ChannelsResource(Resource):
    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._nonces: dict[str, tuple[int, float]] = {}  # the bot's nonces -> (message id, when)

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/channels/{channel_id}", self.get_channel),
            Route("GET", "/channels/{channel_id}/messages", self.history),
            Route("POST", "/channels/{channel_id}/messages", self.create_message),
            Route("GET", _MESSAGE, self.get_message),
            Route("PATCH", _MESSAGE, self.edit_message),
            Route("DELETE", _MESSAGE, self.delete_message),
            Route("POST", "/channels/{channel_id}/typing", self.typing),
            Route("PUT", _MESSAGE + "/reactions/{emoji}/@me", self.react),
            Route("DELETE", _MESSAGE + "/reactions/{emoji}/@me", self.unreact),
            Route("DELETE", _MESSAGE + "/reactions/{emoji}/{user_id}", self.unreact),
            Route("DELETE", _MESSAGE + "/reactions", self.clear_reactions),
        ]

    def _message(self, channel_id: str, message_id: str) -> tuple[Channel, Message]:
        ch = self.channel(channel_id)
        msg = self.state.messages.get(int(message_id))
        if msg is None or msg.deleted or msg.channel_id != ch.id or msg.ephemeral:
            raise DiscordError(404, "Unknown Message", 10008)
        return ch, msg

    def _is_bot(self, msg: Message) -> bool:
        return msg.author.id == self.state.bot_user.id

    async def get_channel(self, rec: RecordedRequest, channel_id: str) -> Any:
        ch = self.channel(channel_id)
        if ch.guild_id is not None:
            self.require(ch, Perm.VIEW_CHANNEL)
        return P.channel(ch)

    async def history(self, rec: RecordedRequest, channel_id: str) -> Any:
        """Newest first, ``limit`` 1–100 (default 50), paged by ``before``/``after``/``around``."""
        ch = self.channel(channel_id)
        self.require(ch, Perm.VIEW_CHANNEL)
        if not self.state.bot_permissions(ch) & Perm.READ_MESSAGE_HISTORY:
            return []
        limit = max(1, min(100, int(rec.query.get("limit", 50))))
        msgs = [m for m in self.state.channel_messages(ch.id) if not m.ephemeral]
        msgs.sort(key=lambda m: m.id, reverse=True)
        if "before" in rec.query:
            msgs = [m for m in msgs if m.id < int(rec.query["before"])]
        if "after" in rec.query:
            msgs = [m for m in msgs if m.id > int(rec.query["after"])]
            msgs.sort(key=lambda m: m.id)
            msgs = msgs[:limit]
            msgs.sort(key=lambda m: m.id, reverse=True)
        if "around" in rec.query:
            around = int(rec.query["around"])
            msgs.sort(key=lambda m: abs(m.id - around))
            msgs = sorted(msgs[:limit], key=lambda m: m.id, reverse=True)
        return [self.ctx.events.rest_message(m) for m in msgs[:limit]]

    async def create_message(self, rec: RecordedRequest, channel_id: str) -> Any:
        ch = self.channel(channel_id)
        body = self.body(rec)
        needed = Perm.SEND_MESSAGES
        if rec.files:
            needed |= Perm.ATTACH_FILES
        if body.get("message_reference"):
            needed |= Perm.READ_MESSAGE_HISTORY
        self.require(ch, needed)
        if int(body.get("flags") or 0) & MessageFlag.EPHEMERAL:
            raise form_error("flags", "MESSAGE_FLAGS_INVALID", "Ephemeral messages need an interaction")
        nonce = body.get("nonce")
        if nonce is not None and body.get("enforce_nonce"):
            earlier = self._nonces.get(str(nonce))
            if earlier is not None and self.ctx.clock.now() - earlier[1] <= NONCE_WINDOW:
                existing = self.state.messages.get(earlier[0])
                if existing is not None and not existing.deleted:
                    return P.message(self.state, existing)  # the same message again, not a second one
        msg = self.ctx.messages.create(ch, self.state.bot_user, body, rec.files)
        if nonce is not None:
            self._nonces[str(nonce)] = (msg.id, self.ctx.clock.now())
        await self.ctx.events.message("MESSAGE_CREATE", msg)
        return P.message(self.state, msg)

    async def get_message(self, rec: RecordedRequest, channel_id: str, message_id: str) -> Any:
        ch, msg = self._message(channel_id, message_id)
        self.require(ch, Perm.READ_MESSAGE_HISTORY)
        return self.ctx.events.rest_message(msg)

    async def edit_message(self, rec: RecordedRequest, channel_id: str, message_id: str) -> Any:
        ch, msg = self._message(channel_id, message_id)
        self.require(ch, Perm.VIEW_CHANNEL)
        body = self.body(rec)
        if not self._is_bot(msg):
            if set(body) - {"flags"}:
                raise DiscordError(403, "Cannot edit a message authored by another user", 50005)
            self.require(ch, Perm.MANAGE_MESSAGES)
        self.ctx.messages.edit(msg, body, rec.files)
        await self.ctx.events.message("MESSAGE_UPDATE", msg)
        return P.message(self.state, msg)

    async def delete_message(self, rec: RecordedRequest, channel_id: str, message_id: str) -> Any:
        ch, msg = self._message(channel_id, message_id)
        if not self._is_bot(msg):
            self.require(ch, Perm.MANAGE_MESSAGES)
        await self.ctx.events.delete(msg)
        return self.no_content()

    async def typing(self, rec: RecordedRequest, channel_id: str) -> Any:
        self.require(self.channel(channel_id), Perm.SEND_MESSAGES)
        return self.no_content()

    async def react(self, rec: RecordedRequest, channel_id: str, message_id: str, emoji: str) -> Any:
        ch, msg = self._message(channel_id, message_id)
        self.require(ch, Perm.READ_MESSAGE_HISTORY)
        if emoji not in msg.reactions:
            self.require(ch, Perm.ADD_REACTIONS)
        await self.ctx.events.add_reaction(msg, self.state.bot_user, emoji)
        return self.no_content()

    async def unreact(
        self, rec: RecordedRequest, channel_id: str, message_id: str, emoji: str, user_id: str | None = None
    ) -> Any:
        ch, msg = self._message(channel_id, message_id)
        uid = int(user_id) if user_id else self.state.bot_user.id
        if uid != self.state.bot_user.id:
            self.require(ch, Perm.MANAGE_MESSAGES)
        await self.ctx.events.remove_reaction(msg, uid, emoji)
        return self.no_content()

    async def clear_reactions(self, rec: RecordedRequest, channel_id: str, message_id: str) -> Any:
        ch, msg = self._message(channel_id, message_id)
        self.require(ch, Perm.MANAGE_MESSAGES)
        msg.reactions.clear()
        return self.no_content()
