"""The three ways to start a job: /stylize, replying with a mention, and the context menu."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.checks import check_bot_permissions, check_channel, image_attachments
from bot.errors import BadInput, describe
from bot.intake import pick_message_images
from bot.views import StyleModal

if TYPE_CHECKING:
    from bot.bot import StyleBot

log = logging.getLogger(__name__)

USAGE = (
    "To stylize, reply to a message that has an image, mention me and attach the style image — "
    "or mention me with two images (content first, then style). You can also use /stylize."
)


class Stylize(commands.Cog):
    def __init__(self, bot: StyleBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(name="Stylize this image", callback=self.stylize_menu)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    @app_commands.command(name="stylize", description="Paint one image in the style of another")
    @app_commands.describe(
        content="The picture to repaint",
        style="The picture whose style to use",
        size="Output size in pixels (long side)",
        steps="Optimisation steps (more = slower, finer)",
        strength="How strongly to apply the style (1.0 = normal)",
        preserve_colors="Keep the content image's colours",
        seed="Random seed, for repeatable results",
    )
    async def stylize(
        self,
        interaction: discord.Interaction[StyleBot],
        content: discord.Attachment,
        style: discord.Attachment,
        size: app_commands.Range[int, 16, 4096] | None = None,
        steps: app_commands.Range[int, 1, 100000] | None = None,
        strength: app_commands.Range[float, 0.0, 10.0] | None = None,
        preserve_colors: Literal["none", "luminance", "histogram"] | None = None,
        seed: app_commands.Range[int, 0, 2147483647] | None = None,
    ) -> None:
        await self.bot.intake.from_interaction(
            interaction,
            content,
            style,
            source="slash",
            size=size,
            steps=steps,
            strength=strength,
            preserve_colors=preserve_colors,
            seed=seed,
        )

    async def stylize_menu(self, interaction: discord.Interaction[StyleBot], message: discord.Message) -> None:
        images = image_attachments(message)
        if not images:
            raise BadInput("That message has no image attachment to stylize.")
        settings = await self.bot.intake.settings_for(interaction.guild_id)
        check_channel(settings, interaction.channel)
        if interaction.guild_id is not None:
            check_bot_permissions(interaction.app_permissions)
        await self.bot.jobs.check_quota(settings, interaction.guild_id, interaction.user.id)
        await interaction.response.send_modal(StyleModal(images[0], settings.default_strength))

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        if message.author.bot or me is None or not any(u.id == me.id for u in message.mentions):
            return
        referenced = None
        if message.reference is not None and message.reference.message_id is not None:
            referenced = message.reference.resolved if isinstance(message.reference.resolved, discord.Message) else None
            if referenced is None:
                try:
                    referenced = await message.channel.fetch_message(message.reference.message_id)
                except discord.HTTPException:
                    referenced = None
        try:
            if referenced is None and not image_attachments(message):
                raise BadInput(USAGE)
            content, style = pick_message_images(message, referenced)
            await self.bot.intake.from_message(message, content, style)
        except Exception as exc:
            text, expected = describe(exc)
            if expected:
                log.info("refused reply-flow job from %s: %s", message.author.id, text)
            else:
                log.error("reply flow failed for message %s", message.id, exc_info=exc)
            try:
                await message.reply(text, mention_author=False, allowed_mentions=discord.AllowedMentions.none())
            except discord.HTTPException:
                log.warning("could not answer message %s in channel %s", message.id, message.channel.id)


async def setup(bot: StyleBot) -> None:
    await bot.add_cog(Stylize(bot))
