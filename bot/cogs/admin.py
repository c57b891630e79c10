"""/stylebot config show|set|reset and /stylebot status — per-server settings for admins (Manage Server).

This feature owns the `/stylebot` group; other features (server styles, help, forgetting your data)
add their subcommands to it when they load. Discord sets a command's default permissions on the
whole top-level command only, and help and forget are for everyone, so the admin commands are
guarded by `admin_only` at run time instead of being hidden from members.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import messages
from bot.checks import admin_only
from bot.contexts import in_servers_and_bot_dms, server_install
from bot.guild_settings import SETTINGS, GuildSettings, SettingError, parse_setting

if TYPE_CHECKING:
    from bot.bot import StyleBot

log = logging.getLogger(__name__)

SETTING_CHOICES = [app_commands.Choice(name=key, value=key) for key in SETTINGS]


def settings_table(settings: GuildSettings, overridden: set[str]) -> str:
    rows = [(key, settings.describe(key), s.description, key in overridden) for key, s in SETTINGS.items()]
    return messages.settings_table(rows)


class Admin(commands.Cog):
    stylebot = app_commands.Group(
        name="stylebot",
        description="StyleBot: help, your data, and this server's settings and styles",
        allowed_contexts=in_servers_and_bot_dms(),
        allowed_installs=server_install(),
    )
    config = app_commands.Group(
        name="config", description="Show or change this server's settings (Manage Server)", parent=stylebot
    )

    def __init__(self, bot: StyleBot) -> None:
        self.bot = bot

    async def _current(self, guild_id: int) -> tuple[GuildSettings, dict[str, object]]:
        """The server's effective settings (overrides within the operator's ceilings) and its overrides."""
        overrides = await self.bot.db.guild_overrides(guild_id)
        return self.bot.ceilings.apply(self.bot.base_settings, overrides), overrides

    @stylebot.command(name="status", description="Workers, their devices and memory, and the queue (Manage Server)")
    @admin_only()
    async def status(self, interaction: discord.Interaction[StyleBot]) -> None:
        assert interaction.guild_id is not None
        settings, _ = await self._current(interaction.guild_id)
        counts = self.bot.jobs.status_counts()
        text = messages.status(
            self.bot.config.executor,
            self.bot.jobs.workers(),
            counts["running"],
            counts["queued"],
            max_size=settings.max_size,
            default_size=settings.default_size,
        )
        await interaction.response.send_message(text, ephemeral=True)

    @config.command(name="show", description="Show this server's StyleBot settings")
    @admin_only()
    async def show(self, interaction: discord.Interaction[StyleBot]) -> None:
        assert interaction.guild_id is not None
        settings, overrides = await self._current(interaction.guild_id)
        await interaction.response.send_message(settings_table(settings, set(overrides)), ephemeral=True)

    @config.command(name="set", description="Change one setting")
    @app_commands.describe(setting="Which setting", value="The new value (channels: mentions or ids, or 'all')")
    @app_commands.choices(setting=SETTING_CHOICES)
    @admin_only()
    async def set_(self, interaction: discord.Interaction[StyleBot], setting: str, value: str) -> None:
        assert interaction.guild_id is not None
        try:
            parsed = parse_setting(setting, value)
            self.bot.ceilings.check(setting, parsed, self.bot.base_settings)
            _settings, overrides = await self._current(interaction.guild_id)
            overrides[setting] = parsed
            new = self.bot.ceilings.apply(self.bot.base_settings, overrides).check()
        except SettingError as exc:
            raise SettingError(messages.cannot_set(setting, exc)) from None
        await self.bot.db.save_guild_overrides(interaction.guild_id, overrides)
        log.info("guild %s: %s set %s = %r", interaction.guild_id, interaction.user.id, setting, parsed)
        message = messages.setting_changed(setting, new.describe(setting))
        if setting == "max_size":
            message += "\n" + (messages.size_warning(new.max_size, self.bot.jobs.workers()) or "")
        await interaction.response.send_message(message.strip(), ephemeral=True)

    @config.command(name="reset", description="Put one setting (or all of them) back to the default")
    @app_commands.describe(setting="Which setting (leave empty to reset everything)")
    @app_commands.choices(setting=SETTING_CHOICES)
    @admin_only()
    async def reset(self, interaction: discord.Interaction[StyleBot], setting: str | None = None) -> None:
        assert interaction.guild_id is not None
        _settings, overrides = await self._current(interaction.guild_id)
        if setting is None:
            overrides = {}
            message = messages.ALL_SETTINGS_RESET
        else:
            overrides.pop(setting, None)
            try:
                self.bot.ceilings.apply(self.bot.base_settings, overrides).check()
            except SettingError as exc:
                raise SettingError(messages.cannot_reset_alone(setting, exc)) from None
            message = messages.setting_reset(setting, self.bot.base_settings.describe(setting))
        await self.bot.db.save_guild_overrides(interaction.guild_id, overrides)
        log.info("guild %s: %s reset %s", interaction.guild_id, interaction.user.id, setting or "all settings")
        await interaction.response.send_message(message, ephemeral=True)


async def setup(bot: StyleBot) -> None:
    await bot.add_cog(Admin(bot))
