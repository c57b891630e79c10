"""Keeping one progress message up to date without flooding Discord.

`ProgressEditor` turns a stream of "latest state" updates into throttled edits: at most
one edit per `min_interval` seconds (measured from the end of the previous edit, so the
gap Discord sees can never be shorter), none when the text is unchanged, and a preview
image at most every `preview_interval` seconds.

Targets hide *how* the message is edited. An interaction's webhook token dies 15 minutes
after the command, so `InteractionTarget` edits through the token while it is valid and
then — or as soon as Discord answers 401 / invalid token — switches for good to editing
the same message through the channel with the bot token (`ChannelTarget`).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import discord

from bot.cogs.stylize.retry import Retry, describe_failure, with_retries

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]
_INVALID_TOKEN_CODES = {50027, 10015}  # Invalid Webhook Token, Unknown Webhook


@dataclass(frozen=True)
class Frame:
    """What the message should look like.

    `files` None leaves the current attachments alone, () removes them; each is (name, bytes) or
    (name, bytes, alt text). `view_key` stands in for the view when comparing frames (views are not
    comparable).
    """

    content: str
    view_key: str = "none"
    view: discord.ui.View | None = field(default=None, compare=False)
    files: tuple[tuple[str, bytes] | tuple[str, bytes, str], ...] | None = None

    def kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "content": self.content,
            "view": self.view,
            "allowed_mentions": discord.AllowedMentions.none(),
        }
        if self.files is not None:
            kw["attachments"] = [
                discord.File(io.BytesIO(f[1]), filename=f[0], description=f[2] if len(f) > 2 else None)
                for f in self.files
            ]
        return kw


class MessageTarget(abc.ABC):
    """Somewhere a job's message lives; `edit` creates it first when needed."""

    channel_id: int | None
    message_id: int | None
    on_message_id: Callable[[int, int], Awaitable[None]] | None = None

    @abc.abstractmethod
    async def edit(self, frame: Frame) -> None: ...

    async def _moved(self, channel_id: int, message_id: int) -> None:
        changed = (channel_id, message_id) != (self.channel_id, self.message_id)
        self.channel_id, self.message_id = channel_id, message_id
        if changed and self.on_message_id is not None:
            await self.on_message_id(channel_id, message_id)


class ChannelTarget(MessageTarget):
    """Edits a message through the channel with the bot token; posts a new one if it is gone."""

    def __init__(
        self,
        client: discord.Client,
        channel_id: int,
        message_id: int | None = None,
        *,
        reply_to: int | None = None,
        mention_id: int | None = None,
        nonce: str | None = None,
    ) -> None:
        self.client = client
        self.channel_id = channel_id
        self.message_id = message_id
        self.reply_to = reply_to
        self.mention_id = mention_id
        self.nonce = nonce  # sent with enforce_nonce: a retried create returns the first message

    async def edit(self, frame: Frame) -> None:
        channel = self.client.get_partial_messageable(self.channel_id)
        if self.message_id is not None:
            try:
                await channel.get_partial_message(self.message_id).edit(**frame.kwargs())
                return
            except discord.NotFound:
                log.info("message %s in channel %s is gone; posting a new one", self.message_id, self.channel_id)
        kw = frame.kwargs()
        kw["files"] = kw.pop("attachments", discord.utils.MISSING)
        if kw["view"] is None:
            kw.pop("view")
        content = kw.pop("content")
        if self.mention_id is not None and self.message_id is None:
            content = f"<@{self.mention_id}> {content}"
            kw["allowed_mentions"] = discord.AllowedMentions(users=[discord.Object(self.mention_id)])
        ref = None
        if self.reply_to is not None:
            ref = discord.MessageReference(
                message_id=self.reply_to, channel_id=self.channel_id, fail_if_not_exists=False
            )
        if self.nonce is not None:
            kw["nonce"] = self.nonce
        msg = await channel.send(content, reference=ref, **kw)  # type: ignore[arg-type]
        await self._moved(msg.channel.id, msg.id)


class InteractionTarget(MessageTarget):
    """The interaction's original response, via its token while valid, then via the channel."""

    def __init__(
        self,
        interaction: discord.Interaction[Any],
        *,
        lifetime: float = 14 * 60.0,
        clock: Clock = time.time,
        mention_id: int | None = None,
    ) -> None:
        self.interaction = interaction
        self.client = interaction.client
        self.channel_id = interaction.channel_id
        self.message_id = None
        self.deadline = interaction.created_at.timestamp() + lifetime
        self.clock = clock
        self.mention_id = mention_id
        self.fallback: ChannelTarget | None = None

    @property
    def via_channel(self) -> bool:
        return self.fallback is not None

    def _switch(self, why: str) -> ChannelTarget:
        log.info("interaction message %s: %s; continuing through the channel", self.message_id, why)
        assert self.channel_id is not None
        self.fallback = ChannelTarget(self.client, self.channel_id, self.message_id, mention_id=self.mention_id)
        self.fallback.on_message_id = self._moved
        return self.fallback

    async def edit(self, frame: Frame) -> None:
        if self.fallback is None and self.clock() >= self.deadline:
            if self.message_id is None:
                # Still valid for a little while: learn which message to keep editing.
                try:
                    msg = await self.interaction.original_response()
                    await self._moved(msg.channel.id, msg.id)
                except discord.HTTPException:
                    pass
            self._switch("the interaction token is about to expire")
        if self.fallback is None:
            try:
                msg = await self.interaction.edit_original_response(**frame.kwargs())
            except discord.HTTPException as exc:
                if exc.status == 401 or exc.code in _INVALID_TOKEN_CODES:
                    self._switch(f"the interaction token was refused ({exc.status}/{exc.code})")
                else:
                    raise
            else:
                await self._moved(msg.channel.id, msg.id)
                return
        assert self.fallback is not None
        await self.fallback.edit(frame)


