"""One contract for every backend: the bot must not be able to tell where a job ran.

Each test runs against the local process pool and against Ray (a local `ray.init` with
fake GPUs), with the real engine at 32 px and a handful of steps. "Long" jobs are long in
steps, not pixels, and are always cancelled once the test has what it needs. Assertions
count steps and events, never seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import signal
from collections.abc import AsyncIterator
from contextlib import aclosing

import numpy as np
import pytest
from PIL import Image

from stylecore.executors import (
    ExecutorClosed,
    Job,
    JobCancelled,
    JobEvent,
    JobFailed,
    QueueFull,
    UserLimitReached,
    make_executor,
)
from stylecore.executors.dispatcher import Dispatcher
from stylecore.options import StyleOptions

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(180)]

LONG = 5000  # steps: far more than any test waits for; such jobs are always cancelled
CONFIG = dict(
    workers=2,
    device="cpu",
    threads_per_worker=1,
    max_queue=6,
    max_per_user_queued=3,
    max_per_user_running=1,
    job_timeout=300.0,
    kill_grace=20.0,
    start_timeout=240.0,
)


def _png(seed: int, w: int, h: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


CONTENT = _png(1, 40, 30)
STYLE = _png(2, 32, 32)


def make_job(user: str, steps: int = 4, preview_every: int = 0, content: bytes = CONTENT, **meta: object) -> Job:
    opts = StyleOptions(size=32, steps=steps, scales=1, device="cpu", preview_every=preview_every, preview_size=24)
    return Job(content, (STYLE,), opts, user_id=user, meta=dict(meta))


class Pool:
    """One executor per backend for the session, recreated if a test shut it down."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.ex: Dispatcher | None = None

    async def get(self) -> Dispatcher:
        if self.ex is None or self.ex._closing:
            extra = {"ray_num_cpus_per_actor": 0.5} if self.kind == "ray" else {}
            self.ex = make_executor(self.kind, **CONFIG, **extra)
            await self.ex.start()
        return self.ex

    async def close(self) -> None:
        if self.ex is not None and not self.ex._closing:
            await self.ex.shutdown(grace=0)


@pytest.fixture(scope="session", params=["local", pytest.param("ray", marks=pytest.mark.ray)])
async def pool(request: pytest.FixtureRequest) -> AsyncIterator[Pool]:
    ray = None
    if request.param == "ray":
        ray = pytest.importorskip("ray")
        # Always a fresh local cluster, never one named by $RAY_ADDRESS; fake GPUs so
        # the one-actor-per-GPU code path is the one under test.
        ray.init(
            address="local",
            num_cpus=2,
            num_gpus=2,
            include_dashboard=False,
            log_to_driver=False,
            namespace="stylebot-tests",
        )
    p = Pool(request.param)
    try:
        yield p
    finally:
        await p.close()
        if ray is not None:
            ray.shutdown()


@pytest.fixture
async def ex(pool: Pool) -> AsyncIterator[Dispatcher]:
    """The shared executor, left idle after each test whatever the test did."""
    executor = await pool.get()
    yield executor
    if executor._closing:
        return
    handles = [executor.get(e.job_id) for e in executor.queue()]
    for h in handles:
        if h is not None:
            await h.cancel()
    for h in handles:
        if h is not None:
            await h.wait()  # type: ignore[attr-defined]


async def collect(h) -> list[JobEvent]:
    return [ev async for ev in h.events()]


async def until(h, kind: str, pred=lambda ev: True) -> JobEvent:
    async with aclosing(h.events()) as events:
        async for ev in events:
            if ev.kind == kind and pred(ev):
                return ev
            if ev.terminal:
                raise AssertionError(f"{h.job_id} ended ({ev.kind}: {ev.error}) before a {kind} event")
    raise AssertionError("event stream ended without a terminal event")


async def block_slots(ex: Dispatcher, n: int | None = None) -> list:
    """Occupy worker slots with long jobs (each its own user) and wait until they run."""
    hs = [await ex.submit(make_job(f"blocker{i}", steps=LONG)) for i in range(n or ex.slots)]
    for h in hs:
        await until(h, "progress")
    return hs


async def finish(*handles) -> None:
    for h in handles:
        await h.cancel()
    for h in handles:
        await h.wait()


async def wait_for_workers(ex: Dispatcher, n: int, gone: int | None = None) -> list[int]:
    while True:
        pids = ex.worker_pids()
        if len(pids) == n and gone not in pids:
            return pids
        await asyncio.sleep(0.1)


# -- progress ------------------------------------------------------------------------------


