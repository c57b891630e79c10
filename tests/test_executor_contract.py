"""One contract for every backend: the bot must not be able to tell where a job ran.

Each test runs against the local process pool and against Ray (a local `ray.init` with
fake GPUs), with the real engine at 32 px and a handful of steps. "Long" jobs are long in
steps, not pixels, and are always cancelled once the test has what it needs. Assertions
count steps and events, never seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import io
import json
import os
import signal
import weakref
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import pytest
from executor_helpers import first_event, make_job, start_local_ray
from PIL import Image
from worker_hooks import DEVICE_FAULT_SEED, FAULTS_ENV, HOLD_SEED, HOOK, SECRET_NAME, SECRET_VALUE, TOKEN_SHAPED

from stylecore.executors import (
    ExecutorClosed,
    ExecutorError,
    JobCancelled,
    JobEvent,
    JobFailed,
    QueueFull,
    UserLimitReached,
    make_executor,
)
from stylecore.executors.dispatcher import Dispatcher

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
    worker_setup_hook=HOOK,  # see worker_hooks.py: what each test switches on in the workers
    secret_env=("DISCORD_TOKEN", SECRET_NAME),
)


class Pool:
    """One executor per backend for the session, recreated if a test shut it down; its
    workers run worker_hooks.inject with the fault switches in `faults`."""

    def __init__(self, kind: str, faults: Path) -> None:
        self.kind = kind
        self.faults = faults
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
async def pool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Pool]:
    faults = tmp_path_factory.mktemp(f"faults-{request.param}")
    (faults / "log-secret").touch()
    # The environment workers are started from holds a secret they must not get.
    worker_env = {FAULTS_ENV: str(faults), SECRET_NAME: SECRET_VALUE}
    ray = None
    with pytest.MonkeyPatch.context() as mp:
        if request.param == "ray":
            ray = pytest.importorskip("ray")
            # Always a fresh cluster. Its workers' environment (as a cluster started from an
            # operator's shell would) holds the secret.
            tests_dir = str(Path(__file__).parent)
            pythonpath = os.pathsep.join(p for p in (tests_dir, os.environ.get("PYTHONPATH")) if p)
            start_local_ray("stylebot-tests", runtime_env={"env_vars": {**worker_env, "PYTHONPATH": pythonpath}})
        else:
            for name, value in worker_env.items():
                mp.setenv(name, value)
        p = Pool(request.param, faults)
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


async def block_slots(ex: Dispatcher, n: int | None = None) -> list:
    """Occupy worker slots with long jobs (each its own user) and wait until they run."""
    hs = [await ex.submit(make_job(f"blocker{i}", steps=LONG)) for i in range(n or ex.slots)]
    for h in hs:
        await first_event(h, "progress")
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
    h = await ex.submit(make_job("alice", steps=6, preview_every=3, preview_size=24, meta={"guild": 7}))
    # Three consumers waiting at the end: each gets the result (it is delivered once, to all).
    first, second, result = await asyncio.gather(collect(h), collect(h), h.result())
    assert first == second  # independent consumers see the same stream
    kinds = [e.kind for e in first]
    assert kinds[0] == "queued" and first[0].position == 1
    assert kinds[1] == "started" and first[1].total == 6 and first[1].device == "cpu"
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

    assert result.job_id == h.job_id and result.steps == 6 and first[-1].result is result
    img = Image.open(io.BytesIO(result.png))
    assert img.format == "PNG" and img.size == (result.width, result.height) == (32, 24)
    assert set(result.losses) >= {"content", "style", "total"}
    assert h.state == "done" and ex.get(h.job_id) is h
    # For operators: the worker's resident memory after the job (CPU, Linux), on its slot's info.
    assert result.memory_used is not None and result.memory_used > 50 * 2**20
    assert any(w.get("memory_used") == result.memory_used for w in ex.workers())

    late = await collect(h)  # a late subscriber gets the latest state, ending with the end
    assert [e.kind for e in late] == ["queued", "started", "progress", "preview", "done"]
    assert late[2].step == 6
    # The result was delivered: the executor no longer holds the image.
    assert late[-1].result is None and late[-1].step == 6
    with pytest.raises(ExecutorError, match="already delivered"):
        await h.result()
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


async def until_collected(ref: weakref.ref, what: str) -> None:
    """Wait (a condition, bounded) until nothing holds the object `ref` points to."""
    for _ in range(600):
        gc.collect()
        if ref() is None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} is still referenced: {gc.get_referrers(ref())}")


async def test_a_finished_job_keeps_neither_its_inputs_nor_its_delivered_result(ex: Dispatcher) -> None:
    job = make_job("kim", steps=3)
    job_ref = weakref.ref(job)
    h = await ex.submit(job)
    del job
    kinds, result_refs = [], []
    async for ev in h.events():  # as a caller does: use each event, keep none
        kinds.append(ev.kind)
        if ev.result is not None:
            result_refs.append(weakref.ref(ev.result))
    del ev
    assert kinds[-1] == "done" and len(result_refs) == 1
    await until_collected(job_ref, "the finished job's inputs")
    await until_collected(result_refs[0], "the delivered result")
    assert ex.get(h.job_id) is h and h.state == "done"  # its small metadata is still there


async def test_workers_never_see_secrets_and_their_logs_are_scrubbed(ex: Dispatcher, pool: Pool) -> None:
    for info in ex.workers():
        pid = int(info["pid"])
        names = json.loads((pool.faults / f"environ-{pid}.json").read_text())
        assert FAULTS_ENV in names  # workers do inherit their environment...
        assert SECRET_NAME not in names and "DISCORD_TOKEN" not in names  # ...but not the secrets
        environ = Path(f"/proc/{pid}/environ")
        if pool.kind == "local" and environ.exists():  # not even in the environment it started with
            assert f"{SECRET_NAME}=".encode() not in environ.read_bytes()
        log = (pool.faults / f"worker-{pid}.log").read_text()
        assert "token=[redacted]" in log and "hunter2" not in log and TOKEN_SHAPED not in log
        if pool.kind == "ray":  # the actor's environment had the secret: its value is scrubbed too
            assert SECRET_VALUE not in log
    if pool.kind == "local":
        assert os.environ[SECRET_NAME] == SECRET_VALUE  # the caller's own environment is untouched


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
    await first_event(h, "progress")
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
    a = [await ex.submit(make_job("alice", meta={"tag": f"a{i}"})) for i in range(3)]
    b = [await ex.submit(make_job("bob", meta={"tag": f"b{i}"})) for i in range(2)]
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
        await first_event(h, "started")
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


async def test_a_busy_group_cannot_starve_a_lone_one(ex: Dispatcher) -> None:
    blockers = await block_slots(ex)
    busy = [await ex.submit(make_job(f"member{i % 3}", group="busy")) for i in range(5)]
    lone = await ex.submit(make_job("solo", group="quiet"))
    queued = [e for e in ex.queue() if e.state == "queued"]
    assert queued[1].job_id == lone.job_id and queued[1].group == "quiet"  # the second start, not the sixth
    assert [e.user_id for e in queued if e.group == "busy"] == ["member0", "member1", "member2", "member0", "member1"]
    await finish(*busy, lone, *blockers)


async def test_a_reservation_refuses_before_the_inputs_exist_and_becomes_the_job(ex: Dispatcher) -> None:
    blockers = await block_slots(ex)
    async with ex.reserve("rita", "g1", max_active=2) as mine:
        second = ex.reserve("rita", "g1", max_active=2)
        with pytest.raises(UserLimitReached) as exc:  # two requests of hers are under way here
            ex.reserve("rita", "g1", max_active=2)
        assert (exc.value.scope, exc.value.limit, exc.value.pending) == ("group", 2, 2)
        others = [ex.reserve(f"user{i}") for i in range(4)]  # the queue's six places are held
        with pytest.raises(QueueFull, match=r"queue is full \(6 jobs waiting\)"):
            ex.reserve("sam")
        h = await ex.submit(make_job("rita", group="g1", max_active=2), reservation=mine)
        assert h.state == "queued" and ex.jobs_for("rita")[0].group == "g1"
    second.release()  # e.g. her download failed
    for r in others:
        r.release()
    assert ex.scheduler.reserved_count == 0
    with ex.reserve("sam"):  # places are free again
        pass
    await finish(h, *blockers)


async def test_jobs_accepted_before_a_restart_are_all_taken_back(ex: Dispatcher) -> None:
    blockers = await block_slots(ex)
    # More than the queue holds (6), and than each member may have waiting (3) or in the group (1).
    back = [await ex.submit(make_job(f"user{i % 2}", steps=2, group="g", max_active=1), readmit=True) for i in range(9)]
    assert [e.state for e in ex.queue()] == ["running"] * 2 + ["queued"] * 9
    with pytest.raises(QueueFull):  # they count against the queue like any job
        await ex.submit(make_job("newcomer"))
    await finish(*blockers)
    assert [(await h.result()).steps for h in back] == [2] * 9


# -- faults --------------------------------------------------------------------------------


async def test_sigkill_mid_job_fails_or_retries_and_the_pool_recovers(ex: Dispatcher) -> None:
    before = sorted(ex.worker_pids())
    lost = sum(w["lost"] for w in ex.workers())
    victim = await ex.submit(make_job("victim", steps=LONG))
    await first_event(victim, "progress")
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
        assert seen[0].note.code == "worker_lost_retry" and seen[0].position == 1
        assert [e.kind for e in seen] == ["queued", "started", "progress"]  # it really ran again
        await finish(victim)
        assert victim.state == "cancelled"
    assert (await waiting.result()).steps == 4  # the queued job went on, on a fresh worker
    after = await wait_for_workers(ex, 2, gone=pid)
    assert pid not in after and len(set(after) & set(before)) == 1
    assert sum(w["lost"] for w in ex.workers()) == lost + 1  # what operators graph as workers lost
    await finish(blocker)


async def test_a_device_fault_fails_the_job_and_replaces_the_worker(ex: Dispatcher) -> None:
    """A CUDA error other than OOM (injected on CPU) leaves a worker that would fail every later
    job: that job fails, and the worker is replaced before it gets another."""
    before = sorted(ex.worker_pids())
    faulty = make_job("gpu-victim")
    faulty = dataclasses.replace(faulty, options=faulty.options.replace(seed=DEVICE_FAULT_SEED))
    h = await ex.submit(faulty)
    end = (await collect(h))[-1]
    assert end.kind == "failed" and end.reason == "internal" and "illegal memory access" in end.error
    pid = next(iter(set(before) - set(await wait_for_workers_replaced(ex, before))))
    assert pid in before
    after = await ex.submit(make_job("gpu-victim"))
    assert (await after.result()).steps == 4


async def wait_for_workers_replaced(ex: Dispatcher, before: list[int]) -> list[int]:
    """The ready workers' pids once one of `before` has been replaced by a new warm one."""
    while True:
        pids = ex.worker_pids()
        if len(pids) == len(before) and set(pids) != set(before):
            return pids
        await asyncio.sleep(0.1)


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


async def test_shutdown_lets_running_jobs_finish_then_stops_the_rest(ex: Dispatcher, pool: Pool) -> None:
    # Gina's short job is held at its first progress report until the shutdown has begun, so her
    # queued jobs cannot start before it however fast this CPU runs six steps.
    hold = pool.faults / "hold"
    hold.touch()
    try:
        short = await ex.submit(make_job("gina", steps=6, seed=HOLD_SEED))
        long = await ex.submit(make_job("hank", steps=LONG))
        queued = [await ex.submit(make_job("gina", meta={"tag": i})) for i in range(2)]  # behind her running limit
        assert [h.state for h in queued] == ["queued", "queued"]
        await first_event(long, "progress")
        assert short.state == "running"
        closing = asyncio.ensure_future(ex.shutdown(grace=600))
        # never-started jobs end at once and come back to the caller, in start order
        for h in queued:
            end = await h.wait()
            assert end.kind == "failed" and end.reason == "shutdown"
        with pytest.raises(ExecutorClosed):
            await ex.submit(make_job("ivan"))
        with pytest.raises(ExecutorClosed):
            ex.reserve("ivan")
    finally:
        hold.unlink(missing_ok=True)
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
