"""Device choice and the per-device fast path.

bf16 autocast pays only where the hardware has bf16 units: always on recent CUDA cards,
on CPUs only with AVX512-BF16 or AMX (elsewhere oneDNN emulates it and a step gets ~50x
slower, measured on this project's AVX2 CI machine). So the choice is made here, once,
from what the hardware reports.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DevicePlan:
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: plain fp32
    channels_last: bool

    @property
    def label(self) -> str:
        amp = f"+{str(self.autocast_dtype).removeprefix('torch.')}" if self.autocast_dtype else ""
        return f"{self.device}{amp}"


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` takes CUDA when one is visible; asking for CUDA without one is an error, not a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was requested but no CUDA device is available (use --device cpu or auto)")
    return dev


def cpu_has_fast_bf16() -> bool:
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, c, lambda: False)() for c in checks)


def plan_for(device: torch.device, fast: bool = True) -> DevicePlan:
    """What the fast path uses on this device; `fast=False` gives the plain fp32 reference path."""
    if device.type == "cuda":
        if fast:
            torch.backends.cudnn.benchmark = True
            return DevicePlan(device, torch.bfloat16, True)
        return DevicePlan(device, None, False)
    if fast and cpu_has_fast_bf16():
        return DevicePlan(device, torch.bfloat16, False)
    return DevicePlan(device, None, False)


@contextlib.contextmanager
def autocast(plan: DevicePlan) -> Iterator[None]:
    if plan.autocast_dtype is None:
        yield
        return
    with torch.autocast(plan.device.type, dtype=plan.autocast_dtype):
        yield
