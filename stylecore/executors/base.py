"""The one small async protocol between a caller (e.g. a chat bot) and whatever runs the jobs.

A caller only ever sees `Executor`, `JobHandle`, `Job`, `JobEvent` and `JobResult`; every
backend sits behind the same `Dispatcher`, so the caller never learns where a job ran. Jobs
carry image bytes, never paths, so they can cross machines.

Writing a backend? Its contract is `stylecore.executors.backend.Backend` (what to implement,
documented there); the registry of backends is `stylecore.executors.BACKENDS`.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from stylecore.notes import Note
from stylecore.options import StyleOptions

EventKind = Literal["queued", "started", "progress", "preview", "done", "failed", "cancelled"]
FailureReason = Literal["bad_input", "worker_lost", "no_worker", "oom", "timeout", "shutdown", "internal"]
JobState = Literal["queued", "running", "done", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"done", "failed", "cancelled"})


def new_job_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class Job:
    """One request: inputs as encoded image bytes plus validated options.

    `user_id` is the fairness key (round-robin between users); `meta` is opaque to the
    executor and handed back untouched (a caller keeps its own ids there).
    """

    content: bytes
    styles: tuple[bytes, ...]
    options: StyleOptions
    user_id: str
    job_id: str = field(default_factory=new_job_id)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobResult:
    """The finished image as lossless PNG plus what the run measured."""

    job_id: str
    png: bytes
    width: int
    height: int
    steps: int
    seconds: float
    losses: dict[str, float]
    device: str
    notes: tuple[Note, ...] = ()  # what the user should know about the run (ran smaller, retried...)
    timelapse: bytes | None = None  # GIF/WebP when options.timelapse asked for one


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

    @property
    def terminal(self) -> bool:
        return self.kind in TERMINAL


class ExecutorError(Exception):
    """Base for refusals and failures; `str(err)` is fit to show a user."""


class QueueFull(ExecutorError):
    """The bounded global queue is full."""


class UserLimitReached(ExecutorError):
    """This user already has as many running or queued jobs as allowed."""


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
    async def submit(self, job: Job) -> JobHandle:
        """Queue a job; raises QueueFull, UserLimitReached or ExecutorClosed with a reason."""

    @abc.abstractmethod
    def get(self, job_id: str) -> JobHandle | None: ...

    @abc.abstractmethod
    def queue(self) -> list[QueueEntry]:
        """Running jobs first, then queued ones in the order they will start."""

    def workers(self) -> list[dict[str, Any]]:
        """One dict per worker slot for operators: `slot`, `ready`, `state` ("starting",
        "ready" or "failed"), `pid`, `device`, and where known `error` (why the last start
        failed), `gpu`, `memory_total`, `memory_budget` (bytes) and `max_side` (the largest
        long side, px, a 4:3 job may have on it; None where memory is not capped)."""
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
