"""`/stylebot help`: how to start, cancel and delete a job, this server's limits, and what is kept.

For everyone, private (ephemeral), in servers and in DMs with the bot; the text is `bot.guide`'s,
the same a mention without images gets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.guide import guide

if TYPE_CHECKING:
    from bot.bot import StyleBot


class Help(commands.Cog):
    def __init__(self, bot: StyleBot) -> None:
        self.bot = bot
        self.help_command = app_commands.Command(
            name="help", description="How to use StyleBot, this server's limits, and what it keeps", callback=self.help
        )

    async def cog_load(self) -> None:
        """Join `/stylebot`, which the admin feature owns (loaded before this one)."""
        group = self.bot.tree.get_command("stylebot")
        assert isinstance(group, app_commands.Group), "the admin feature loads first"
        group.add_command(self.help_command)

    async def cog_unload(self) -> None:
        group = self.bot.tree.get_command("stylebot")
        if isinstance(group, app_commands.Group):
            group.remove_command(self.help_command.name)

    async def help(self, interaction: discord.Interaction[StyleBot]) -> None:
        text = await guide(self.bot, interaction.guild_id)
        await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: StyleBot) -> None:
    await bot.add_cog(Help(bot))
