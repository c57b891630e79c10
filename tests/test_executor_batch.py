"""Batching in the executors: which queued jobs share a slot, how a worker runs a stack
(in a pool process or a Ray actor), and what memory fitting does, with the real engine at
32 px (CPU stands in for a GPU where the free memory is faked)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from executor_helpers import first_event, local_ray, make_job, run_job
from imagefiles import noise_png
from samepixels import assert_same_image

import stylecore.executors.device_memory as device_memory
import stylecore.executors.worker as worker_mod
from stylecore.executors import Job, JobEvent, JobHandle, make_executor
from stylecore.executors.base import new_job_id
from stylecore.executors.config import WorkerSettings
from stylecore.executors.dispatcher import Dispatcher
from stylecore.executors.scheduler import FairScheduler
from stylecore.executors.worker import run_jobs
from stylecore.memory import estimate_job_bytes
from stylecore.notes import Note
from stylecore.options import StyleOptions


def run_batch(jobs: list[Job], emit, should_cancel, settings: WorkerSettings) -> dict[str, JobEvent]:
    """A stack through the worker's one path; each job's terminal event."""
    return run_jobs(jobs, emit, should_cancel, settings).ends


# -- which jobs share a slot (pure scheduler) ---------------------------------------------


def _sched(*jobs: tuple[str, str]) -> FairScheduler:
    s = FairScheduler(slots=1, max_queue=20, max_per_user_queued=5)
    for job_id, user in jobs:
        s.add(job_id, user, 1024, 10)
    return s


def test_more_jobs_join_only_from_the_front_of_the_fair_order():
    s = _sched(("a1", "ann"), ("a2", "ann"), ("b1", "bob"), ("c1", "cat"), ("d1", "dan"))
    assert s.order() == ["a1", "b1", "c1", "d1", "a2"]
    assert s.pick() == "a1"
    # everything matches, but ann is at her running limit and the window is the next 2
    assert s.pick_more(lambda j: True, limit=3, window=2) == ["b1", "c1"]
    assert sorted(s.running_ids()) == ["a1", "b1", "c1"]
    assert s.order() == ["d1", "a2"]


def test_a_matching_job_too_far_back_does_not_jump_the_queue():
    s = _sched(("a1", "ann"), ("b1", "bob"), ("c1", "cat"), ("d1", "dan"))
    assert s.pick() == "a1"
    assert s.pick_more(lambda j: j in ("b1", "d1"), limit=3, window=2) == ["b1"]  # d1 is third
    assert s.pick_more(lambda j: False, limit=3, window=5) == []
    assert s.order() == ["c1", "d1"]


# -- a worker running a stack -------------------------------------------------------------


@pytest.fixture(scope="module")
def pair() -> list[Job]:
    return [
        make_job("ann", steps=4, seed=1, init="noise"),
        make_job("bob", steps=6, lr=0.05, content=noise_png(40, 30, seed=5)),
    ]


@pytest.fixture(scope="module")
def solo(pair) -> dict[str, JobEvent]:
    settings = WorkerSettings(device="cpu")
    return {j.job_id: run_job(j, lambda ev: None, lambda: False, settings) for j in pair}


def test_a_stack_gives_each_job_its_solo_result_and_its_own_events(pair, solo):
    events: list[JobEvent] = []
    ends = run_batch(pair, events.append, lambda jid: False, WorkerSettings(device="cpu"))
    for job in pair:
        mine = [e for e in events if e.job_id == job.job_id]
        assert mine[0].kind == "started" and mine[0].batch_size == 2
        assert [e.step for e in mine if e.kind == "progress"] == list(range(1, job.options.steps + 1))
        assert mine[-1].terminal and mine[-1] is ends[job.job_id]
        assert ends[job.job_id].kind == "done"
        assert_same_image(ends[job.job_id].result.png, solo[job.job_id].result.png)
    # the shorter job ended (and said so) while the longer one was still running
    first_end = next(i for i, e in enumerate(events) if e.terminal)
    assert events[first_end].job_id == pair[0].job_id
    assert any(e.kind == "progress" and e.job_id == pair[1].job_id for e in events[first_end:])


def test_cancelling_one_job_of_a_stack_leaves_the_other_alone(pair, solo):
    events: list[JobEvent] = []
    victim, other = pair[1], pair[0]

    def should_cancel(jid: str) -> bool:
        return jid == victim.job_id and any(e.kind == "progress" and e.job_id == jid for e in events)

    ends = run_batch(pair, events.append, should_cancel, WorkerSettings(device="cpu"))
    assert ends[victim.job_id].kind == "cancelled" and ends[victim.job_id].step == 1
    assert ends[other.job_id].kind == "done"
    assert_same_image(ends[other.job_id].result.png, solo[other.job_id].result.png)


def test_a_stack_that_runs_out_of_memory_reruns_each_job_alone(monkeypatch, pair, solo):
    import torch

    import stylecore.batch

    real = stylecore.batch.stylize_batch

    def oom(items, **kw):  # two do not fit together; one does
        if len(items) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(items, **kw)

    monkeypatch.setattr(stylecore.batch, "stylize_batch", oom)
    events: list[JobEvent] = []
    ends = run_batch(pair, events.append, lambda jid: False, WorkerSettings(device="cpu"))
    for job in pair:
        starts = [e for e in events if e.job_id == job.job_id and e.kind == "started"]
        assert [s.batch_size for s in starts] == [2, None]
        assert starts[1].note == Note.of("alone_after_oom", jobs=2)
        assert "retrying this job on its own" in str(starts[1].note)
        assert ends[job.job_id].kind == "done"
        assert_same_image(ends[job.job_id].result.png, solo[job.job_id].result.png)


def _fits(options: StyleOptions, side: int, batch: int = 1) -> int:
    """Free bytes in which a job of `side` px (4:3) just fits, as the worker will estimate it."""
    dtype_bytes, channels_last = worker_mod._precision(options)
    return estimate_job_bytes(side, side * 3 // 4, batch, dtype_bytes, channels_last)


def test_a_job_too_large_for_the_free_memory_runs_smaller_and_says_so(monkeypatch):
    job = make_job("ivy", steps=3)
    monkeypatch.setattr(device_memory, "device_free_bytes", lambda device: _fits(job.options, 24))
    events: list[JobEvent] = []
    end = run_job(job, events.append, lambda: False, WorkerSettings(device="cpu"))
    assert end.kind == "done", end.error
    assert 16 <= max(end.result.width, end.result.height) <= 24
    note = next(n for n in end.result.notes if n.code == "ran_smaller")
    assert note["asked"] == 32 and note["size"] < 32 and note["memory"] == "ram"  # (on CUDA: "gpu")
    assert str(note).startswith("ran at ") and str(note).endswith(" px instead of 32 px: not enough memory")
    assert events[0].kind == "started" and events[0].note == note  # the user hears it at the start
    monkeypatch.setattr(device_memory, "device_free_bytes", lambda device: 2**20)
    end = run_job(job, lambda ev: None, lambda: False, WorkerSettings(device="cpu"))
    assert end.kind == "failed" and end.reason == "oom"


def test_jobs_that_fit_only_one_at_a_time_run_one_after_another(monkeypatch, pair, solo):
    free = _fits(pair[0].options, 32)  # one 32 px job fits, two together do not
    monkeypatch.setattr(device_memory, "device_free_bytes", lambda device: free)
    events: list[JobEvent] = []
    ends = run_batch(pair, events.append, lambda jid: False, WorkerSettings(device="cpu"))
    assert [e.batch_size for e in events if e.kind == "started"] == [None, None]
    kinds = [(e.job_id, e.kind) for e in events if e.kind in ("started", "done")]
    assert kinds == [
        (pair[0].job_id, "started"),
        (pair[0].job_id, "done"),
        (pair[1].job_id, "started"),
        (pair[1].job_id, "done"),
    ]
    for job in pair:
        assert_same_image(ends[job.job_id].result.png, solo[job.job_id].result.png)


def test_a_ray_actor_stream_ends_every_job_even_when_the_worker_code_raises():
    from stylecore.executors.ray_backend import StyleActor

    actor = StyleActor.__new__(StyleActor)  # no Ray and no network: only the streaming part

    def work(emit):
        emit(JobEvent("started", "a", step=0, total=4))
        emit(JobEvent("cancelled", "a", step=0))
        emit(JobEvent("cancelled", "a", step=1))  # a job ends once
        raise RuntimeError("boom")

    events = list(actor._stream(["a", "b", "c"], work))
    assert [(e.job_id, e.kind) for e in events] == [
        ("a", "started"),
        ("a", "cancelled"),
        ("b", "failed"),
        ("c", "failed"),
    ]
    assert events[-1].reason == "internal" and "boom" in events[-1].error


# -- the pool ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A local Ray cluster for this module's Ray tests, shut down after them so that the
    session-scoped one in test_executor_contract.py can start its own; reused (and left up)
    when that one is already running."""
    with local_ray("stylebot-batch-tests"):
        yield


