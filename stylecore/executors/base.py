"""The one small async protocol between a caller (e.g. a chat bot) and whatever runs the jobs.

A caller only ever sees `Executor`, `JobHandle`, `Job`, `JobEvent`, `JobResult` and, to hold
a place before a job's inputs exist, `Reservation`; every backend sits behind the same
`Dispatcher`, so the caller never learns where a job ran. Jobs carry image bytes, never
paths, so they can cross machines. The executor is the one owner of how many jobs a member
may have (`stylecore.executors.admission`); a caller passes neutral keys and renders the
refusal's facts.

Writing a backend? Its contract is `stylecore.executors.backend.Backend` (what to implement,
documented there); the registry of backends is `stylecore.executors.BACKENDS`.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from stylecore.notes import Note
from stylecore.options import StyleOptions

if TYPE_CHECKING:
    from stylecore.executors.admission import Reservation

EventKind = Literal["queued", "started", "progress", "preview", "done", "failed", "cancelled"]
FailureReason = Literal["bad_input", "worker_lost", "no_worker", "oom", "timeout", "shutdown", "internal"]
JobState = Literal["queued", "running", "done", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"done", "failed", "cancelled"})


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class Job:
    """One request: inputs as encoded image bytes plus validated options.

    `user_id` says whose job it is and `group` which community it belongs to (any string the
    caller chooses, e.g. where it was asked; None is a group of its own): the queue takes
    turns over groups, then over members within a group, and counts each member's jobs for
    the limits (see `stylecore.executors.admission`). `max_active` is the group's own limit on
    one member's queued + running + reserved jobs in it (None: the group sets none), given
    with each job so a group's setting may change between requests. `meta` is opaque to the
    executor and handed back untouched (a caller keeps its own ids there).
    """

    content: bytes
    styles: tuple[bytes, ...]
    options: StyleOptions
    user_id: str
    job_id: str = field(default_factory=new_job_id)
    meta: dict[str, Any] = field(default_factory=dict)
    group: str | None = None
    max_active: int | None = None

    def __post_init__(self) -> None:
        if self.max_active is not None and self.max_active < 1:
            raise ValueError("max_active must be at least 1 (or None for no group limit)")


@dataclass(frozen=True)
class JobResult:
    """The finished image as lossless PNG plus what the run measured."""

    job_id: str
    png: bytes
    width: int
    height: int
    steps: int  # the steps it ran: fewer than its options' cap when it converged
    seconds: float
    losses: dict[str, float]
    device: str
    converged: bool = False  # it stopped before its cap because the image had stopped changing
    notes: tuple[Note, ...] = ()  # what the user should know about the run (ran smaller, retried...)
    timelapse: bytes | None = None  # GIF/WebP when options.timelapse asked for one
    # Bytes in use on the job's device, for operators: on CUDA the most the worker held (reserved)
    # during the run; on CPU the worker process's resident memory at the end (None where unknown).
    memory_used: int | None = None


@dataclass(frozen=True)
class JobEvent:
    """One thing that happened to a job, in order; exactly one terminal event ends a stream."""

    kind: EventKind
    job_id: str
    position: int | None = None  # queued: 1 = next to start
    eta: float | None = None  # seconds until done (queued: until start+run)
    step: int | None = None
    total: int | None = None
    loss: float | None = None
    elapsed: float | None = None
    preview: bytes | None = None  # small encoded JPEG/WebP made in the worker
    result: JobResult | None = None
    error: str | None = None  # human message for failed
    reason: FailureReason | None = None
    # Something the user should know that is not a failure, as data (see `stylecore.notes`):
    # e.g. "oom_retry" (1024 px -> 716 px) on a repeated `started`, or "worker_lost_retry" on
    # a repeated `queued`.
    note: Note | None = None
    # On `started`: how many jobs this one shares the worker's forward passes with, itself
    # included (None: it runs alone). Batched jobs keep their own events, cancel and result.
    batch_size: int | None = None
    # On `started`: the device this attempt runs on ("cpu", "cuda:0"...), as the worker names it.
    device: str | None = None

    @property
    def terminal(self) -> bool:
        return self.kind in TERMINAL


class ExecutorError(Exception):
    """Base for refusals and failures; `str(err)` is fit to show a user."""


class QueueFull(ExecutorError):
    """The bounded global queue is full (queued jobs and open reservations together)."""


LimitScope = Literal["group", "everywhere"]


class UserLimitReached(ExecutorError):
    """A member already has as many jobs as one of their limits allows.

    The one refusal for every per-member limit, with the facts a caller needs to word its own
    message: `scope` is "group" (the job's `max_active`, counting the member's jobs in that
    group) or "everywhere" (the operator's cross-group caps); `limit` the number that was
    reached; `counts` what it counts ("active": queued + running + reserved, "waiting":
    queued + reserved); `job_ids` the member's queued and running jobs it counted, oldest
    first; `pending` the member's open reservations it counted (requests not submitted yet).
    """

    def __init__(
        self,
        scope: LimitScope,
        limit: int,
        job_ids: tuple[str, ...] = (),
        pending: int = 0,
        counts: Literal["active", "waiting"] = "active",
    ) -> None:
        self.scope = scope
        self.limit = limit
        self.job_ids = tuple(job_ids)
        self.pending = pending
        self.counts = counts
        super().__init__(self._sentence())

    def _sentence(self) -> str:
        listed = [*self.job_ids, *([f"{self.pending} starting"] if self.pending else [])]
        what = "queued or running" if self.counts == "active" else "waiting"
        where = " here" if self.scope == "group" else (" in all" if self.counts == "active" else "")
        number = len(self.job_ids) + self.pending
        then = "finish" if self.counts == "active" else "start"
        return (
            f"you already have {number} job(s) {what}{where} ({', '.join(listed)}); "
            f"the limit is {self.limit}: wait for one to {then} or cancel one"
        )


class JobFailed(ExecutorError):
    def __init__(self, message: str, reason: FailureReason = "internal") -> None:
        super().__init__(message)
        self.reason = reason


class JobCancelled(ExecutorError):
    def __init__(self, message: str = "the job was cancelled") -> None:
        super().__init__(message)


class ExecutorClosed(ExecutorError):
    """submit() after shutdown() began."""


class WorkersUnavailable(ExecutorError):
    """No worker is ready and every one failed its last start: submit() refuses instead of
    queueing a job that could wait forever (queued jobs fail with reason "no_worker")."""


@dataclass(frozen=True)
class QueueEntry:
    job_id: str
    user_id: str
    state: JobState
    position: int | None  # None while running
    eta: float | None
    meta: dict[str, Any]
    group: str | None = None


class JobHandle(abc.ABC):
    """The caller's grip on one submitted job.

    The finished image is handed out once: the `done` event's `result` reaches every consumer
    waiting when the job ends (subscribers of `events()`, callers of `result()`), or else the
    first one to ask; after that the executor keeps only the job's small metadata, so a busy
    executor does not hold hundreds of results nobody will read again. Consume it from
    `events()` or `result()`, and keep it yourself if you need it twice.
    """

    job_id: str

    @abc.abstractmethod
    def events(self) -> AsyncIterator[JobEvent]:
        """Every event from submission on (a late subscriber first gets the latest state),
        ending after the terminal event. Several consumers may iterate independently; once the
        result was delivered, a late subscriber's `done` event has `result=None`."""

    @abc.abstractmethod
    async def cancel(self) -> bool:
        """Queued: removed at once. Running: stopped within one step. False if already ended."""

    @abc.abstractmethod
    async def result(self) -> JobResult:
        """Wait for the end; raises JobFailed or JobCancelled, or ExecutorError when the
        result was already delivered to another consumer."""

    @property
    @abc.abstractmethod
    def state(self) -> JobState: ...


class Executor(abc.ABC):
    """Runs jobs off the event loop; every method is safe to call from the caller's loop."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def submit(self, job: Job, *, reservation: Reservation | None = None, readmit: bool = False) -> JobHandle:
        """Queue a job; raises QueueFull, UserLimitReached, WorkersUnavailable or ExecutorClosed
        with a reason.

        `reservation` (from `reserve`, for this job's user and group): the job takes the place
        it held, so no limit is checked again; one that expired is ignored and the job admitted
        as any other. `readmit`: the job was accepted before (e.g. by a process that has since
        restarted), so the queue size and every per-member limit are not checked (accepted work
        is never refused) but the job counts against them from now on; it is still refused
        while the executor is closed or no worker can start, where it could not run.
        """

    def reserve(
        self, user_id: str, group: str | None = None, max_active: int | None = None, *, timeout: float | None = None
    ) -> Reservation:
        """Hold a place for a job of `user_id` in `group` before its inputs exist, so a caller
        can refuse ("queue full", "too many jobs") before expensive work such as downloading.
        Cheap, synchronous and never blocking; raises as `submit` would. The place counts as a
        queued job until `submit(job, reservation=...)` takes it, `release()` (or the end of a
        `with` / `async with` block) gives it back, the reservation is garbage-collected, or
        `timeout` seconds (default: the executor's `reservation_timeout`) pass."""
        raise NotImplementedError(f"{type(self).__name__} does not take reservations")

    @abc.abstractmethod
    def get(self, job_id: str) -> JobHandle | None: ...

    @abc.abstractmethod
    def queue(self) -> list[QueueEntry]:
        """Running jobs first, then queued ones in the order they will start."""

    def workers(self) -> list[dict[str, Any]]:
        """One dict per worker slot for operators: `slot`, `ready`, `state` ("starting",
        "ready" or "failed"), `pid`, `device`, `lost` (how often a ready worker of this slot
        died or was replaced since the executor started), and where known `error` (why the
        last start failed), `gpu`, `memory_total`, `memory_budget`, `memory_used` (bytes; the
        last finished job's `JobResult.memory_used`) and `max_side` (the largest long side,
        px, a 4:3 job may have on it; None where memory is not capped)."""
        return []

    def ready_workers(self) -> int:
        """How many workers can take a job now (a readiness probe wants at least one)."""
        return sum(1 for w in self.workers() if w.get("ready"))

    def jobs_for(self, user_id: str) -> list[QueueEntry]:
        return [e for e in self.queue() if e.user_id == user_id]

    async def cancel(self, job_id: str) -> bool:
        handle = self.get(job_id)
        return await handle.cancel() if handle else False

    @abc.abstractmethod
    async def shutdown(self, grace: float = 30.0) -> list[Job]:
        """Stop taking jobs, let running ones finish up to `grace` seconds, cancel the rest,
        and return the jobs that never started so the caller can persist them."""
