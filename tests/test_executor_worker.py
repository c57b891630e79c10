"""The job-running code every backend's worker shares, in-process with the real engine: the
out-of-memory path cannot be provoked on demand, so the engine call is wrapped to fail."""

from __future__ import annotations

import dataclasses

import pytest
from executor_helpers import make_job, run_job

from stylecore.executors import JobEvent, device_memory
from stylecore.executors.config import WorkerSettings
from stylecore.executors.device_memory import memory_budget
from stylecore.executors.worker import device_fault, is_oom, plan_of, run_jobs
from stylecore.notes import Note


def test_out_of_memory_retries_once_at_a_smaller_size(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import stylecore.batch

    real = stylecore.batch.stylize_batch
    sizes: list[int] = []

    def flaky(items, **kw):
        sizes.append(items[0].options.size)
        if len(sizes) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return real(items, **kw)

    monkeypatch.setattr(stylecore.batch, "stylize_batch", flaky)
    events: list[JobEvent] = []
    end = run_job(make_job("ivy", steps=3), events.append, lambda: False, WorkerSettings(device="cpu"))
    assert end.kind == "done", end.error
    assert sizes == [32, 22]
    starts = [e for e in events if e.kind == "started"]
    assert len(starts) == 2 and starts[1].note == Note.of("oom_retry", size=32, smaller=22)
    assert "retrying at 22 px" in str(starts[1].note)
    assert max(end.result.width, end.result.height) == 22
    assert starts[1].note in end.result.notes


def test_out_of_memory_twice_fails_as_oom(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import stylecore.batch

    def always(*a, **kw):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(stylecore.batch, "stylize_batch", always)
    end = run_job(make_job("ivy"), lambda ev: None, lambda: False, WorkerSettings(device="cpu"))
    assert end.kind == "failed" and end.reason == "oom" and "out of memory" in end.error


def test_memory_budget_is_the_free_gpu_memory_capped_by_the_operators_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert memory_budget("cpu", WorkerSettings()) is None  # CPU: nobody counts unless told
    assert memory_budget("cpu", WorkerSettings(memory_limit=5 * 2**30)) == 5 * 2**30
    monkeypatch.setattr(device_memory, "device_free_bytes", lambda device: 8 * 2**30)  # as on a card
    assert memory_budget("cuda", WorkerSettings()) == 8 * 2**30
    assert memory_budget("cuda", WorkerSettings(memory_limit=5 * 2**30)) == 5 * 2**30
    assert memory_budget("cuda", WorkerSettings(memory_limit=9 * 2**30)) == 8 * 2**30


@pytest.mark.parametrize("fast", ["0", "1"], ids=["fp32", "bf16"])
def test_a_cpu_job_over_the_memory_limit_runs_smaller_or_fails_clearly(
    monkeypatch: pytest.MonkeyPatch, fast: str
) -> None:
    """Both precision paths, whatever this CPU has: the limit is sized from the plan the worker uses."""
    from stylecore.memory import estimate_job_bytes

    monkeypatch.setenv("STYLECORE_FAST", fast)
    job = make_job("ivy", steps=2)
    plan = plan_of(job.options)
    assert plan.activation_bytes == (2 if fast == "1" else 4)
    limit = estimate_job_bytes(24, 18, dtype_bytes=plan.activation_bytes, channels_last=plan.channels_last)
    assert estimate_job_bytes(32, 24, dtype_bytes=plan.activation_bytes, channels_last=plan.channels_last) > limit
    events: list[JobEvent] = []
    end = run_job(job, events.append, lambda: False, WorkerSettings(device="cpu", memory_limit=limit))
    assert end.kind == "done", end.error
    assert 16 <= max(end.result.width, end.result.height) < 32
    start = next(e for e in events if e.kind == "started")
    assert start.note is not None and str(start.note).endswith("instead of 32 px: not enough memory")
    assert start.note.code == "ran_smaller" and start.note["memory"] == "ram"
    assert start.note in end.result.notes
    assert end.result.device == ("cpu+bfloat16" if fast == "1" else "cpu")
    tiny = run_job(
        make_job("ivy", steps=2), events.append, lambda: False, WorkerSettings(device="cpu", memory_limit=2**20)
    )
    assert tiny.kind == "failed" and tiny.reason == "oom" and "not enough memory for even a 16 px job" in tiny.error


def test_is_oom_recognises_cpu_and_cuda_failures() -> None:
    import torch

    assert is_oom(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    assert is_oom(MemoryError())
    assert not is_oom(RuntimeError("shape mismatch"))


def test_make_executor_rejects_unknown_settings_and_kinds() -> None:
    from stylecore.executors import make_executor

    with pytest.raises(TypeError, match="workerz"):
        make_executor("local", workerz=2)
    with pytest.raises(ValueError, match="unknown executor kind"):
        make_executor("kubernetes")
    with pytest.raises(ValueError, match="max_queue"):
        make_executor("local", max_queue=0)


def test_ray_backend_without_the_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from stylecore.executors import ExecutorError, make_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail as if not installed
    with pytest.raises(ExecutorError, match=r"pip install 'stylebot\[ray\]'"):
        make_executor("ray")


def test_a_device_fault_ends_the_run_and_asks_for_a_new_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a CUDA error other than OOM the process's CUDA context is unusable: the worker says so."""
    import stylecore.batch

    calls: list[int] = []

    def broken(items, **kw):
        calls.append(len(items))
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nCompile with TORCH_USE_CUDA_DSA")

    monkeypatch.setattr(stylecore.batch, "stylize_batch", broken)
    first, second = make_job("ivy"), make_job("jim")
    second = dataclasses.replace(second, options=second.options.replace(size=24))  # another stack
    events: list[JobEvent] = []
    out = run_jobs([first, second], events.append, lambda jid: False, WorkerSettings(device="cpu"))
    assert out.fault is not None and "illegal memory access" in out.fault
    end = out.ends[first.job_id]
    assert end.kind == "failed" and end.reason == "internal" and "illegal memory access" in end.error
    # nothing more runs on a broken device: the next stack fails without touching it
    assert calls == [1]
    assert out.ends[second.job_id].kind == "failed" and "device failed" in out.ends[second.job_id].error
    assert [e.kind for e in events if e.job_id == second.job_id] == ["started", "failed"]


def test_only_device_faults_retire_a_worker() -> None:
    import torch

    assert device_fault(RuntimeError("CUDA error: device-side assert triggered")) is not None
    assert device_fault(RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED when calling cublasSgemm")) is not None
    assert device_fault(torch.OutOfMemoryError("CUDA out of memory")) is None  # the next job fits
    assert device_fault(RuntimeError("shape mismatch")) is None
    assert device_fault(ValueError("CUDA")) is None


def test_a_job_error_that_is_not_a_device_fault_leaves_the_worker_in_service(monkeypatch: pytest.MonkeyPatch) -> None:
    import stylecore.batch

    def bug(items, **kw):
        raise ValueError("a bug in the engine")

    monkeypatch.setattr(stylecore.batch, "stylize_batch", bug)
    job = make_job("ivy")
    out = run_jobs([job], lambda ev: None, lambda jid: False, WorkerSettings(device="cpu"))
    assert out.fault is None
    assert out.ends[job.job_id].reason == "internal" and "a bug in the engine" in out.ends[job.job_id].error


def test_a_run_that_converges_early_reports_its_last_step_and_says_so() -> None:
    # A tolerance no loss curve meets: the run stops at its first check after min_steps.
    job = make_job("ivy", steps=200)
    job = dataclasses.replace(job, options=job.options.replace(min_steps=10, stop_tol=0.9))
    events: list[JobEvent] = []
    # Progress is throttled to one event an hour: only the first and the last may pass.
    end = run_job(job, events.append, lambda: False, WorkerSettings(device="cpu", progress_interval=3600.0))
    assert end.kind == "done" and end.result is not None
    assert end.result.converged and 10 <= end.result.steps < 200
    progress = [e for e in events if e.kind == "progress"]
    assert progress[-1].step == end.result.steps and progress[-1].total == 200
