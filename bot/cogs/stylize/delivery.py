"""A job's last message reaches Discord whatever the network does, and only once.

The last frame (the result, or why there is none) goes, in order of preference:

1. to the job's own message (the interaction's response, or the reply), retried on what may pass
   (`retry.with_retries`);
2. to a new message in the channel that mentions the owner, when the job's message cannot take
   it (deleted, its token dead, Discord refusing edits);
3. for a result, the same two with a smaller JPEG, when the upload was refused for its size or
   could not get through whole.

A create can take effect although its answer is lost (a dropped connection, a timeout). Retried
creates carry the same `nonce` with `enforce_nonce` (Discord's Create Message docs: a message made
by the same author with that nonce in the last few minutes is returned instead of a second one),
and before falling back to a new message the job's own message is read back in case the edit took
effect after all. `is_result_message` is also how a restarted bot tells whether a job caught
between its post and its row's update was delivered (see `JobService.recover`).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import discord

from bot.cogs.stylize.progress import ChannelTarget, Frame, MessageTarget, ProgressEditor
from bot.cogs.stylize.retry import Retry, describe_failure, is_transient, too_large, with_retries
from bot.cogs.stylize.views import is_result_message

log = logging.getLogger(__name__)

SmallerFrame = Callable[[], Awaitable[Frame | None]]


class DeliveryFailed(Exception):
    """Every way to deliver the frame failed; `last` is the last error."""

    def __init__(self, last: BaseException) -> None:
        super().__init__(describe_failure(last))
        self.last = last


@dataclass(frozen=True)
class Delivered:
    message_id: int | None  # the message that now shows the frame
    frame: Frame  # what was delivered (the smaller JPEG, when it came to that)


class Courier:
    """Delivers one job's last frame (see the module docstring)."""

    def __init__(
        self,
        client: discord.Client,
        editor: ProgressEditor,
        target: MessageTarget,
        *,
        job_id: str,
        owner_id: int,
        retry: Retry,
    ) -> None:
        self.client = client
        self.editor = editor
        self.target = target
        self.job_id = job_id
        self.owner_id = owner_id
        self.retry = retry
        self._posts = 0

    async def deliver(
        self, frame: Frame, *, smaller: SmallerFrame | None = None, retry: Retry | None = None
    ) -> Delivered:
        """Deliver `frame` (or, for a result, the frame `smaller()` makes); DeliveryFailed if nothing worked."""
        retry = retry or self.retry
        await self.editor.stop()
        try:
            return await self._deliver(frame, retry)
        except DeliveryFailed as failed:
            if smaller is None or not (too_large(failed.last) or is_transient(failed.last)):
                raise
            small = await smaller()
            if small is None:
                raise
            log.info("job %s: trying a smaller image (%s)", self.job_id, failed)
            return await self._deliver(small, retry)

    async def _deliver(self, frame: Frame, retry: Retry) -> Delivered:
        try:
            await with_retries(lambda: self.editor.send_final(frame), retry, what="the final edit", job_id=self.job_id)
            return Delivered(self.target.message_id, frame)
        except Exception as exc:
            log.warning("job %s: could not edit its message (%s)", self.job_id, describe_failure(exc))
            if too_large(exc):
                raise DeliveryFailed(exc) from exc  # a new message would be refused alike
        if frame.files and await self._already_shown():
            log.info("job %s: its message shows the result after all", self.job_id)
            return Delivered(self.target.message_id, frame)
        self._posts += 1
        post = ChannelTarget(
            self.client,
            self._channel_id(),
            None,
            mention_id=self.owner_id,
            nonce=f"{self.job_id}-{self._posts}",  # the same for every retry of this post
        )
        post.on_message_id = self.target.on_message_id
        try:
            await with_retries(lambda: post.edit(frame), retry, what="posting a new message", job_id=self.job_id)
        except Exception as exc:
            log.warning("job %s: could not post a new message either (%s)", self.job_id, describe_failure(exc))
            raise DeliveryFailed(exc) from exc
        log.info("job %s: delivered as a new message %s", self.job_id, post.message_id)
        return Delivered(post.message_id, frame)

    def _channel_id(self) -> int:
        assert self.target.channel_id is not None, "every job has a channel"
        return self.target.channel_id

    async def _already_shown(self) -> bool:
        """Whether the job's message shows its result although the edit's answer was lost."""
        if self.target.message_id is None:
            return False
        channel = self.client.get_partial_messageable(self._channel_id())
        try:
            message = await channel.fetch_message(self.target.message_id)
        except Exception:
            return False
        return is_result_message(message, self.job_id)


async def find_delivered(
    client: discord.Client, channel_id: int, message_id: int | None, job_id: str, *, since: float
) -> int | None:
    """The message that shows `job_id`'s result, if any: the job's own message, else a message the
    bot posted in its channel after `since` (a fallback post whose id was never written down).
    Raises what reading the channel raised, so a caller can tell "not there" from "could not look"."""
    channel = client.get_partial_messageable(channel_id)
    if message_id is not None:
        try:
            if is_result_message(await channel.fetch_message(message_id), job_id):
                return message_id
        except discord.NotFound:
            pass
    after = discord.Object(discord.utils.time_snowflake(datetime.datetime.fromtimestamp(since, datetime.UTC)))
    me = client.user.id if client.user is not None else None
    async for message in channel.history(limit=100, after=after, oldest_first=True):
        if message.author.id == me and is_result_message(message, job_id):
            return message.id
    return None
