"""One place that turns every failure into a specific, friendly message for the user.

Commands, buttons, modals and the job follower all raise the exceptions below (or library
ones) and let `handle_interaction_error` decide what the user reads (the words come from
`bot.messages`); expected refusals are logged quietly, anything else with a traceback.
Messages never contain tokens.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any

import discord
from discord import app_commands

from bot import messages
from bot.guild_settings import SettingError
from stylecore.executors.base import (
    ExecutorClosed,
    ExecutorError,
    JobCancelled,
    JobFailed,
    QueueFull,
    UserLimitReached,
    WorkersUnavailable,
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
    """A member at a per-member job limit (this server's, or the operator's across servers)."""


class ChannelNotAllowed(StyleBotError):
    """The server allows jobs only in some channels."""


class NotAdmin(StyleBotError, app_commands.CheckFailure):
    """An admin-only command run by someone without Manage Server."""


class BotLacksPermissions(StyleBotError):
    """The bot itself cannot do what the job needs in this channel (e.g. attach files)."""


class JobNotFound(StyleBotError):
    """No such job, or none that can still be cancelled."""


class NotYourJob(StyleBotError):
    """Someone else's job, and no Manage Messages where it runs."""


class Blocked(StyleBotError):
    """The operator has blocked this member or server."""


class NotOperator(StyleBotError, app_commands.CheckFailure):
    """An operator command run by someone other than the application's owner."""


class JobElsewhere(StyleBotError):
    """A result button of a job that ran in another server (or in someone else's DMs)."""


class InputsExpired(StyleBotError):
    """The stored images behind a result are gone, so it cannot be run again."""


class ShuttingDown(StyleBotError):
    """The bot is draining for a restart and takes no new jobs."""


def _unwrap(error: BaseException) -> BaseException:
    if isinstance(error, app_commands.CommandInvokeError):
        return error.original
    if isinstance(error, app_commands.TransformerError) and error.__cause__ is not None:
        return error.__cause__
    return error


def refusal_reason(error: BaseException) -> str:
    """The kind of a refusal for the metrics: its exception's name in snake_case (`too_many_jobs`,
    `queue_full`, `image_error`...), a small fixed set since every refusal is one of these classes."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", type(_unwrap(error)).__name__).lower()


def count_refusal(client: discord.Client, error: BaseException) -> None:
    """Count an expected refusal in the bot's metrics (a client without them counts nothing)."""
    metrics = getattr(client, "metrics", None)
    if metrics is not None:
        metrics.refused(refusal_reason(error))


def describe(error: BaseException) -> tuple[str, bool]:
    """(message for the user, whether this was an expected refusal rather than a bug)."""
    error = _unwrap(error)
    if isinstance(error, StyleBotError):
        return str(error), True
    if isinstance(error, ImageError):
        return error.user_message, True
    if isinstance(error, OptionsError):
        return messages.bad_options(error), True
    if isinstance(error, SettingError):
        return str(error), True
    if isinstance(error, QueueFull):
        return messages.queue_full(error), True
    if isinstance(error, UserLimitReached):  # the stylize service words these itself; a fallback
        where = "everywhere" if error.scope == "everywhere" else "server"
        text = messages.too_many_jobs(
            error.job_ids, error.limit, where=where, waiting=error.counts == "waiting", starting=error.pending
        )
        return text, True
    if isinstance(error, WorkersUnavailable):
        return messages.NO_WORKERS, True
    if isinstance(error, ExecutorClosed):
        return messages.RESTARTING, True
    if isinstance(error, JobFailed):
        return messages.failure(str(error), error.reason), True
    if isinstance(error, JobCancelled):
        return messages.JOB_CANCELLED, True
    if isinstance(error, ExecutorError):
        return str(error), True
    if isinstance(error, app_commands.MissingPermissions):
        return messages.user_missing(error.missing_permissions), True
    if isinstance(error, app_commands.BotMissingPermissions):
        return messages.bot_missing(error.missing_permissions), True
    if isinstance(error, app_commands.NoPrivateMessage):
        return messages.NO_DMS, True
    if isinstance(error, app_commands.CommandOnCooldown):
        return messages.slow_down(error.retry_after), True
    if isinstance(error, app_commands.CheckFailure):
        return messages.NOT_HERE, True
    if isinstance(error, discord.Forbidden):
        return messages.CHANNEL_FORBIDDEN, True
    if isinstance(error, discord.HTTPException) and error.status == 413:
        return messages.FILE_TOO_LARGE, True
    return messages.UNEXPECTED, False


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
        count_refusal(interaction.client, error)
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
