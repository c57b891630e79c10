"""The fake Discord's world model: users, guilds, roles, channels, messages, attachments, interactions.

Everything here is plain data so tests can inspect and tweak it directly; the HTTP/gateway layer in
``server.py`` mutates it and ``payloads.py`` turns it into the JSON that discord.py expects.
"""

from __future__ import annotations

import datetime as _dt
import io
import itertools
import mimetypes
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

DISCORD_EPOCH_MS = 1420070400000


class Perm:
    """Permission bits (the subset a bot usually cares about), as Discord numbers them.

    Kept local so the fake does not depend on discord.py's own model of permissions: if the
    client and the fake disagree, we want the test to notice rather than share the same bug.
    """

    CREATE_INSTANT_INVITE = 1 << 0
    KICK_MEMBERS = 1 << 1
    BAN_MEMBERS = 1 << 2
    ADMINISTRATOR = 1 << 3
    MANAGE_CHANNELS = 1 << 4
    MANAGE_GUILD = 1 << 5
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    CHANGE_NICKNAME = 1 << 26
    MANAGE_ROLES = 1 << 28
    USE_APPLICATION_COMMANDS = 1 << 31
    MANAGE_THREADS = 1 << 34
    CREATE_PUBLIC_THREADS = 1 << 35
    SEND_MESSAGES_IN_THREADS = 1 << 38
    MODERATE_MEMBERS = 1 << 40
    USE_EXTERNAL_APPS = 1 << 50

    ALL = (1 << 53) - 1

    EVERYONE_DEFAULT = (
        CREATE_INSTANT_INVITE
        | ADD_REACTIONS
        | VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | USE_EXTERNAL_EMOJIS
        | CONNECT
        | SPEAK
        | CHANGE_NICKNAME
        | USE_APPLICATION_COMMANDS
        | CREATE_PUBLIC_THREADS
        | SEND_MESSAGES_IN_THREADS
        | USE_EXTERNAL_APPS
    )
    BOT_DEFAULT = (
        VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | ADD_REACTIONS
        | USE_EXTERNAL_EMOJIS
        | USE_APPLICATION_COMMANDS
        | MANAGE_MESSAGES
        | SEND_MESSAGES_IN_THREADS
    )
    MODERATOR = MANAGE_GUILD | MANAGE_MESSAGES


class Intent:
    """Gateway intent bits the fake honours when deciding what to dispatch."""

    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    GUILD_MESSAGE_REACTIONS = 1 << 10
    DIRECT_MESSAGES = 1 << 12
    MESSAGE_CONTENT = 1 << 15


class ChannelType:
    """Channel type numbers used by the fake."""

    TEXT = 0
    DM = 1
    VOICE = 2
    CATEGORY = 4
    PUBLIC_THREAD = 11


class InteractionType:
    """Interaction type numbers."""

    PING = 1
    APPLICATION_COMMAND = 2
    MESSAGE_COMPONENT = 3
    AUTOCOMPLETE = 4
    MODAL_SUBMIT = 5


class MessageFlag:
    """Message flag bits the fake reads or sets."""

    SUPPRESS_EMBEDS = 1 << 2
    EPHEMERAL = 1 << 6
    LOADING = 1 << 7
    SUPPRESS_NOTIFICATIONS = 1 << 12
    IS_COMPONENTS_V2 = 1 << 15


def _as_int(value: Any) -> int:
    """Accept an int, a discord.py-style flag object with ``.value``, or None (0)."""
    if value is None:
        return 0
    if hasattr(value, "value"):
        return int(value.value)
    return int(value)


