"""Every executor setting, and what each worker is told, in one place.

`ExecutorConfig` is what an operator sets (`make_executor(kind, **fields)`); `WorkerSettings`
is the part a worker process needs, derived from it by `ExecutorConfig.worker_settings` for
every backend alike; `default_max_batch` is the one rule for how many jobs a worker stacks
and `default_cpu_workers` for how many local workers a machine without GPUs gets, when the
operator did not say. Nothing here imports torch: the caller's process reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# A stack pays on a GPU, where one 256-512 px job leaves most of the card idle; on a CPU the
# cores are already busy with one job, so a stack only makes every job in it slower.
GPU_MAX_BATCH = 4


def default_max_batch(on_gpu: bool) -> int:
    """Jobs a worker runs in one stack unless `ExecutorConfig.max_batch` says otherwise."""
    return GPU_MAX_BATCH if on_gpu else 1


# Without GPUs, single-threaded workers, one per core: on a 2-core machine one worker with both
# cores as torch threads spent 5-7x the CPU time per job of a single-threaded one (its OpenMP
# threads wait for each other at every operator, and lose most when another process takes a
# core), and finished 3.5-13x fewer jobs per hour than 2 workers x 1 thread (docs/benchmarks.md).
# Each worker holds its own torch runtime and network (~0.6 GB resident running a small job), so
# the count stops here and bigger machines give each worker more threads instead. (That cap is a
# memory bound, not a measured optimum.)
CPU_MAX_WORKERS = 4


def default_cpu_workers(cores: int) -> int:
    """Local workers on a machine without GPUs unless `ExecutorConfig.workers` says otherwise."""
    return max(1, min(cores, CPU_MAX_WORKERS))


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker runs every job it is given (fixed per worker, not per job).

    Plain builtins only: it is pickled into every worker process and Ray actor.
    """

    device: str | None = None  # forced on every job; None keeps the job's own choice
    weights: str = "original"  # loaded once at start so the first job is not slow
    oom_retry_scale: float = 0.7  # long side multiplier for the one retry after OOM
    progress_interval: float = 0.0  # seconds between progress events (0 = every step)
    threads: int | None = None  # torch intra-op threads (CPU pools split the cores)
    memory_limit: int | None = None  # bytes this worker's jobs may use (RAM on CPU); see ExecutorConfig
    secret_env: tuple[str, ...] = ()  # variables removed from the worker's environment and its logs
    setup_hook: str | None = None  # "module:function" called first thing in every worker (see ExecutorConfig)


