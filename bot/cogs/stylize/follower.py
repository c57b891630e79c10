"""Following one queued job to its end: executor events in, edits of one Discord message out.

A `JobFollower` reads the job's event stream, shows each state through a throttled
`ProgressEditor`, and ends the job exactly once: the result (re-encoded to fit the upload
limit), a failure, a cancel, or a pause for a restart — each delivered by a `Courier` even
when the original message can no longer be edited or the network fails for a while, and
written to the job's row whatever happened (a result that cannot be delivered fails the job
with that reason rather than leaving it running).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from typing import TYPE_CHECKING

from PIL import Image

from bot import messages
from bot.cogs.stylize.delivery import Courier, DeliveryFailed
from bot.cogs.stylize.progress import Frame, InteractionTarget, MessageTarget, ProgressEditor
from bot.cogs.stylize.retry import Retry
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


def smaller_result(png: bytes, sent_bytes: int) -> EncodedImage | None:
    """A JPEG a quarter the size of what could not be uploaded (None if that cannot be made smaller)."""
    with Image.open(io.BytesIO(png)) as im:
        img = im.convert("RGB")
    try:
        return encode_image(img, "jpeg", max_bytes=max(4096, sent_bytes // 4), quality=85)
    except ImageError:
        return None


# Pause and "could not deliver" notices get one quick try: the row already says everything, and a
# shutdown must not wait on Discord (it fits in the service's SETTLE).
PAUSE_RETRY = Retry(attempts=1, timeout=2.5)


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
        self.courier = Courier(
            service.client,
            self.editor,
            target,
            job_id=record.job_id,
            owner_id=record.owner_id,
            retry=Retry(
                attempts=service.config.delivery_attempts,
                backoff=service.config.delivery_backoff,
                timeout=service.config.delivery_timeout,
            ),
        )
        self.last: JobEvent | None = None
        self.cancelled_by: int | None = None
        self.quiet = False  # end without a word: the bot can no longer reach the job's channel
        self.pausing = False
        self.note = note  # shown while queued (e.g. "resumed after a restart")
        self.run_note: str | None = None  # the executor's word on this attempt (ran smaller, retried...)
        self.task: asyncio.Task[None] | None = None
        self.waiting_since: float | None = time.monotonic()  # for the queue-wait metric
        self.running_since: float | None = None  # and the job-duration one

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
            try:
                await self._finish(JobEvent("failed", job_id, error=f"{type(exc).__name__}", reason="internal"))
            except Exception:  # the row must end all the same, or it holds the member's place for ever
                log.exception("job %s: ending it failed too", job_id)
                with contextlib.suppress(Exception):
                    await self.service.set_state(self.record, "failed", error=f"internal: {type(exc).__name__}")
        finally:
            self.service.forget(job_id)

    def _show(self, text: str) -> None:
        self.editor.show(Frame(text, "cancel", progress_view(self.record.job_id)))

    async def _on_event(self, ev: JobEvent) -> None:
        rec, opts = self.record, self.record.options
        metrics = self.service.metrics
        if ev.kind == "queued":
            if self.waiting_since is None:  # back in the queue (its worker was lost)
                self.waiting_since = time.monotonic()
            self.note = messages.executor_note(ev.note) or self.note  # e.g. "the worker ... was lost; retrying"
            self._show(messages.queued(rec.job_id, opts, ev.position, ev.eta, note=self.note))
        elif ev.kind == "started":
            if self.waiting_since is not None:
                if metrics is not None:
                    metrics.started(time.monotonic() - self.waiting_since, ev.device, opts.get("size"))
                self.waiting_since, self.running_since = None, time.monotonic()
            rec.state, rec.started_at = "running", time.time()
            self.run_note = messages.executor_note(ev.note)
            await self.service.db.update_job(rec.job_id, state="running", started_at=rec.started_at)
            self._show(messages.starting(rec.job_id, opts, note=self.run_note))
        elif ev.kind == "preview" and ev.preview:
            self.editor.preview(ev.preview)
        elif ev.kind == "progress" and ev.step is not None and ev.total:
            if metrics is not None:
                metrics.step(rec.job_id, ev.step, ev.elapsed)
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
            # Shutting down: one quick try, the grace period is short and the row already says it all.
            await self._deliver(Frame(messages.paused(rec.job_id, rec.options), files=()), retry=PAUSE_RETRY)
            log.info("job %s paused for restart", rec.job_id)
            return
        if ev.kind == "cancelled":
            await self._deliver(Frame(messages.cancelled(rec.job_id, rec.options, self.cancelled_by), files=()))
            await self.service.set_state(rec, "cancelled")
            log.info("job %s cancelled by %s", rec.job_id, self.cancelled_by)
            return
        message = messages.failure(ev.error, ev.reason)
        await self._deliver(Frame(messages.failed(rec.job_id, rec.options, message), files=()))
        await self.service.set_state(rec, "failed", error=f"{ev.reason}: {ev.error}", reason=ev.reason)
        log.warning("job %s failed (%s): %s", rec.job_id, ev.reason, ev.error)
        await self._tell_privately(message)

    def _result_frame(self, res: JobResult, encoded: EncodedImage, note: str | None) -> Frame:
        rec = self.record
        notes = [messages.executor_note(n) for n in res.notes]
        text = messages.done(
            rec.job_id,
            rec.options,
            seconds=res.seconds,
            width=encoded.width,
            height=encoded.height,
            device=res.device,
            fmt=encoded.fmt,
            owner_id=rec.owner_id,
            notes=[*notes, note],
            styles=rec.inputs_info,
            converged_at=res.steps if res.converged else None,
        )
        alt = messages.alt_text(rec.inputs_info, messages.settings_line(rec.options))
        return Frame(text, "result", result_view(rec.job_id), ((encoded.filename, encoded.data, alt),))

    async def _deliver_result(self, res: JobResult) -> None:
        """Post the image fitted to the upload limit, and end the row either way.

        The row says "delivering" from before the post until it says "done", so a bot that stops in
        between knows, when it starts again, to look for the result in Discord before running the
        job again (see `JobService.recover`). ImageError if the image cannot be re-encoded.
        """
        rec = self.record
        encoded = await asyncio.to_thread(fit_result, res.png, res.width, res.height, rec.filesize_limit)
        note = messages.sent_as(encoded.fmt, rec.filesize_limit) if encoded.fmt != "png" else None
        metrics = self.service.metrics
        if note is not None and metrics is not None:
            metrics.sent_reencoded(encoded.fmt)
        frame = self._result_frame(res, encoded, note)

        async def smaller() -> Frame | None:
            small = await asyncio.to_thread(smaller_result, res.png, len(encoded.data))
            return None if small is None else self._result_frame(res, small, messages.SENT_SMALLER)

        rec.state = "delivering"
        await self.service.db.update_job(rec.job_id, state="delivering", finished_at=time.time())
        try:
            delivered = await self.courier.deliver(frame, smaller=smaller)
        except DeliveryFailed as failed:
            why = messages.RESULT_UNDELIVERED
            await self._deliver(Frame(messages.failed(rec.job_id, rec.options, why), files=()), retry=PAUSE_RETRY)
            await self.service.set_state(rec, "failed", error=f"delivery: {failed}")
            log.error("job %s: the result could not be delivered (%s)", rec.job_id, failed)
            await self._tell_privately(why)
            return
        if metrics is not None and self.running_since is not None:
            metrics.done(time.monotonic() - self.running_since, res.device, rec.options.get("size"))
        await self.service.set_state(rec, "done", seconds=res.seconds)
        shown = "a smaller JPEG" if delivered.frame is not frame else f"{encoded.width}x{encoded.height} {encoded.fmt}"
        log.info("job %s done in %.1fs (%s)", rec.job_id, res.seconds, shown)

    async def _deliver(self, frame: Frame, *, retry: Retry | None = None) -> None:
        """The final frame must arrive: the job's message, else a new one mentioning the owner; never raises."""
        if self.quiet:
            await self.editor.close()
            return
        try:
            await self.courier.deliver(frame, retry=retry)
        except DeliveryFailed as failed:
            log.error("job %s: could not deliver its final message (%s)", self.record.job_id, failed)

    async def _tell_privately(self, message: str) -> None:
        """Failures also reach the owner as an ephemeral follow-up while the interaction token lives."""
        target = self.target
        if isinstance(target, InteractionTarget) and not target.via_channel and time.time() < target.deadline:
            with contextlib.suppress(Exception):  # a courtesy: the job's own message already says it
                followup = target.interaction.followup.send(
                    messages.failed_privately(self.record.job_id, message), ephemeral=True
                )
                await asyncio.wait_for(followup, 10.0)