async def test_progress_events_arrive_in_order_with_previews(ex: Dispatcher) -> None:
    h = await ex.submit(make_job("alice", steps=6, preview_every=3, guild=7))
    first, second = await asyncio.gather(collect(h), collect(h))
    assert first == second  # independent consumers see the same stream
    kinds = [e.kind for e in first]
    assert kinds[0] == "queued" and first[0].position == 1
    assert kinds[1] == "started" and first[1].total == 6
    assert kinds[-1] == "done" and sum(e.terminal for e in first) == 1
    steps = [e.step for e in first if e.kind == "progress"]
    assert steps == [1, 2, 3, 4, 5, 6]
    previews = [e for e in first if e.kind == "preview"]
    assert [p.step for p in previews] == [3, 6]
    for p in previews:
        assert p.preview is not None and p.preview[:2] == b"\xff\xd8"  # JPEG made in the worker
        assert max(Image.open(io.BytesIO(p.preview)).size) <= 24
    # each preview follows the progress event of its own step
    assert kinds.index("preview") == kinds.index("progress") + 3

    result = await h.result()
    assert result.job_id == h.job_id and result.steps == 6
    img = Image.open(io.BytesIO(result.png))
    assert img.format == "PNG" and img.size == (result.width, result.height) == (32, 24)
    assert set(result.losses) >= {"content", "style", "total"}
    assert h.state == "done" and ex.get(h.job_id) is h

    late = await collect(h)  # a late subscriber gets the latest state, ending with the result
    assert [e.kind for e in late] == ["queued", "started", "progress", "preview", "done"]
    assert late[2].step == 6
    assert not await h.cancel()  # already ended


async def test_bad_input_fails_clearly_and_the_worker_stays_warm(ex: Dispatcher) -> None:
    pids = sorted(ex.worker_pids())
    h = await ex.submit(make_job("mallory", content=b"definitely not an image"))
    end = (await collect(h))[-1]
    assert end.kind == "failed" and end.reason == "bad_input" and end.error
    with pytest.raises(JobFailed) as exc:
        await h.result()
    assert exc.value.reason == "bad_input"
    ok = await ex.submit(make_job("mallory"))
    assert (await ok.result()).steps == 4
    assert sorted(ex.worker_pids()) == pids
    # What operators see of the workers: warm, on the CPU, memory uncapped (no limit set).
    infos = ex.workers()
    assert sorted(int(i["pid"]) for i in infos) == pids
    assert all(i["ready"] and i["device"] == "cpu" and i["max_side"] is None for i in infos)


# -- cancel --------------------------------------------------------------------------------


async def test_cancel_queued_removes_it_at_once(ex: Dispatcher) -> None:
    blockers = await block_slots(ex)
    h = await ex.submit(make_job("carol"))
    assert [e.job_id for e in ex.jobs_for("carol")] == [h.job_id]
    assert await h.cancel()
    # ended before cancel() returned: no await needed to see it
    assert h.state == "cancelled"
    assert ex.jobs_for("carol") == []
    events = await collect(h)
    assert [e.kind for e in events] == ["queued", "cancelled"]
    with pytest.raises(JobCancelled):
        await h.result()
    await finish(*blockers)


async def test_cancel_running_stops_within_a_step_and_keeps_the_worker(ex: Dispatcher) -> None:
    pids = sorted(ex.worker_pids())
    h = await ex.submit(make_job("dave", steps=LONG))
    await until(h, "progress")
    seen = h.step  # the latest step this side knows of when asking
    assert await h.cancel()
    events = await collect(h)
    end = events[-1]
    assert end.kind == "cancelled"
    # Stops at its next step check; a few steps may already be in flight between the
    # processes, hence the small allowance; never anywhere near the total.
    assert end.step is not None and end.step <= seen + 3 < LONG
    assert [e.step for e in events if e.kind == "progress"][-1] <= end.step
    with pytest.raises(JobCancelled):
        await h.result()
    assert sorted(ex.worker_pids()) == pids  # not killed: the same warm workers
    after = await ex.submit(make_job("dave"))
    assert (await after.result()).steps == 4


# -- scheduling ----------------------------------------------------------------------------


async def test_two_users_alternate_instead_of_fifo(ex: Dispatcher) -> None:
    blockers = await block_slots(ex)
    a = [await ex.submit(make_job("alice", tag=f"a{i}")) for i in range(3)]
    b = [await ex.submit(make_job("bob", tag=f"b{i}")) for i in range(2)]
    by_id = {h.job_id: h.job.meta["tag"] for h in a + b}
    queued = [e for e in ex.queue() if e.state == "queued"]
    assert [by_id[e.job_id] for e in queued] == ["a0", "b0", "a1", "b1", "a2"]
    assert [e.position for e in queued] == [1, 2, 3, 4, 5]
    etas = [e.eta for e in queued]
    assert all(x is not None and x > 0 for x in etas) and etas == sorted(etas)
    # every queued job was told its place in line
    for h in a + b:
        last_queued = [e for e in (await _replay(h)) if e.kind == "queued"][-1]
        assert last_queued.position is not None and last_queued.eta is not None

    started: list[str] = []

    async def watch(h) -> None:
        await until(h, "started")
        started.append(by_id[h.job_id])

    watchers = [asyncio.ensure_future(watch(h)) for h in a + b]
    await finish(blockers[0])  # one free slot: jobs start one after another
    await asyncio.gather(*(h.wait() for h in a + b))
    await asyncio.gather(*watchers)
    assert started == ["a0", "b0", "a1", "b1", "a2"]
    assert all(h.state == "done" for h in a + b)
    await finish(*blockers)


