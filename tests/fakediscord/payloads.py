"""JSON builders: turn the fake's world model into Discord API v10 payloads.

Field sets follow the Discord API reference and what discord.py 2.7 reads (it indexes several keys
directly, e.g. ``attachment_size_limit`` on interactions, ``flags`` on members, ``proxy_url`` on
attachments), so a missing key here would surface as a KeyError inside the client.
"""

from __future__ import annotations

from typing import Any

from .state import (
    AppCommand,
    Attachment,
    Channel,
    FakeState,
    Guild,
    Intent,
    Member,
    Message,
    Role,
    User,
)


def s(value: int | None) -> str | None:
    """Snowflakes travel as strings."""
    return None if value is None else str(value)


def user(u: User) -> dict[str, Any]:
    """A user object (``discriminator`` "0": the post-2023 username system)."""
    data: dict[str, Any] = {
        "id": s(u.id),
        "username": u.username,
        "discriminator": "0",
        "global_name": u.global_name,
        "avatar": u.avatar,
        "avatar_decoration_data": None,
        "public_flags": 0,
        "primary_guild": None,
        "collectibles": None,
        "banner": None,
        "accent_color": None,
    }
    if u.bot:
        data["bot"] = True
    if u.system:
        data["system"] = True
    return data


def current_user(u: User) -> dict[str, Any]:
    """GET /users/@me and READY's ``user``: the bot's own account."""
    data = user(u)
    data.update({"verified": True, "mfa_enabled": False, "flags": 0, "email": None, "locale": "en-US"})
    return data


def member(m: Member, *, with_user: bool = True, permissions: int | None = None) -> dict[str, Any]:
    """A guild member; ``permissions`` is only present inside interactions."""
    data: dict[str, Any] = {
        "roles": [s(r) for r in m.role_ids],
        "nick": m.nick,
        "avatar": None,
        "banner": None,
        "joined_at": m.joined_at,
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": m.pending,
        "communication_disabled_until": m.communication_disabled_until,
        "avatar_decoration_data": None,
    }
    if with_user:
        data["user"] = user(m.user)
    if permissions is not None:
        data["permissions"] = str(permissions)
    return data


def role(r: Role) -> dict[str, Any]:
    """A role; the bot's managed role carries ``tags.bot_id``."""
    data: dict[str, Any] = {
        "id": s(r.id),
        "name": r.name,
        "color": r.color,
        "colors": {"primary_color": r.color, "secondary_color": None, "tertiary_color": None},
        "hoist": r.hoist,
        "icon": None,
        "unicode_emoji": None,
        "position": r.position,
        "permissions": str(r.permissions),
        "managed": r.managed,
        "mentionable": r.mentionable,
        "flags": 0,
    }
    if r.bot_id is not None:
        data["tags"] = {"bot_id": s(r.bot_id)}
    return data


def channel(c: Channel) -> dict[str, Any]:
    """A guild channel or, without ``guild_id``, a DM channel with recipients."""
    if c.guild_id is None:
        return {
            "id": s(c.id),
            "type": c.type,
            "last_message_id": s(c.last_message_id),
            "flags": 0,
            "recipients": [user(u) for u in c.recipients],
        }
    data: dict[str, Any] = {
        "id": s(c.id),
        "type": c.type,
        "guild_id": s(c.guild_id),
        "name": c.name,
        "position": c.position,
        "permission_overwrites": [
            {"id": s(o.id), "type": o.type, "allow": str(o.allow), "deny": str(o.deny)} for o in c.overwrites.values()
        ],
        "parent_id": s(c.parent_id),
        "flags": 0,
    }
    if c.type != 4:
        data.update(
            {
                "topic": c.topic,
                "nsfw": c.nsfw,
                "last_message_id": s(c.last_message_id),
                "rate_limit_per_user": c.rate_limit_per_user,
            }
        )
    if c.type == 2:
        data.update({"bitrate": 64000, "user_limit": 0, "rtc_region": None})
    return data


