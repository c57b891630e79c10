"""Small real jobs for the executor tests, and the executors and waits they run under.

Jobs are 32 px noise images with a handful of steps on the CPU, so each runs the real engine
in a moment; a "long" job is long in steps, never in pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import aclosing, contextmanager
from typing import Any

import pytest
from imagefiles import noise_png
from worker_hooks import HOOK

from stylecore.executors import Job, JobEvent, make_executor
from stylecore.executors.config import WorkerSettings
from stylecore.executors.dispatcher import Dispatcher
from stylecore.executors.worker import run_jobs
from stylecore.options import StyleOptions

CONTENT = noise_png(40, 30, seed=1)
STYLE = noise_png(32, 32, seed=2)


def make_job(
    user: str,
    steps: int = 4,
    *,
    content: bytes = CONTENT,
    group: str | None = None,
    max_active: int | None = None,
    meta: dict[str, Any] | None = None,
    **options: Any,
) -> Job:
    """A 32 px, one-scale CPU job of `user`'s that runs all its `steps` (no early stop: a long job
    stays long however fast the machine); `options` overrides any other `StyleOptions` field."""
    opts = StyleOptions(**{"size": 32, "steps": steps, "scales": 1, "device": "cpu", "stop_tol": 0.0, **options})
    return Job(content, (STYLE,), opts, user_id=user, meta=dict(meta or {}), group=group, max_active=max_active)


def run_job(
    job: Job, emit: Callable[[JobEvent], Any], should_cancel: Callable[[], bool], settings: WorkerSettings
) -> JobEvent:
    """One job through the worker's one path (a stack of one), in this process; its terminal event."""
    return run_jobs([job], emit, lambda jid: should_cancel(), settings).ends[job.job_id]


async def first_event(h: Any, kind: str, pred: Callable[[JobEvent], bool] = lambda ev: True) -> JobEvent:
    """The job's first event of `kind` (that `pred` accepts); an AssertionError if the job ends first."""
    async with aclosing(h.events()) as events:
        async for ev in events:
            if ev.kind == kind and pred(ev):
                return ev
            if ev.terminal:
                raise AssertionError(f"{h.job_id} ended ({ev.kind}: {ev.error}) before a {kind} event")
    raise AssertionError("event stream ended without a terminal event")


def hooked_local_executor(**fields: Any) -> Dispatcher:
    """One CPU worker that runs worker_hooks.inject first, so a test can make its next (re)start
    crash or hang; restarts come quickly so a test does not wait on the back-off."""
    settings: dict[str, Any] = dict(
        workers=1,
        device="cpu",
        threads_per_worker=1,
        worker_setup_hook=HOOK,
        kill_grace=20.0,
        restart_delay=0.2,
        restart_delay_max=1.0,
        start_timeout=240.0,
    )
    return make_executor("local", **{**settings, **fields})


def start_local_ray(namespace: str, **init: Any) -> None:
    """A fresh local Ray cluster, never one named by $RAY_ADDRESS, with two fake GPUs so the
    one-actor-per-GPU code path is the one under test."""
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        num_gpus=2,
        include_dashboard=False,
        log_to_driver=False,
        namespace=namespace,
        **init,
    )


@contextmanager
def local_ray(namespace: str) -> Iterator[None]:
    """A module's local Ray cluster, shut down after it so that another module can start its own;
    one already running in this process is reused (and left up)."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        yield
        return
    start_local_ray(namespace)
    try:
        yield
    finally:
        ray.shutdown()
