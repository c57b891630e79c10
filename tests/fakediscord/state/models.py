"""The fake's world model as plain dataclasses: users, roles, members, channels, guilds, attachments,
messages, application commands and interactions.

Plain data so tests can inspect and tweak it directly; ``store.FakeState`` holds and indexes it,
``payloads`` turns it into the JSON that discord.py expects. Field meanings follow the objects of the
same names in Discord's API reference (https://discord.com/developers/docs/resources/).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from .flags import MessageFlag


def iso_now() -> str:
    """Discord-style ISO-8601 timestamp with timezone, as message timestamps use."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


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