@asynccontextmanager
async def _started(kind: str, request: pytest.FixtureRequest, **fields: object) -> AsyncIterator[Dispatcher]:
    """A started one-worker executor of `kind`, shut down after the test."""
    if kind == "ray":
        request.getfixturevalue("ray_cluster")
        # No (fake) GPU per actor: test_executor_contract.py's pool may hold both when its
        # cluster is the one reused here.
        fields = {"ray_num_cpus_per_actor": 0.5, "ray_num_gpus_per_actor": 0, **fields}
    ex = make_executor(
        kind, workers=1, device="cpu", threads_per_worker=1, start_timeout=240.0, kill_grace=20.0, **fields
    )
    await ex.start()
    try:
        yield ex
    finally:
        await ex.shutdown(grace=0)


async def _blocker(ex: Dispatcher) -> JobHandle:
    """A long job running on the one worker, so the jobs submitted next queue up together until
    the test cancels it."""
    blocker = await ex.submit(make_job("blocker", steps=5000, content=noise_png(48, 48, seed=9)))
    await first_event(blocker, "progress")
    return blocker


KINDS = ["local", pytest.param("ray", marks=pytest.mark.ray)]


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", KINDS)
async def test_two_queued_same_size_jobs_run_as_one_batch_on_one_worker(kind, request):
    async with _started(kind, request, max_batch=2) as ex:
        assert ex.max_batch == 2
        blocker = await _blocker(ex)
        job_a = make_job("ann", steps=4, seed=1, init="noise")
        job_b = make_job("bob", steps=6, lr=0.05, content=noise_png(40, 30, seed=5))
        a = await ex.submit(job_a)
        b = await ex.submit(job_b)
        other = await ex.submit(make_job("cat", steps=3, content=noise_png(30, 30, seed=6)))  # another size
        await blocker.cancel()
        await blocker.wait()
        results = await asyncio.gather(a.result(), b.result(), other.result())
        starts = {}
        for h in (a, b, other):
            starts[h.job_id] = [e async for e in h.events() if e.kind == "started"]
        assert starts[a.job_id][0].batch_size == 2 and starts[b.job_id][0].batch_size == 2
        assert starts[other.job_id][0].batch_size is None  # a stack of one: it ran alone
        # each result equals the same job run alone on the same worker
        for job, res in zip((job_a, job_b), results, strict=False):
            again = await ex.submit(dataclasses.replace(job, job_id=new_job_id()))
            alone = await again.result()
            assert (res.width, res.height, res.steps) == (alone.width, alone.height, alone.steps)
            assert_same_image(res.png, alone.png)


