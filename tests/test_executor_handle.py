"""A job's handle on its own, without workers: event fan-out, and what a finished job keeps.

A finished handle stays findable for a while (`Executor.get`), so it must not hold the input
images or, once delivered, the result: hundreds of them would be gigabytes.
"""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from stylecore.executors.base import ExecutorError, Job, JobEvent, JobResult
from stylecore.executors.handle import Handle
from stylecore.options import StyleOptions

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _handle(cancelled: list[str] | None = None) -> tuple[Handle, weakref.ref[Job]]:
    job = Job(b"content" * 1000, (b"style" * 1000,), StyleOptions(size=32, steps=4), user_id="u", meta={"k": 1})

    def cancel(h: Handle) -> bool:
        if cancelled is not None:
            cancelled.append(h.job_id)
        return True

    return Handle(job, cancel, pixels=1024), weakref.ref(job)


def _done(job_id: str) -> tuple[JobEvent, weakref.ref[JobResult]]:
    result = JobResult(job_id, b"\x89PNG" + b"0" * 10_000, 32, 24, 4, 1.0, {"total": 1.0}, "cpu")
    return JobEvent("done", job_id, step=4, total=4, result=result), weakref.ref(result)


async def _collect(h: Handle) -> list[JobEvent]:
    return [ev async for ev in h.events()]


async def test_inputs_go_when_the_job_ends_and_the_result_once_it_is_delivered() -> None:
    h, job_ref = _handle()
    h.publish(JobEvent("queued", h.job_id, position=1))
    h.publish(JobEvent("started", h.job_id, step=0, total=4))
    assert h.job is not None  # a job whose worker is lost may run again: it keeps its inputs
    seen: list[tuple[str, bool]] = []

    async def consume() -> None:  # as a caller does: use each event, keep none
        async for ev in h.events():
            seen.append((ev.kind, ev.result is not None))

    subscriber = asyncio.ensure_future(consume())
    await asyncio.sleep(0)  # let the subscriber attach (it then waits for events)
    ev, result_ref = _done(h.job_id)
    h.publish(ev)
    del ev
    await subscriber
    assert seen[-1] == ("done", True)  # the subscriber got the result
    assert h.job is None and h.meta == {"k": 1} and h.user_id == "u" and h.state == "done"
    gc.collect()
    assert job_ref() is None, "a finished handle must not keep the input images"
    assert result_ref() is None, "a delivered result must not stay in the handle"
    late = await _collect(h)
    assert [e.kind for e in late] == ["queued", "started", "done"] and late[-1].result is None
    assert late[-1].step == 4  # the small metadata stays
    with pytest.raises(ExecutorError, match="already delivered"):
        await h.result()


async def test_a_result_nobody_was_waiting_for_is_kept_for_the_first_consumer() -> None:
    h, _ = _handle()
    ev, result_ref = _done(h.job_id)
    h.publish(ev)
    del ev
    gc.collect()
    assert result_ref() is not None  # nobody had it yet
    result = await h.result()
    assert result.png.startswith(b"\x89PNG")
    del result
    gc.collect()
    assert result_ref() is None
    assert (await h.wait()).kind == "done"


async def test_every_consumer_waiting_at_the_end_gets_the_result() -> None:
    h, _ = _handle()
    waiters = [asyncio.ensure_future(h.result()), asyncio.ensure_future(h.wait()), asyncio.ensure_future(_collect(h))]
    await asyncio.sleep(0)
    ev, _ = _done(h.job_id)
    h.publish(ev)
    result, end, events = await asyncio.gather(*waiters)
    assert result is ev.result and end.result is ev.result and events[-1].result is ev.result


async def test_only_the_first_terminal_event_counts_and_cancel_reaches_the_dispatcher() -> None:
    asked: list[str] = []
    h, _ = _handle(asked)
    assert await h.cancel() and asked == [h.job_id]
    h.publish(JobEvent("cancelled", h.job_id))
    h.publish(JobEvent("failed", h.job_id, error="late"))
    assert h.state == "cancelled" and h.ended
    assert not await h.cancel() and asked == [h.job_id]  # an ended job is not cancelled again
    assert [e.kind for e in await _collect(h)] == ["cancelled"]
