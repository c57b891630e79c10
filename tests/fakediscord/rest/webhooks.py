"""Interaction webhooks: follow-up messages and the original response, reached with the
interaction's token (https://discord.com/developers/docs/interactions/receiving-and-responding#followup-messages).

Tokens stop working after ``token_lifetime`` (401 Invalid Webhook Token, 50027). A follow-up needs
an acknowledged interaction (not autocomplete or modal). The first follow-up after a "thinking"
deferral edits that LOADING message into the response instead of posting a new one, as Discord does.
"""

from __future__ import annotations

from typing import Any

from .. import payloads as P
from ..errors import DiscordError
from ..recording import RecordedRequest
from ..routing import Route
from ..state import Interaction, Message
from .base import Resource

_HOOK = "/webhooks/{app_id}/{token}"
_HOOK_MESSAGE = _HOOK + r"/messages/{message_id:@original|\d+}"


class WebhooksResource(Resource):
    def routes(self) -> list[Route]:
        return [
            Route("POST", _HOOK, self.followup, auth=False),
            Route("GET", _HOOK_MESSAGE, self.get_message, auth=False),
            Route("PATCH", _HOOK_MESSAGE, self.edit_message, auth=False),
            Route("DELETE", _HOOK_MESSAGE, self.delete_message, auth=False),
        ]

    def _interaction(self, app_id: str, token: str) -> Interaction:
        inter = self.state.interactions_by_token.get(token)
        if inter is None or int(app_id) != inter.application_id:
            raise DiscordError(404, "Unknown Webhook", 10015)
        if self.ctx.token_expired(inter):
            raise DiscordError(401, "Invalid Webhook Token", 50027)
        return inter

    def _message(self, inter: Interaction, message_id: str) -> Message:
        """``@original`` or the id of one of this interaction's own messages."""
        if message_id == "@original":
            mid = inter.original_message_id
        else:
            mid = int(message_id)
            if mid != inter.original_message_id and mid not in inter.followup_ids:
                mid = None
        msg = self.state.messages.get(mid) if mid is not None else None
        if msg is None or msg.deleted:
            raise DiscordError(404, "Unknown Message", 10008)
        return msg

    async def followup(self, rec: RecordedRequest, app_id: str, token: str) -> Any:
        inter = self._interaction(app_id, token)
        if not inter.responded or inter.response_type in (8, 9):
            raise DiscordError(404, "Unknown Webhook", 10015)
        body = self.body(rec)
        original = self.state.original_message(inter)
        if inter.response_type == 5 and original is not None and original.loading:
            self.ctx.messages.edit(original, body, rec.files)
            msg = original
            await self.ctx.events.message("MESSAGE_UPDATE", msg)
        else:
            channel = self.channel(inter.channel_id or 0)
            msg = self.ctx.messages.create(channel, self.state.bot_user, body, rec.files, interaction=inter)
            inter.followup_ids.append(msg.id)
            await self.ctx.events.message("MESSAGE_CREATE", msg)
        if rec.query.get("wait") in ("1", "true", "True"):
            return P.message(self.state, msg)
        return self.no_content()

    async def get_message(self, rec: RecordedRequest, app_id: str, token: str, message_id: str) -> Any:
        inter = self._interaction(app_id, token)
        return P.message(self.state, self._message(inter, message_id))

    async def edit_message(self, rec: RecordedRequest, app_id: str, token: str, message_id: str) -> Any:
        inter = self._interaction(app_id, token)
        msg = self._message(inter, message_id)
        self.ctx.messages.edit(msg, self.body(rec), rec.files)
        await self.ctx.events.message("MESSAGE_UPDATE", msg)
        return P.message(self.state, msg)

    async def delete_message(self, rec: RecordedRequest, app_id: str, token: str, message_id: str) -> Any:
        inter = self._interaction(app_id, token)
        await self.ctx.events.delete(self._message(inter, message_id))
        return self.no_content()
