"""Where jobs run: `make_executor("local")` (default), `make_executor("ray")`, or any kind in
`BACKENDS`.

Every kind returns the same `Executor` (a Dispatcher over a backend), so a caller is written
once. A new backend is one module implementing `backend.Backend` plus one line here.
Importing this package does not import torch (nor Ray): backends load on first use.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from stylecore.executors.admission import Reservation
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
    WorkersUnavailable,
)
from stylecore.executors.config import ExecutorConfig
from stylecore.executors.dispatcher import Dispatcher

# kind -> "module:class" of its Backend
BACKENDS: dict[str, str] = {
    "local": "stylecore.executors.local:LocalBackend",
    "ray": "stylecore.executors.ray_backend:RayBackend",
}
KINDS: tuple[str, ...] = tuple(BACKENDS)


def make_executor(kind: str = "local", config: ExecutorConfig | None = None, **fields: Any) -> Dispatcher:
    """Build (not start) an executor; `fields` override `config` (see ExecutorConfig).

    Unknown fields raise TypeError naming them, so a typo in a caller's settings fails at
    start-up instead of being silently ignored.
    """
    known = {f.name for f in dataclasses.fields(ExecutorConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise TypeError(f"unknown executor setting(s) {unknown}; known: {sorted(known)}")
    if kind not in BACKENDS:
        raise ValueError(f"unknown executor kind {kind!r}; choose one of {KINDS}")
    cfg = dataclasses.replace(config or ExecutorConfig(), **fields)
    module, _, name = BACKENDS[kind].partition(":")
    backend = getattr(importlib.import_module(module), name)(cfg)
    return Dispatcher(backend, cfg)


__all__ = [
    "BACKENDS",
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
    "Reservation",
    "UserLimitReached",
    "WorkersUnavailable",
    "make_executor",
]