class ProgressEditor:
    """Throttled, de-duplicated edits of one message; `finish` always delivers the last frame."""

    def __init__(
        self,
        target: MessageTarget,
        *,
        min_interval: float = 3.0,
        preview_interval: float = 10.0,
        preview_name: str = "preview.jpg",
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        job_id: str = "-",
        edit_timeout: float = 30.0,
    ) -> None:
        self.target = target
        self.edit_timeout = edit_timeout
        self.min_interval = min_interval
        self.preview_interval = preview_interval
        self.preview_name = preview_name
        self.clock = clock
        self.sleep = sleep
        self.job_id = job_id
        self.edits = 0
        self._latest: Frame | None = None
        self._sent: Frame | None = None
        self._preview: bytes | None = None
        self._last_preview_at: float | None = None
        self._last_done: float | None = None
        self._changed = asyncio.Event()
        self._lock = asyncio.Lock()
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    # -- feeding --------------------------------------------------------------------

    def show(self, frame: Frame) -> None:
        """Make `frame` the latest state; it is sent when the throttle allows."""
        if self._closed:
            return
        self._latest = frame
        self._wake()

    def preview(self, data: bytes) -> None:
        if self._closed or self.preview_interval <= 0:
            return
        self._preview = data
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"progress-{self.job_id}")

    # -- sending --------------------------------------------------------------------

    def _wait_left(self) -> float:
        if self._last_done is None:
            return 0.0
        return self._last_done + self.min_interval - self.clock()

    def _preview_due(self) -> bool:
        if self._preview is None:
            return False
        return self._last_preview_at is None or self.clock() - self._last_preview_at >= self.preview_interval

    async def _run(self) -> None:
        while not self._closed:
            timeout = None
            if self._preview is not None and self._last_preview_at is not None:
                timeout = max(0.0, self._last_preview_at + self.preview_interval - self.clock())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
            self._changed.clear()
            left = self._wait_left()
            if left > 0:
                await self.sleep(left)
            if self._closed:
                return
            await self._flush()

    async def _flush(self) -> None:
        base = self._latest or self._sent
        if base is None:
            return
        frame = base
        if self._preview_due():
            frame = Frame(base.content, base.view_key, base.view, ((self.preview_name, self._preview or b""),))
        elif base.files is not None:
            frame = Frame(base.content, base.view_key, base.view, None)
        if (
            frame.files is None
            and self._sent is not None
            and (frame.content, frame.view_key) == (self._sent.content, self._sent.view_key)
        ):
            return  # nothing changed: no edit
        await self._send(frame)
        if frame.files is not None and self._preview is not None:
            self._last_preview_at = self.clock()
            self._preview = None

    async def _send(self, frame: Frame) -> None:
        async with self._lock:
            try:
                await asyncio.wait_for(self.target.edit(frame), self.edit_timeout)
                self._sent = frame
                self.edits += 1
            except Exception as exc:  # a lost progress edit is no reason to stop: the next one may pass
                log.warning("job %s: progress edit failed (%s)", self.job_id, describe_failure(exc))
            finally:
                self._last_done = self.clock()

    async def stop(self) -> None:
        """No more progress edits: the loop ends after the edit it may be making."""
        self._closed = True
        self._changed.set()
        if self._task is not None:
            try:
                await self._task
            except Exception:
                log.exception("job %s: progress loop failed", self.job_id)

    async def send_final(self, frame: Frame) -> None:
        """One attempt at the last edit, no sooner than the throttle allows; raises what the edit raised."""
        left = self._wait_left()
        if left > 0:
            await self.sleep(left)
        async with self._lock:
            try:
                await self.target.edit(frame)
            finally:
                self._last_done = self.clock()
            self._sent = frame
            self.edits += 1

    async def finish(self, frame: Frame, *, retry: Retry | None = None) -> bool:
        """Stop the updates and deliver `frame`, retrying what may pass; False if it never arrived."""
        await self.stop()
        try:
            await with_retries(
                lambda: self.send_final(frame),
                retry or Retry(),
                what="the final edit",
                job_id=self.job_id,
                sleep=self.sleep,
            )
        except Exception as exc:
            log.warning("job %s: final edit failed (%s)", self.job_id, describe_failure(exc))
            return False
        return True

    async def close(self) -> None:
        self._closed = True
        self._changed.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
