"""/stylebot: per-server settings for admins (`config show|set|reset`, `status`; Manage Server) and
the operator's controls (`operator block|unblock|blocked|takedown`; the application's owner only).

This feature owns the `/stylebot` group; other features (server styles, help, forgetting your data)
add their subcommands to it when they load. Discord nests subcommands only under one top-level
command and sets default permissions on the whole of it, and help and forget are for everyone, so
the group is shown to every member: the admin commands are guarded by `admin_only` and the
operator's by `operator_only` (the application's owner) at run time instead.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot import messages
from bot.blocklist import Kind
from bot.checks import admin_only, operator_only
from bot.contexts import in_servers_and_bot_dms, server_install
from bot.db import Block
from bot.errors import BadInput
from bot.guild_settings import SETTINGS, GuildSettings, SettingError, parse_setting

if TYPE_CHECKING:
    from bot.bot import StyleBot

log = logging.getLogger(__name__)

SETTING_CHOICES = [app_commands.Choice(name=key, value=key) for key in SETTINGS]
TARGET_CHOICES = [app_commands.Choice(name="member", value="user"), app_commands.Choice(name="server", value="guild")]


def _kind(what: str) -> Kind:
    return "guild" if what == "guild" else "user"


def parse_target(kind: Kind, text: str) -> int:
    """A member's mention or id, or a server's id."""
    digits = text.strip().removeprefix("<@").removeprefix("!").removesuffix(">")
    if not digits.isdigit():
        raise BadInput(messages.bad_target(kind, text))
    return int(digits)


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
    operator = app_commands.Group(name="operator", description="The bot operator's controls", parent=stylebot)

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

    # -- the operator's controls ---------------------------------------------------------

    @operator.command(name="block", description="Refuse a member or a whole server, everywhere")
    @app_commands.describe(
        what="A member or a server",
        target="The member (mention or id) or the server's id",
        reason="Why (kept with the block, shown to operators)",
    )
    @app_commands.choices(what=TARGET_CHOICES)
    @operator_only()
    async def block(
        self, interaction: discord.Interaction[StyleBot], what: str, target: str, reason: str | None = None
    ) -> None:
        kind = _kind(what)
        target_id = parse_target(kind, target)
        record = Block(kind, target_id, reason, interaction.user.id, time.time())
        await self.bot.blocks.block(self.bot.db, record)
        log.warning("operator %s blocked %s %s (%s)", interaction.user.id, kind, target_id, reason)
        await interaction.response.send_message(messages.now_blocked(kind, target_id, reason), ephemeral=True)

    @operator.command(name="unblock", description="Lift a block made with /stylebot operator block")
    @app_commands.describe(what="A member or a server", target="The member (mention or id) or the server's id")
    @app_commands.choices(what=TARGET_CHOICES)
    @operator_only()
    async def unblock(self, interaction: discord.Interaction[StyleBot], what: str, target: str) -> None:
        kind = _kind(what)
        target_id = parse_target(kind, target)
        if self.bot.blocks.configured(kind, target_id):
            text = messages.blocked_by_configuration(kind, target_id)
        elif await self.bot.blocks.unblock(self.bot.db, kind, target_id):
            log.warning("operator %s unblocked %s %s", interaction.user.id, kind, target_id)
            text = messages.now_unblocked(kind, target_id)
        else:
            text = messages.not_blocked(kind, target_id)
        await interaction.response.send_message(text, ephemeral=True)

    @operator.command(name="blocked", description="Members and servers the bot refuses")
    @operator_only()
    async def blocked(self, interaction: discord.Interaction[StyleBot]) -> None:
        entries = [(e.kind, e.target_id, e.stored, e.reason) for e in self.bot.blocks.entries()]
        text = messages.block_list(entries)
        await interaction.response.send_message(
            text[: messages.MESSAGE_LIMIT], ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )

    @operator.command(name="takedown", description="Delete a result and its stored images, by job id")
    @app_commands.describe(job="The job id shown under the result", reason="Why (kept in the job's record)")
    @operator_only()
    async def takedown(self, interaction: discord.Interaction[StyleBot], job: str, reason: str | None = None) -> None:
        job_id = job.strip().strip("`")
        interaction.extras["job_id"] = job_id
        await interaction.response.defer(ephemeral=True, thinking=True)
        deleted = await self.bot.jobs.take_down(job_id, interaction.user.id, reason)
        await interaction.followup.send(messages.taken_down(job_id, deleted), ephemeral=True)


async def setup(bot: StyleBot) -> None:
    await bot.add_cog(Admin(bot))
