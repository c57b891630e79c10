"""The life of a job as the bot sees it: row in SQLite, submission, progress, final message.

`JobService` is the only code that talks to the executor. It writes the job's row and
inputs before queueing (so a crash loses nothing), follows the executor's event stream
to drive one `ProgressEditor` per job, posts the result fitted to the upload limit, and
on start re-queues whatever a previous process left unfinished. `drain` implements the
SIGTERM behaviour: stop taking jobs, let running ones finish within a grace period, and
leave the rest queued in the database for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import discord
from PIL import Image

from bot import render
from bot.checks import can_manage_job
from bot.db import ACTIVE_STATES, Database, JobRecord
from bot.errors import JobNotFound, NotYourJob, ShuttingDown, TooManyJobs, failure_message
from bot.errors import OnCooldown as CooldownError
from bot.guild_settings import GuildSettings
from bot.progress import ChannelTarget, Frame, InteractionTarget, MessageTarget, ProgressEditor
from bot.views import progress_view, result_view
from stylecore.executors.base import Executor, ExecutorError, Job, JobEvent, JobHandle, QueueEntry, new_job_id
from stylecore.imageio import EncodedImage, ImageError, encode_image
from stylecore.options import StyleOptions

if TYPE_CHECKING:
    from bot.config import BotConfig
    from bot.health import Metrics

log = logging.getLogger(__name__)


@dataclass
class JobRequest:
    """Everything needed to queue one job, whichever entry point it came from."""

    guild_id: int | None
    channel_id: int
    owner_id: int
    content: bytes
    style: bytes
    options: StyleOptions
    source: str
    filesize_limit: int
    settings: GuildSettings
    parent_id: str | None = None


@dataclass
class LiveJob:
    record: JobRecord
    handle: JobHandle
    editor: ProgressEditor
    target: MessageTarget
    last: JobEvent | None = None
    cancelled_by: int | None = None
    note: str | None = None  # shown while queued (e.g. "resumed after a restart")
    run_note: str | None = None  # the worker's word on this attempt (ran smaller, retried...)
    task: asyncio.Task[None] | None = field(default=None, repr=False)


def _user_note(note: str | None) -> str | None:
    """A worker's note as one line for the job's message, first letter up (it may be None)."""
    if not note:
        return None
    line = " ".join(note.split())
    return line[:1].upper() + line[1:]


def fit_result(png: bytes, width: int, height: int, limit: int) -> EncodedImage:
    """The PNG as is when it fits the upload limit, else JPEG/WebP at lower quality or size."""
    if len(png) <= limit:
        return EncodedImage(png, "png", width, height)
    with Image.open(io.BytesIO(png)) as im:
        img = im.convert("RGB")
    return encode_image(img, "png", max_bytes=limit)


class JobService:
    def __init__(
        self,
        client: discord.Client,
        db: Database,
        executor: Executor,
        config: BotConfig,
        metrics: Metrics | None = None,
    ) -> None:
        self.client = client
        self.db = db
        self.executor = executor
        self.config = config
        self.metrics = metrics
        self.live: dict[str, LiveJob] = {}
        self.accepting = True
        self._pausing: set[str] = set()
        self._user_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)

    # -- limits ---------------------------------------------------------------------

    async def check_quota(self, settings: GuildSettings, guild_id: int | None, owner_id: int) -> None:
        """Per-user job limit and cooldown, from the database so they hold across restarts."""
        active = await self.db.jobs_in(ACTIVE_STATES, guild_id=guild_id, owner_id=owner_id)
        if len(active) >= settings.max_jobs_per_user:
            ids = ", ".join(f"`{r.job_id}`" for r in active)
            raise TooManyJobs(
                f"You already have {len(active)} job(s) queued or running ({ids}); this server allows "
                f"{settings.max_jobs_per_user}. Wait for one to finish or use /cancel."
            )
        last = await self.db.last_job_time(guild_id, owner_id)
        if last is not None and settings.cooldown_seconds > 0:
            left = last + settings.cooldown_seconds - time.time()
            if left > 0:
                raise CooldownError(
                    f"Please wait {render.fmt_duration(left)} before starting another job "
                    f"(this server's cooldown is {settings.cooldown_seconds:g} s).",
                    left,
                )

    # -- submission -----------------------------------------------------------------

    async def submit(self, req: JobRequest, target: MessageTarget) -> JobRecord:
        """Store, then queue; a refusal by the executor removes the row again and propagates."""
        if not self.accepting:
            raise ShuttingDown("I'm restarting and not taking new jobs; please try again in a minute.")
        async with self._user_locks[req.owner_id]:
            await self.check_quota(req.settings, req.guild_id, req.owner_id)
            record = JobRecord(
                job_id=new_job_id(),
                guild_id=req.guild_id,
                channel_id=req.channel_id,
                owner_id=req.owner_id,
                state="queued",
                source=req.source,
                options=req.options.to_dict(),
                filesize_limit=req.filesize_limit,
                created_at=time.time(),
                parent_id=req.parent_id,
            )
            await self.db.add_job(record, req.content, req.style, ttl=self.config.inputs_ttl)
            try:
                handle = await self.executor.submit(self._job(record, req.content, req.style, req.options))
            except ExecutorError:
                await self.db.delete_job(record.job_id)
                raise
        log.info(
            "job %s queued for user %s in channel %s (%s)",
            record.job_id,
            record.owner_id,
            record.channel_id,
            render.settings_line(record.options),
        )
        self._follow(record, handle, target, req.settings.preview_interval)
        return record

    def _job(self, record: JobRecord, content: bytes, style: bytes, options: StyleOptions) -> Job:
        meta = {"guild_id": record.guild_id, "channel_id": record.channel_id, "owner_id": record.owner_id}
        return Job(
            content=content,
            styles=(style,),
            options=options,
            user_id=str(record.owner_id),
            job_id=record.job_id,
            meta=meta,
        )

    def _follow(
        self,
        record: JobRecord,
        handle: JobHandle,
        target: MessageTarget,
        preview_interval: float,
        note: str | None = None,
    ) -> LiveJob:
        async def remember(channel_id: int, message_id: int) -> None:
            record.channel_id, record.message_id = channel_id, message_id
            await self.db.update_job(record.job_id, channel_id=channel_id, message_id=message_id)

        target.on_message_id = remember
        editor = ProgressEditor(
            target,
            min_interval=self.config.edit_interval,
            preview_interval=preview_interval,
            job_id=record.job_id,
        )
        live = LiveJob(record, handle, editor, target, note=note)
        self.live[record.job_id] = live
        live.task = asyncio.create_task(self._run(live), name=f"job-{record.job_id}")
        return live

    # -- following a job ------------------------------------------------------------

    async def _run(self, live: LiveJob) -> None:
        job_id = live.record.job_id
        try:
            async for ev in live.handle.events():
                live.last = ev
                if ev.terminal:
                    await self._finish(live, ev)
                    return
                await self._on_event(live, ev)
            await self._finish(live, JobEvent("failed", job_id, error="the job stopped reporting", reason="internal"))
        except asyncio.CancelledError:
            await live.editor.close()
            raise
        except Exception as exc:
            log.exception("job %s: tracking failed", job_id)
            await self._finish(live, JobEvent("failed", job_id, error=f"{type(exc).__name__}", reason="internal"))
        finally:
            self.live.pop(job_id, None)

    async def _on_event(self, live: LiveJob, ev: JobEvent) -> None:
        rec, opts = live.record, live.record.options
        if ev.kind == "queued":
            live.note = _user_note(ev.note) or live.note  # e.g. "the worker ... was lost; retrying"
            live.editor.show(
                Frame(
                    render.queued_text(rec.job_id, opts, ev.position, ev.eta, note=live.note),
                    "cancel",
                    progress_view(rec.job_id),
                )
            )
        elif ev.kind == "started":
            rec.state, rec.started_at = "running", time.time()
            live.run_note = _user_note(ev.note)
            await self.db.update_job(rec.job_id, state="running", started_at=rec.started_at)
            text = render.starting_text(rec.job_id, opts, note=live.run_note)
            live.editor.show(Frame(text, "cancel", progress_view(rec.job_id)))
        elif ev.kind == "preview" and ev.preview:
            live.editor.preview(ev.preview)
        elif ev.kind == "progress" and ev.step is not None and ev.total:
            if self.metrics is not None:
                self.metrics.step(rec.job_id, ev.step, ev.elapsed)
            text = render.running_text(rec.job_id, opts, ev.step, ev.total, ev.eta, ev.loss, note=live.run_note)
            live.editor.show(Frame(text, "cancel", progress_view(rec.job_id)))

    async def _finish(self, live: LiveJob, ev: JobEvent) -> None:
        rec = live.record
        paused = rec.job_id in self._pausing
        if ev.kind == "done" and ev.result is not None:
            res = ev.result
            try:
                encoded = await asyncio.to_thread(fit_result, res.png, res.width, res.height, rec.filesize_limit)
            except ImageError as exc:
                ev = JobEvent("failed", rec.job_id, error=exc.user_message, reason="internal")
            else:
                notes = [n for n in map(_user_note, res.notes) if n]
                if encoded.fmt != "png":
                    notes.append(
                        f"Sent as {encoded.fmt.upper()} to fit the upload limit ({rec.filesize_limit // 1024} KB)"
                    )
                note = "\n".join(f"-# {n}" for n in dict.fromkeys(notes)) or None
                text = render.done_text(
                    rec.job_id,
                    rec.options,
                    seconds=res.seconds,
                    width=encoded.width,
                    height=encoded.height,
                    device=res.device,
                    fmt=encoded.fmt,
                    owner_id=rec.owner_id,
                    note=note,
                )
                frame = Frame(text, "result", result_view(rec.job_id), ((encoded.filename, encoded.data),))
                await self._deliver(live, frame)
                await self._set_state(rec, "done", seconds=res.seconds)
                log.info(
                    "job %s done in %.1fs (%dx%d %s)",
                    rec.job_id,
                    res.seconds,
                    encoded.width,
                    encoded.height,
                    encoded.fmt,
                )
                return
        if paused or (ev.kind == "failed" and ev.reason == "shutdown" and not self.accepting):
            await self.db.update_job(rec.job_id, state="queued", started_at=None)
            await self._deliver(live, Frame(render.paused_text(rec.job_id, rec.options), "none", None, ()))
            log.info("job %s paused for restart", rec.job_id)
            return
        if ev.kind == "cancelled":
            await self._deliver(
                live,
                Frame(render.cancelled_text(rec.job_id, rec.options, live.cancelled_by), "none", None, ()),
            )
            await self._set_state(rec, "cancelled")
            log.info("job %s cancelled by %s", rec.job_id, live.cancelled_by)
            return
        message = failure_message(ev.error, ev.reason)
        await self._deliver(live, Frame(render.failed_text(rec.job_id, rec.options, message), "none", None, ()))
        await self._set_state(rec, "failed", error=f"{ev.reason}: {ev.error}")
        log.warning("job %s failed (%s): %s", rec.job_id, ev.reason, ev.error)
        await self._tell_privately(live, message)

    async def _deliver(self, live: LiveJob, frame: Frame) -> None:
        """The final frame must arrive: via the editor, else as a new message mentioning the owner."""
        if await live.editor.finish(frame):
            return
        rec = live.record
        log.warning("job %s: could not edit its message; posting a new one", rec.job_id)
        try:
            await ChannelTarget(self.client, rec.channel_id, None, mention_id=rec.owner_id).edit(frame)
        except discord.HTTPException:
            log.exception("job %s: could not post its final message either", rec.job_id)

    async def _tell_privately(self, live: LiveJob, message: str) -> None:
        """Failures also reach the owner as an ephemeral follow-up while the interaction token lives."""
        target = live.target
        if isinstance(target, InteractionTarget) and not target.via_channel and time.time() < target.deadline:
            with contextlib.suppress(discord.HTTPException):
                await target.interaction.followup.send(f"Job `{live.record.job_id}`: {message}", ephemeral=True)

    async def _set_state(
        self, rec: JobRecord, state: str, *, seconds: float | None = None, error: str | None = None
    ) -> None:
        rec.state = state
        await self.db.update_job(rec.job_id, state=state, finished_at=time.time(), seconds=seconds, error=error)
        if self.metrics is not None:
            self.metrics.finished(state)

    # -- control --------------------------------------------------------------------

    async def cancel_by(
        self, job_id: str, user_id: int, perms: discord.Permissions | None, guild_id: int | None = None
    ) -> JobRecord:
        record = await self.db.get_job(job_id)
        if record is None:
            raise JobNotFound(f"I don't know a job `{job_id}`.")
        same_place = guild_id is None or record.guild_id == guild_id
        if not (user_id == record.owner_id or (same_place and can_manage_job(user_id, perms, record.owner_id))):
            raise NotYourJob("Only the person who started this job, or someone with Manage Messages, can cancel it.")
        live = self.live.get(job_id)
        if record.state not in ACTIVE_STATES or (live is not None and live.last and live.last.terminal):
            raise JobNotFound(f"Job `{job_id}` has already finished ({record.state}).")
        if live is None:
            # A row with no running job behind it (its process died): settle it here.
            await self._set_state(record, "cancelled")
            if record.message_id:
                target = ChannelTarget(self.client, record.channel_id, record.message_id)
                with contextlib.suppress(discord.HTTPException):
                    await target.edit(Frame(render.cancelled_text(job_id, record.options, user_id), "none", None, ()))
            return record
        live.cancelled_by = user_id
        if not await live.handle.cancel():
            raise JobNotFound(f"Job `{job_id}` has already finished.")
        return record

    def queue(self, guild_id: int | None = None) -> list[tuple[QueueEntry, LiveJob | None]]:
        """The executor's order (running first), limited to this guild's jobs."""
        out = []
        for entry in self.executor.queue():
            if guild_id is not None and entry.meta.get("guild_id") != guild_id:
                continue
            out.append((entry, self.live.get(entry.job_id)))
        return out

    # -- restart --------------------------------------------------------------------

    async def recover(self, base_settings: GuildSettings) -> int:
        """Re-queue jobs a previous process left queued or running; tell owners when impossible."""
        count = 0
        for rec in await self.db.jobs_in(ACTIVE_STATES):
            if rec.job_id in self.live:
                continue
            target = ChannelTarget(self.client, rec.channel_id, rec.message_id, mention_id=rec.owner_id)
            inputs = await self.db.get_inputs(rec.job_id, include_expired=True)
            reason = None
            if inputs is None:
                reason = "the bot restarted and this job's images were no longer stored. Please run it again."
            else:
                try:
                    options = StyleOptions.from_dict(rec.options)
                    handle = await self.executor.submit(self._job(rec, inputs[0], inputs[1], options))
                except Exception as exc:
                    log.warning("job %s: could not re-queue after restart: %s", rec.job_id, exc)
                    reason = f"the bot restarted and couldn't re-queue this job ({exc}). Please run it again."
            if reason is not None:
                await self._set_state(rec, "failed", error=f"recovery: {reason}")
                try:
                    await target.edit(Frame(render.failed_text(rec.job_id, rec.options, reason), "none", None, ()))
                except discord.HTTPException:
                    log.exception("job %s: could not tell the owner about the lost job", rec.job_id)
                continue
            rec.state, rec.started_at = "queued", None
            await self.db.update_job(rec.job_id, state="queued", started_at=None)
            settings = await self.db.guild_settings(rec.guild_id, base_settings)
            self._follow(
                rec,
                handle,
                target,
                settings.preview_interval,
                note="🔄 The bot restarted; your job is back in the queue.",
            )
            log.info("job %s re-queued after restart", rec.job_id)
            count += 1
        return count

    async def drain(self, grace: float) -> None:
        """Stop taking jobs; give running ones `grace` seconds; pause the rest for the next start."""
        self.accepting = False
        if not self.live:
            return
        waiting = [j for j in self.live.values() if j.handle.state == "queued"]
        for job in waiting:
            await self._pause(job)
        tasks = [j.task for j in self.live.values() if j.task is not None]
        if tasks and grace > 0:
            log.info("waiting up to %.0fs for %d running job(s)", grace, len(tasks))
            await asyncio.wait(tasks, timeout=grace)
        for job in list(self.live.values()):
            await self._pause(job)
        tasks = [j.task for j in self.live.values() if j.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(10.0, 2 * self.config.edit_interval + 5))
            for task in pending:
                task.cancel()

    async def _pause(self, job: LiveJob) -> None:
        self._pausing.add(job.record.job_id)
        try:
            await job.handle.cancel()
        except Exception:
            log.exception("job %s: cancel during shutdown failed", job.record.job_id)

    def status_counts(self) -> dict[str, int]:
        counts = {"queued": 0, "running": 0}
        for entry in self.executor.queue():
            if entry.state in counts:
                counts[entry.state] += 1
        return counts


def interaction_target(interaction: discord.Interaction[Any], config: BotConfig) -> InteractionTarget:
    return InteractionTarget(interaction, lifetime=config.token_lifetime, mention_id=interaction.user.id)
