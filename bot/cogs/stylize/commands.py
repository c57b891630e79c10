"""The stylize feature's commands: three ways to start a job, and /queue and /cancel.

/stylize takes two attachments and the declared options it offers (each parameter typed,
bounded and described from `stylecore.option_specs`); the "Stylize this image" message
command opens a form for the style image; mentioning the bot in a reply (or with two images)
starts a job from messages. /queue and /cancel show and stop jobs. The result and cancel
buttons are registered here too, so they belong to the feature's lifetime.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import messages, style_sources
from bot.checks import check_bot_permissions, check_channel, check_not_blocked, image_attachments, is_admin
from bot.cogs.stylize import requests
from bot.cogs.stylize.parameters import describe_declared, job_options
from bot.cogs.stylize.service import JobService
from bot.cogs.stylize.uploads import DownloadSlots, Uploads
from bot.cogs.stylize.views import AgainButton, CancelButton, DeleteButton, QueuePager, StyleModal
from bot.contexts import in_servers_and_bot_dms, server_install, servers_and_bot_dms
from bot.errors import BadInput, Blocked, JobNotFound, count_refusal, describe
from bot.guide import guide
from bot.style_sources import StyleSource
from stylecore.imageio import ImageLimits

if TYPE_CHECKING:
    from bot.bot import StyleBot

log = logging.getLogger(__name__)


class Stylize(commands.Cog):
    def __init__(self, bot: StyleBot) -> None:
        self.bot = bot
        self.menu = app_commands.ContextMenu(
            name="Stylize this image",
            callback=self.stylize_menu,
            allowed_contexts=in_servers_and_bot_dms(),
            allowed_installs=server_install(),
        )
        assert bot.executor is not None and bot.decoder is not None, "both start before the extensions load"
        config = bot.config
        uploads = Uploads(
            bot.decoder,
            ImageLimits(max_bytes=config.max_input_bytes, max_pixels=config.max_input_pixels),
            DownloadSlots(config.max_downloads, config.max_downloads_per_member),
        )
        self.service = JobService(
            bot,
            bot.db,
            bot.executor,
            config,
            bot.base_settings,
            bot.metrics,
            uploads=uploads,
            ceilings=bot.ceilings,
            blocks=bot.blocks,
        )

    async def cog_load(self) -> None:
        """Serve the buttons of earlier messages, then re-queue what a previous process left."""
        self.bot.jobs = self.service
        self.bot.tree.add_command(self.menu)
        self.bot.add_dynamic_items(CancelButton, AgainButton, DeleteButton)
        self.bot.recovered = await self.service.recover()
        if self.bot.recovered:
            log.info("re-queued %d job(s) from before the restart", self.bot.recovered)

    async def cog_unload(self) -> None:
        """Stop taking jobs and pause the unfinished ones for the next start (the SIGTERM path)."""
        try:
            await self.service.drain(self.bot.config.shutdown_grace)
        except Exception:
            log.exception("draining jobs failed")
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)
        self.bot.remove_dynamic_items(CancelButton, AgainButton, DeleteButton)

    # -- starting a job ---------------------------------------------------------------------

    @app_commands.command(name="stylize", description="Paint one image in the style of another")
    @servers_and_bot_dms
    @app_commands.describe(
        content="The picture to repaint",
        style="The picture whose style to use (or pick a painting)",
        painting="A painting from the gallery or one of this server's styles (see /styles)",
        style2="A second style image to blend in",
        painting2="A second painting or server style to blend in",
        style3="A third style image to blend in",
        painting3="A third painting or server style to blend in",
        blend="How much of each style, in the order above, e.g. 2,1 (equal when empty)",
    )
    @describe_declared
    @job_options  # size, steps, strength, ...: every option declared per_job in stylecore.option_specs
    async def stylize(
        self,
        interaction: discord.Interaction[StyleBot],
        content: discord.Attachment,
        style: discord.Attachment | None = None,
        painting: str | None = None,
        style2: discord.Attachment | None = None,
        painting2: str | None = None,
        style3: discord.Attachment | None = None,
        painting3: str | None = None,
        blend: str | None = None,
        **choices: Any,
    ) -> None:
        styles = []
        for image, named in ((style, painting), (style2, painting2), (style3, painting3)):
            if image is not None:
                styles.append(StyleSource.upload(image))
            if named:
                styles.append(await style_sources.resolve(self.bot.styles, interaction.guild_id, named))
        await requests.from_interaction(
            self.service, interaction, content, styles, source="slash", choices=choices, blend=blend
        )

    @stylize.autocomplete("painting")
    @stylize.autocomplete("painting2")
    @stylize.autocomplete("painting3")
    async def painting_autocomplete(
        self, interaction: discord.Interaction[StyleBot], current: str
    ) -> list[app_commands.Choice[str]]:
        return await style_sources.suggest(self.bot.styles, interaction.guild_id, current)

    async def stylize_menu(self, interaction: discord.Interaction[StyleBot], message: discord.Message) -> None:
        check_not_blocked(self.service.blocks, interaction.user.id, interaction.guild_id)
        images = image_attachments(message)
        if not images:
            raise BadInput(messages.NO_IMAGE_IN_MESSAGE)
        settings = await self.service.settings_for(interaction.guild_id)
        check_channel(settings, interaction.channel)
        if interaction.guild_id is not None:
            check_bot_permissions(interaction.app_permissions)
        own = [] if interaction.guild_id is None else await self.bot.styles.names(interaction.guild_id)
        await interaction.response.send_modal(StyleModal(images[0], requests.server_defaults(settings), own))

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        if message.author.bot or me is None or not any(u.id == me.id for u in message.mentions):
            return
        try:
            check_not_blocked(self.service.blocks, message.author.id, message.guild.id if message.guild else None)
        except Blocked as exc:  # told once, plainly; nothing of theirs is read or downloaded
            log.info("refused a mention from blocked member %s: %s", message.author.id, exc)
            with contextlib.suppress(discord.HTTPException):
                await message.reply(str(exc), mention_author=False, allowed_mentions=discord.AllowedMentions.none())
            return
        referenced = None
        if message.reference is not None and message.reference.message_id is not None:
            referenced = message.reference.resolved if isinstance(message.reference.resolved, discord.Message) else None
            if referenced is None:
                try:
                    referenced = await message.channel.fetch_message(message.reference.message_id)
                except discord.HTTPException:
                    referenced = None
        if referenced is None and not image_attachments(message):  # a question, not a job: how to use the bot
            text = await guide(self.bot, message.guild.id if message.guild else None)
            with contextlib.suppress(discord.HTTPException):
                await message.reply(text, mention_author=False, allowed_mentions=discord.AllowedMentions.none())
            return
        message_content = self.bot.intents.message_content
        try:
            content, style = requests.pick_message_images(
                message,
                referenced,
                referenced_readable=referenced is None or requests.readable(referenced, me.id, message_content),
            )
            await requests.from_message(self.service, message, content, style)
        except Exception as exc:
            text, expected = describe(exc)
            if expected:
                log.info("refused reply-flow job from %s: %s", message.author.id, text)
                count_refusal(self.bot, exc)
            else:
                log.error("reply flow failed for message %s", message.id, exc_info=exc)
            try:
                await message.reply(text, mention_author=False, allowed_mentions=discord.AllowedMentions.none())
            except discord.HTTPException:
                log.warning("could not answer message %s in channel %s", message.id, message.channel.id)

    # -- your jobs --------------------------------------------------------------------------

    @app_commands.command(name="queue", description="Show your jobs and where they are in the queue")
    @servers_and_bot_dms
    async def queue(self, interaction: discord.Interaction[StyleBot]) -> None:
        admin = interaction.guild is not None and is_admin(interaction.permissions)
        guild_id, user_id = interaction.guild_id, interaction.user.id

        def pages() -> list[str]:
            entries = self.service.queue(guild_id)
            shown = entries if admin else [(e, ev) for e, ev in entries if e.meta.get("owner_id") == user_id]
            lines = [
                messages.queue_entry(
                    e.job_id,
                    e.state,
                    position=e.position,
                    eta=e.eta,
                    step=ev.step if ev else None,
                    total=ev.total if ev else None,
                    owner_id=e.meta.get("owner_id", e.user_id) if admin else None,
                )
                for e, ev in shown
            ]
            return messages.queue_pages(lines, admin=admin, others=len(entries) - len(shown))

        first = pages()
        quiet = discord.AllowedMentions.none()
        if len(first) == 1:
            await interaction.response.send_message(first[0], ephemeral=True, allowed_mentions=quiet)
            return
        pager = QueuePager(user_id, pages, count=len(first))
        pager.interaction = interaction
        await interaction.response.send_message(first[0], view=pager, ephemeral=True, allowed_mentions=quiet)

    @app_commands.command(name="cancel", description="Cancel one of your jobs (the latest if none is given)")
    @servers_and_bot_dms
    @app_commands.describe(job="The job id shown on its message")
    async def cancel(self, interaction: discord.Interaction[StyleBot], job: str | None = None) -> None:
        if job is None:
            mine = await self.service.active_jobs(interaction.guild_id, interaction.user.id)
            if not mine:
                raise JobNotFound(messages.NO_ACTIVE_JOBS)
            job = mine[-1].job_id
        job = job.strip().strip("`")
        interaction.extras["job_id"] = job
        await self.service.cancel_by(job, interaction.user)
        await interaction.response.send_message(messages.cancelling(job), ephemeral=True)

    @cancel.autocomplete("job")
    async def cancel_autocomplete(
        self, interaction: discord.Interaction[StyleBot], current: str
    ) -> list[app_commands.Choice[str]]:
        owner = None if is_admin(interaction.permissions) else interaction.user.id
        records = await self.service.active_jobs(interaction.guild_id, owner)
        return [
            app_commands.Choice(name=messages.job_choice(r.job_id, r.state), value=r.job_id)
            for r in reversed(records)
            if r.job_id.startswith(current.strip())
        ][:25]
