"""Following one queued job to its end: executor events in, edits of one Discord message out.

A `JobFollower` reads the job's event stream, shows each state through a throttled
`ProgressEditor`, and ends the job exactly once: the result (re-encoded to fit the upload
limit), a failure, a cancel, or a pause for a restart — each delivered even when the
original message can no longer be edited, and written to the job's row.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from typing import TYPE_CHECKING

import discord
from PIL import Image

from bot import messages
from bot.cogs.stylize.progress import ChannelTarget, Frame, InteractionTarget, MessageTarget, ProgressEditor
from bot.cogs.stylize.views import progress_view, result_view
from bot.db import JobRecord
from stylecore.executors.base import JobEvent, JobHandle, JobResult
from stylecore.imageio import EncodedImage, ImageError, encode_image

if TYPE_CHECKING:
    from bot.cogs.stylize.service import JobService

log = logging.getLogger(__name__)


def fit_result(png: bytes, width: int, height: int, limit: int) -> EncodedImage:
    """The PNG as is when it fits the upload limit, else JPEG/WebP at lower quality or size."""
    if len(png) <= limit:
        return EncodedImage(png, "png", width, height)
    with Image.open(io.BytesIO(png)) as im:
        img = im.convert("RGB")
    return encode_image(img, "png", max_bytes=limit)


class JobFollower:
    def __init__(
        self,
        service: JobService,
        record: JobRecord,
        handle: JobHandle,
        target: MessageTarget,
        *,
        preview_interval: float,
        note: str | None = None,
    ) -> None:
        self.service = service
        self.record = record
        self.handle = handle
        self.target = target
        self.editor = ProgressEditor(
            target,
            min_interval=service.config.edit_interval,
            preview_interval=preview_interval,
            job_id=record.job_id,
        )
        target.on_message_id = self._remember_message
        self.last: JobEvent | None = None
        self.cancelled_by: int | None = None
        self.quiet = False  # end without a word: the bot can no longer reach the job's channel
        self.pausing = False
        self.note = note  # shown while queued (e.g. "resumed after a restart")
        self.run_note: str | None = None  # the executor's word on this attempt (ran smaller, retried...)
        self.task: asyncio.Task[None] | None = None

    @property
    def ended(self) -> bool:
        return self.last is not None and self.last.terminal

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"job-{self.record.job_id}")

    async def cancel(self, *, by: int) -> bool:
        """Ask the executor to stop the job; False if it had already ended."""
        self.cancelled_by = by
        return await self.handle.cancel()

    async def pause(self) -> None:
        """Stop the job for a restart; it stays queued in the database for the next start."""
        self.pausing = True
        try:
            await self.handle.cancel()
        except Exception:
            log.exception("job %s: cancel during shutdown failed", self.record.job_id)

    async def _remember_message(self, channel_id: int, message_id: int) -> None:
        self.record.channel_id, self.record.message_id = channel_id, message_id
        await self.service.db.update_job(self.record.job_id, channel_id=channel_id, message_id=message_id)

    # -- following --------------------------------------------------------------------------

    async def _run(self) -> None:
        job_id = self.record.job_id
        try:
            async for ev in self.handle.events():
                self.last = ev
                if ev.terminal:
                    await self._finish(ev)
                    return
                await self._on_event(ev)
            await self._finish(JobEvent("failed", job_id, error=messages.STOPPED_REPORTING, reason="internal"))
        except asyncio.CancelledError:
            await self.editor.close()
            raise
        except Exception as exc:
            log.exception("job %s: tracking failed", job_id)
            await self._finish(JobEvent("failed", job_id, error=f"{type(exc).__name__}", reason="internal"))
        finally:
            self.service.forget(job_id)

    def _show(self, text: str) -> None:
        self.editor.show(Frame(text, "cancel", progress_view(self.record.job_id)))

    async def _on_event(self, ev: JobEvent) -> None:
        rec, opts = self.record, self.record.options
        if ev.kind == "queued":
            self.note = messages.executor_note(ev.note) or self.note  # e.g. "the worker ... was lost; retrying"
            self._show(messages.queued(rec.job_id, opts, ev.position, ev.eta, note=self.note))
        elif ev.kind == "started":
            rec.state, rec.started_at = "running", time.time()
            self.run_note = messages.executor_note(ev.note)
            await self.service.db.update_job(rec.job_id, state="running", started_at=rec.started_at)
            self._show(messages.starting(rec.job_id, opts, note=self.run_note))
        elif ev.kind == "preview" and ev.preview:
            self.editor.preview(ev.preview)
        elif ev.kind == "progress" and ev.step is not None and ev.total:
            if self.service.metrics is not None:
                self.service.metrics.step(rec.job_id, ev.step, ev.elapsed)
            self._show(messages.running(rec.job_id, opts, ev.step, ev.total, ev.eta, ev.loss, note=self.run_note))

    # -- the end ----------------------------------------------------------------------------

    async def _finish(self, ev: JobEvent) -> None:
        rec = self.record
        if ev.kind == "done" and ev.result is not None:
            try:
                await self._deliver_result(ev.result)
                return
            except ImageError as exc:
                ev = JobEvent("failed", rec.job_id, error=exc.user_message, reason="internal")
        if self.pausing or (ev.kind == "failed" and ev.reason == "shutdown" and not self.service.accepting):
            await self.service.db.update_job(rec.job_id, state="queued", started_at=None)
            await self._deliver(Frame(messages.paused(rec.job_id, rec.options), files=()))
            log.info("job %s paused for restart", rec.job_id)
            return
        if ev.kind == "cancelled":
            await self._deliver(Frame(messages.cancelled(rec.job_id, rec.options, self.cancelled_by), files=()))
            await self.service.set_state(rec, "cancelled")
            log.info("job %s cancelled by %s", rec.job_id, self.cancelled_by)
            return
        message = messages.failure(ev.error, ev.reason)
        await self._deliver(Frame(messages.failed(rec.job_id, rec.options, message), files=()))
        await self.service.set_state(rec, "failed", error=f"{ev.reason}: {ev.error}")
        log.warning("job %s failed (%s): %s", rec.job_id, ev.reason, ev.error)
        await self._tell_privately(message)

    async def _deliver_result(self, res: JobResult) -> None:
        """Post the image fitted to the upload limit; ImageError if it cannot be re-encoded."""
        rec = self.record
        encoded = await asyncio.to_thread(fit_result, res.png, res.width, res.height, rec.filesize_limit)
        notes = list(res.notes)
        if encoded.fmt != "png":
            notes.append(messages.sent_as(encoded.fmt, rec.filesize_limit))
        text = messages.done(
            rec.job_id,
            rec.options,
            seconds=res.seconds,
            width=encoded.width,
            height=encoded.height,
            device=res.device,
            fmt=encoded.fmt,
            owner_id=rec.owner_id,
            notes=notes,
            styles=rec.inputs_info,
        )
        alt = messages.alt_text(rec.inputs_info, rec.options)
        frame = Frame(text, "result", result_view(rec.job_id), ((encoded.filename, encoded.data, alt),))
        await self._deliver(frame)
        await self.service.set_state(rec, "done", seconds=res.seconds)
        log.info("job %s done in %.1fs (%dx%d %s)", rec.job_id, res.seconds, encoded.width, encoded.height, encoded.fmt)

    async def _deliver(self, frame: Frame) -> None:
        """The final frame must arrive: via the editor, else as a new message mentioning the owner."""
        if self.quiet:
            await self.editor.close()
            return
        if await self.editor.finish(frame):
            return
        rec = self.record
        log.warning("job %s: could not edit its message; posting a new one", rec.job_id)
        try:
            await ChannelTarget(self.service.client, rec.channel_id, None, mention_id=rec.owner_id).edit(frame)
        except discord.HTTPException:
            log.exception("job %s: could not post its final message either", rec.job_id)

    async def _tell_privately(self, message: str) -> None:
        """Failures also reach the owner as an ephemeral follow-up while the interaction token lives."""
        target = self.target
        if isinstance(target, InteractionTarget) and not target.via_channel and time.time() < target.deadline:
            with contextlib.suppress(discord.HTTPException):
                await target.interaction.followup.send(
                    messages.failed_privately(self.record.job_id, message), ephemeral=True
                )
