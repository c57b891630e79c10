"""One place that turns every failure into a specific, friendly message for the user.

Commands, buttons, modals and the tracker all raise the exceptions below (or library
ones) and let `handle_interaction_error` decide what the user reads; expected refusals
are logged quietly, anything else with a traceback. Messages never contain tokens.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import discord
from discord import app_commands

from bot.guild_settings import SettingError
from stylecore.executors.base import (
    ExecutorClosed,
    ExecutorError,
    JobCancelled,
    JobFailed,
    QueueFull,
    UserLimitReached,
)
from stylecore.imageio import ImageError
from stylecore.options import OptionsError

log = logging.getLogger(__name__)


class StyleBotError(app_commands.AppCommandError):
    """An expected refusal; `str(err)` is what the user reads."""


class BadInput(StyleBotError):
    """Missing or unusable attachments."""


class OverLimit(StyleBotError):
    """A requested value above this server's limit; the message names the limit."""


class OnCooldown(StyleBotError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TooManyJobs(StyleBotError):
    pass


class ChannelNotAllowed(StyleBotError):
    pass


class NotAdmin(StyleBotError, app_commands.CheckFailure):
    pass


class BotLacksPermissions(StyleBotError):
    """The bot itself cannot do what the job needs in this channel (e.g. attach files)."""


class JobNotFound(StyleBotError):
    pass


class NotYourJob(StyleBotError):
    pass


class InputsExpired(StyleBotError):
    pass


class ShuttingDown(StyleBotError):
    pass


_FAILURE_REASONS: dict[str, str] = {
    "bad_input": "I couldn't use one of the images: {error}",
    "worker_lost": "The worker running your job stopped unexpectedly. Please try again.",
    "oom": "That ran out of memory; try a smaller size.",
    "timeout": "That took too long and was stopped; try fewer steps or a smaller size.",
    "shutdown": "The bot is restarting; your job will be picked up again when it's back.",
    "internal": "Something went wrong while stylizing: {error}",
}


def failure_message(error: str | None, reason: str | None) -> str:
    template = _FAILURE_REASONS.get(reason or "internal", _FAILURE_REASONS["internal"])
    return template.format(error=(error or "unknown error").rstrip("."))


def _perm_names(perms: list[str]) -> str:
    return ", ".join(p.replace("_", " ").replace("guild", "server").title() for p in perms)


def describe(error: BaseException) -> tuple[str, bool]:
    """(message for the user, whether this was an expected refusal rather than a bug)."""
    if isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    elif isinstance(error, app_commands.TransformerError) and error.__cause__ is not None:
        error = error.__cause__
    if isinstance(error, StyleBotError):
        return str(error), True
    if isinstance(error, ImageError):
        return error.user_message, True
    if isinstance(error, OptionsError):
        return f"Those settings don't work: {error}", True
    if isinstance(error, SettingError):
        return str(error), True
    if isinstance(error, QueueFull):
        return f"The queue is full right now ({error}). Please try again in a few minutes.", True
    if isinstance(error, UserLimitReached):
        return f"You have too many jobs waiting: {error}", True
    if isinstance(error, ExecutorClosed):
        return "I'm restarting and not taking new jobs; please try again in a minute.", True
    if isinstance(error, JobFailed):
        return failure_message(str(error), error.reason), True
    if isinstance(error, JobCancelled):
        return "That job was cancelled.", True
    if isinstance(error, ExecutorError):
        return str(error), True
    if isinstance(error, app_commands.MissingPermissions):
        return f"You need the {_perm_names(error.missing_permissions)} permission to do that.", True
    if isinstance(error, app_commands.BotMissingPermissions):
        return f"I need the {_perm_names(error.missing_permissions)} permission in this channel.", True
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This only works in a server, not in DMs.", True
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down a little; try again in {error.retry_after:.0f} s.", True
    if isinstance(error, app_commands.CheckFailure):
        return "You can't use this here.", True
    if isinstance(error, discord.Forbidden):
        return (
            "I'm missing a permission in this channel (I need View Channel, Send Messages, "
            "Attach Files and Read Message History)."
        ), True
    if isinstance(error, discord.HTTPException) and error.status == 413:
        return "That file is too large for Discord to accept.", True
    return "Something went wrong on my side. It has been logged; please try again.", False


async def send_ephemeral(interaction: discord.Interaction[Any], message: str) -> None:
    """Reply privately whether or not the interaction has been answered already.

    A public "thinking…" placeholder left by `defer` is removed first so a refusal does
    not leave a forever-loading message in the channel.
    """
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(message, ephemeral=True)
            return
        if interaction.extras.get("public_defer") and not interaction.extras.get("job_id"):
            with contextlib.suppress(discord.HTTPException):
                await interaction.delete_original_response()
        await interaction.followup.send(message, ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("could not deliver an error message (status %s, code %s)", exc.status, exc.code)


async def handle_interaction_error(interaction: discord.Interaction[Any], error: BaseException) -> None:
    """The single error path for slash commands, context menus, buttons and modals."""
    message, expected = describe(error)
    job_id = interaction.extras.get("job_id", "-")
    command = interaction.command.qualified_name if interaction.command else interaction.custom_id
    if expected:
        log.info("refused %s for user %s (job %s): %s", command, interaction.user.id, job_id, message)
    else:
        original = getattr(error, "original", error)
        log.error(
            "error in %s for user %s (job %s)",
            command,
            interaction.user.id,
            job_id,
            exc_info=(type(original), original, original.__traceback__),
        )
    await send_ephemeral(interaction, message)
