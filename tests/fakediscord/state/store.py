"""``FakeState``: the store that holds and indexes the world model so handlers find things by id.

Ids are snowflakes (https://discord.com/developers/docs/reference#snowflakes): time-ordered, so
``created_at`` in the client looks sane and "newest first" sorts work by id as on Discord.
"""

from __future__ import annotations

import io
import itertools
import mimetypes
import re
import secrets
import time
from typing import Any

from .flags import ChannelType, Perm, as_int
from .models import AppCommand, Attachment, Channel, Guild, Interaction, Member, Message, Role, User
from .permissions import channel_permissions

DISCORD_EPOCH_MS = 1420070400000


class SnowflakeGenerator:
    """Produces time-based, strictly increasing snowflakes so ``created_at`` looks sane in the client."""

    def __init__(self) -> None:
        self._last = 0
        self._counter = itertools.count()

    def next(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        value = (ms << 22) | (1 << 17) | (next(self._counter) & 0xFFF)
        if value <= self._last:
            value = self._last + 1
        self._last = value
        return value


class FakeState:
    """The whole fake world. Holds indexes so REST handlers can find things by id."""

    def __init__(self, *, bot_name: str = "FakeBot") -> None:
        self.snowflakes = SnowflakeGenerator()
        self.users: dict[int, User] = {}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.attachments: dict[int, Attachment] = {}
        self.interactions: dict[int, Interaction] = {}
        self.interactions_by_token: dict[str, Interaction] = {}
        self.global_commands: dict[int, AppCommand] = {}
        self.guild_commands: dict[int, dict[int, AppCommand]] = {}
        self._component_ids = itertools.count(1)
        self.base_url = "http://127.0.0.1:0"
        self.bot_user = self.add_user(bot_name, bot=True)
        self.application_id = self.bot_user.id
        self.application_name = bot_name
        self.application_owner = self.bot_user  # FakeDiscord makes the guild owner the app's owner

    # -- creation -------------------------------------------------------------------------------

    def new_id(self) -> int:
        """A fresh, time-ordered snowflake."""
        return self.snowflakes.next()

    def add_user(self, username: str, *, bot: bool = False, global_name: str | None = None) -> User:
        """Create a user (not yet in any guild)."""
        user = User(id=self.new_id(), username=username, global_name=global_name, bot=bot)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str, owner: User) -> Guild:
        """Create a guild with its @everyone role (id == guild id) and ``owner`` as a member."""
        guild = Guild(id=self.new_id(), name=name, owner_id=owner.id)
        guild.roles[guild.id] = Role(
            id=guild.id, guild_id=guild.id, name="@everyone", permissions=Perm.EVERYONE_DEFAULT
        )
        self.guilds[guild.id] = guild
        self.add_member(guild, owner)
        return guild

    def add_role(self, guild: Guild, name: str, permissions: Any = 0, *, bot_id: int | None = None, **kw: Any) -> Role:
        """Create a role; ``bot_id`` makes it the managed role Discord gives a bot."""
        position = kw.pop("position", max((r.position for r in guild.roles.values()), default=0) + 1)
        role = Role(
            id=self.new_id(),
            guild_id=guild.id,
            name=name,
            permissions=as_int(permissions),
            position=position,
            managed=bot_id is not None,
            bot_id=bot_id,
            **kw,
        )
        guild.roles[role.id] = role
        return role

    def add_member(
        self, guild: Guild, user: User, roles: list[Role] | tuple[Role, ...] = (), nick: str | None = None
    ) -> Member:
        """Put ``user`` into ``guild`` with ``roles`` (no gateway event; see FakeDiscord.add_member)."""
        member = Member(user=user, guild_id=guild.id, role_ids=[r.id for r in roles], nick=nick)
        guild.members[user.id] = member
        return member

    def add_channel(
        self,
        name: str | None,
        *,
        guild: Guild | None = None,
        type: int = ChannelType.TEXT,
        topic: str | None = None,
        parent: Channel | None = None,
        nsfw: bool = False,
    ) -> Channel:
        """Create a channel in ``guild`` (or a guild-less one, e.g. for DMs)."""
        position = len(guild.channels) if guild else 0
        channel = Channel(
            id=self.new_id(),
            type=type,
            name=name,
            guild_id=guild.id if guild else None,
            position=position,
            topic=topic,
            parent_id=parent.id if parent else None,
            nsfw=nsfw,
        )
        self.channels[channel.id] = channel
        if guild is not None:
            guild.channels[channel.id] = channel
        return channel

    def dm_channel(self, user: User) -> Channel:
        """The (single) DM channel between the bot and ``user``, created on first use."""
        for ch in self.channels.values():
            if ch.type == ChannelType.DM and ch.recipients and ch.recipients[0].id == user.id:
                return ch
        ch = self.add_channel(None, type=ChannelType.DM)
        ch.recipients = [user]
        return ch

    def add_attachment(
        self,
        data: bytes,
        filename: str,
        *,
        content_type: str | None = None,
        channel_id: int | None = None,
        description: str | None = None,
        ephemeral: bool = False,
    ) -> Attachment:
        """Store bytes as a CDN-served attachment (content type guessed, image size read)."""
        att_id = self.new_id()
        # Discord sanitises upload names the same way (spaces -> underscores, no path parts).
        filename = re.sub(r"\s+", "_", filename.replace("\\", "/").rsplit("/", 1)[-1]) or "unknown"
        if content_type is None:
            content_type = mimetypes.guess_type(filename)[0]
        if ephemeral:
            path = f"/ephemeral-attachments/{self.application_id}/{att_id}/{filename}"
        else:
            path = f"/attachments/{channel_id or 0}/{att_id}/{filename}"
        width = height = None
        if content_type and content_type.startswith("image/"):
            width, height = _image_size(data)
        att = Attachment(
            id=att_id,
            filename=filename,
            data=bytes(data),
            content_type=content_type,
            path=path,
            description=description,
            ephemeral=ephemeral,
            width=width,
            height=height,
        )
        self.attachments[att_id] = att
        return att

    def attachment_url(self, att: Attachment, *, proxy: bool = False) -> str:
        """Signed-looking CDN URL (Discord appends ex/is/hm; code that strips or keeps them is exercised)."""
        base = self.base_url + ("/media-proxy" if proxy else "")
        issued = int(time.time())
        return f"{base}{att.path}?ex={issued + 86400:x}&is={issued:x}&hm={secrets.token_hex(16)}&"

    def next_component_id(self) -> int:
        return next(self._component_ids)

    # -- lookups --------------------------------------------------------------------------------

    def guild_of(self, channel: Channel) -> Guild | None:
        """The guild a channel belongs to, or None for DMs."""
        return self.guilds.get(channel.guild_id) if channel.guild_id else None

    def channel_messages(self, channel_id: int, *, include_deleted: bool = False) -> list[Message]:
        """Messages stored for a channel, unordered."""
        return [m for m in self.messages.values() if m.channel_id == channel_id and (include_deleted or not m.deleted)]

    def original_message(self, inter: Interaction) -> Message | None:
        """The live message an interaction's ``@original`` refers to (None before a message
        response or once deleted)."""
        msg = self.messages.get(inter.original_message_id) if inter.original_message_id is not None else None
        return None if msg is None or msg.deleted else msg

    def find_command(self, name: str, type: int, guild_id: int | None) -> AppCommand | None:
        """Guild-scoped registration wins over global, as in the Discord client."""
        if guild_id is not None:
            for cmd in self.guild_commands.get(guild_id, {}).values():
                if cmd.name == name and cmd.type == type:
                    return cmd
        for cmd in self.global_commands.values():
            if cmd.name == name and cmd.type == type:
                return cmd
        return None

    # -- permissions ----------------------------------------------------------------------------

    def bot_permissions(self, channel: Channel) -> int:
        """The bot's effective permissions in ``channel`` (what the REST handlers enforce); in a DM
        the bot has the permissions Discord implies for DMs (no guild, no roles)."""
        guild = self.guild_of(channel)
        if guild is None:
            return (
                Perm.VIEW_CHANNEL
                | Perm.SEND_MESSAGES
                | Perm.EMBED_LINKS
                | Perm.ATTACH_FILES
                | Perm.READ_MESSAGE_HISTORY
                | Perm.ADD_REACTIONS
            )
        member = guild.members.get(self.bot_user.id)
        if member is None:
            return 0
        return channel_permissions(guild, member, channel)


def _image_size(data: bytes) -> tuple[int | None, int | None]:
    """Width/height for image attachments, as Discord reports them; None when unreadable."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            return int(img.width), int(img.height)
    except Exception:
        return None, None
