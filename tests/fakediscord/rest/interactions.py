"""Responding to an interaction: ``POST /interactions/{id}/{token}/callback``
(https://discord.com/developers/docs/interactions/receiving-and-responding#create-interaction-response).

Callback types: 4 message, 5 deferred message ("thinking", a LOADING message), 6 deferred update
and 7 update of the component's message, 8 autocomplete choices, 9 modal. Enforced like Discord: one
acknowledgement per interaction (40060), within ``interaction_ack_timeout`` (later: 404 10062),
types that fit the interaction (autocomplete only answers with 8; modal submits and autocompletes
cannot open a modal), and modal shape (custom_id, title 1–45, 1–5 components, labels 1–45).
``?with_response=true`` returns the interaction callback response object.
"""

from __future__ import annotations

import copy
from typing import Any

from .. import payloads as P
from ..errors import DiscordError, form_error
from ..recording import RecordedRequest
from ..routing import Route
from ..state import Interaction, InteractionType, Message, MessageFlag, walk_components
from .base import Resource

_TRUE = ("1", "true", "True")


class InteractionsResource(Resource):
    def routes(self) -> list[Route]:
        return [Route("POST", "/interactions/{interaction_id}/{token}/callback", self.callback, auth=False)]

    async def callback(self, rec: RecordedRequest, interaction_id: str, token: str) -> Any:
        inter = self.state.interactions.get(int(interaction_id))
        if inter is None or inter.token != token or self.ctx.token_expired(inter):
            raise DiscordError(404, "Unknown interaction", 10062)
        body = self.body(rec)
        inter.callbacks.append(body)
        if inter.responded:
            raise DiscordError(400, "Interaction has already been acknowledged.", 40060)
        if self.ctx.clock.now() - inter.created_at > self.ctx.settings.interaction_ack_timeout:
            raise DiscordError(404, "Unknown interaction", 10062)
        cb_type = body.get("type")
        data = body.get("data") or {}
        msg = self._respond(inter, cb_type, data, rec)
        inter.response_type = cb_type
        inter.responded_at = self.ctx.clock.now()
        inter.ephemeral = bool(msg and msg.ephemeral)
        if msg is not None and cb_type in (4, 5):
            await self.ctx.events.message("MESSAGE_CREATE", msg)
        elif msg is not None and cb_type == 7:
            await self.ctx.events.message("MESSAGE_UPDATE", msg)
        if rec.query.get("with_response") in _TRUE:
            return self._callback_response(inter, cb_type, msg)
        return self.no_content()

    def _respond(self, inter: Interaction, cb_type: Any, data: dict[str, Any], rec: RecordedRequest) -> Message | None:
        """Apply one callback type to the store; the message it made or changed, if any."""
        invalid = form_error("type", "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid response type")
        channel = self.state.channels.get(inter.channel_id or 0)
        bot = self.state.bot_user
        if cb_type in (4, 5):
            if inter.type == InteractionType.AUTOCOMPLETE:
                raise invalid
            assert channel is not None
            if cb_type == 4:
                msg = self.ctx.messages.create(
                    channel, bot, data, rec.files, interaction=inter, type=self._message_type(inter)
                )
            else:
                flags = int(data.get("flags") or 0) & MessageFlag.EPHEMERAL
                msg = self.ctx.messages.create(
                    channel,
                    bot,
                    {"flags": flags},
                    [],
                    interaction=inter,
                    type=self._message_type(inter),
                    extra_flags=MessageFlag.LOADING,
                    allow_empty=True,
                )
            inter.original_message_id = msg.id
            return msg
        if cb_type in (6, 7):
            if inter.message_id is None:
                raise form_error("type", "INTERACTION_RESPONSE_TYPE_INVALID", "Interaction has no message to update")
            target = self.state.messages.get(inter.message_id)
            if target is None or target.deleted:
                raise DiscordError(404, "Unknown Message", 10008)
            inter.original_message_id = target.id
            if cb_type == 7:
                self.ctx.messages.edit(target, data, rec.files)
            return target
        if cb_type == 8:
            if inter.type != InteractionType.AUTOCOMPLETE:
                raise invalid
            inter.autocomplete_choices = list(data.get("choices") or [])
            return None
        if cb_type == 9:
            if inter.type in (InteractionType.MODAL_SUBMIT, InteractionType.AUTOCOMPLETE):
                raise form_error("type", "INTERACTION_RESPONSE_TYPE_INVALID", "Cannot respond with a modal")
            self._validate_modal(data)
            modal = copy.deepcopy(data)
            modal["components"] = self.ctx.messages.assign_component_ids(modal.get("components") or [])
            inter.modal = modal
            return None
        raise form_error("type", "INTERACTION_RESPONSE_TYPE_INVALID", f"Invalid response type {cb_type!r}")

    @staticmethod
    def _validate_modal(data: dict[str, Any]) -> None:
        if not data.get("custom_id"):
            raise form_error("data.custom_id", "BASE_TYPE_REQUIRED", "This field is required")
        if not (1 <= len(data.get("title") or "") <= 45):
            raise form_error("data.title", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45 in length.")
        comps = data.get("components") or []
        if not (1 <= len(comps) <= 5):
            raise form_error("data.components", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length.")
        for comp in walk_components(comps):
            if comp.get("type") == 18 and not (1 <= len(comp.get("label") or "") <= 45):
                raise form_error("data.components", "BASE_TYPE_BAD_LENGTH", "Label must be 1-45 characters.")

    @staticmethod
    def _message_type(inter: Interaction) -> int:
        """Message type 20 (CHAT_INPUT_COMMAND) or 23 (CONTEXT_MENU_COMMAND) answers a command."""
        if inter.type == InteractionType.APPLICATION_COMMAND:
            return 20 if inter.data.get("type", 1) == 1 else 23
        return 0

    def _callback_response(self, inter: Interaction, cb_type: int, msg: Message | None) -> dict[str, Any]:
        info: dict[str, Any] = {"id": str(inter.id), "type": inter.type}
        if msg is not None:
            info["response_message_id"] = str(msg.id)
            info["response_message_loading"] = msg.loading
            info["response_message_ephemeral"] = msg.ephemeral
        resource: dict[str, Any] = {"type": cb_type}
        if msg is not None and cb_type in (4, 7):
            resource["message"] = P.message(self.state, msg)
        return {"interaction": info, "resource": resource}
