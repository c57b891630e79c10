"""Test-facing world changes: members, roles, channels, overwrites and attachments, and what users
do with messages (post, edit, delete, react). Each change sends the gateway event Discord would
(https://discord.com/developers/docs/events/gateway-events), so the client's cache stays in sync."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import payloads as P
from ..events import Events
from ..gateway import Gateway
from ..messages import MessageBuilder
from ..state import (
    Attachment,
    Channel,
    ChannelType,
    FakeState,
    Guild,
    Intent,
    Member,
    Message,
    Overwrite,
    Role,
    User,
    as_int,
    iso_now,
)
from .resolve import as_user, coerce_attachment


class WorldBuilding:
    """Mixed into ``FakeDiscord``; uses its ``state``, ``gateway``, ``events``, ``messages`` and the
    default ``guild``/``channel``/``member``."""

    state: FakeState
    gateway: Gateway
    events: Events
    messages: MessageBuilder
    guild: Guild
    channel: Channel
    member: Member

    # ------------------------------------------------------------------ guild setup

    async def add_member(
        self,
        username: str,
        *,
        permissions: Any = None,
        roles: Sequence[Role] = (),
        nick: str | None = None,
        guild: Guild | None = None,
    ) -> Member:
        """Add a user to the guild. ``permissions`` creates a dedicated role with exactly those bits
        (e.g. ``Perm.MANAGE_GUILD`` or ``discord.Permissions(manage_messages=True)``)."""
        guild = guild or self.guild
        user = self.state.add_user(username)
        role_list = list(roles)
        if permissions is not None:
            role = await self.add_role(f"{username}-perms", permissions, guild=guild)
            role_list.append(role)
        member = self.state.add_member(guild, user, role_list, nick=nick)
        data = P.member(member)
        data["guild_id"] = str(guild.id)
        await self.gateway.dispatch("GUILD_MEMBER_ADD", data, intent=Intent.GUILD_MEMBERS, guild_id=guild.id)
        return member

    async def remove_bot(self, guild: Guild | None = None) -> None:
        """The bot leaves or is kicked from ``guild``: it is no longer a member (so its REST calls there
        get 403), and it gets GUILD_DELETE without ``unavailable``, which is how Discord tells a removal
        from an outage (https://discord.com/developers/docs/events/gateway-events#guild-delete)."""
        guild = guild or self.guild
        guild.members.pop(self.state.bot_user.id, None)
        await self.gateway.dispatch("GUILD_DELETE", {"id": str(guild.id)}, intent=Intent.GUILDS, guild_id=guild.id)

    async def add_role(self, name: str, permissions: Any = 0, *, guild: Guild | None = None) -> Role:
        """Create a role (GUILD_ROLE_CREATE is dispatched so the client cache stays in sync)."""
        guild = guild or self.guild
        role = self.state.add_role(guild, name, permissions)
        await self.gateway.dispatch(
            "GUILD_ROLE_CREATE",
            {"guild_id": str(guild.id), "role": P.role(role)},
            intent=Intent.GUILDS,
            guild_id=guild.id,
        )
        return role

    async def set_member_roles(self, member: Member, roles: Sequence[Role]) -> None:
        """Replace a member's roles (GUILD_MEMBER_UPDATE, seen by clients with the members intent)."""
        member.role_ids = [r.id for r in roles]
        data = P.member(member)
        data["guild_id"] = str(member.guild_id)
        await self.gateway.dispatch("GUILD_MEMBER_UPDATE", data, intent=Intent.GUILD_MEMBERS, guild_id=member.guild_id)

    async def add_channel(
        self, name: str, *, type: int = ChannelType.TEXT, guild: Guild | None = None, topic: str | None = None
    ) -> Channel:
        """Create a guild channel (CHANNEL_CREATE)."""
        guild = guild or self.guild
        ch = self.state.add_channel(name, guild=guild, type=type, topic=topic)
        await self.gateway.dispatch("CHANNEL_CREATE", P.channel(ch), intent=Intent.GUILDS, guild_id=guild.id)
        return ch

    async def set_overwrite(
        self, channel: Channel, target: Role | Member | User, *, allow: Any = 0, deny: Any = 0
    ) -> None:
        """Set a channel permission overwrite (e.g. deny the bot SEND_MESSAGES) and tell the client."""
        kind = 0 if isinstance(target, Role) else 1
        tid = target.id
        channel.overwrites[tid] = Overwrite(id=tid, type=kind, allow=as_int(allow), deny=as_int(deny))
        await self.gateway.dispatch(
            "CHANNEL_UPDATE", P.channel(channel), intent=Intent.GUILDS, guild_id=channel.guild_id
        )

    def add_attachment(
        self,
        data: bytes,
        filename: str = "image.png",
        *,
        content_type: str | None = None,
        channel: Channel | None = None,
        description: str | None = None,
        ephemeral: bool = False,
    ) -> Attachment:
        """Register bytes as an attachment served by the fake CDN (use it in options/messages/modals)."""
        return self.state.add_attachment(
            data,
            filename,
            content_type=content_type,
            channel_id=(channel or self.channel).id,
            description=description,
            ephemeral=ephemeral,
        )

    def attachment_url(self, att: Attachment) -> str:
        """A fresh CDN URL for ``att`` on this server."""
        return self.state.attachment_url(att)

    # ------------------------------------------------------------------ what users do with messages

    async def post_message(
        self,
        channel: Channel | None = None,
        author: User | Member | None = None,
        content: str = "",
        *,
        attachments: Sequence[Any] = (),
        reference: Message | None = None,
        mention_author: bool = True,
        embeds: list[dict[str, Any]] | None = None,
    ) -> Message:
        """A user posts a message (MESSAGE_CREATE). ``reference`` makes it a reply (type 19, with
        ``message_reference`` and ``referenced_message``); mentions are parsed from ``<@id>`` in content."""
        channel = channel or self.channel
        user = as_user(author, self.member)
        atts = [coerce_attachment(self.state, a, ephemeral=False, channel=channel) for a in attachments]
        msg = Message(
            id=self.state.new_id(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=user,
            content=content,
            attachments=atts,
            embeds=list(embeds or []),
        )
        if reference is not None:
            msg.type = 19
            msg.reference = {
                "type": 0,
                "message_id": str(reference.id),
                "channel_id": str(reference.channel_id),
                "guild_id": P.s(reference.guild_id),
            }
        self.messages.set_mentions(msg)
        if reference is not None and mention_author and reference.author not in msg.mentions:
            msg.mentions.append(reference.author)
        self.state.messages[msg.id] = msg
        channel.last_message_id = msg.id
        await self.events.message("MESSAGE_CREATE", msg)
        return msg

    async def edit_user_message(self, message: Message, content: str) -> Message:
        """A user edits their message (MESSAGE_UPDATE)."""
        message.revisions.append(P.message(self.state, message, include_referenced=False))
        message.content = content
        message.edited_timestamp = iso_now()
        self.messages.set_mentions(message)
        await self.events.message("MESSAGE_UPDATE", message)
        return message

    async def delete_message(self, message: Message) -> None:
        """Someone deletes ``message`` (MESSAGE_DELETE)."""
        await self.events.delete(message)

    async def react(self, message: Message, emoji: str, *, user: User | Member | None = None) -> None:
        """A user adds a reaction (MESSAGE_REACTION_ADD); ``emoji`` is a unicode char or ``name:id``."""
        await self.events.add_reaction(message, as_user(user, self.member), emoji)
