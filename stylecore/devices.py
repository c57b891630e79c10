"""Device choice and the per-device fast path.

bf16 autocast pays only where the hardware has bf16 units: always on recent CUDA cards,
on CPUs only with AVX512-BF16 or AMX (elsewhere oneDNN emulates it and a step gets ~50x
slower on an AVX2-only CPU); where it pays, the network also runs channels-last (NHWC).
So the choice is made here, once, from what the hardware reports, unless `STYLECORE_FAST`
forces it: `0` always takes the fp32 path, `1` always takes bf16 (even where it is
emulated), so both paths can be exercised on any machine.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DevicePlan:
    device: torch.device
    autocast_dtype: torch.dtype | None  # None: plain fp32
    channels_last: bool

    @property
    def activation_bytes(self) -> int:
        """Bytes per activation the network keeps for the backward pass (what memory estimates need)."""
        return 4 if self.autocast_dtype is None else self.autocast_dtype.itemsize

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


FAST_ENV = "STYLECORE_FAST"


def forced_fast() -> bool | None:
    """`STYLECORE_FAST` as a forced choice: True (1), False (0), or None (unset: the hardware decides)."""
    value = os.environ.get(FAST_ENV, "").strip().lower()
    if value in ("", "auto"):
        return None
    if value in ("1", "true", "on", "yes"):
        return True
    if value in ("0", "false", "off", "no"):
        return False
    raise ValueError(f"{FAST_ENV}={value!r}: use 0, 1 or auto")


def plan_for(device: torch.device, fast: bool = True) -> DevicePlan:
    """What the fast path uses on this device; `fast=False` gives the plain fp32 reference path.

    `STYLECORE_FAST=0` turns the fast path off everywhere; `STYLECORE_FAST=1` turns bf16 on
    CPUs without bf16 units too (slow, but it lets any machine run the bf16 code path).
    """
    forced = forced_fast()
    if forced is not None:
        fast = fast and forced
    if device.type == "cuda":
        if fast:
            torch.backends.cudnn.benchmark = True
            return DevicePlan(device, torch.bfloat16, True)
        return DevicePlan(device, None, False)
    if fast and (forced or cpu_has_fast_bf16()):
        # oneDNN's bf16 convolutions and max-pools run fastest on NHWC tensors: channels-last
        # made a whole step ~20% faster on an AVX512-BF16 CPU (docs/benchmarks.md).
        return DevicePlan(device, torch.bfloat16, True)
    return DevicePlan(device, None, False)


@contextlib.contextmanager
def autocast(plan: DevicePlan) -> Iterator[None]:
    if plan.autocast_dtype is None:
        yield
        return
    with torch.autocast(plan.device.type, dtype=plan.autocast_dtype):
        yield