def iso_now() -> str:
    """Discord-style ISO-8601 timestamp with timezone, as message timestamps use."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


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


@dataclass(eq=False)
class User:
    """A Discord user (human or bot)."""

    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    avatar: str | None = None
    system: bool = False

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"


@dataclass(eq=False)
class Role:
    """A guild role; ``bot_id`` marks the managed role Discord creates for a bot."""

    id: int
    guild_id: int
    name: str
    permissions: int = 0
    position: int = 0
    color: int = 0
    hoist: bool = False
    managed: bool = False
    mentionable: bool = False
    bot_id: int | None = None

    @property
    def mention(self) -> str:
        return f"<@&{self.id}>"


@dataclass(eq=False)
class Member:
    """A user's membership in one guild."""

    user: User
    guild_id: int
    role_ids: list[int] = field(default_factory=list)
    nick: str | None = None
    joined_at: str = field(default_factory=iso_now)
    pending: bool = False
    communication_disabled_until: str | None = None

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def mention(self) -> str:
        return f"<@{self.user.id}>"


@dataclass(eq=False)
class Overwrite:
    """A channel permission overwrite; ``type`` 0 targets a role, 1 a member."""

    id: int
    type: int
    allow: int = 0
    deny: int = 0


@dataclass(eq=False)
class Channel:
    """A guild text/voice/category channel or a DM channel (``guild_id`` None)."""

    id: int
    type: int
    name: str | None
    guild_id: int | None = None
    position: int = 0
    topic: str | None = None
    nsfw: bool = False
    parent_id: int | None = None
    rate_limit_per_user: int = 0
    overwrites: dict[int, Overwrite] = field(default_factory=dict)
    recipients: list[User] = field(default_factory=list)
    last_message_id: int | None = None

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"


@dataclass(eq=False)
class Guild:
    """A guild with its roles, channels and members, all keyed by id."""

    id: int
    name: str
    owner_id: int
    roles: dict[int, Role] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    members: dict[int, Member] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)
    preferred_locale: str = "en-US"
    joined_at: str = field(default_factory=iso_now)

    @property
    def everyone(self) -> Role:
        return self.roles[self.id]


@dataclass(eq=False)
class Attachment:
    """An uploaded file, with its bytes, served by the fake CDN.

    ``path`` is the CDN path (``/attachments/{channel}/{id}/{filename}``, or
    ``/ephemeral-attachments/...`` for slash-command uploads, which is what Discord does).
    """

    id: int
    filename: str
    data: bytes
    content_type: str | None
    path: str
    description: str | None = None
    ephemeral: bool = False
    width: int | None = None
    height: int | None = None
    deleted: bool = False
    title: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def spoiler(self) -> bool:
        return self.filename.startswith("SPOILER_")


@dataclass(eq=False)
class Message:
    """A stored message. Bot-authored ones keep components/embeds/attachments for assertions.

    ``revisions`` holds the message's JSON payload before each edit, oldest first.
    """

    id: int
    channel_id: int
    guild_id: int | None
    author: User
    content: str = ""
    type: int = 0
    attachments: list[Attachment] = field(default_factory=list)
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    flags: int = 0
    mentions: list[User] = field(default_factory=list)
    mention_roles: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    reference: dict[str, Any] | None = None
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_id: int | None = None
    timestamp: str = field(default_factory=iso_now)
    edited_timestamp: str | None = None
    pinned: bool = False
    tts: bool = False
    nonce: str | int | None = None
    reactions: dict[str, set[int]] = field(default_factory=dict)
    deleted: bool = False
    revisions: list[dict[str, Any]] = field(default_factory=list)
    poll: dict[str, Any] | None = None

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & MessageFlag.EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & MessageFlag.LOADING)

    @property
    def jump_url(self) -> str:
        return f"https://discord.com/channels/{self.guild_id or '@me'}/{self.channel_id}/{self.id}"

    def iter_components(self) -> list[dict[str, Any]]:
        """Every component in the message, flattened (rows, sections, containers, labels)."""
        return list(walk_components(self.components))

    def find_component(self, custom_id: str) -> dict[str, Any] | None:
        """The component with this ``custom_id``, or None."""
        for comp in walk_components(self.components):
            if comp.get("custom_id") == custom_id:
                return comp
        return None

    @property
    def custom_ids(self) -> list[str]:
        return [c["custom_id"] for c in walk_components(self.components) if "custom_id" in c]


