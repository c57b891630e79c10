"""One submitted job as the executor tracks it: its events for any number of subscribers, its
inputs while it may still (re)start, its result until a consumer has it, and the
dispatcher's record of where it runs.

A finished job stays findable (`Executor.get`) for a while, so what it keeps must be small:
the input images go when the job ends and the result as soon as it is delivered (see
`JobHandle`), which is what lets an executor remember hundreds of finished jobs in a few
megabytes instead of gigabytes of images.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Any

from stylecore.executors.base import (
    TERMINAL,
    ExecutorError,
    Job,
    JobCancelled,
    JobEvent,
    JobFailed,
    JobHandle,
    JobResult,
    JobState,
)
from stylecore.notes import Note


class Handle(JobHandle):
    """A job's state, its event fan-out, and the dispatcher's bookkeeping for it."""

    def __init__(
        self, job: Job, cancel: Callable[[Handle], bool], *, pixels: int, stack_key: Hashable | None = None
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.job_id = job.job_id
        self.user_id = job.user_id
        self.group = job.group
        self.meta = job.meta
        self.job: Job | None = job  # the inputs; None once the job ended
        self.pixels = pixels  # output pixels, for time estimates
        self.stack_key = stack_key  # which queued jobs may share its worker's stack; None: none
        self._cancel = cancel
        self._state: JobState = "queued"
        self._subs: list[asyncio.Queue[JobEvent]] = []
        self._latest: dict[str, JobEvent] = {}  # the latest non-terminal event of each kind
        self._order: list[str] = []  # kinds in the order they last happened
        self._terminal: JobEvent | None = None
        self._waiters = 0  # callers of wait()/result() awaiting the end
        self._end: asyncio.Future[JobEvent] = self._loop.create_future()
        # The dispatcher's record of the current attempt.
        self.slot: int | None = None
        self.attempts = 0
        self.stop_reason: str | None = None  # "user" | "timeout" | "shutdown"
        self.run_task: asyncio.Task[Any] | None = None
        self.driver: asyncio.Task[Any] | None = None
        self.watchdog: asyncio.Task[Any] | None = None
        self.step = 0
        self.total = job.options.steps
        self.elapsed = 0.0
        self.queue_note: Note | None = None  # said with the next `queued` event

    @property
    def state(self) -> JobState:
        return self._state

    @state.setter
    def state(self, value: JobState) -> None:
        self._state = value

    @property
    def ended(self) -> bool:
        return self._end.done()

    @property
    def end_future(self) -> asyncio.Future[JobEvent]:
        """Done once the job ended (for `asyncio.wait` beside other awaitables)."""
        return self._end

    def publish(self, ev: JobEvent) -> None:
        """Hand `ev` to every subscriber; a terminal event ends the job (the first one wins)."""
        if self._end.done():
            return
        if ev.terminal:
            self._state = ev.kind  # type: ignore[assignment]
            self._terminal = ev
            self.job = None  # no retry can need the inputs any more
        else:
            self._latest[ev.kind] = ev
        if ev.kind in self._order:
            self._order.remove(ev.kind)
        self._order.append(ev.kind)
        for q in self._subs:
            q.put_nowait(ev)
        if ev.terminal:
            self._end.set_result(ev)
            if self._subs or self._waiters:
                self._release_result()

    def _release_result(self) -> None:
        """The result reached its consumers: keep only what a late subscriber needs."""
        ev = self._terminal
        if ev is None or ev.result is None:
            return
        slim = dataclasses.replace(ev, result=None)
        self._terminal = slim
        # Consumers awaiting the old future still get the full event from it.
        self._end = self._loop.create_future()
        self._end.set_result(slim)

    async def events(self) -> AsyncIterator[JobEvent]:  # type: ignore[override]
        # The replay and the subscription happen with no await between them, so a
        # consumer never misses nor doubles an event; a late one gets the latest of each
        # kind (queued, started, progress, preview) in the order they happened.
        replay = [self._terminal if k in TERMINAL else self._latest[k] for k in self._order]
        if self._end.done():
            self._release_result()  # this subscriber has it now (in `replay`)
            for ev in replay:
                yield ev  # type: ignore[misc]
            return
        q: asyncio.Queue[JobEvent] = asyncio.Queue()
        self._subs.append(q)
        try:
            for ev in replay:
                yield ev  # type: ignore[misc]
            while True:
                ev = await q.get()
                yield ev
                if ev.terminal:
                    return
        finally:
            self._subs.remove(q)

    async def cancel(self) -> bool:
        if self._end.done():
            return False
        return self._cancel(self)

    async def result(self) -> JobResult:
        ev = await self.wait()
        if ev.kind == "done":
            if ev.result is None:
                raise ExecutorError(f"the result of job {self.job_id} was already delivered and is no longer kept")
            return ev.result
        if ev.kind == "cancelled":
            raise JobCancelled()
        raise JobFailed(ev.error or "the job failed", ev.reason or "internal")

    async def wait(self) -> JobEvent:
        """The terminal event, without raising (a result in it counts as delivered)."""
        fut = self._end
        if fut.done():
            ev = fut.result()
            self._release_result()
            return ev
        self._waiters += 1
        try:
            return await asyncio.shield(fut)
        finally:
            self._waiters -= 1


__all__ = ["Handle"]
