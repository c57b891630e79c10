"""The stylize feature's only door to the executor: admission, queueing, cancel, restart.

Every request passes `admission` once, before anything is downloaded: it is refused there
(restart under way, the cooldown, or the executor's refusal: a member's limit in this server or
across all of them, or a full queue) or it gets a `Reservation`, a place in the executor's queue
held while its images are downloaded and checked, so requests still in progress count against
the member's quota. The executor is the one owner of those limits; the bot passes neutral keys
(the member, the server as the group, the server's own limit) and words the refusal.
`submit` writes the job's row and inputs before queueing (so a crash loses nothing) and hands
the job to a `JobFollower`, which turns its events into edits of one message. `recover`
re-queues what a previous process left unfinished; `drain` is the SIGTERM path: stop taking
jobs, let running ones finish within a grace period, leave the rest queued in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord

from bot import messages
from bot.blocklist import Blocklist
from bot.checks import can_manage_job, permissions_where_job_lives
from bot.cogs.stylize.delivery import find_delivered
from bot.cogs.stylize.follower import JobFollower
from bot.cogs.stylize.progress import ChannelTarget, Frame, MessageTarget
from bot.db import ACTIVE_STATES, Database, JobRecord
from bot.errors import JobNotFound, NotYourJob, OnCooldown, ShuttingDown, TooManyJobs
from bot.guild_settings import Ceilings, GuildSettings
from stylecore.executors.base import (
    Executor,
    ExecutorClosed,
    ExecutorError,
    Job,
    JobEvent,
    QueueEntry,
    UserLimitReached,
    WorkersUnavailable,
)
from stylecore.options import StyleOptions

if TYPE_CHECKING:
    from bot.cogs.stylize.uploads import Uploads
    from bot.config import BotConfig
    from bot.metrics import Metrics
    from stylecore.executors.admission import Reservation

log = logging.getLogger(__name__)

# Seconds between attempts to re-queue stored jobs while no worker can start, doubling up to the cap.
RECOVERY_RETRY = 1.0
RECOVERY_RETRY_MAX = 30.0


def group_of(guild_id: int | None) -> str | None:
    """The executor's group for a job: its server (DMs are a group of their own)."""
    return str(guild_id) if guild_id is not None else None


def limit_refusal(err: UserLimitReached, guild_id: int | None) -> TooManyJobs:
    """The executor's refusal, worded for the member from its facts."""
    where = "everywhere" if err.scope == "everywhere" else ("server" if guild_id is not None else "dm")
    text = messages.too_many_jobs(
        err.job_ids, err.limit, where=where, waiting=err.counts == "waiting", starting=err.pending
    )
    return TooManyJobs(text)


# Seconds after the grace period that pausing the remaining jobs may take (their rows are written
# at once; their messages get one short try). See StyleBot.close for the whole shutdown's budget.
SETTLE = 3.0


@dataclass(eq=False)
class Admission:
    """A request let in: the server's settings, and its place in the queue until its job is submitted."""

    settings: GuildSettings
    place: Reservation