def walk_components(components: list[dict[str, Any]]) -> Any:
    """Depth-first walk through a component tree in any of Discord's nesting shapes."""
    for comp in components or []:
        yield comp
        if "components" in comp:
            yield from walk_components(comp["components"])
        if isinstance(comp.get("component"), dict):
            yield from walk_components([comp["component"]])
        if isinstance(comp.get("accessory"), dict):
            yield from walk_components([comp["accessory"]])


@dataclass(eq=False)
class AppCommand:
    """A registered application command (the stored form of what the bot synced)."""

    id: int
    application_id: int
    name: str
    type: int
    data: dict[str, Any]
    guild_id: int | None = None
    version: int = 1

    @property
    def description(self) -> str:
        return self.data.get("description", "")

    @property
    def options(self) -> list[dict[str, Any]]:
        return self.data.get("options", []) or []


@dataclass(eq=False)
class Interaction:
    """An interaction the fake dispatched, plus everything the bot did in response.

    ``callbacks`` are the bodies the bot POSTed to the callback endpoint (normally one);
    ``response_type`` is the accepted callback type (4,5,6,7,8,9); ``modal`` is the modal
    the bot opened (callback type 9); ``original_message_id`` the message that @original
    refers to; ``followup_ids`` are messages created through the webhook afterwards.
    """

    id: int
    token: str
    type: int
    application_id: int
    data: dict[str, Any]
    user: User
    channel_id: int | None
    guild_id: int | None
    created_at: float
    payload: dict[str, Any] = field(default_factory=dict)
    message_id: int | None = None
    response_type: int | None = None
    responded_at: float | None = None
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    original_message_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    modal: dict[str, Any] | None = None
    autocomplete_choices: list[dict[str, Any]] | None = None
    expired: bool = False
    ephemeral: bool = False

    @property
    def responded(self) -> bool:
        return self.response_type is not None

    @property
    def deferred(self) -> bool:
        return self.response_type in (5, 6)


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
            permissions=_as_int(permissions),
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

    def base_permissions(self, guild: Guild, member: Member) -> int:
        """Guild-level permissions: owner and Administrator get everything."""
        if member.id == guild.owner_id:
            return Perm.ALL
        perms = guild.everyone.permissions
        for rid in member.role_ids:
            role = guild.roles.get(rid)
            if role is not None:
                perms |= role.permissions
        if perms & Perm.ADMINISTRATOR:
            return Perm.ALL
        return perms

    def channel_permissions(self, guild: Guild, member: Member, channel: Channel | None) -> int:
        """Discord's documented algorithm: base, then @everyone, role and member overwrites."""
        perms = self.base_permissions(guild, member)
        if perms == Perm.ALL or channel is None:
            return perms
        ows = channel.overwrites
        everyone = ows.get(guild.id)
        if everyone is not None:
            perms &= ~everyone.deny
            perms |= everyone.allow
        allow = deny = 0
        for rid in member.role_ids:
            ow = ows.get(rid)
            if ow is not None and ow.type == 0:
                allow |= ow.allow
                deny |= ow.deny
        perms &= ~deny
        perms |= allow
        mow = ows.get(member.id)
        if mow is not None and mow.type == 1:
            perms &= ~mow.deny
            perms |= mow.allow
        if not perms & Perm.VIEW_CHANNEL:
            return 0
        return perms

    def bot_permissions(self, channel: Channel) -> int:
        """The bot's effective permissions in ``channel`` (what the REST handlers enforce)."""
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
        return self.channel_permissions(guild, member, channel)


def _image_size(data: bytes) -> tuple[int | None, int | None]:
    """Width/height for image attachments, as Discord reports them; None when unreadable."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            return int(img.width), int(img.height)
    except Exception:
        return None, None