@pytest.mark.ray
@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.timeout(240)
async def test_cancelling_one_job_of_a_ray_stack_leaves_the_other_to_finish(request):
    async with _started("ray", request, max_batch=2) as ex:
        blocker = await _blocker(ex)
        victim = await ex.submit(make_job("ann", steps=5000))
        other = await ex.submit(make_job("bob", steps=40, content=noise_png(40, 30, seed=5)))
        await blocker.cancel()
        assert (await first_event(victim, "started")).batch_size == 2
        await first_event(victim, "progress")
        assert await victim.cancel()
        end = await victim.wait()
        assert end.kind == "cancelled"
        done = await other.result()
        assert done.steps == 40
        # the two stepped together, so the other job ran on after the victim stopped
        assert end.step is not None and end.step < 40
        assert (await blocker.wait()).kind == "cancelled"


@pytest.mark.ray
@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.timeout(240)
async def test_ray_actors_on_cpu_run_one_job_at_a_time_by_default(request):
    async with _started("ray", request) as ex:
        assert ex.backend.max_batch == 1 and ex.max_batch == 1
        jobs = [make_job("ann"), make_job("bob")]
        with pytest.raises(ValueError, match="max_batch=1"):
            await ex.backend.run(0, jobs, lambda ev: None)
        h = await ex.submit(jobs[0])
        assert (await h.result()).steps == 4
        assert (await first_event(h, "started")).batch_size is None
