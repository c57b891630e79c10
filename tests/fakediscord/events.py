"""Message-shaped gateway events: MESSAGE_CREATE/UPDATE/DELETE and MESSAGE_REACTION_ADD/REMOVE
(https://discord.com/developers/docs/events/gateway-events#messages).

Shared by the REST handlers (the bot's own messages) and the drivers (a user's messages), so both
produce the same events: ephemeral messages are never dispatched, guild messages need
GUILD_MESSAGES and DMs DIRECT_MESSAGES, and a bot without MESSAGE_CONTENT gets empty content,
attachments and embeds except in DMs, its own messages and messages that mention it
(https://discord.com/developers/docs/events/gateway#message-content-intent). Over REST the intents the
application has enabled decide the same (``rest_message``).
"""

from __future__ import annotations

from typing import Any

from . import payloads as P
from .core import Settings
from .gateway import Gateway, GatewaySession
from .state import FakeState, Intent, Message, User


class Events:
    """Builds message events per session and hands them to the gateway."""

    def __init__(self, settings: Settings, state: FakeState, gateway: Gateway) -> None:
        self.settings = settings
        self.state = state
        self.gateway = gateway

    def hides_content(self, msg: Message, intents: int) -> bool:
        """Whether a bot with ``intents`` gets ``msg`` without content, attachments and embeds."""
        if not self.settings.enforce_message_content_intent or intents & Intent.MESSAGE_CONTENT:
            return False
        bot_id = self.state.bot_user.id
        if msg.guild_id is None or msg.author.id == bot_id:
            return False
        return not any(u.id == bot_id for u in msg.mentions)

    def message_payload(self, msg: Message, intents: int) -> dict[str, Any]:
        """``msg`` as a bot with ``intents`` sees it; the message it replies to is judged on its own."""
        ref = None
        if msg.reference is not None and msg.reference.get("message_id"):
            ref = self.state.messages.get(int(msg.reference["message_id"]))
        return P.message(
            self.state,
            msg,
            hide_content=self.hides_content(msg, intents),
            hide_referenced=self.hides_content(ref, intents) if ref is not None else None,
        )

    def rest_message(self, msg: Message) -> dict[str, Any]:
        """``msg`` read over REST, where the application's enabled intents decide what is hidden."""
        return self.message_payload(msg, self.settings.privileged_intents)

    def _message_event(self, msg: Message, session: GatewaySession) -> dict[str, Any]:
        data = self.message_payload(msg, session.intents)
        if msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
            guild = self.state.guilds.get(msg.guild_id)
            member = guild.members.get(msg.author.id) if guild else None
            if member is not None and msg.webhook_id is None:
                data["member"] = P.member(member, with_user=False)
        return data

    @staticmethod
    def _intent(msg: Message) -> int:
        return Intent.GUILD_MESSAGES if msg.guild_id is not None else Intent.DIRECT_MESSAGES

    async def message(self, event: str, msg: Message) -> int:
        """MESSAGE_CREATE or MESSAGE_UPDATE for ``msg``."""
        if msg.ephemeral:
            return 0
        return await self.gateway.dispatch(
            event, lambda s: self._message_event(msg, s), intent=self._intent(msg), guild_id=msg.guild_id
        )

    async def delete(self, msg: Message) -> int:
        """Mark ``msg`` deleted and send MESSAGE_DELETE."""
        msg.deleted = True
        if msg.ephemeral:
            return 0
        data: dict[str, Any] = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
        if msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
        return await self.gateway.dispatch("MESSAGE_DELETE", data, intent=self._intent(msg), guild_id=msg.guild_id)

    async def add_reaction(self, msg: Message, user: User, emoji: str) -> None:
        """``user`` reacts with ``emoji`` (a unicode character or ``name:id``); repeats are no-ops."""
        users = msg.reactions.setdefault(emoji, set())
        if user.id in users:
            return
        users.add(user.id)
        data: dict[str, Any] = {
            "user_id": str(user.id),
            "channel_id": str(msg.channel_id),
            "message_id": str(msg.id),
            "emoji": P.emoji_from_key(emoji),
            "burst": False,
            "type": 0,
            "message_author_id": str(msg.author.id),
        }
        if msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
            member = self.state.guilds[msg.guild_id].members.get(user.id)
            if member is not None:
                data["member"] = P.member(member)
        await self.gateway.dispatch(
            "MESSAGE_REACTION_ADD", data, intent=Intent.GUILD_MESSAGE_REACTIONS, guild_id=msg.guild_id
        )

    async def remove_reaction(self, msg: Message, user_id: int, emoji: str) -> None:
        """Take ``user_id``'s ``emoji`` reaction off ``msg`` (no event when there was none)."""
        users = msg.reactions.get(emoji, set())
        if user_id not in users:
            return
        users.discard(user_id)
        data = {
            "user_id": str(user_id),
            "channel_id": str(msg.channel_id),
            "message_id": str(msg.id),
            "guild_id": P.s(msg.guild_id),
            "emoji": P.emoji_from_key(emoji),
            "burst": False,
            "type": 0,
        }
        await self.gateway.dispatch(
            "MESSAGE_REACTION_REMOVE", data, intent=Intent.GUILD_MESSAGE_REACTIONS, guild_id=msg.guild_id
        )