def partial_guild(g: Guild) -> dict[str, Any]:
    """GET /guilds/{id} shape: no channels/members, which only GUILD_CREATE carries."""
    return {
        "id": s(g.id),
        "name": g.name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "owner_id": s(g.owner_id),
        "afk_channel_id": None,
        "afk_timeout": 300,
        "widget_enabled": False,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": [role(r) for r in g.roles.values()],
        "emojis": [],
        "stickers": [],
        "features": list(g.features),
        "mfa_level": 0,
        "application_id": None,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "public_updates_channel_id": None,
        "safety_alerts_channel_id": None,
        "vanity_url_code": None,
        "description": None,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": g.preferred_locale,
        "max_members": 500000,
        "max_video_channel_users": 25,
        "max_stage_video_channel_users": 50,
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
        "incidents_data": None,
    }


def guild_create(g: Guild) -> dict[str, Any]:
    """GUILD_CREATE: the full guild with channels and members (the bot's own member included)."""
    data = partial_guild(g)
    data.update(
        {
            "joined_at": g.joined_at,
            "large": False,
            "unavailable": False,
            "member_count": len(g.members),
            "voice_states": [],
            "members": [member(m) for m in g.members.values()],
            "channels": [channel(c) for c in g.channels.values() if c.type != 11],
            "threads": [channel(c) for c in g.channels.values() if c.type == 11],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "lazy": True,
        }
    )
    return data