async def _replay(h) -> list[JobEvent]:
    out = []
    async with aclosing(h.events()) as events:
        async for ev in events:
            out.append(ev)
            if ev.kind == "queued":
                break
    return out


async def test_limits_and_bounded_queue_refuse_with_reasons(ex: Dispatcher) -> None:
    blockers = await block_slots(ex)
    mine = [await ex.submit(make_job("eve")) for _ in range(3)]
    with pytest.raises(UserLimitReached, match="limit is 3"):
        await ex.submit(make_job("eve"))
    assert len(ex.jobs_for("eve")) == 3
    others = [await ex.submit(make_job(f"user{i}")) for i in range(3)]  # queue now holds 6
    with pytest.raises(QueueFull, match=r"queue is full \(6 jobs waiting\)"):
        await ex.submit(make_job("frank"))
    assert ex.jobs_for("frank") == []
    assert [e.state for e in ex.queue()] == ["running"] * 2 + ["queued"] * 6
    await finish(*mine, *others, *blockers)
    assert ex.queue() == []


# -- faults --------------------------------------------------------------------------------


async def test_sigkill_mid_job_fails_or_retries_and_the_pool_recovers(ex: Dispatcher) -> None:
    before = sorted(ex.worker_pids())
    victim = await ex.submit(make_job("victim", steps=LONG))
    await until(victim, "progress")
    blocker = (await block_slots(ex, 1))[0]
    waiting = await ex.submit(make_job("patient"))
    assert waiting.state == "queued"
    pid = ex.worker_pid(victim.job_id)
    assert pid in before
    os.kill(pid, signal.SIGKILL)

    if ex.lost_retries == 0:  # local pool: a clear failure
        end = (await collect(victim))[-1]
        assert end.kind == "failed" and end.reason == "worker_lost" and "worker lost" in end.error
    else:  # Ray: the running job is retried once, first in line, and says so
        seen: list[JobEvent] = []
        async with aclosing(victim.events()) as events:
            async for ev in events:
                if ev.kind == "queued" and ev.note:
                    seen.append(ev)
                elif seen and ev.kind in ("started", "progress"):
                    seen.append(ev)
                    if ev.kind == "progress":
                        break
                assert not ev.terminal, ev.error
        assert "retrying" in seen[0].note and seen[0].position == 1
        assert [e.kind for e in seen] == ["queued", "started", "progress"]  # it really ran again
        await finish(victim)
        assert victim.state == "cancelled"
    assert (await waiting.result()).steps == 4  # the queued job went on, on a fresh worker
    after = await wait_for_workers(ex, 2, gone=pid)
    assert pid not in after and len(set(after) & set(before)) == 1
    await finish(blocker)


async def test_time_limit_stops_a_job_and_keeps_the_worker(ex: Dispatcher) -> None:
    pids = sorted(ex.worker_pids())
    saved = ex.config
    ex.config = dataclasses.replace(saved, job_timeout=0.5)  # a LONG-step job cannot make it
    try:
        h = await ex.submit(make_job("slowpoke", steps=LONG))
        end = (await collect(h))[-1]
    finally:
        ex.config = saved
    assert end.kind == "failed" and end.reason == "timeout" and "limit" in end.error
    assert sorted(ex.worker_pids()) == pids


# -- shutdown (last: the next test to need the executor gets a fresh one) ----------------


async def test_shutdown_lets_running_jobs_finish_then_stops_the_rest(ex: Dispatcher) -> None:
    short = await ex.submit(make_job("gina", steps=6))
    long = await ex.submit(make_job("hank", steps=LONG))
    queued = [await ex.submit(make_job("gina", tag=i)) for i in range(2)]  # behind her running limit
    assert [h.state for h in queued] == ["queued", "queued"]
    await until(long, "progress")
    closing = asyncio.ensure_future(ex.shutdown(grace=600))
    # never-started jobs end at once and come back to the caller, in start order
    for h in queued:
        end = await h.wait()
        assert end.kind == "failed" and end.reason == "shutdown"
    with pytest.raises(ExecutorClosed):
        await ex.submit(make_job("ivan"))
    # within the grace period running jobs go on: the short one completes...
    assert (await short.result()).steps == 6
    assert long.state == "running" and not closing.done()
    # ...until a second call cuts the grace short and the rest are stopped
    assert await ex.shutdown(grace=0) == []
    end = await long.wait()
    assert end.kind == "failed" and end.reason == "shutdown" and end.step < LONG
    left = await closing
    assert [j.job_id for j in left] == [h.job_id for h in queued]
    assert ex.worker_pids() == []
