"""Every rule that can refuse a request, in one place, so all entry points refuse alike.

Slash commands, the reply flow, the context menu and the result buttons all call these
with plain values; each raises a `StyleBotError` subclass whose text says exactly what
limit was hit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import discord
from discord import app_commands

from bot import messages
from bot.blocklist import Blocklist
from bot.errors import (
    BadInput,
    Blocked,
    BotLacksPermissions,
    ChannelNotAllowed,
    JobElsewhere,
    NotAdmin,
    NotOperator,
    OverLimit,
)
from bot.guild_settings import GuildSettings

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")


def is_image(attachment: discord.Attachment) -> bool:
    """Judged from metadata only, so nothing is downloaded just to find out."""
    if attachment.content_type:
        return attachment.content_type.split(";")[0].strip().lower().startswith("image/")
    return attachment.filename.lower().endswith(IMAGE_EXTENSIONS)


def image_attachments(message: discord.Message) -> list[discord.Attachment]:
    return [a for a in message.attachments if is_image(a)]


def check_attachment(attachment: discord.Attachment | None, what: str, max_bytes: int) -> discord.Attachment:
    """Refuse before downloading: missing, not an image, or over the size limit."""
    if attachment is None:
        raise BadInput(messages.missing_attachment(what))
    if not is_image(attachment):
        raise BadInput(messages.not_an_image(what, attachment.filename))
    if attachment.size > max_bytes:
        raise BadInput(messages.attachment_too_large(what, attachment.size, max_bytes))
    return attachment


def check_limits(settings: GuildSettings, *, size: int, steps: int) -> None:
    if size > settings.max_size:
        raise OverLimit(messages.size_over_limit(size, settings.max_size))
    if steps > settings.max_steps:
        raise OverLimit(messages.steps_over_limit(steps, settings.max_steps))


def check_channel(settings: GuildSettings, channel: Any) -> None:
    parent_id = getattr(channel, "parent_id", None)
    if not settings.channel_allowed(getattr(channel, "id", None), parent_id):
        raise ChannelNotAllowed(messages.channel_not_allowed(settings.allowed_channels))


REQUIRED_PERMISSIONS: tuple[str, ...] = ("attach_files",)
REPLY_PERMISSIONS: tuple[str, ...] = ("send_messages", "attach_files", "read_message_history")


def check_bot_permissions(perms: discord.Permissions, needed: Sequence[str] = REQUIRED_PERMISSIONS) -> None:
    """The result is a file upload, so a channel where the bot cannot attach files is refused up front."""
    missing = [p for p in needed if not getattr(perms, p)]
    if missing:
        raise BotLacksPermissions(messages.bot_lacks(missing))


def is_admin(perms: discord.Permissions) -> bool:
    return perms.manage_guild or perms.administrator


def can_manage_job(user_id: int, perms: discord.Permissions | None, owner_id: int) -> bool:
    """The job's owner, or a moderator who may delete other people's messages anyway."""
    return user_id == owner_id or (perms is not None and (perms.manage_messages or perms.administrator))


async def permissions_where_job_lives(
    client: discord.Client, user: discord.abc.User, guild_id: int | None, channel_id: int
) -> discord.Permissions | None:
    """`user`'s permissions in a job's own channel, wherever they asked from (None in DMs, or when the
    user is not a member there): a moderator's rights in one channel say nothing about another.

    Discord computes a member's channel permissions from their roles and the channel's overwrites
    (https://discord.com/developers/docs/topics/permissions); discord.py does the same from its
    cache, so only a member or channel missing from the cache costs a request.
    """
    if guild_id is None:
        return None
    guild = client.get_guild(guild_id)
    if guild is None:
        return None
    member = user if isinstance(user, discord.Member) and user.guild.id == guild_id else guild.get_member(user.id)
    channel: Any = guild.get_channel_or_thread(channel_id)
    try:
        if member is None:
            member = await guild.fetch_member(user.id)
        if channel is None:
            channel = await guild.fetch_channel(channel_id)
    except (discord.NotFound, discord.Forbidden):
        return None
    return channel.permissions_for(member)


def check_job_belongs_here(job_guild_id: int | None, job_owner_id: int, guild_id: int | None, user_id: int) -> None:
    """A result button works only where its job ran: in the same server, and a DM job only for its
    owner, so a stored job's images never start work for another server or another member's DMs."""
    if job_guild_id != guild_id or (job_guild_id is None and job_owner_id != user_id):
        raise JobElsewhere(messages.JOB_ELSEWHERE)


def admin_only() -> Any:
    """An app-command check that does not trust `default_permissions` alone: server admins can
    change command permissions, and the runtime check keeps the settings safe regardless."""

    def predicate(interaction: discord.Interaction[Any]) -> bool:
        if interaction.guild is None:
            raise app_commands.NoPrivateMessage()
        if not is_admin(interaction.permissions):
            raise NotAdmin(messages.NOT_ADMIN)
        return True

    return app_commands.check(predicate)


def check_not_blocked(blocks: Blocklist, user_id: int, guild_id: int | None) -> None:
    """The operator's blocks come before everything else, so nothing of theirs is ever downloaded."""
    if blocks.blocked("user", user_id):
        raise Blocked(messages.BLOCKED_MEMBER)
    if blocks.blocked("guild", guild_id):
        raise Blocked(messages.BLOCKED_SERVER)


def operator_only() -> Any:
    """The bot's operator: the application's owner, or its team's members (`commands.Bot.is_owner`
    reads them from the application). Server admins see the command but cannot run it."""

    async def predicate(interaction: discord.Interaction[Any]) -> bool:
        if not await interaction.client.is_owner(interaction.user):
            raise NotOperator(messages.NOT_OPERATOR)
        return True

    return app_commands.check(predicate)
