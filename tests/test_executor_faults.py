"""Workers that never become ready: a start-up deadline on every (re)start, restarts with a
growing delay, queued jobs that fail clearly instead of waiting forever, and readiness an
operator's probe can read. The faults are switched on in the *next* worker by
worker_hooks.py, with the real engine at 32 px.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from executor_helpers import first_event, hooked_local_executor, local_ray, make_job
from worker_hooks import FAULTS_ENV, HOOK

from stylecore.executors import ExecutorConfig, ExecutorError, WorkersUnavailable, make_executor

pytestmark = [pytest.mark.timeout(300)]

LONG = 5000  # steps: far more than any test waits for; such jobs are always ended by the test


@pytest.fixture
def faults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The fault switches for workers started during the test (they inherit the variable)."""
    monkeypatch.setenv(FAULTS_ENV, str(tmp_path))
    yield tmp_path
    for flag in ("crash", "hang"):  # let any straggler go
        (tmp_path / flag).unlink(missing_ok=True)


async def until(check: Callable[[], bool], what: str, timeout: float = 240.0) -> None:
    """Wait (a condition, bounded) until `check()` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


def test_failed_starts_are_retried_after_a_doubling_delay() -> None:
    cfg = ExecutorConfig(restart_delay=0.5, restart_delay_max=30.0)
    assert [cfg.restart_delay_after(n) for n in range(8)] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    with pytest.raises(ValueError, match="module:function"):
        ExecutorConfig(worker_setup_hook="no_colon")


async def test_start_fails_with_the_reason_when_no_worker_can_start(faults: Path) -> None:
    (faults / "crash").touch()
    with pytest.raises(ExecutorError, match="could not start: RuntimeError: injected start-up failure"):
        await hooked_local_executor().start()
    (faults / "crash").unlink()
    (faults / "hang").touch()  # loading forever: the deadline ends it
    ex = hooked_local_executor(start_timeout=3.0)
    with pytest.raises(ExecutorError, match="not ready after 3 s"):
        await ex.start()
    assert ex.worker_pids() == []


async def test_a_replacement_that_fails_at_start_fails_queued_jobs_then_recovers(faults: Path) -> None:
    ex = hooked_local_executor()
    await ex.start()
    try:
        assert ex.ready_workers() == 1 and ex.workers()[0]["state"] == "ready"
        running = await ex.submit(make_job("ann", steps=LONG))
        await first_event(running, "progress")
        waiting = await ex.submit(make_job("bob"))
        pid = ex.worker_pid(running.job_id)
        assert pid is not None
        (faults / "crash").touch()
        os.kill(pid, signal.SIGKILL)
        assert (await running.wait()).reason == "worker_lost"
        # The replacement fails at start: the queued job would wait forever, so it fails now.
        end = await waiting.wait()
        assert end.kind == "failed" and end.reason == "no_worker"
        assert "injected start-up failure" in end.error
        info = ex.workers()[0]
        assert info["state"] == "failed" and not info["ready"] and "injected start-up failure" in info["error"]
        assert ex.ready_workers() == 0
        with pytest.raises(WorkersUnavailable, match="injected start-up failure"):
            await ex.submit(make_job("cat"))
        with pytest.raises(WorkersUnavailable, match="injected start-up failure"):
            ex.reserve("cat")  # refused before the caller fetches any input
        # It keeps trying; once a worker can start, jobs are taken again.
        (faults / "crash").unlink()
        await until(lambda: ex.ready_workers() == 1, "a worker is ready again")
        assert ex.workers()[0]["state"] == "ready" and "error" not in ex.workers()[0]
        assert (await (await ex.submit(make_job("cat"))).result()).steps == 4
    finally:
        await ex.shutdown(grace=0)


async def test_a_replacement_that_hangs_at_start_is_cut_off_by_the_deadline(faults: Path) -> None:
    ex = hooked_local_executor()
    await ex.start()
    try:
        running = await ex.submit(make_job("ann", steps=LONG))
        await first_event(running, "progress")
        waiting = await ex.submit(make_job("bob"))
        pid = ex.worker_pid(running.job_id)
        assert pid is not None
        # Every start from now on gets 5 s; the next one never becomes ready by itself.
        ex.backend.config = dataclasses.replace(ex.backend.config, start_timeout=5.0)
        (faults / "hang").touch()
        os.kill(pid, signal.SIGKILL)
        end = await waiting.wait()
        assert end.kind == "failed" and end.reason == "no_worker" and "not ready after 5 s" in end.error
        assert ex.ready_workers() == 0 and "not ready after 5 s" in ex.workers()[0]["error"]
        hung = int(ex.workers()[0]["pid"])
        await until(lambda: int(ex.workers()[0]["pid"]) != hung, "the hung worker is replaced")
        with pytest.raises(ProcessLookupError):
            os.kill(hung, 0)  # killed, not left behind
        (faults / "hang").unlink()
        ex.backend.config = dataclasses.replace(ex.backend.config, start_timeout=240.0)
        await until(lambda: ex.ready_workers() == 1, "a worker is ready again")
        assert (await (await ex.submit(make_job("cat"))).result()).steps == 4
    finally:
        await ex.shutdown(grace=0)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A local Ray cluster for this module (reused when another test module's is up)."""
    with local_ray("stylebot-faults"):
        yield


@pytest.mark.ray
async def test_a_ray_actor_that_fails_at_start_fails_start_with_the_reason(ray_cluster: None, faults: Path) -> None:
    (faults / "crash").touch()
    pythonpath = os.pathsep.join(p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p)
    ex = make_executor(
        "ray",
        workers=1,
        device="cpu",
        ray_num_gpus_per_actor=0,
        ray_num_cpus_per_actor=0.5,
        worker_setup_hook=HOOK,
        start_timeout=240.0,
        ray_runtime_env={"env_vars": {FAULTS_ENV: str(faults), "PYTHONPATH": pythonpath, "DISCORD_TOKEN": "x" * 20}},
    )
    assert "DISCORD_TOKEN" not in ex.backend._runtime_env()["env_vars"]  # never shipped to actors
    with pytest.raises(ExecutorError, match="could not start: RuntimeError: injected start-up failure"):
        await ex.start()
