"""The asyncio half both backends share: handles, event fan-out, the fair queue, one job in
flight per worker slot, retries, time limits and shutdown.

A backend only has to run one job on one slot and report what the worker said; every
policy lives here, so the process pool and the Ray cluster behave identically towards the
bot. Everything runs on the caller's event loop and never blocks it.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import io
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from stylecore.executors.base import (
    Executor,
    ExecutorClosed,
    ExecutorError,
    Job,
    JobCancelled,
    JobEvent,
    JobFailed,
    JobHandle,
    JobResult,
    JobState,
    QueueEntry,
)
from stylecore.executors.scheduler import Batching, FairScheduler, Planned, StepTimeModel, output_pixels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExecutorConfig:
    """Every knob of both backends; `make_executor(kind, **fields)` builds one.

    Limits are per executor (so per bot process); `None` for `workers` means "one per
    GPU" (one worker on a machine without GPUs, Ray: one actor per GPU in the cluster).
    """

    workers: int | None = None
    device: str | None = None  # force "cpu" / "cuda" for every job; None: the job's option
    gpus: tuple[int, ...] | None = None  # local: which GPUs to use (default: all visible)
    threads_per_worker: int | None = None  # local CPU: torch threads each (default: cores / workers)
    weights: str = "original"  # network loaded at worker start
    max_queue: int = 50  # jobs waiting (not running) before submit refuses with QueueFull
    max_per_user_queued: int = 3
    max_per_user_running: int = 1
    job_timeout: float | None = 900.0  # seconds of running per attempt; None = no limit
    kill_grace: float = 10.0  # a stop request unanswered this long gets the worker killed
    start_timeout: float = 300.0  # for workers to load the network
    lost_retries: int | None = None  # re-runs after a worker dies mid-job (None: local 0, ray 1)
    oom_retry_scale: float = 0.7
    # Bytes one worker's jobs may use at once (device memory on CUDA, RAM on CPU); a job whose
    # estimate is larger runs at the largest size that fits and says so. On CUDA the card's free
    # memory caps it too. None: no cap on CPU, the free memory on CUDA.
    memory_limit: int | None = None
    # Jobs one worker runs in one stack (same size and scales; see stylecore.batch.batch_key).
    # None: 4 per GPU worker (or Ray actor), 1 on CPU, where a stack saves nothing.
    max_batch: int | None = None
    # How far down the fair order a job may be to join the next job's stack (None: max_batch),
    # so batching never lets a job overtake more than this many others.
    batch_window: int | None = None
    progress_interval: float = 0.0  # seconds between progress events from a worker (0 = every step)
    step_seconds_per_mpx: float = 2.0  # ETA prior before any run was measured
    keep_finished: int = 200  # ended handles kept for get()
    # Ray only
    ray_address: str | None = None  # None: $RAY_ADDRESS, else start a local Ray
    ray_namespace: str = "stylebot"
    ray_num_gpus_per_actor: float = 1.0
    ray_num_cpus_per_actor: float = 1.0
    ray_resources: dict[str, float] = field(default_factory=dict)  # extra custom resources per actor
    ray_init: dict[str, Any] = field(default_factory=dict)  # extra ray.init kwargs (tests: num_cpus...)

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError("workers must be at least 1")
        for name in ("max_queue", "max_per_user_queued", "max_per_user_running"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.job_timeout is not None and self.job_timeout <= 0:
            raise ValueError("job_timeout must be positive (or None for no limit)")
        if self.memory_limit is not None and self.memory_limit <= 0:
            raise ValueError("memory_limit must be positive bytes (or None for no limit)")
        if not 0.1 <= self.oom_retry_scale < 1:
            raise ValueError("oom_retry_scale must be in [0.1, 1)")
        for name in ("max_batch", "batch_window"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or None for the default)")


class WorkerLost(Exception):
    """The worker running a job died (crash, SIGKILL, OOM-killer, node loss)."""


class Backend(abc.ABC):
    """Transport to a fixed number of worker slots; see LocalBackend and RayBackend.

    Contract: `on_ready(slot)` whenever a slot gets a warm worker, `on_lost(slot)` as soon
    as it loses one (before `run` on that slot raises WorkerLost). `run` returns the
    worker's terminal event; `kill` makes a running `run` end with WorkerLost promptly.
    A backend whose `max_batch` is above 1 also implements `run_batch`.
    """

    slots: int
    max_batch: int = 1  # jobs one slot may run in one stack

    @abc.abstractmethod
    async def start(self, on_ready: Callable[[int], None], on_lost: Callable[[int], None]) -> None: ...

    @abc.abstractmethod
    async def run(self, slot: int, job: Job, emit: Callable[[JobEvent], None]) -> JobEvent: ...

    async def run_batch(self, slot: int, jobs: list[Job], emit: Callable[[JobEvent], None]) -> dict[str, JobEvent]:
        """Run several jobs on one slot: every event (each job's terminal too, as it happens)
        goes to `emit`; returns each job's terminal event. `request_cancel` names one job."""
        if len(jobs) != 1:
            raise NotImplementedError(f"{type(self).__name__} runs one job per slot")
        return {jobs[0].job_id: await self.run(slot, jobs[0], emit)}

    @abc.abstractmethod
    def request_cancel(self, slot: int, job_id: str) -> None: ...

    @abc.abstractmethod
    async def kill(self, slot: int) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def worker_pids(self) -> list[int]: ...

    @abc.abstractmethod
    def slot_pid(self, slot: int) -> int | None: ...

    @abc.abstractmethod
    def worker_info(self) -> list[dict[str, Any]]:
        """What each warm worker reported about itself (see Executor.workers), with its slot."""

    def stop_respawning(self) -> None:
        """Shutdown began: workers that die or are killed from now on stay dead."""
        self.closing = True

    closing: bool = False


class _Handle(JobHandle):
    """One job's state and its event fan-out to any number of independent consumers."""

    def __init__(
        self, job: Job, pixels: int, loop: asyncio.AbstractEventLoop, batch_key: Hashable | None = None
    ) -> None:
        self.job_id = job.job_id
        self.job = job
        self.pixels = pixels
        self.batch_key = batch_key  # None: never shares a slot
        self._state: JobState = "queued"
        self._subs: list[asyncio.Queue[JobEvent]] = []
        self._latest: dict[str, JobEvent] = {}
        self._order: list[str] = []  # kinds in the order they last happened
        self._end: asyncio.Future[JobEvent] = loop.create_future()
        self._dispatcher: Dispatcher | None = None
        self.slot: int | None = None
        self.attempts = 0
        self.stop_reason: str | None = None  # "user" | "timeout" | "shutdown"
        self.run_task: asyncio.Task[Any] | None = None
        self.driver: asyncio.Task[Any] | None = None
        self.watchdog: asyncio.Task[Any] | None = None
        self.step = 0
        self.total = job.options.steps
        self.elapsed = 0.0
        self.queue_note: str | None = None

    @property
    def state(self) -> JobState:
        return self._state

    @property
    def last_event(self) -> JobEvent | None:
        return self._latest[self._order[-1]] if self._order else None

    def _publish(self, ev: JobEvent) -> None:
        if self._end.done():
            return
        self._latest[ev.kind] = ev
        if ev.kind in self._order:
            self._order.remove(ev.kind)
        self._order.append(ev.kind)
        for q in self._subs:
            q.put_nowait(ev)
        if ev.terminal:
            self._end.set_result(ev)

    async def events(self) -> AsyncIterator[JobEvent]:  # type: ignore[override]
        # The replay and the subscription happen with no await between them, so a
        # consumer never misses nor doubles an event; a late one gets the latest of each
        # kind (queued, started, progress, preview) in the order they happened.
        replay = [self._latest[k] for k in self._order]
        if self._end.done():
            for ev in replay:
                yield ev
            return
        q: asyncio.Queue[JobEvent] = asyncio.Queue()
        self._subs.append(q)
        try:
            for ev in replay:
                yield ev
            while True:
                ev = await q.get()
                yield ev
                if ev.terminal:
                    return
        finally:
            self._subs.remove(q)

    async def cancel(self) -> bool:
        if self._end.done() or self._dispatcher is None:
            return False
        return self._dispatcher._cancel(self)

    async def result(self) -> JobResult:
        ev = await asyncio.shield(self._end)
        if ev.kind == "done" and ev.result is not None:
            return ev.result
        if ev.kind == "cancelled":
            raise JobCancelled()
        raise JobFailed(ev.error or "the job failed", ev.reason or "internal")

    async def wait(self) -> JobEvent:
        """The terminal event, without raising."""
        return await asyncio.shield(self._end)


def _input_size(job: Job) -> tuple[int, int] | None:
    """The content's (width, height) from the image header only (cheap; never decodes)."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(job.content)) as im:
            return im.size
    except Exception:
        return None


def _input_pixels(job: Job, size: tuple[int, int] | None) -> int:
    """Output pixel count for ETAs."""
    opts = job.options
    if size is None:
        return opts.size * opts.size
    return output_pixels(*size, opts.size, opts.size_side)


def _batch_key(job: Job, size: tuple[int, int] | None, device: str | None) -> Hashable | None:
    """Which queued jobs may share a slot with this one (as the worker will see its options)."""
    if size is None:  # unreadable input: it fails alone, quickly
        return None
    from stylecore.batch import batch_key

    opts = job.options if device is None else dataclasses.replace(job.options, device=device)
    return batch_key(size, opts)


class Dispatcher(Executor):
    """The `Executor` the bot gets, whatever the backend."""

    def __init__(self, backend: Backend, config: ExecutorConfig, *, lost_retries: int = 0) -> None:
        self.backend = backend
        self.config = config
        self.lost_retries = config.lost_retries if config.lost_retries is not None else lost_retries
        self.scheduler = FairScheduler(
            slots=backend.slots,
            max_queue=config.max_queue,
            max_per_user_queued=config.max_per_user_queued,
            max_per_user_running=config.max_per_user_running,
            model=StepTimeModel(prior_per_mpx=config.step_seconds_per_mpx),
        )
        self.max_batch = max(1, backend.max_batch)
        self.batch_window = config.batch_window or self.max_batch
        self._handles: dict[str, _Handle] = {}
        self._finished: OrderedDict[str, _Handle] = OrderedDict()
        self._ready: set[int] = set()
        # slot -> the jobs still running there; the slot stays busy until its run ends, even
        # when every job in its stack has already ended.
        self._busy: dict[int, list[_Handle]] = {}
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
        await self.backend.start(self._on_ready, self._on_lost)
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
            never_started.append(h.job)
            self._end(
                h,
                JobEvent(
                    "failed",
                    job_id,
                    error="the bot is shutting down; your job was not started and will be resubmitted",
                    reason="shutdown",
                ),
            )
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
            self._end(
                h, JobEvent("failed", h.job_id, reason="shutdown", error="the bot shut down before your job finished")
            )
        for t in self._tasks:
            t.cancel()
        await self.backend.close()
        if self._closed is not None:
            self._closed.set()
        return never_started

    # -- submission and introspection -----------------------------------------------------

    async def submit(self, job: Job) -> JobHandle:
        if self._closing:
            raise ExecutorClosed("the bot is shutting down and not taking new jobs")
        if not self._started:
            raise ExecutorError("the executor was not started")
        if job.job_id in self._handles or job.job_id in self._finished:
            raise ValueError(f"job id {job.job_id} was already submitted")
        size = _input_size(job)
        h = _Handle(
            job,
            _input_pixels(job, size),
            asyncio.get_running_loop(),
            _batch_key(job, size, self.config.device) if self.max_batch > 1 else None,
        )
        h._dispatcher = self
        self.scheduler.add(job.job_id, job.user_id, h.pixels, job.options.steps)
        self._handles[job.job_id] = h
        self._refresh_positions(force={job.job_id})
        self._pump()
        return h

    def get(self, job_id: str) -> JobHandle | None:
        return self._handles.get(job_id) or self._finished.get(job_id)

    def queue(self) -> list[QueueEntry]:
        out = [
            QueueEntry(h.job_id, h.job.user_id, "running", None, self._running_left(h), h.job.meta)
            for h in self._running()
        ]
        for p in self._plan():
            h = self._handles[p.job_id]
            out.append(QueueEntry(h.job_id, h.job.user_id, "queued", p.position, p.eta, h.job.meta))
        return out

    def worker_pids(self) -> list[int]:
        """Pids of the live workers (for fault tests and ops)."""
        return self.backend.worker_pids()

    def workers(self) -> list[dict[str, Any]]:
        return self.backend.worker_info()

    def worker_pid(self, job_id: str) -> int | None:
        """Pid of the worker running `job_id` (None unless it is running)."""
        h = self._handles.get(job_id)
        if h is None or h.state != "running" or h.slot is None:
            return None
        return self.backend.slot_pid(h.slot)

    @property
    def slots(self) -> int:
        return self.backend.slots

    # -- internals ------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_ready(self, slot: int) -> None:
        self._ready.add(slot)
        self._pump()

    def _on_lost(self, slot: int) -> None:
        self._ready.discard(slot)

    def _running_left(self, h: _Handle) -> float:
        if h.step > 0 and h.elapsed > 0:
            return max(0.0, (h.total - h.step) * h.elapsed / h.step)
        return self.scheduler.model.job_seconds(h.pixels, h.total)

    def _plan(self) -> list[Planned]:
        """Queued jobs' positions and ETAs, foreseeing the stacks this executor will form."""
        batching = None
        if self.max_batch > 1:
            batching = Batching(lambda jid: self._handles[jid].batch_key, self.max_batch, self.batch_window)
        groups = [[h.job_id for h in hs] for hs in self._busy.values()]
        return self.scheduler.plan(self._running_lefts(), running_groups=groups, batching=batching)

    def _running_lefts(self) -> dict[str, float]:
        return {h.job_id: self._running_left(h) for h in self._running()}

    def _running(self) -> list[_Handle]:
        return [h for hs in self._busy.values() for h in hs]

    def _refresh_positions(self, force: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        """Tell queued jobs whose position changed (and new ones) where they stand."""
        plan = self._plan()
        positions = {}
        for p in plan:
            positions[p.job_id] = p.position
            h = self._handles[p.job_id]
            if p.job_id in force or self._positions.get(p.job_id) != p.position or h.queue_note:
                h._publish(JobEvent("queued", p.job_id, position=p.position, eta=p.eta, note=h.queue_note))
                h.queue_note = None
        self._positions = positions

    def _pump(self) -> None:
        """Start queued jobs on free warm slots: one run in flight per slot, holding one job
        or, where the backend stacks jobs, up to `max_batch` with the same batch key."""
        changed = False
        while not self._closing:
            free = sorted(self._ready - set(self._busy))
            if not free:
                break
            job_id = self.scheduler.pick()
            if job_id is None:
                break
            hs = [self._handles[job_id]]
            key = hs[0].batch_key
            if self.max_batch > 1 and key is not None:
                more = self.scheduler.pick_more(
                    lambda jid, k=key: self._handles[jid].batch_key == k, self.max_batch - 1, self.batch_window
                )
                hs += [self._handles[jid] for jid in more]
            slot = free[0]
            self._busy[slot] = list(hs)
            for h in hs:
                h.slot = slot
                h._state = "running"
                h.attempts += 1
                h.step = 0
                h.elapsed = 0.0
            driver = self._spawn(self._drive(slot, hs))
            for h in hs:
                h.driver = driver
            changed = True
        if changed:
            self._refresh_positions()

    def _on_worker_event(self, h: _Handle, ev: JobEvent) -> None:
        if ev.job_id != h.job_id or h._end.done() or h.state != "running":
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
        h._publish(ev)

    async def _drive(self, slot: int, hs: list[_Handle]) -> None:
        """Run one attempt of a job (or of a stack of them) on a slot and turn what happened
        into each job's next state."""
        by_id = {h.job_id: h for h in hs}

        def emit(ev: JobEvent) -> None:
            h = by_id.get(ev.job_id)
            if h is not None:
                self._on_worker_event(h, ev)

        if len(hs) == 1:
            run = asyncio.ensure_future(self._run_one(slot, hs[0], emit))
        else:
            run = asyncio.ensure_future(self.backend.run_batch(slot, [h.job for h in hs], emit))
        for h in hs:
            h.run_task = run
        for h in hs:
            if h.stop_reason is not None:  # stopped between pick and start (shutdown)
                self._request_stop(h, h.stop_reason)
        await asyncio.wait({run}, timeout=self.config.job_timeout)
        if not run.done():
            for h in hs:
                if not h._end.done():
                    self._request_stop(h, "timeout")
            await asyncio.wait({run})
        lost: str | None = None
        outcomes: dict[str, JobEvent] = {}
        try:
            outcomes = run.result()
        except WorkerLost as e:
            lost = str(e) or "the worker stopped"
        except asyncio.CancelledError:  # abandoned by the watchdog
            lost = "the worker stopped responding"
        except Exception as e:
            log.exception("backend failed running job(s) %s", list(by_id))
            outcomes = {jid: JobEvent("failed", jid, error=f"internal error: {e}", reason="internal") for jid in by_id}
        self._busy.pop(slot, None)
        for h in hs:
            if not h._end.done() and h.state == "running":
                self._settle(h, outcomes.get(h.job_id), lost)
        self._refresh_positions()
        self._pump()

    async def _run_one(self, slot: int, h: _Handle, emit: Callable[[JobEvent], None]) -> dict[str, JobEvent]:
        return {h.job_id: await self.backend.run(slot, h.job, emit)}

    def _settle(self, h: _Handle, outcome: JobEvent | None, lost: str | None) -> None:
        """A running job's attempt is over: end it, or queue it again after a lost worker."""
        if h.watchdog is not None:
            h.watchdog.cancel()
            h.watchdog = None
        h.run_task = None
        running = self._busy.get(h.slot) if h.slot is not None else None
        if running is not None and h in running:
            running.remove(h)
        if outcome is not None and outcome.kind == "done":
            final = outcome
        elif h.stop_reason == "user":
            step = outcome.step if outcome is not None and outcome.step is not None else h.step
            final = JobEvent("cancelled", h.job_id, step=step, total=h.total)
        elif h.stop_reason == "timeout":
            final = JobEvent(
                "failed",
                h.job_id,
                step=h.step,
                total=h.total,
                reason="timeout",
                error=f"the job ran longer than the {self.config.job_timeout:g} s limit and was stopped",
            )
        elif h.stop_reason == "shutdown":
            final = JobEvent(
                "failed",
                h.job_id,
                step=h.step,
                total=h.total,
                reason="shutdown",
                error="the bot shut down before your job finished",
            )
        elif lost is not None:
            if h.attempts <= self.lost_retries and not self._closing:
                h._state = "queued"
                h.queue_note = "the worker running this job was lost; retrying"
                self.scheduler.requeue_front(h.job_id)
                return
            final = JobEvent(
                "failed",
                h.job_id,
                step=h.step,
                total=h.total,
                reason="worker_lost",
                error="the worker running your job stopped unexpectedly (worker lost)"
                + ("; it was already retried once" if h.attempts > 1 else ""),
            )
        elif outcome is not None:
            final = outcome
        else:
            final = JobEvent(
                "failed",
                h.job_id,
                step=h.step,
                total=h.total,
                reason="internal",
                error="internal error: the worker returned no result for this job",
            )
        result = final.result
        if result is not None:
            self.scheduler.finish(h.job_id, seconds=result.seconds, steps=result.steps)
        else:  # a partial run still says how fast this size goes
            self.scheduler.finish(h.job_id, seconds=h.elapsed or None, steps=h.step or None)
        self._end(h, final)

    def _request_stop(self, h: _Handle, reason: str) -> None:
        """Ask the worker to stop this job at its next step; kill the worker if it does not
        within kill_grace."""
        if h.stop_reason is None:
            h.stop_reason = reason
        if h.slot is None or h.run_task is None or h.run_task.done() or h._end.done():
            return
        try:
            self.backend.request_cancel(h.slot, h.job_id)
        except Exception:
            log.exception("cancel request for %s failed", h.job_id)
        if h.watchdog is None:
            h.watchdog = self._spawn(self._watchdog(h, h.slot, h.run_task))

    async def _watchdog(self, h: _Handle, slot: int, run: asyncio.Task[Any]) -> None:
        """Escalate: stop request, then kill, then give up on the worker's answer.

        Waits for this job's own end, not the run's: in a stack the others rightly go on.
        """
        done, _ = await asyncio.wait({run, h._end}, timeout=self.config.kill_grace, return_when=asyncio.FIRST_COMPLETED)
        if done:
            return
        log.warning("worker on slot %s ignored a stop request; killing it", slot)
        try:
            await self.backend.kill(slot)
        except Exception:
            log.exception("killing the worker on slot %s failed", slot)
        done, _ = await asyncio.wait({run, h._end}, timeout=self.config.kill_grace, return_when=asyncio.FIRST_COMPLETED)
        if not done:  # the backend could not even tell us the worker died: end the job anyway
            log.error("worker on slot %s did not go away after a kill; abandoning its job", slot)
            run.cancel()

    def _cancel(self, h: _Handle) -> bool:
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

    def _end(self, h: _Handle, ev: JobEvent) -> None:
        if h._end.done():  # already ended (e.g. by shutdown's safety net): first end wins
            return
        h._state = ev.kind  # type: ignore[assignment]
        h._publish(ev)
        self._handles.pop(h.job_id, None)
        self._positions.pop(h.job_id, None)
        self._finished[h.job_id] = h
        while len(self._finished) > self.config.keep_finished:
            self._finished.popitem(last=False)


__all__ = ["Backend", "Dispatcher", "ExecutorConfig", "WorkerLost"]
