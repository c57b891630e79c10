"""Turning a request from any entry point into a queued job.

Slash command, context-menu modal, result buttons and the reply flow differ only in where
the images come from and how the user is answered; the order of checks is the same for
all: cheap refusals first (channel, permissions, limits, quota, attachment metadata) so
they can be answered immediately and privately, then acknowledge, then download and
decode, then queue.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING, Any

import discord

from bot.checks import (
    REPLY_PERMISSIONS,
    check_attachment,
    check_bot_permissions,
    check_channel,
    check_limits,
    image_attachments,
)
from bot.db import JobRecord
from bot.errors import BadInput, InputsExpired, JobNotFound
from bot.guild_settings import GuildSettings
from bot.jobs import JobRequest, interaction_target
from bot.progress import ChannelTarget
from stylecore.imageio import load_image
from stylecore.options import StyleOptions, report_every_for

if TYPE_CHECKING:
    from bot.bot import StyleBot

log = logging.getLogger(__name__)

DEFAULT_FILESIZE_LIMIT = 10 * 1024 * 1024
STRENGTH_STEP = 1.5
MAX_STRENGTH = 10.0


class Intake:
    def __init__(self, bot: StyleBot) -> None:
        self.bot = bot

    @property
    def config(self) -> Any:
        return self.bot.config

    async def settings_for(self, guild_id: int | None) -> GuildSettings:
        return await self.bot.db.guild_settings(guild_id, self.bot.base_settings)

    def build_options(
        self,
        settings: GuildSettings,
        *,
        size: int | None,
        steps: int | None,
        strength: float | None,
        preserve_colors: str | None,
        seed: int | None,
    ) -> StyleOptions:
        """Fill gaps from the server's defaults and refuse anything over its limits."""
        size = size or settings.default_size
        steps = steps or settings.default_steps
        check_limits(settings, size=size, steps=steps)
        preview_every = max(1, steps // 20) if settings.preview_interval > 0 else 0
        return StyleOptions(
            size=size,
            steps=steps,
            strength=settings.default_strength if strength is None else strength,
            preserve_colors=preserve_colors or "none",  # type: ignore[arg-type]
            seed=random.randrange(2**31) if seed is None else seed,
            preview_every=preview_every,
            report_every=report_every_for(steps),
        ).validate()

    async def _read(self, attachment: discord.Attachment) -> bytes:
        """Download an attachment (metadata already checked) and make sure it decodes."""
        data = await attachment.read()
        await asyncio.to_thread(
            load_image, data, max_bytes=self.config.max_input_bytes, max_pixels=self.config.max_input_pixels
        )
        return data

    # -- interactions (slash, modal, buttons) ---------------------------------------

    async def from_interaction(
        self,
        interaction: discord.Interaction[Any],
        content: discord.Attachment | None,
        style: discord.Attachment | None,
        *,
        source: str,
        size: int | None = None,
        steps: int | None = None,
        strength: float | None = None,
        preserve_colors: str | None = None,
        seed: int | None = None,
        inputs: tuple[bytes, bytes] | None = None,
        parent_id: str | None = None,
    ) -> JobRecord:
        jobs = self.bot.jobs
        settings = await self.settings_for(interaction.guild_id)
        check_channel(settings, interaction.channel)
        if interaction.guild_id is not None:
            check_bot_permissions(interaction.app_permissions)
        options = self.build_options(
            settings, size=size, steps=steps, strength=strength, preserve_colors=preserve_colors, seed=seed
        )
        if inputs is None:
            check_attachment(content, "content image", self.config.max_input_bytes)
            check_attachment(style, "style image", self.config.max_input_bytes)
        await jobs.check_quota(settings, interaction.guild_id, interaction.user.id)

        await interaction.response.defer(thinking=True)
        interaction.extras["public_defer"] = True
        if inputs is None:
            assert content is not None and style is not None
            content_bytes, style_bytes = await asyncio.gather(self._read(content), self._read(style))
        else:
            content_bytes, style_bytes = inputs
        req = JobRequest(
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id or 0,
            owner_id=interaction.user.id,
            content=content_bytes,
            style=style_bytes,
            options=options,
            source=source,
            filesize_limit=interaction.filesize_limit or DEFAULT_FILESIZE_LIMIT,
            settings=settings,
            parent_id=parent_id,
        )
        record = await jobs.submit(req, interaction_target(interaction, self.config))
        interaction.extras["job_id"] = record.job_id
        return record

    async def again(self, interaction: discord.Interaction[Any], job_id: str, action: str) -> JobRecord:
        """More style / Less style / Re-run: a new job from a finished one's stored inputs."""
        interaction.extras["job_id"] = job_id
        parent = await self.bot.db.get_job(job_id)
        if parent is None:
            raise JobNotFound(f"I no longer know job `{job_id}`.")
        inputs = await self.bot.db.get_inputs(job_id)
        if inputs is None:
            hours = self.config.inputs_ttl / 3600
            raise InputsExpired(
                f"The images behind this result are no longer kept (they're deleted after "
                f"{hours:g} h). Start a new one with /stylize."
            )
        opts = parent.options
        strength = float(opts.get("strength", 1.0))
        seed = opts.get("seed")
        if action == "more":
            strength = min(MAX_STRENGTH, strength * STRENGTH_STEP)
        elif action == "less":
            strength = strength / STRENGTH_STEP
        else:
            seed = None  # a fresh seed: same settings, a different take
        return await self.from_interaction(
            interaction,
            None,
            None,
            source=f"button:{action}",
            size=opts.get("size"),
            steps=opts.get("steps"),
            strength=round(strength, 4),
            preserve_colors=opts.get("preserve_colors"),
            seed=seed,
            inputs=inputs,
            parent_id=job_id,
        )

    # -- messages (reply flow) ------------------------------------------------------

    async def from_message(
        self, message: discord.Message, content: discord.Attachment, style: discord.Attachment
    ) -> JobRecord:
        """Content and style from messages; progress goes to a reply edited with the bot token."""
        guild_id = message.guild.id if message.guild else None
        settings = await self.settings_for(guild_id)
        check_channel(settings, message.channel)
        if message.guild is not None:
            me = message.guild.me
            perms = message.channel.permissions_for(me)  # type: ignore[union-attr,arg-type]
            check_bot_permissions(perms, REPLY_PERMISSIONS)
        options = self.build_options(settings, size=None, steps=None, strength=None, preserve_colors=None, seed=None)
        check_attachment(content, "content image", self.config.max_input_bytes)
        check_attachment(style, "style image", self.config.max_input_bytes)
        await self.bot.jobs.check_quota(settings, guild_id, message.author.id)
        content_bytes, style_bytes = await asyncio.gather(self._read(content), self._read(style))
        limit = message.guild.filesize_limit if message.guild else DEFAULT_FILESIZE_LIMIT
        req = JobRequest(
            guild_id=guild_id,
            channel_id=message.channel.id,
            owner_id=message.author.id,
            content=content_bytes,
            style=style_bytes,
            options=options,
            source="reply",
            filesize_limit=limit,
            settings=settings,
        )
        target = ChannelTarget(self.bot, message.channel.id, None, reply_to=message.id)
        return await self.bot.jobs.submit(req, target)


def pick_message_images(
    message: discord.Message, referenced: discord.Message | None
) -> tuple[discord.Attachment, discord.Attachment]:
    """Reply flow: (replied-to image, attached style) or the message's own first two images."""
    own = image_attachments(message)
    if referenced is not None:
        theirs = image_attachments(referenced)
        if theirs and own:
            return theirs[0], own[0]
        if not theirs and len(own) < 2:
            raise BadInput(
                "The message you replied to has no image attachment. Reply to a message with an "
                "image and attach the style image, or attach two images (content first)."
            )
    if len(own) >= 2:
        return own[0], own[1]
    raise BadInput(
        "Attach a style image when you reply to a message with an image, or attach two images "
        "(content first, then style) and mention me."
    )
