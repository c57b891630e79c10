"""Where the bot's commands may be installed and used, stated once for every command.

Discord lets an app be installed to a server or to a user, and its commands be used in servers,
in DMs with the bot and in other private channels (the `integration_types` and `contexts` of an
Application Command Object, Discord's developer docs); discord.py sends them from
`allowed_installs` and `allowed_contexts`. Unstated, Discord decides, so every command states them.

StyleBot is installed to servers only. Installed to a user, its commands would also run in servers
and group DMs it is not in; a job often outlives the 15 minutes an interaction token lives, and
after that the bot keeps a job's message up to date and posts its result with its own token in the
channel, which it cannot do where it is not a member. Progress and results would stop arriving, so
user install is not offered. In a DM with the bot, though, it is the other party: there the
stylize commands work with the bot-wide defaults and limits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from discord import app_commands

T = TypeVar("T")


def server_install() -> app_commands.AppInstallationType:
    """For a group or context menu built in code (a fresh object: discord.py's decorators mutate it)."""
    return app_commands.AppInstallationType(guild=True, user=False)


def in_servers_and_bot_dms() -> app_commands.AppCommandContext:
    return app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=False)


def servers_and_bot_dms(command: T) -> T:
    """Decorator: installed with the bot in a server; usable there and in DMs with the bot."""
    installed: Callable[[T], T] = app_commands.allowed_installs(guilds=True, users=False)
    used: Callable[[T], T] = app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    return installed(used(command))
