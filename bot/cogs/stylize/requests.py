"""Turning a request from any entry point into a queued job.

Slash command, context-menu form, result buttons and the reply flow differ only in where
the images come from and how the user is answered; the order is the same for all: cheap
refusals first (channel, permissions, limits, attachment metadata), then the one admission
check (restart, cooldown, the member's limits and the queue's room), answered at once and
privately; then acknowledge, download and check the images (`uploads`), and queue. Nothing is
downloaded for a request that admission refuses.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import discord

from bot import messages
from bot.checks import (
    REPLY_PERMISSIONS,
    check_attachment,
    check_bot_permissions,
    check_channel,
    check_job_belongs_here,
    check_limits,
    check_not_blocked,
    image_attachments,
)
from bot.cogs.stylize.progress import ChannelTarget, InteractionTarget
from bot.db import JobRecord
from bot.errors import BadInput, InputsExpired, JobNotFound
from bot.guild_settings import GuildSettings
from bot.style_sources import StyleSource, describe, parse_blend
from stylecore.executors.base import new_job_id
from stylecore.option_specs import OPTION_SPECS
from stylecore.options import StyleOptions, report_every_for

if TYPE_CHECKING:
    from bot.cogs.stylize.service import JobService

DEFAULT_FILESIZE_LIMIT = 10 * 1024 * 1024
STRENGTH_STEP = 1.5  # More style / Less style multiply or divide the strength by this
MAX_STYLES = 3  # styles one job may blend: each adds a pass of the network per step to its targets


def server_defaults(settings: GuildSettings) -> dict[str, Any]:
    """The options a server sets defaults for, by option name."""
    return {"size": settings.default_size, "steps": settings.default_steps, "strength": settings.default_strength}


def build_options(settings: GuildSettings, choices: Mapping[str, Any]) -> StyleOptions:
    """The member's choices on top of the server's defaults; refused above the server's limits."""
    picked = {name: value for name, value in choices.items() if value is not None}
    for name, value in server_defaults(settings).items():
        picked.setdefault(name, value)
    check_limits(settings, size=picked["size"], steps=picked["steps"])
    seed = OPTION_SPECS["seed"]
    picked.setdefault("seed", random.randint(int(seed.low or 0), int(seed.high or 2**31 - 1)))
    steps = picked["steps"]
    return StyleOptions(
        **picked,
        preview_every=max(1, steps // 20) if settings.preview_interval > 0 else 0,
        report_every=report_every_for(steps),
    ).validate()


def new_record(
    *,
    guild_id: int | None,
    channel_id: int,
    owner_id: int,
    source: str,
    options: StyleOptions,
    filesize_limit: int,
    parent_id: str | None = None,
    inputs_info: Mapping[str, Any] | None = None,
) -> JobRecord:
    """The row of a job about to be queued."""
    return JobRecord(
        job_id=new_job_id(),
        guild_id=guild_id,
        channel_id=channel_id,
        owner_id=owner_id,
        state="queued",
        source=source,
        options=options.to_dict(),
        filesize_limit=filesize_limit,
        created_at=time.time(),
        parent_id=parent_id,
        inputs_info=dict(inputs_info) if inputs_info is not None else None,
    )


# -- interactions (slash, form, buttons) ----------------------------------------------------


def check_style_count(styles: Sequence[StyleSource]) -> None:
    """One style at least (an image or a named style), and no more than the engine blends here."""
    if not styles:
        raise BadInput(messages.NO_STYLE_GIVEN)
    if len(styles) > MAX_STYLES:
        raise BadInput(messages.too_many_styles(len(styles), MAX_STYLES))


def blended(options: StyleOptions, weights: Sequence[float]) -> StyleOptions:
    """The options with the blend's weights, for a job of several styles (one style needs none)."""
    return options.replace(style_blend=tuple(weights)) if len(weights) > 1 else options


async def from_interaction(
    service: JobService,
    interaction: discord.Interaction[Any],
    content: discord.Attachment | None,
    styles: Sequence[StyleSource],
    *,
    source: str,
    choices: Mapping[str, Any],
    blend: str | None = None,
    inputs: tuple[bytes, ...] | None = None,
    inputs_info: Mapping[str, Any] | None = None,
    parent_id: str | None = None,
) -> JobRecord:
    """A job from attachments and named styles (or the stored `inputs` and `inputs_info` of an
    earlier one); progress edits the response."""
    check_not_blocked(service.blocks, interaction.user.id, interaction.guild_id)
    settings = await service.settings_for(interaction.guild_id)
    check_channel(settings, interaction.channel)
    if interaction.guild_id is not None:
        check_bot_permissions(interaction.app_permissions)
    options = build_options(settings, choices)
    if inputs is None:
        check_style_count(styles)
        options = blended(options, parse_blend(blend, len(styles)))
        check_attachment(content, "content image", service.config.max_input_bytes)
        uploads = [(s.attachment, _what(i, len(styles))) for i, s in enumerate(styles) if s.attachment is not None]
        for attachment, what in uploads:
            check_attachment(attachment, what, service.config.max_input_bytes)
    async with service.admission(settings, interaction.guild_id, interaction.user.id) as admission:
        await interaction.response.defer(thinking=True)
        interaction.extras["public_defer"] = True
        if inputs is None:
            assert content is not None
            fetched = iter(await service.fetch_inputs([(content, "content image"), *uploads], interaction.user.id))
            content_data = next(fetched)
            inputs = (content_data, *(s.data if s.data is not None else next(fetched) for s in styles))
            inputs_info = describe(content.filename, styles, options.style_blend or (1.0,))
        record = new_record(
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id or 0,
            owner_id=interaction.user.id,
            source=source,
            options=options,
            filesize_limit=interaction.filesize_limit or DEFAULT_FILESIZE_LIMIT,
            parent_id=parent_id,
            inputs_info=inputs_info,
        )
        target = InteractionTarget(interaction, lifetime=service.config.token_lifetime, mention_id=interaction.user.id)
        await service.submit(record, inputs, target, admission)
    interaction.extras["job_id"] = record.job_id
    return record


def _what(index: int, count: int) -> str:
    """How a refusal names the `index`-th style image of a request of `count` styles."""
    return "style image" if count == 1 else f"style image {index + 1}"


def again_choices(parent: Mapping[str, Any], action: str) -> dict[str, Any]:
    """More style / Less style / Re-run: the parent's declared options, strength or seed changed."""
    choices = {name: parent[name] for name in OPTION_SPECS if name in parent}
    spec = OPTION_SPECS["strength"]
    strength = float(choices.get("strength", 1.0))
    if action == "more":
        choices["strength"] = round(min(float(spec.high or strength), strength * STRENGTH_STEP), 4)
    elif action == "less":
        choices["strength"] = round(max(float(spec.low or 0.0), strength / STRENGTH_STEP), 4)
    else:
        choices["seed"] = None  # a fresh seed: same settings, a different take
    if parent.get("style_blend"):
        choices["style_blend"] = tuple(parent["style_blend"])
    return choices


async def run_again(service: JobService, interaction: discord.Interaction[Any], job_id: str, action: str) -> JobRecord:
    """A result button: a new job from a finished one's stored inputs."""
    interaction.extras["job_id"] = job_id
    check_not_blocked(service.blocks, interaction.user.id, interaction.guild_id)
    parent = await service.db.get_job(job_id)
    if parent is None:
        raise JobNotFound(messages.forgotten_job(job_id))
    if parent.state == "removed":
        raise JobNotFound(messages.job_removed(job_id))
    check_job_belongs_here(parent.guild_id, parent.owner_id, interaction.guild_id, interaction.user.id)
    inputs = await service.db.get_inputs(job_id)
    if inputs is None:
        if parent.deleted_at is not None:
            raise InputsExpired(messages.INPUTS_DELETED)
        raise InputsExpired(messages.inputs_expired(service.config.inputs_ttl))
    return await from_interaction(
        service,
        interaction,
        None,
        (),
        source=f"button:{action}",
        choices=again_choices(parent.options, action),
        inputs=inputs,
        inputs_info=parent.inputs_info,
        parent_id=job_id,
    )


# -- messages (the reply flow) --------------------------------------------------------------


def readable(message: discord.Message, me_id: int, message_content: bool) -> bool:
    """Whether the bot is shown `message`'s attachments: always with the Message Content intent,
    without it only in DMs, in its own messages and in messages that mention it (Discord's
    developer docs, "Message Content Intent"); others arrive with no attachments at all."""
    if message_content or message.guild is None or message.author.id == me_id:
        return True
    return any(u.id == me_id for u in message.mentions)


def pick_message_images(
    message: discord.Message, referenced: discord.Message | None, *, referenced_readable: bool = True
) -> tuple[discord.Attachment, discord.Attachment]:
    """Reply flow: (replied-to image, attached style) or the message's own first two images.
    `referenced_readable` False: the replied-to message's attachments were withheld from the bot."""
    own = image_attachments(message)
    if referenced is not None:
        theirs = image_attachments(referenced)
        if theirs and own:
            return theirs[0], own[0]
        if not theirs and len(own) < 2:
            raise BadInput(messages.REPLIED_TO_HAS_NO_IMAGE if referenced_readable else messages.REPLIED_TO_UNREADABLE)
    if len(own) >= 2:
        return own[0], own[1]
    raise BadInput(messages.NEED_STYLE_IMAGE)


async def from_message(
    service: JobService, message: discord.Message, content: discord.Attachment, style: discord.Attachment
) -> JobRecord:
    """Content and style from messages; progress goes to a reply edited with the bot token."""
    guild_id = message.guild.id if message.guild else None
    check_not_blocked(service.blocks, message.author.id, guild_id)
    settings = await service.settings_for(guild_id)
    check_channel(settings, message.channel)
    if message.guild is not None:
        perms = message.channel.permissions_for(message.guild.me)  # type: ignore[union-attr,arg-type]
        check_bot_permissions(perms, REPLY_PERMISSIONS)
    options = build_options(settings, {})
    check_attachment(content, "content image", service.config.max_input_bytes)
    check_attachment(style, "style image", service.config.max_input_bytes)
    async with service.admission(settings, guild_id, message.author.id) as admission:
        inputs = tuple(
            await service.fetch_inputs([(content, "content image"), (style, "style image")], message.author.id)
        )
        record = new_record(
            guild_id=guild_id,
            channel_id=message.channel.id,
            owner_id=message.author.id,
            source="reply",
            options=options,
            filesize_limit=message.guild.filesize_limit if message.guild else DEFAULT_FILESIZE_LIMIT,
            inputs_info=describe(content.filename, [StyleSource.upload(style)], (1.0,)),
        )
        target = ChannelTarget(service.client, message.channel.id, None, reply_to=message.id)
        return await service.submit(record, inputs, target, admission)