def attachment(state: FakeState, a: Attachment) -> dict[str, Any]:
    """An attachment with working CDN ``url``/``proxy_url`` on the fake server."""
    data: dict[str, Any] = {
        "id": s(a.id),
        "filename": a.filename,
        "size": a.size,
        "url": state.attachment_url(a),
        "proxy_url": state.attachment_url(a, proxy=True),
        "flags": 0,
    }
    if a.content_type:
        data["content_type"] = a.content_type
    if a.description is not None:
        data["description"] = a.description
    if a.title is not None:
        data["title"] = a.title
    if a.width is not None:
        data["width"] = a.width
        data["height"] = a.height
        data["placeholder"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        data["placeholder_version"] = 1
    if a.ephemeral:
        data["ephemeral"] = True
    return data


def message(
    state: FakeState,
    m: Message,
    *,
    include_referenced: bool = True,
    hide_content: bool = False,
    hide_referenced: bool | None = None,
) -> dict[str, Any]:
    """A message object; ``hide_content`` mimics a bot without the MESSAGE_CONTENT intent, and
    ``hide_referenced`` (default: the same) does for the message it replies to, which has its own
    exemptions."""
    data: dict[str, Any] = {
        "id": s(m.id),
        "channel_id": s(m.channel_id),
        "type": m.type,
        "author": user(m.author),
        "content": "" if hide_content else m.content,
        "timestamp": m.timestamp,
        "edited_timestamp": m.edited_timestamp,
        "tts": m.tts,
        "mention_everyone": m.mention_everyone,
        "mentions": [user(u) for u in m.mentions],
        "mention_roles": [s(r) for r in m.mention_roles],
        "attachments": [] if hide_content else [attachment(state, a) for a in m.attachments],
        "embeds": [] if hide_content else list(m.embeds),
        "components": [] if hide_content else list(m.components),
        "pinned": m.pinned,
        "flags": m.flags,
        "reactions": [
            {
                "emoji": emoji_from_key(key),
                "count": len(users),
                "count_details": {"burst": 0, "normal": len(users)},
                "me": state.bot_user.id in users,
                "me_burst": False,
                "burst_colors": [],
            }
            for key, users in m.reactions.items()
            if users
        ],
    }
    if not data["reactions"]:
        del data["reactions"]
    if m.nonce is not None:
        data["nonce"] = m.nonce
    if m.webhook_id is not None:
        data["webhook_id"] = s(m.webhook_id)
    if m.application_id is not None:
        data["application_id"] = s(m.application_id)
    if m.poll is not None and not hide_content:
        data["poll"] = m.poll
    if m.interaction_id is not None:
        inter = state.interactions.get(m.interaction_id)
        if inter is not None:
            data["interaction_metadata"] = interaction_metadata(inter)
            if inter.type == 2:
                data["interaction"] = {
                    "id": s(inter.id),
                    "type": inter.type,
                    "name": inter.data.get("name", ""),
                    "user": user(inter.user),
                }
    if m.reference is not None:
        data["message_reference"] = dict(m.reference)
        if include_referenced and m.reference.get("type", 0) == 0 and m.reference.get("message_id"):
            ref = state.messages.get(int(m.reference["message_id"]))
            if ref is None or ref.deleted:
                data["referenced_message"] = None
            else:
                hidden = hide_content if hide_referenced is None else hide_referenced
                data["referenced_message"] = message(state, ref, include_referenced=False, hide_content=hidden)
    return data


def interaction_metadata(inter: Any) -> dict[str, Any]:
    """``interaction_metadata`` on messages created in response to an interaction."""
    data: dict[str, Any] = {
        "id": s(inter.id),
        "type": inter.type,
        "user": user(inter.user),
        "authorizing_integration_owners": ({"0": s(inter.guild_id)} if inter.guild_id else {"1": s(inter.user.id)}),
    }
    if inter.original_message_id is not None:
        data["original_response_message_id"] = s(inter.original_message_id)
    if inter.message_id is not None and inter.type == 3:
        data["interacted_message_id"] = s(inter.message_id)
    if inter.type == 2 and inter.data.get("type") == 3 and inter.data.get("target_id"):
        data["target_message_id"] = inter.data["target_id"]
    return data


def emoji_from_key(key: str) -> dict[str, Any]:
    """Partial emoji payload for a reaction key (``"👍"`` or ``"name:id"``)."""
    if ":" in key:
        name, _, eid = key.partition(":")
        return {"id": eid, "name": name, "animated": False}
    return {"id": None, "name": key}


def app_command(cmd: AppCommand) -> dict[str, Any]:
    """A registered command as Discord returns it: the submitted body plus id/version/defaults."""
    data = dict(cmd.data)
    data.update(
        {
            "id": s(cmd.id),
            "application_id": s(cmd.application_id),
            "version": s(cmd.version),
            "type": cmd.type,
            "name": cmd.name,
            "description": data.get("description", "") if cmd.type == 1 else "",
        }
    )
    data.setdefault("default_member_permissions", None)
    data.setdefault("dm_permission", True)
    data.setdefault("nsfw", False)
    data.setdefault("options", [])
    data.setdefault("name_localizations", None)
    data.setdefault("description_localizations", None)
    data.setdefault("contexts", None)
    data.setdefault("integration_types", [0])
    if cmd.guild_id is not None:
        data["guild_id"] = s(cmd.guild_id)
    return data


# The "_LIMITED" application flags an unverified app has for each privileged intent enabled in the portal
# (https://discord.com/developers/docs/resources/application#application-object-application-flags).
_INTENT_FLAGS = {Intent.GUILD_PRESENCES: 1 << 13, Intent.GUILD_MEMBERS: 1 << 15, Intent.MESSAGE_CONTENT: 1 << 19}


def application_flags(privileged_intents: int) -> int:
    """The application's flags for the privileged intents it has enabled."""
    return sum(flag for intent, flag in _INTENT_FLAGS.items() if privileged_intents & intent)


def application(state: FakeState, owner: User, privileged_intents: int = Intent.PRIVILEGED) -> dict[str, Any]:
    """GET /oauth2/applications/@me: ``interactions_endpoint_url`` stays None so the gateway path is used."""
    return {
        "id": s(state.application_id),
        "name": state.application_name,
        "icon": None,
        "description": "",
        "summary": "",
        "type": None,
        "hook": True,
        "bot_public": True,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "flags": application_flags(privileged_intents),
        "owner": user(owner),
        "team": None,
        "bot": user(state.bot_user),
        "redirect_uris": [],
        "interactions_endpoint_url": None,
        "role_connections_verification_url": None,
        "tags": [],
        "install_params": None,
        "integration_types_config": {"0": {}},
        "approximate_guild_count": len(state.guilds),
        "approximate_user_install_count": 0,
    }