class JobService:
    def __init__(
        self,
        client: discord.Client,
        db: Database,
        executor: Executor,
        config: BotConfig,
        base_settings: GuildSettings,
        metrics: Metrics | None = None,
        *,
        uploads: Uploads,
        ceilings: Ceilings | None = None,
        blocks: Blocklist | None = None,
    ) -> None:
        self.client = client
        self.blocks = blocks or Blocklist()  # the operator's blocks, checked before anything else
        self.db = db
        self.executor = executor
        self.config = config
        self.base_settings = base_settings
        self.ceilings = ceilings
        self.metrics = metrics
        self.uploads = uploads
        self.followers: dict[str, JobFollower] = {}
        self._draining = asyncio.Event()  # set when a shutdown begins: no job is taken after that
        # When each member's request in progress was let in (no row yet): the cooldown counts from
        # then, so a second request cannot slip in while the first one downloads.
        self._requested_at: dict[tuple[int | None, int], float] = {}
        self._recovery: asyncio.Task[None] | None = None

    @property
    def accepting(self) -> bool:
        return not self._draining.is_set()

    async def settings_for(self, guild_id: int | None) -> GuildSettings:
        """A server's settings within the operator's ceilings; in DMs the bot-wide defaults."""
        return await self.db.guild_settings(guild_id, self.base_settings, self.ceilings)

    # -- admission --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def admission(self, settings: GuildSettings, guild_id: int | None, owner_id: int) -> AsyncIterator[Admission]:
        """Check the request once, before anything is downloaded, and hold its place in the queue
        until `submit` (or the end of the block gives it back)."""
        if not self.accepting:
            raise ShuttingDown(messages.RESTARTING)
        key = (guild_id, owner_id)
        last = None
        if settings.cooldown_seconds > 0:
            last = await self.db.last_job_time(guild_id, owner_id)
        # Nothing is awaited from here until the request is stamped: two requests cannot both pass.
        last = max((t for t in (last, self._requested_at.get(key)) if t is not None), default=None)
        left = 0.0 if last is None else last + settings.cooldown_seconds - time.time()
        if left > 0:
            raise OnCooldown(messages.cooldown(left, settings.cooldown_seconds), left)
        try:
            place = self.executor.reserve(str(owner_id), group_of(guild_id), settings.max_jobs_per_user)
        except UserLimitReached as err:
            raise limit_refusal(err, guild_id) from None
        stamp = self._requested_at[key] = time.time()
        try:
            with place:
                yield Admission(settings, place)
        finally:
            if self._requested_at.get(key) == stamp:
                del self._requested_at[key]

    async def fetch_inputs(self, items: Sequence[tuple[discord.Attachment, str]], member_id: int) -> list[bytes]:
        """A request's images (`Uploads.fetch_all`), given up as soon as a shutdown begins: the
        request could no longer be queued, so its member is told now, while the bot can still
        answer, rather than after downloads and checks that may outlast the shutdown."""
        fetch = asyncio.ensure_future(self.uploads.fetch_all(items, member_id))
        draining = asyncio.ensure_future(self._draining.wait())
        try:
            await asyncio.wait({fetch, draining}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            draining.cancel()
            if not fetch.done():
                fetch.cancel()
                await asyncio.wait({fetch})  # a cancelled check ends once its child process is killed
        if fetch.cancelled():
            raise ShuttingDown(messages.RESTARTING)
        return fetch.result()

    # -- submission -------------------------------------------------------------------------

    async def submit(
        self, record: JobRecord, inputs: tuple[bytes, ...], target: MessageTarget, admission: Admission
    ) -> JobRecord:
        """Store, then queue in the admission's place; a refusal by the executor (the place
        expired and the job no longer fits) removes the row again and propagates."""
        if not self.accepting:
            raise ShuttingDown(messages.RESTARTING)
        await self.db.add_job(record, *inputs, ttl=self.config.inputs_ttl)
        try:
            follower = await self._queue(record, inputs, target, admission.settings, reservation=admission.place)
        except UserLimitReached as err:
            await self.db.delete_job(record.job_id)
            raise limit_refusal(err, record.guild_id) from None
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
        inputs: tuple[bytes, ...],
        target: MessageTarget,
        settings: GuildSettings,
        *,
        reservation: Reservation | None = None,
        readmit: bool = False,
        note: str | None = None,
    ) -> JobFollower:
        options = StyleOptions.from_dict(record.options)
        meta = {"guild_id": record.guild_id, "channel_id": record.channel_id, "owner_id": record.owner_id}
        job = Job(
            content=inputs[0],
            styles=inputs[1:],
            options=options,
            user_id=str(record.owner_id),
            job_id=record.job_id,
            meta=meta,
            group=group_of(record.guild_id),
            max_active=settings.max_jobs_per_user,
        )
        handle = await self.executor.submit(job, reservation=reservation, readmit=readmit)
        follower = JobFollower(self, record, handle, target, preview_interval=settings.preview_interval, note=note)
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

    async def cancel_by(self, job_id: str, user: discord.abc.User) -> JobRecord:
        """Cancel for its owner, or for someone with Manage Messages in the job's own channel."""
        record = await self._job_for(job_id, user, messages.unknown_job(job_id), messages.NOT_YOUR_JOB)
        follower = self.followers.get(job_id)
        if follower is not None and follower.ended:
            # Its end is known but still being delivered (the row says so only once it is shown).
            raise JobNotFound(messages.already_finished(job_id, follower.last.kind if follower.last else None))
        if record.state not in ("queued", "running"):
            shown = record.state if record.state not in ACTIVE_STATES else None
            raise JobNotFound(messages.already_finished(job_id, shown))
        if follower is None:
            # A row with no running job behind it (its process died): settle it here.
            await self.set_state(record, "cancelled")
            if record.message_id:
                target = ChannelTarget(self.client, record.channel_id, record.message_id)
                with contextlib.suppress(discord.HTTPException):
                    await target.edit(Frame(messages.cancelled(job_id, record.options, user.id)))
            return record
        if not await follower.cancel(by=user.id):
            raise JobNotFound(messages.already_finished(job_id))
        return record

    async def _job_for(self, job_id: str, user: discord.abc.User, missing: str, not_yours: str) -> JobRecord:
        """The job's row, if `user` may act on it: its owner, or someone with Manage Messages in
        the job's own channel (not where they ask from)."""
        record = await self.db.get_job(job_id)
        if record is None:
            raise JobNotFound(missing)
        if user.id != record.owner_id:
            perms = await permissions_where_job_lives(self.client, user, record.guild_id, record.channel_id)
            if not can_manage_job(user.id, perms, record.owner_id):
                raise NotYourJob(not_yours)
        return record

    async def delete_result(self, job_id: str, user: discord.abc.User, message: discord.Message | None) -> None:
        """A result deleted with its 🗑️ button, by its owner or by someone with Manage Messages in its
        channel: the stored images go first (nothing can run from them again, and More/Less/Re-run
        say so), then the message (`message`, or the one the row names)."""
        record = await self._job_for(job_id, user, messages.forgotten_job(job_id), messages.NOT_YOUR_RESULT)
        await self.db.delete_inputs(job_id)
        if message is None and record.message_id is not None:
            message = self.client.get_partial_messageable(record.channel_id).get_partial_message(record.message_id)  # type: ignore[assignment]
        if message is not None:
            with contextlib.suppress(discord.NotFound):
                await message.delete()
        log.info("job %s: result and images deleted by %s", job_id, user.id)

    async def take_down(self, job_id: str, by: int, reason: str | None = None) -> bool:
        """The operator removes a job: a job not over yet is cancelled first; then its message is
        deleted, its stored images dropped and its row marked "removed" (so its buttons say so).
        Returns whether a message was deleted (False: it was already gone)."""
        record = await self.db.get_job(job_id)
        if record is None:
            raise JobNotFound(messages.unknown_job(job_id))
        follower = self.followers.get(job_id)
        if follower is not None:
            await follower.cancel(by=by)
            if follower.task is not None:
                await asyncio.wait({follower.task}, timeout=30.0)
            record = await self.db.get_job(job_id) or record
        deleted = False
        if record.message_id is not None:
            message = self.client.get_partial_messageable(record.channel_id).get_partial_message(record.message_id)
            try:
                await message.delete()
                deleted = True
            except discord.NotFound:
                pass
        await self.db.update_job(job_id, state="removed", error=f"taken down by {by}: {reason or 'no reason given'}")
        log.warning("job %s taken down by operator %s (%s)", job_id, by, reason or "no reason given")
        return deleted

    async def stop_jobs(
        self, *, owner_id: int | None = None, guild_id: int | None = None, quiet: bool = False, wait: float = 30.0
    ) -> int:
        """Cancel every queued or running job of a member (everywhere) or of a server, and wait up to
        `wait` seconds for each to end, so that what is stored about them can then be deleted at once.
        `quiet`: their messages are not edited (the bot has left the server they are in). Returns
        how many were stopped."""
        assert owner_id is not None or guild_id is not None, "everyone's jobs are never stopped at once"
        stopped = 0
        tasks = []
        for record in await self.db.jobs_in(ACTIVE_STATES):
            if (owner_id is not None and record.owner_id != owner_id) or (
                guild_id is not None and record.guild_id != guild_id
            ):
                continue
            follower = self.followers.get(record.job_id)
            if follower is None:
                await self.set_state(record, "cancelled")
            else:
                follower.quiet = quiet
                await follower.cancel(by=record.owner_id)
                if follower.task is not None:
                    tasks.append(follower.task)
            stopped += 1
        if tasks:
            await asyncio.wait(tasks, timeout=wait)
        return stopped

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
        """Re-queue jobs a previous process left queued or running; tell owners when impossible.

        They were accepted, so they go back whatever the queue's size or the members' limits
        (`readmit`). While no worker can start they stay queued in the database and are tried
        again in the background, never failed for it. A job caught while its result was being posted
        ("delivering") is looked for in Discord first: found, it is done; not found, it runs again
        (its message is edited, not duplicated). Returns how many went back now."""
        count, waiting = await self._requeue_stored()
        if waiting and (self._recovery is None or self._recovery.done()):
            self._recovery = asyncio.create_task(self._retry_recovery(), name="stylize-recovery")
        return count

    async def _retry_recovery(self) -> None:
        delay = RECOVERY_RETRY
        while self.accepting:
            await asyncio.sleep(delay)
            try:
                count, waiting = await self._requeue_stored()
            except Exception:
                log.exception("re-queueing jobs from before the restart failed")
                count, waiting = 0, True
            if count:
                log.info("re-queued %d job(s) from before the restart", count)
            if not waiting:
                return
            delay = min(RECOVERY_RETRY_MAX, delay * 2)

    async def _requeue_stored(self) -> tuple[int, bool]:
        """(jobs re-queued, whether some must wait for a worker)."""
        count = 0
        for record in await self.db.jobs_in(ACTIVE_STATES):
            if record.job_id in self.followers or not self.accepting:
                continue
            if record.state == "delivering" and await self._delivered_before(record):
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
                        record, inputs, target, settings, readmit=True, note=messages.RESUMED_AFTER_RESTART
                    )
                except (WorkersUnavailable, ExecutorClosed) as exc:
                    log.warning("jobs from before the restart wait for a worker (%s)", exc)
                    return count, True
                except Exception as exc:
                    log.warning("job %s: could not re-queue after restart: %s", record.job_id, exc)
                    reason = messages.requeue_failed(exc)
            if reason is not None:
                await self.set_state(record, "failed", error=f"recovery: {reason}", reason="recovery")
                try:
                    await target.edit(Frame(messages.failed(record.job_id, record.options, reason)))
                except Exception as exc:
                    log.warning("job %s: could not tell the owner about the lost job (%s)", record.job_id, exc)
                continue
            record.state, record.started_at = "queued", None
            await self.db.update_job(record.job_id, state="queued", started_at=None)
            follower.start()
            log.info("job %s re-queued after restart", record.job_id)
            count += 1
        return count, False

    async def _delivered_before(self, record: JobRecord) -> bool:
        """Whether the result of a job that was being posted when the bot stopped is in Discord; if so
        its row is marked done. When Discord cannot be asked, the job runs again: its own message is
        edited, so at worst the picture is made twice, never lost."""
        since = (record.finished_at or record.created_at) - 60
        try:
            found = await find_delivered(self.client, record.channel_id, record.message_id, record.job_id, since=since)
        except Exception as exc:
            log.warning("job %s: could not check whether its result was delivered (%s)", record.job_id, exc)
            return False
        if found is None:
            log.info("job %s: its result never reached Discord; running it again", record.job_id)
            return False
        record.message_id = found
        await self.db.update_job(record.job_id, message_id=found)
        await self.set_state(record, "done")
        log.info("job %s: its result was delivered (message %s) before the restart", record.job_id, found)
        return True

    async def drain(self, grace: float, settle: float = SETTLE) -> None:
        """Stop taking jobs; give running ones `grace` seconds; pause the rest for the next start.

        Pausing writes each row first and then tells its message once, briefly; after `settle`
        seconds whatever is still talking to Discord is cancelled, so a Discord that does not
        answer cannot hold the shutdown past `grace + settle`.
        """
        self._draining.set()
        if self._recovery is not None:
            self._recovery.cancel()
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
            _, pending = await asyncio.wait(tasks, timeout=settle)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("stopped %d job(s) still talking to Discord after the grace period", len(pending))
                await asyncio.wait(pending, timeout=1.0)