@dataclass(frozen=True)
class ExecutorConfig:
    """Every knob of every backend; `make_executor(kind, **fields)` builds one.

    Limits are per executor (so per calling process); `None` for `workers` means "one per
    GPU" (local without GPUs: `default_cpu_workers`; Ray: one actor per GPU in the cluster).
    """

    workers: int | None = None
    device: str | None = None  # force "cpu" / "cuda" for every job; None: the job's option
    gpus: tuple[int, ...] | None = None  # local: which GPUs to use (default: all visible)
    threads_per_worker: int | None = None  # local CPU: torch threads each (default: cores / workers)
    weights: str = "original"  # network loaded at worker start
    # The operator's caps, across every group (see stylecore.executors.admission; a group's own
    # limit comes with each job as `Job.max_active`). Open reservations count as queued jobs.
    max_queue: int = 50  # jobs waiting (not running) before submit refuses with QueueFull
    max_per_user_queued: int = 3  # one member's waiting jobs
    max_per_user_running: int = 1  # one member's jobs running at once (more wait their turn)
    max_per_user_active: int | None = None  # one member's queued + running jobs; None: no cap of its own
    reservation_timeout: float = 120.0  # seconds an unused reservation holds its place
    job_timeout: float | None = 900.0  # seconds of running per attempt; None = no limit
    kill_grace: float = 10.0  # a stop request unanswered this long gets the worker killed
    # Seconds every worker (re)start may take to load the network and report ready; one that
    # takes longer is killed and counts as a failed start.
    start_timeout: float = 300.0
    # Failed starts are retried after restart_delay, doubling per consecutive failure up to
    # restart_delay_max; while every worker is failing to start, queued jobs fail ("no_worker").
    restart_delay: float = 0.5
    restart_delay_max: float = 30.0
    lost_retries: int | None = None  # re-runs after a worker dies mid-job (None: the backend's default)
    oom_retry_scale: float = 0.7
    # Bytes one worker's jobs may use at once (device memory on CUDA, RAM on CPU); a job whose
    # estimate is larger runs at the largest size that fits and says so. On CUDA the card's free
    # memory caps it too. None: no cap on CPU, the free memory on CUDA.
    memory_limit: int | None = None
    # Jobs one worker runs in one stack (same size and scales; see stylecore.batch.batch_key).
    # None: `default_max_batch` for the workers' device.
    max_batch: int | None = None
    # How far down the fair order a job may be to join the next job's stack (None: max_batch),
    # so batching never lets a job overtake more than this many others.
    batch_window: int | None = None
    progress_interval: float = 0.0  # seconds between progress events from a worker (0 = every step)
    step_seconds_per_mpx: float = 2.0  # ETA prior before any run was measured
    keep_finished: int = 200  # ended jobs' metadata kept for get() (results are not kept once delivered)
    # Environment variables workers never see (removed from their environment, and their values
    # scrubbed from worker logs): workers need no credentials of the process that runs them.
    secret_env: tuple[str, ...] = ("DISCORD_TOKEN",)
    # "module:function" called with no arguments first thing in every worker process, before
    # the network loads (as Ray's `worker_process_setup_hook`): logging, tracing, test faults.
    worker_setup_hook: str | None = None
    # Ray only
    ray_address: str | None = None  # None: $RAY_ADDRESS, else start a local Ray
    ray_namespace: str = "stylebot"
    ray_num_gpus_per_actor: float = 1.0
    ray_num_cpus_per_actor: float = 1.0
    ray_resources: dict[str, float] = field(default_factory=dict)  # extra custom resources per actor
    ray_init: dict[str, Any] = field(default_factory=dict)  # extra ray.init kwargs (tests: num_cpus...)
    # Each actor's Ray runtime_env (env_vars, pip, ...); `secret_env` names never pass in its env_vars.
    ray_runtime_env: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError("workers must be at least 1")
        for name in ("max_queue", "max_per_user_queued", "max_per_user_running"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_per_user_active is not None and self.max_per_user_active < 1:
            raise ValueError("max_per_user_active must be at least 1 (or None for no cap of its own)")
        if self.job_timeout is not None and self.job_timeout <= 0:
            raise ValueError("job_timeout must be positive (or None for no limit)")
        for name in ("start_timeout", "restart_delay", "restart_delay_max", "reservation_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive seconds")
        if self.memory_limit is not None and self.memory_limit <= 0:
            raise ValueError("memory_limit must be positive bytes (or None for no limit)")
        if not 0.1 <= self.oom_retry_scale < 1:
            raise ValueError("oom_retry_scale must be in [0.1, 1)")
        for name in ("max_batch", "batch_window"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or None for the default)")
        hook = self.worker_setup_hook
        if hook is not None and (hook.count(":") != 1 or not all(hook.partition(":")[::2])):
            raise ValueError(f"worker_setup_hook must be 'module:function', got {hook!r}")
        if isinstance(self.secret_env, str):
            raise ValueError("secret_env must be a sequence of variable names, not one string")

    def worker_settings(self, threads: int | None = None) -> WorkerSettings:
        """What every worker of this executor is told; `threads` is the backend's CPU split."""
        return WorkerSettings(
            device=self.device,
            weights=self.weights,
            oom_retry_scale=self.oom_retry_scale,
            progress_interval=self.progress_interval,
            threads=threads,
            memory_limit=self.memory_limit,
            secret_env=tuple(self.secret_env),
            setup_hook=self.worker_setup_hook,
        )

    def local_pool(self, gpus: int, cores: int) -> tuple[int, int | None]:
        """(worker processes, torch threads each) for a local pool on a machine with `gpus` GPUs to
        use and `cores` CPU cores; threads None leaves GPU workers torch's own choice."""
        workers = self.workers or (gpus if gpus else default_cpu_workers(cores))
        threads = self.threads_per_worker
        if threads is None and not gpus:
            threads = max(1, cores // workers)
        return workers, threads

    def max_batch_on(self, on_gpu: bool) -> int:
        """The stack size for workers on a GPU (or not): the operator's, else the default."""
        return self.max_batch or default_max_batch(on_gpu)

    def restart_delay_after(self, failures: int) -> float:
        """Seconds before the next start of a worker that failed `failures` times in a row."""
        if failures <= 0:
            return 0.0
        return min(self.restart_delay_max, self.restart_delay * 2 ** (failures - 1))


__all__ = [
    "CPU_MAX_WORKERS",
    "GPU_MAX_BATCH",
    "ExecutorConfig",
    "WorkerSettings",
    "default_cpu_workers",
    "default_max_batch",
]
