"""Where jobs run: `make_executor("local")` (default) or `make_executor("ray")`.

Both return the same `Executor` (a Dispatcher over a backend), so the bot is written once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from stylecore.executors.base import (
    TERMINAL,
    Executor,
    ExecutorClosed,
    ExecutorError,
    Job,
    JobCancelled,
    JobEvent,
    JobFailed,
    JobHandle,
    JobResult,
    QueueEntry,
    QueueFull,
    UserLimitReached,
)
from stylecore.executors.dispatcher import Dispatcher, ExecutorConfig

KINDS = ("local", "ray")


def make_executor(kind: str = "local", config: ExecutorConfig | None = None, **fields: Any) -> Dispatcher:
    """Build (not start) an executor; `fields` override `config` (see ExecutorConfig).

    Unknown fields raise TypeError naming them, so a typo in the bot's settings fails at
    start-up instead of being silently ignored.
    """
    known = {f.name for f in dataclasses.fields(ExecutorConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise TypeError(f"unknown executor setting(s) {unknown}; known: {sorted(known)}")
    cfg = dataclasses.replace(config or ExecutorConfig(), **fields)
    if kind == "local":
        from stylecore.executors.local import LocalBackend

        return Dispatcher(LocalBackend(cfg), cfg, lost_retries=0)
    if kind == "ray":
        from stylecore.executors.ray_backend import RayBackend

        return Dispatcher(RayBackend(cfg), cfg, lost_retries=1)
    raise ValueError(f"unknown executor kind {kind!r}; choose one of {KINDS}")


__all__ = [
    "KINDS",
    "TERMINAL",
    "Executor",
    "ExecutorClosed",
    "ExecutorConfig",
    "ExecutorError",
    "Job",
    "JobCancelled",
    "JobEvent",
    "JobFailed",
    "JobHandle",
    "JobResult",
    "QueueEntry",
    "QueueFull",
    "UserLimitReached",
    "make_executor",
]
