"""The stylize feature's only door to the executor: admission, queueing, cancel, restart.

Every request passes `admission` once: it is refused there (restart under way, the member's
quota, the cooldown) or holds the member's place until its job is stored, so requests still
downloading count against the quota and two at once cannot both slip through. `submit`
writes the job's row and inputs before queueing (so a crash loses nothing) and hands the job
to a `JobFollower`, which turns its events into edits of one message. `recover` re-queues
what a previous process left unfinished; `drain` is the SIGTERM path: stop taking jobs, let
running ones finish within a grace period, leave the rest queued in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord

from bot import messages
from bot.checks import can_manage_job
from bot.cogs.stylize.follower import JobFollower
from bot.cogs.stylize.progress import ChannelTarget, Frame, MessageTarget
from bot.db import ACTIVE_STATES, Database, JobRecord
from bot.errors import JobNotFound, NotYourJob, OnCooldown, ShuttingDown, TooManyJobs
from bot.guild_settings import GuildSettings
from stylecore.executors.base import Executor, ExecutorError, Job, JobEvent, QueueEntry, UserLimitReached
from stylecore.options import StyleOptions

if TYPE_CHECKING:
    from bot.config import BotConfig
    from bot.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Admission:
    """A member's place, held from the quota check until the job's row exists or the request ends."""

    settings: GuildSettings
    guild_id: int | None
    owner_id: int
    job_id: str | None = None  # once its row is being written
    held: bool = True


class JobService:
    def __init__(
        self,
        client: discord.Client,
        db: Database,
        executor: Executor,
        config: BotConfig,
        base_settings: GuildSettings,
        metrics: Metrics | None = None,
    ) -> None:
        self.client = client
        self.db = db
        self.executor = executor
        self.config = config
        self.base_settings = base_settings
        self.metrics = metrics
        self.followers: dict[str, JobFollower] = {}
        self.accepting = True
        self._admitted: defaultdict[tuple[int | None, int], list[Admission]] = defaultdict(list)
        self._admitting = asyncio.Lock()  # one quota check at a time: two requests can't both slip in

    async def settings_for(self, guild_id: int | None) -> GuildSettings:
        """A server's settings; in DMs the bot-wide defaults."""
        return await self.db.guild_settings(guild_id, self.base_settings)

    # -- admission --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def admission(self, settings: GuildSettings, guild_id: int | None, owner_id: int) -> AsyncIterator[Admission]:
        """Check the request once, then hold the member's place while it is downloaded and queued."""
        if not self.accepting:
            raise ShuttingDown(messages.RESTARTING)
        key = (guild_id, owner_id)
        async with self._admitting:
            await self._check_member_quota(settings, guild_id, owner_id, self._admitted.get(key, []))
            ticket = Admission(settings, guild_id, owner_id)
            self._admitted[key].append(ticket)
        try:
            yield ticket
        finally:
            self._release(ticket)

    def _release(self, ticket: Admission) -> None:
        if ticket.held:
            ticket.held = False
            key = (ticket.guild_id, ticket.owner_id)
            self._admitted[key].remove(ticket)
            if not self._admitted[key]:
                del self._admitted[key]

    async def _check_member_quota(
        self, settings: GuildSettings, guild_id: int | None, owner_id: int, admitted: list[Admission]
    ) -> None:
        """This server's per-member job limit and cooldown, from the database so they hold across
        restarts, counting the member's `admitted` requests that have no row yet (still downloading).
        (The executor keeps its own per-user limit; `submit` words its refusal the same way.)"""
        active = await self.db.jobs_in(ACTIVE_STATES, guild_id=guild_id, owner_id=owner_id)
        stored = {r.job_id for r in active}
        pending = sum(1 for a in admitted if a.job_id not in stored)
        if len(active) + pending >= settings.max_jobs_per_user:
            ids = [r.job_id for r in active]
            raise TooManyJobs(messages.too_many_jobs(ids, settings.max_jobs_per_user, starting=pending))
        if settings.cooldown_seconds <= 0:
            return
        last = time.time() if pending else await self.db.last_job_time(guild_id, owner_id)
        left = 0.0 if last is None else last + settings.cooldown_seconds - time.time()
        if left > 0:
            raise OnCooldown(messages.cooldown(left, settings.cooldown_seconds), left)

    # -- submission -------------------------------------------------------------------------

    async def submit(
        self, record: JobRecord, inputs: tuple[bytes, bytes], target: MessageTarget, admission: Admission
    ) -> JobRecord:
        """Store, then queue; a refusal by the executor removes the row again and propagates."""
        if not self.accepting:
            raise ShuttingDown(messages.RESTARTING)
        admission.job_id = record.job_id
        await self.db.add_job(record, *inputs, ttl=self.config.inputs_ttl)
        self._release(admission)  # the row counts from now on
        try:
            follower = await self._queue(record, inputs, target, admission.settings.preview_interval)
        except UserLimitReached:
            await self.db.delete_job(record.job_id)
            waiting = [e.job_id for e in self.executor.jobs_for(str(record.owner_id))]
            raise TooManyJobs(messages.too_many_jobs(waiting)) from None
        except ExecutorError:
            await self.db.delete_job(record.job_id)
            raise
        log.info(
            "job %s queued for user %s in channel %s (%s)",
            record.job_id,
            record.owner_id,
            record.channel_id,
            messages.settings_line(record.options),
        )
        follower.start()
        return record

    async def _queue(
        self,
        record: JobRecord,
        inputs: tuple[bytes, bytes],
        target: MessageTarget,
        preview_interval: float,
        note: str | None = None,
    ) -> JobFollower:
        options = StyleOptions.from_dict(record.options)
        meta = {"guild_id": record.guild_id, "channel_id": record.channel_id, "owner_id": record.owner_id}
        job = Job(
            content=inputs[0],
            styles=(inputs[1],),
            options=options,
            user_id=str(record.owner_id),
            job_id=record.job_id,
            meta=meta,
        )
        handle = await self.executor.submit(job)
        follower = JobFollower(self, record, handle, target, preview_interval=preview_interval, note=note)
        self.followers[record.job_id] = follower
        return follower

    def forget(self, job_id: str) -> None:
        """A follower is done with its job."""
        self.followers.pop(job_id, None)

    async def set_state(
        self,
        record: JobRecord,
        state: str,
        *,
        seconds: float | None = None,
        error: str | None = None,
        reason: str | None = None,
    ) -> None:
        """A job's final state in its row and in the metrics (`reason`: why it failed)."""
        record.state = state
        await self.db.update_job(record.job_id, state=state, finished_at=time.time(), seconds=seconds, error=error)
        if self.metrics is not None:
            self.metrics.finished(state, reason)

    # -- control ----------------------------------------------------------------------------

    async def cancel_by(
        self, job_id: str, user_id: int, perms: discord.Permissions | None, guild_id: int | None = None
    ) -> JobRecord:
        """Cancel for its owner, or for a moderator in the job's own server."""
        record = await self.db.get_job(job_id)
        if record is None:
            raise JobNotFound(messages.unknown_job(job_id))
        same_place = guild_id is None or record.guild_id == guild_id
        if not (user_id == record.owner_id or (same_place and can_manage_job(user_id, perms, record.owner_id))):
            raise NotYourJob(messages.NOT_YOUR_JOB)
        follower = self.followers.get(job_id)
        if record.state not in ACTIVE_STATES or (follower is not None and follower.ended):
            raise JobNotFound(messages.already_finished(job_id, record.state))
        if follower is None:
            # A row with no running job behind it (its process died): settle it here.
            await self.set_state(record, "cancelled")
            if record.message_id:
                target = ChannelTarget(self.client, record.channel_id, record.message_id)
                with contextlib.suppress(discord.HTTPException):
                    await target.edit(Frame(messages.cancelled(job_id, record.options, user_id)))
            return record
        if not await follower.cancel(by=user_id):
            raise JobNotFound(messages.already_finished(job_id))
        return record

    async def active_jobs(self, guild_id: int | None, owner_id: int | None) -> list[JobRecord]:
        """Queued and running jobs, oldest first; `owner_id` None for everyone's."""
        return await self.db.jobs_in(ACTIVE_STATES, guild_id=guild_id, owner_id=owner_id)

    def queue(self, guild_id: int | None = None) -> list[tuple[QueueEntry, JobEvent | None]]:
        """The executor's order (running first) with each job's latest event, limited to one server."""
        out = []
        for entry in self.executor.queue():
            if guild_id is not None and entry.meta.get("guild_id") != guild_id:
                continue
            follower = self.followers.get(entry.job_id)
            out.append((entry, follower.last if follower else None))
        return out

    def workers(self) -> list[dict[str, Any]]:
        """The executor's workers as operators see them (see `Executor.workers`)."""
        return self.executor.workers()

    def status_counts(self) -> dict[str, int]:
        counts = {"queued": 0, "running": 0}
        for entry in self.executor.queue():
            if entry.state in counts:
                counts[entry.state] += 1
        return counts

    # -- restart ----------------------------------------------------------------------------

    async def recover(self) -> int:
        """Re-queue jobs a previous process left queued or running; tell owners when impossible."""
        count = 0
        for record in await self.db.jobs_in(ACTIVE_STATES):
            if record.job_id in self.followers:
                continue
            target = ChannelTarget(self.client, record.channel_id, record.message_id, mention_id=record.owner_id)
            inputs = await self.db.get_inputs(record.job_id, include_expired=True)
            reason = None
            if inputs is None:
                reason = messages.INPUTS_LOST_IN_RESTART
            else:
                settings = await self.settings_for(record.guild_id)
                try:
                    follower = await self._queue(
                        record, inputs, target, settings.preview_interval, note=messages.RESUMED_AFTER_RESTART
                    )
                except Exception as exc:
                    log.warning("job %s: could not re-queue after restart: %s", record.job_id, exc)
                    reason = messages.requeue_failed(exc)
            if reason is not None:
                await self.set_state(record, "failed", error=f"recovery: {reason}", reason="recovery")
                try:
                    await target.edit(Frame(messages.failed(record.job_id, record.options, reason)))
                except discord.HTTPException:
                    log.exception("job %s: could not tell the owner about the lost job", record.job_id)
                continue
            record.state, record.started_at = "queued", None
            await self.db.update_job(record.job_id, state="queued", started_at=None)
            follower.start()
            log.info("job %s re-queued after restart", record.job_id)
            count += 1
        return count

    async def drain(self, grace: float) -> None:
        """Stop taking jobs; give running ones `grace` seconds; pause the rest for the next start."""
        self.accepting = False
        if not self.followers:
            return
        for follower in [f for f in self.followers.values() if f.handle.state == "queued"]:
            await follower.pause()
        tasks = [f.task for f in self.followers.values() if f.task is not None]
        if tasks and grace > 0:
            log.info("waiting up to %.0fs for %d running job(s)", grace, len(tasks))
            await asyncio.wait(tasks, timeout=grace)
        for follower in list(self.followers.values()):
            await follower.pause()
        tasks = [f.task for f in self.followers.values() if f.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=max(10.0, 2 * self.config.edit_interval + 5))
            for task in pending:
                task.cancel()
