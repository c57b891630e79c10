"""What a worker's device has free and what it uses: the budget a job is sized to before it
runs, and the figure operators see per worker. Runs inside the worker (imports torch lazily).
"""

from __future__ import annotations

import os

from stylecore.executors.config import WorkerSettings


def device_free_bytes(device: str) -> int | None:
    """Bytes a new job may still allocate on `device`; None where nobody counts (CPU).

    The caching allocator's reserved-but-unused blocks count as free: this process can reuse
    them, though the driver reports them as taken.
    """
    import torch

    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        return None  # (asking for CUDA without one fails in the engine, with its own message)
    free, _ = torch.cuda.mem_get_info(dev)
    return int(free + torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev))


def memory_budget(device: str, settings: WorkerSettings) -> int | None:
    """What a job on `device` may use: the free device memory, capped by the operator's limit.

    On CPU only the limit counts: the OS pages rather than fails, so the cap is what keeps one
    huge job from swapping the machine to a halt.
    """
    free = device_free_bytes(device)
    limit = settings.memory_limit
    return limit if free is None else free if limit is None else min(free, limit)


def memory_used(device: str) -> int | None:
    """What operators see as this worker's memory use on `device`: on CUDA the most this process
    held (reserved by the caching allocator, so unavailable to others) since the last
    `reset_memory_peak`; on CPU the process's resident set now (Linux /proc; None elsewhere)."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        return int(torch.cuda.max_memory_reserved(dev)) if torch.cuda.is_available() else None
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def reset_memory_peak(device: str) -> None:
    """Start measuring `memory_used`'s CUDA peak afresh (for one run)."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats(dev)


__all__ = ["device_free_bytes", "memory_budget", "memory_used", "reset_memory_peak"]
