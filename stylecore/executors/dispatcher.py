"""The `Executor` every backend sits behind: the fair queue, one run in flight per worker slot
(one job or a stack of them), retries, time limits, readiness and shutdown.

A backend only runs stacks of jobs on slots and reports what its workers said (see
`backend.Backend`); every policy lives here, so the process pool and the Ray cluster behave
identically towards the caller. Everything runs on the caller's event loop and never blocks it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from stylecore.convergence import expected_steps
from stylecore.executors.admission import Reservation
from stylecore.executors.backend import Backend, WorkerLost
from stylecore.executors.base import (
    Executor,
    ExecutorClosed,
    ExecutorError,
    Job,
    JobEvent,
    JobHandle,
    QueueEntry,
    WorkersUnavailable,
)
from stylecore.executors.config import ExecutorConfig
from stylecore.executors.handle import Handle
from stylecore.executors.scheduler import Batching, FairScheduler, QueuePlace, StepTimeModel
from stylecore.executors.sizing import size_job
from stylecore.notes import Note

log = logging.getLogger(__name__)

_SHUTDOWN_RUNNING = "shutting down: the job was stopped before it finished"


class Dispatcher(Executor):
    """The `Executor` a caller gets, whatever the backend."""

    def __init__(self, backend: Backend, config: ExecutorConfig) -> None:
        self.backend = backend
        self.config = config
        self.lost_retries = config.lost_retries if config.lost_retries is not None else backend.lost_retries
        self.scheduler = FairScheduler(
            slots=backend.slots,
            max_queue=config.max_queue,
            max_per_user_queued=config.max_per_user_queued,
            max_per_user_running=config.max_per_user_running,
            max_per_user_active=config.max_per_user_active,
            reservation_timeout=config.reservation_timeout,
            model=StepTimeModel(prior_per_mpx=config.step_seconds_per_mpx),
        )
        self.max_batch = max(1, backend.max_batch)
        self.batch_window = config.batch_window or self.max_batch
        self._handles: dict[str, Handle] = {}  # queued and running
        self._finished: OrderedDict[str, Handle] = OrderedDict()
        self._ready: set[int] = set()
        self._failing: dict[int, str] = {}  # slot -> why its last start failed (until it is ready)
        self._lost: dict[int, int] = {}  # slot -> ready workers it lost (for operators' metrics)
        self._memory_used: dict[int, int] = {}  # slot -> its last finished job's JobResult.memory_used
        # slot -> the jobs still running there; the slot stays busy until its run ends, even
        # when every job in its stack has already ended.
        self._busy: dict[int, list[Handle]] = {}
        self._positions: dict[str, int] = {}
        self._closing = False
        self._started = False
        self._closed: asyncio.Event | None = None
        self._hurry = asyncio.Event()
        self._deadline = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._closed = asyncio.Event()
        await self.backend.start(self)
        # Ray counts its GPUs, and learns whether its actors run on them, only when started.
        self.scheduler.slots = self.backend.slots
        self.max_batch = max(1, self.backend.max_batch)
        self.batch_window = self.config.batch_window or self.max_batch

    async def shutdown(self, grace: float = 30.0) -> list[Job]:
        """See Executor.shutdown. Calling it again while a shutdown is under way shortens
        the grace period to the new value (a second Ctrl-C hurries) and returns []."""
        loop = asyncio.get_running_loop()
        if self._closing:
            self._deadline = min(self._deadline, loop.time() + max(0.0, grace))
            self._hurry.set()
            if self._closed is not None:
                await self._closed.wait()
            return []
        self._closing = True
        self._deadline = loop.time() + max(0.0, grace)
        self.backend.stop_respawning()
        never_started: list[Job] = []
        for job_id in self.scheduler.drain():
            h = self._handles[job_id]
            if h.job is not None:
                never_started.append(h.job)
            self._end(h, JobEvent("failed", job_id, reason="shutdown", error="shutting down: the job was not started"))
        # Running jobs may finish until the deadline...
        while True:
            drivers = [h.driver for h in self._running() if h.driver is not None and not h.driver.done()]
            left = self._deadline - loop.time()
            if not drivers or left <= 0:
                break
            self._hurry.clear()
            hurry = asyncio.ensure_future(self._hurry.wait())
            await asyncio.wait([*drivers, hurry], timeout=left, return_when=asyncio.FIRST_COMPLETED)
            hurry.cancel()
        # ...then they are asked to stop, and killed if they do not within kill_grace.
        for h in self._running():
            self._request_stop(h, "shutdown")
        pending = [t for t in self._tasks if not t.done()]
        if pending:  # the watchdogs bound this: stop request, kill, abandon
            await asyncio.wait(pending, timeout=2 * self.config.kill_grace + 5)
        for h in list(self._handles.values()):  # nothing may be left hanging
            self._end(h, JobEvent("failed", h.job_id, reason="shutdown", error=_SHUTDOWN_RUNNING))
        for t in self._tasks:
            t.cancel()
        await self.backend.close()
        if self._closed is not None:
            self._closed.set()
        return never_started

    # -- submission and introspection -----------------------------------------------------

    def reserve(
        self, user_id: str, group: str | None = None, max_active: int | None = None, *, timeout: float | None = None
    ) -> Reservation:
        """See Executor.reserve: cheap, synchronous, nothing awaited."""
        self._check_open()
        return self.scheduler.reserve(user_id, group, max_active, timeout=timeout)

    async def submit(self, job: Job, *, reservation: Reservation | None = None, readmit: bool = False) -> JobHandle:
        """See Executor.submit."""
        self._check_open()
        if job.job_id in self._handles or job.job_id in self._finished:
            raise ValueError(f"job id {job.job_id} was already submitted")
        size = size_job(job, self.config.device)
        h = Handle(job, self._cancel, pixels=size.pixels, stack_key=size.stack_key)
        self.scheduler.add(
            job.job_id,
            job.user_id,
            h.pixels,
            expected_steps(job.options),
            group=job.group,
            max_active=job.max_active,
            reservation=reservation,
            readmit=readmit,
        )
        self._handles[job.job_id] = h
        self._refresh_positions(force={job.job_id})
        self._pump()
        return h

    def _check_open(self) -> None:
        """Refuse new work while the executor cannot take any."""
        if self._closing:
            raise ExecutorClosed("shutting down and not taking new jobs")
        if not self._started:
            raise ExecutorError("the executor was not started")
        why = self._unavailable()
        if why is not None:
            raise WorkersUnavailable(f"no worker is running ({why}); try again in a few minutes")

    def get(self, job_id: str) -> JobHandle | None:
        return self._handles.get(job_id) or self._finished.get(job_id)

    def queue(self) -> list[QueueEntry]:
        out = [
            QueueEntry(h.job_id, h.user_id, "running", None, self._running_left(h), h.meta, h.group)
            for h in self._running()
        ]
        for p in self._plan():
            h = self._handles[p.job_id]
            out.append(QueueEntry(h.job_id, h.user_id, "queued", p.position, p.eta, h.meta, h.group))
        return out

    def workers(self) -> list[dict[str, Any]]:
        out = []
        for info in self.backend.worker_info():
            slot = info.get("slot")
            info = dict(info, lost=self._lost.get(slot, 0))
            if slot in self._memory_used:
                info["memory_used"] = self._memory_used[slot]
            out.append(info)
        return out

    def worker_pids(self) -> list[int]:
        """Pids of the ready workers (for fault tests and ops)."""
        return [int(w["pid"]) for w in self.workers() if w.get("ready") and w.get("pid") is not None]

    def worker_pid(self, job_id: str) -> int | None:
        """Pid of the worker running `job_id` (None unless it is running)."""
        h = self._handles.get(job_id)
        if h is None or h.state != "running" or h.slot is None:
            return None
        return next((int(w["pid"]) for w in self.workers() if w.get("slot") == h.slot and w.get("ready")), None)

    @property
    def slots(self) -> int:
        return self.backend.slots

    # -- what the backend says about its slots (backend.SlotListener) ---------------------

    def slot_ready(self, slot: int) -> None:
        self._ready.add(slot)
        self._failing.pop(slot, None)
        self._pump()

    def slot_lost(self, slot: int) -> None:
        self._ready.discard(slot)
        self._lost[slot] = self._lost.get(slot, 0) + 1
        self._memory_used.pop(slot, None)  # a new process will hold its own

    def slot_failed(self, slot: int, why: str) -> None:
        """A (re)start failed; the backend retries it. When every slot is failing, queued jobs
        would wait for a worker that may never come: they end now instead."""
        log.warning("worker slot %s failed to start: %s", slot, why)
        self._ready.discard(slot)
        self._failing[slot] = why
        why_all = self._unavailable()
        if why_all is None:
            return
        for job_id in self.scheduler.drain():
            self._end(
                self._handles[job_id],
                JobEvent("failed", job_id, reason="no_worker", error=f"no worker could start ({why_all})"),
            )

    def _unavailable(self) -> str | None:
        """Why no job can run now (no worker is ready and every slot's last start failed)."""
        if self._ready or not self._failing or set(self._failing) < set(range(self.backend.slots)):
            return None
        return self._failing[max(self._failing)]

    # -- internals ------------------------------------------------------------------------

    def _background(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _running_left(self, h: Handle) -> float:
        """Seconds a running job has left if it takes its expected steps (a run that may stop
        early is not charged its whole cap; one already past them needs at least one more window)."""
        steps = expected_steps(h.job.options, h.step) if h.job is not None else h.total
        if h.step > 0 and h.elapsed > 0:
            return max(0.0, (steps - h.step) * h.elapsed / h.step)
        return self.scheduler.model.job_seconds(h.pixels, steps)

    def _plan(self) -> list[QueuePlace]:
        """Queued jobs' positions and ETAs, foreseeing the stacks this executor will form."""
        batching = None
        if self.max_batch > 1:
            batching = Batching(lambda jid: self._handles[jid].stack_key, self.max_batch, self.batch_window)
        groups = [[h.job_id for h in hs] for hs in self._busy.values()]
        lefts = {h.job_id: self._running_left(h) for h in self._running()}
        return self.scheduler.plan(lefts, running_groups=groups, batching=batching)

    def _running(self) -> list[Handle]:
        return [h for hs in self._busy.values() for h in hs]

    def _refresh_positions(self, force: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        """Tell queued jobs whose position changed (and new ones) where they stand."""
        positions = {}
        for p in self._plan():
            positions[p.job_id] = p.position
            h = self._handles[p.job_id]
            if p.job_id in force or self._positions.get(p.job_id) != p.position or h.queue_note:
                h.publish(JobEvent("queued", p.job_id, position=p.position, eta=p.eta, note=h.queue_note))
                h.queue_note = None
        self._positions = positions

    def _pump(self) -> None:
        """Start queued jobs on free warm slots: one run in flight per slot, holding one job
        or, where the backend stacks jobs, up to `max_batch` with the same stack key."""
        changed = False
        while not self._closing:
            free = sorted(self._ready - set(self._busy))
            if not free:
                break
            job_id = self.scheduler.pick()
            if job_id is None:
                break
            hs = [self._handles[job_id]]
            key = hs[0].stack_key
            if self.max_batch > 1 and key is not None:
                more = self.scheduler.pick_more(
                    lambda jid, k=key: self._handles[jid].stack_key == k, self.max_batch - 1, self.batch_window
                )
                hs += [self._handles[jid] for jid in more]
            slot = free[0]
            self._busy[slot] = list(hs)
            for h in hs:
                h.slot = slot
                h.state = "running"
                h.attempts += 1
                h.step = 0
                h.elapsed = 0.0
            driver = self._background(self._drive(slot, hs))
            for h in hs:
                h.driver = driver
            changed = True
        if changed:
            self._refresh_positions()

    def _on_worker_event(self, h: Handle, ev: JobEvent) -> None:
        if h.ended or h.state != "running":
            return
        if ev.terminal:  # a job leaving a stack early: it ends now, the others go on
            self._settle(h, ev, None)
            self._refresh_positions()
            self._pump()
            return
        if ev.kind == "progress" and ev.step is not None:
            h.step = ev.step
            h.total = ev.total or h.total
            h.elapsed = ev.elapsed or h.elapsed
        elif ev.kind == "started":
            h.step, h.elapsed = 0, 0.0
            h.total = ev.total or h.total
        h.publish(ev)

    async def _drive(self, slot: int, hs: list[Handle]) -> None:
        """Run one attempt of a stack (often of one job) on a slot and turn what happened into
        each job's next state: every job's terminal event arrives through `emit`, so what is
        left when the run is over was lost with its worker or never answered."""
        by_id = {h.job_id: h for h in hs}

        def emit(ev: JobEvent) -> None:
            h = by_id.get(ev.job_id)
            if h is not None:
                self._on_worker_event(h, ev)

        # (The backend drops the jobs once its worker has them: an ended job's inputs go.)
        run = asyncio.ensure_future(self.backend.run(slot, [h.job for h in hs if h.job is not None], emit))
        for h in hs:
            h.run_task = run
        for h in hs:
            if h.stop_reason is not None:  # stopped between pick and start (shutdown)
                self._request_stop(h, h.stop_reason)
        await asyncio.wait({run}, timeout=self.config.job_timeout)
        if not run.done():
            for h in hs:
                if not h.ended:
                    self._request_stop(h, "timeout")
            await asyncio.wait({run})
        lost: str | None = None
        broken: str | None = None
        try:
            run.result()
        except WorkerLost as e:
            lost = str(e) or "the worker stopped"
        except asyncio.CancelledError:  # abandoned by the watchdog
            lost = "the worker stopped responding"
        except Exception as e:
            log.exception("backend failed running job(s) %s", list(by_id))
            broken = f"internal error: {e}"
        self._busy.pop(slot, None)
        for h in hs:
            if not h.ended and h.state == "running":
                self._settle(h, None, lost, broken)
        self._refresh_positions()
        self._pump()

    def _settle(self, h: Handle, outcome: JobEvent | None, lost: str | None, broken: str | None = None) -> None:
        """A running job's attempt is over: end it, or queue it again after a lost worker."""
        if h.watchdog is not None:
            h.watchdog.cancel()
            h.watchdog = None
        h.run_task = None
        running = self._busy.get(h.slot) if h.slot is not None else None
        if running is not None and h in running:
            running.remove(h)
        where = {"step": h.step, "total": h.total}
        if outcome is not None and outcome.kind == "done":
            final = outcome
        elif h.stop_reason == "user":
            step = outcome.step if outcome is not None and outcome.step is not None else h.step
            final = JobEvent("cancelled", h.job_id, step=step, total=h.total)
        elif h.stop_reason == "timeout":
            limit = f"the job ran longer than the {self.config.job_timeout:g} s limit and was stopped"
            final = JobEvent("failed", h.job_id, **where, reason="timeout", error=limit)
        elif h.stop_reason == "shutdown":
            final = JobEvent("failed", h.job_id, **where, reason="shutdown", error=_SHUTDOWN_RUNNING)
        elif lost is not None:
            if h.attempts <= self.lost_retries and not self._closing:
                h.state = "queued"
                h.queue_note = Note.of("worker_lost_retry")
                self.scheduler.requeue_front(h.job_id)
                if (why := self._unavailable()) is not None:  # nothing left to retry it on
                    self.scheduler.remove(h.job_id)
                    final = JobEvent("failed", h.job_id, reason="no_worker", error=f"no worker could start ({why})")
                    self._end(h, final)
                return
            retried = "; it was already retried once" if h.attempts > 1 else ""
            error = f"the worker running the job stopped unexpectedly (worker lost){retried}"
            final = JobEvent("failed", h.job_id, **where, reason="worker_lost", error=error)
        elif outcome is not None:
            final = outcome
        else:
            error = broken or "internal error: the worker returned no result for this job"
            final = JobEvent("failed", h.job_id, **where, reason="internal", error=error)
        result = final.result
        if result is not None:
            self.scheduler.finish(h.job_id, seconds=result.seconds, steps=result.steps)
            if result.memory_used is not None and h.slot is not None:
                self._memory_used[h.slot] = result.memory_used
        else:  # a partial run still says how fast this size goes
            self.scheduler.finish(h.job_id, seconds=h.elapsed or None, steps=h.step or None)
        self._end(h, final)

    def _request_stop(self, h: Handle, reason: str) -> None:
        """Ask the worker to stop this job at its next step; kill the worker if it does not
        within kill_grace."""
        if h.stop_reason is None:
            h.stop_reason = reason
        if h.slot is None or h.run_task is None or h.run_task.done() or h.ended:
            return
        try:
            self.backend.request_cancel(h.slot, h.job_id)
        except Exception:
            log.exception("cancel request for %s failed", h.job_id)
        if h.watchdog is None:
            h.watchdog = self._background(self._watchdog(h, h.slot, h.run_task))

    async def _watchdog(self, h: Handle, slot: int, run: asyncio.Task[Any]) -> None:
        """Escalate: stop request, then kill, then give up on the worker's answer.

        Waits for this job's own end, not the run's: in a stack the others rightly go on.
        """
        ended = h.end_future
        done, _ = await asyncio.wait({run, ended}, timeout=self.config.kill_grace, return_when=asyncio.FIRST_COMPLETED)
        if done:
            return
        log.warning("worker on slot %s ignored a stop request; killing it", slot)
        try:
            await self.backend.kill(slot)
        except Exception:
            log.exception("killing the worker on slot %s failed", slot)
        done, _ = await asyncio.wait({run, ended}, timeout=self.config.kill_grace, return_when=asyncio.FIRST_COMPLETED)
        if not done:  # the backend could not even tell us the worker died: end the job anyway
            log.error("worker on slot %s did not go away after a kill; abandoning its job", slot)
            run.cancel()

    def _cancel(self, h: Handle) -> bool:
        if h.state == "queued":
            if not self.scheduler.remove(h.job_id):
                return False
            self._end(h, JobEvent("cancelled", h.job_id))
            self._refresh_positions()
            return True
        if h.state == "running":
            if h.stop_reason is not None:
                return h.stop_reason == "user"
            self._request_stop(h, "user")
            return True
        return False

    def _end(self, h: Handle, ev: JobEvent) -> None:
        if h.ended:  # already ended (e.g. by shutdown's safety net): first end wins
            return
        h.publish(ev)
        self._handles.pop(h.job_id, None)
        self._positions.pop(h.job_id, None)
        self._finished[h.job_id] = h
        while len(self._finished) > self.config.keep_finished:
            self._finished.popitem(last=False)


__all__ = ["Dispatcher"]
