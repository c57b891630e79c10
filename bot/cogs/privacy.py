"""Your data: a member deletes what the bot keeps about them, and a server's data goes when the bot leaves it.

`/stylebot forget` (anyone, anywhere) stops the member's queued and running jobs, then deletes their
job records and stored images in every server and in DMs, in one transaction, and says what went.
When the bot is removed from a server (Discord sends GUILD_DELETE without `unavailable`, which
discord.py turns into `on_guild_remove`; an outage sets `unavailable` and is not a removal), that
server's jobs are stopped without a word (the bot can no longer post there) and its settings,
styles, jobs and images are deleted.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import messages
from bot.db.forget import forget_member, forget_server

if TYPE_CHECKING:
    from bot.bot import StyleBot

log = logging.getLogger(__name__)


class Privacy(commands.Cog):
    def __init__(self, bot: StyleBot) -> None:
        self.bot = bot
        self.forget_command = app_commands.Command(
            name="forget",
            description="Delete everything StyleBot keeps about you: your jobs and images, in every server",
            callback=self.forget,
        )

    async def cog_load(self) -> None:
        """Join `/stylebot`, which the admin feature owns (loaded before this one)."""
        group = self.bot.tree.get_command("stylebot")
        assert isinstance(group, app_commands.Group), "the admin feature loads first"
        group.add_command(self.forget_command)

    async def cog_unload(self) -> None:
        group = self.bot.tree.get_command("stylebot")
        if isinstance(group, app_commands.Group):
            group.remove_command(self.forget_command.name)

    async def forget(self, interaction: discord.Interaction[StyleBot]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        member_id = interaction.user.id
        stopped = await self.bot.jobs.stop_jobs(owner_id=member_id)
        gone = await forget_member(self.bot.db, member_id)
        log.info("member %s: forgot %d job(s), stopping %d", member_id, gone.jobs, stopped)
        text = messages.forgotten(
            stopped=stopped, jobs=gone.jobs, inputs=gone.inputs, styles_unnamed=gone.styles_unnamed
        )
        await interaction.followup.send(text, ephemeral=True)

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        try:
            stopped = await self.bot.jobs.stop_jobs(guild_id=guild.id, quiet=True)
            gone = await forget_server(self.bot.db, guild.id)
        except Exception:
            log.exception("guild %s: deleting its data after leaving failed", guild.id)
            return
        log.info(
            "left guild %s: stopped %d job(s); deleted %d job(s), %d with images, settings %d, %d style(s)",
            guild.id,
            stopped,
            gone.jobs,
            gone.inputs,
            gone.settings,
            gone.styles,
        )


async def setup(bot: StyleBot) -> None:
    await bot.add_cog(Privacy(bot))
