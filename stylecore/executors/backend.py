"""The contract a backend implements: how the Dispatcher reaches a fixed set of worker slots.

Every policy - the fair queue, stacking, retries, time limits, cancel escalation, readiness,
shutdown - lives in `dispatcher.Dispatcher`, identical for every backend. A backend is only
the transport to its workers, so adding one is one new module plus one line in
`stylecore.executors.BACKENDS` ("kind": "module:Class"). The class must:

- take an `ExecutorConfig` in `__init__`, cheaply and without importing torch (the caller's
  process must not need it), and set `slots` (a first guess may be refined in `start`);
- set `max_batch` by the end of `start` (`config.max_batch_on(on_gpu)`: how many jobs one
  worker runs in one stack);
- in `start(listener)`, start one worker per slot with `config.worker_settings(...)`, return
  once every slot has either become ready or failed its first start, and raise
  `ExecutorError` when none became ready; from then on report each slot's changes to the
  listener: `slot_ready` when it has a warm worker (after every restart too), `slot_lost` as
  soon as it has none (before a `run` on it raises `WorkerLost`), `slot_failed` when a
  (re)start did not report ready within `config.start_timeout` or failed. It keeps
  replacing lost and failed workers, after `config.restart_delay_after(failures)`, until
  `stop_respawning` or `close`;
- in the worker, call `worker.start_worker(settings)` once and `worker.run_jobs(...)` for
  each run: the worker side is shared, so every backend runs a job identically;
- implement `run`, `request_cancel`, `kill`, `close` and `worker_info` as documented below.

Class attributes carry the backend's own defaults: `lost_retries` (how often a job whose
worker died mid-run is run again; `ExecutorConfig.lost_retries` overrides it).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from stylecore.executors.base import Job, JobEvent
from stylecore.executors.config import ExecutorConfig

Emit = Callable[[JobEvent], None]


class WorkerLost(Exception):
    """The worker running a job died (crash, SIGKILL, OOM-killer, node loss)."""


class SlotListener(Protocol):
    """What a backend tells the Dispatcher about its slots (any thread: the loop's only)."""

    def slot_ready(self, slot: int) -> None: ...

    def slot_lost(self, slot: int) -> None: ...

    def slot_failed(self, slot: int, why: str) -> None: ...


class Backend(abc.ABC):
    """Transport to a fixed number of worker slots; see the module docstring for the contract."""

    lost_retries: ClassVar[int] = 0
    slots: int
    max_batch: int = 1  # jobs one slot may run in one stack
    closing: bool = False

    @abc.abstractmethod
    def __init__(self, config: ExecutorConfig) -> None: ...

    @abc.abstractmethod
    async def start(self, listener: SlotListener) -> None:
        """Start every slot's worker; see the module docstring."""

    @abc.abstractmethod
    async def run(self, slot: int, jobs: list[Job], emit: Emit) -> None:
        """Run `jobs` (a stack: one job or up to `max_batch` of the same batch key) on the
        slot's warm worker, passing every event to `emit` as it happens, each job's terminal
        event included; return when the worker is done with them.

        Raises WorkerLost if the worker died. A worker that reports it must be replaced (a
        device fault it cannot recover from) is reported lost and replaced before this returns.
        Holds no reference to `jobs` or their events once handed on: inputs and results of
        jobs that ended must be free to go while a longer job of the stack runs on.
        """

    @abc.abstractmethod
    def request_cancel(self, slot: int, job_id: str) -> None:
        """Ask the worker to stop one job at its next step; the others of its stack go on.
        May arrive before the run reached the worker; must not block."""

    @abc.abstractmethod
    async def kill(self, slot: int) -> None:
        """End the slot's worker now (it ignored a stop request): its `run` must raise
        WorkerLost promptly, and a replacement starts unless shutting down."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop every worker; none is restarted."""

    @abc.abstractmethod
    def worker_info(self) -> list[dict[str, Any]]:
        """One dict per slot (see `Executor.workers`): at least `slot`, `ready`, `state`
        ("starting", "ready" or "failed") and `pid` where known; `error` after a failed start."""

    def stop_respawning(self) -> None:
        """Shutdown began: workers that die or are killed from now on stay dead."""
        self.closing = True


__all__ = ["Backend", "Emit", "SlotListener", "WorkerLost"]
