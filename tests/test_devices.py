"""The fast path is chosen from the hardware, and the step loop leaves the device alone.

No GPU is needed: `plan_for` only decides, and the "no host sync" property is structural.
A host sync is whatever reads a tensor's value on the host (`.item()`, `float(t)`,
`bool(t)`), which on CUDA stalls the CPU until the GPU has caught up; all of them reach
PyTorch's dispatcher as `aten._local_scalar_dense`, which a dispatch mode can see on CPU.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from stylecore import StyleOptions, stylize
from stylecore import devices as devices_mod
from stylecore.batch import BatchItem, stylize_batch
from stylecore.devices import autocast, plan_for


def test_cuda_gets_bf16_autocast_channels_last_and_cudnn_benchmark(monkeypatch):
    monkeypatch.delenv("STYLECORE_FAST", raising=False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)  # restored after the test
    plan = plan_for(torch.device("cuda"))
    assert plan.autocast_dtype == torch.bfloat16 and plan.channels_last
    assert torch.backends.cudnn.benchmark
    assert plan.label == "cuda+bfloat16"
    ref = plan_for(torch.device("cuda"), fast=False)  # the fp32 reference path
    assert ref.autocast_dtype is None and not ref.channels_last


@pytest.mark.parametrize("has_bf16", [False, True])
def test_cpu_uses_bf16_and_channels_last_only_with_bf16_units(monkeypatch, has_bf16):
    monkeypatch.delenv("STYLECORE_FAST", raising=False)
    monkeypatch.setattr(devices_mod, "cpu_has_fast_bf16", lambda: has_bf16)
    plan = plan_for(torch.device("cpu"))
    assert plan.autocast_dtype == (torch.bfloat16 if has_bf16 else None)
    assert plan.channels_last == has_bf16
    reference = plan_for(torch.device("cpu"), fast=False)
    assert reference.autocast_dtype is None and not reference.channels_last


@pytest.mark.parametrize("has_bf16", [False, True])
def test_stylecore_fast_forces_either_path_whatever_the_cpu(monkeypatch, has_bf16):
    monkeypatch.setattr(devices_mod, "cpu_has_fast_bf16", lambda: has_bf16)
    monkeypatch.setenv("STYLECORE_FAST", "1")
    forced = plan_for(torch.device("cpu"))
    assert forced.autocast_dtype == torch.bfloat16 and forced.activation_bytes == 2
    assert plan_for(torch.device("cpu"), fast=False).autocast_dtype is None  # the reference path stays fp32
    monkeypatch.setenv("STYLECORE_FAST", "0")
    assert plan_for(torch.device("cpu")).autocast_dtype is None and plan_for(torch.device("cpu")).activation_bytes == 4
    assert plan_for(torch.device("cuda")).autocast_dtype is None
    monkeypatch.setenv("STYLECORE_FAST", "auto")
    assert plan_for(torch.device("cpu")).autocast_dtype == (torch.bfloat16 if has_bf16 else None)
    monkeypatch.setenv("STYLECORE_FAST", "maybe")
    with pytest.raises(ValueError, match="STYLECORE_FAST"):
        plan_for(torch.device("cpu"))


class _Spy(torch.nn.Module):
    """The real network, recording whether autocast was on for each forward."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.autocast: list[bool] = []

    def forward(self, x, layers):
        self.autocast.append(torch.is_autocast_enabled("cpu"))
        return self.inner(x, layers)


@pytest.mark.parametrize("has_bf16", [False, True])
def test_the_engine_runs_the_network_under_the_plan_it_was_given(monkeypatch, vgg, content_img, style_img, has_bf16):
    monkeypatch.delenv("STYLECORE_FAST", raising=False)
    monkeypatch.setattr(devices_mod, "cpu_has_fast_bf16", lambda: has_bf16)
    spy = _Spy(vgg)
    res = stylize(content_img, style_img, StyleOptions(size=32, steps=1, scales=1, device="cpu"), model=spy)
    assert spy.autocast and all(on == has_bf16 for on in spy.autocast)
    assert res.stats.device == ("cpu+bfloat16" if has_bf16 else "cpu")
    with autocast(plan_for(torch.device("cpu"), fast=False)):
        assert not torch.is_autocast_enabled("cpu")


class _SyncLog(TorchDispatchMode):
    """Appends "sync" for every host read of a tensor's value, skipping the optimiser's own."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log
        self.in_optimizer = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default and not self.in_optimizer:
            self.log.append("sync")
        return func(*args, **(kwargs or {}))


@pytest.fixture
def sync_log(monkeypatch):
    """A log of host syncs, optimiser steps and progress events, in the order they happened.

    torch's default Adam reads its step counter with `.item()`, but keeps that counter on the
    host (a CPU tensor) unless it is fused or capturable, so that read never waits for a GPU;
    on the CUDA fast path the engine uses the fused Adam, which has none. Reads inside
    `Adam.step` are therefore not counted; the step itself is logged to mark the loop.
    """
    log: list[str] = []
    mode = _SyncLog(log)
    real_step = torch.optim.Adam.step

    def step(self, *a, **kw):
        log.append("step")
        mode.in_optimizer = True
        try:
            return real_step(self, *a, **kw)
        finally:
            mode.in_optimizer = False

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    with mode:
        yield log


def _loop_window(log: list[str]) -> list[str]:
    """From the first optimiser step to the last progress event, without the steps."""
    first = log.index("step")
    last = max(i for i, x in enumerate(log) if x.startswith("progress"))
    return [x for x in log[first : last + 1] if x != "step"]


def test_the_step_loop_syncs_only_for_a_due_progress_event(sync_log, vgg, content_img, style_img):
    opts = StyleOptions(size=32, steps=10, scales=1, report_every=5, device="cpu")
    stylize(content_img, style_img, opts, on_progress=lambda e: sync_log.append(f"progress{e.step}"), model=vgg)
    assert sync_log.count("step") == 10
    # on_progress ran every 5th step, and the only host read was that event's loss float
    assert _loop_window(sync_log) == ["sync", "progress5", "sync", "progress10"]


def test_a_batch_syncs_only_for_each_jobs_due_events(sync_log, vgg, content_img, style_img):
    a = BatchItem(
        content_img,
        style_img,
        StyleOptions(size=32, steps=10, scales=1, report_every=5, device="cpu"),
        on_progress=lambda e: sync_log.append(f"progress_a{e.step}"),
    )
    b = BatchItem(
        content_img,
        style_img,
        StyleOptions(size=32, steps=8, scales=1, report_every=4, seed=2, lr=0.05, device="cpu"),
        on_progress=lambda e: sync_log.append(f"progress_b{e.step}"),
        on_finish=lambda r: sync_log.append("end_b"),
    )
    stylize_batch([a, b], model=vgg)
    assert sync_log.count("step") == 18  # one per job per step, through shared forward passes
    # b's result reads its four loss terms once, as it leaves the batch; a goes on untouched
    assert _loop_window(sync_log) == [
        "sync",
        "progress_b4",
        "sync",
        "progress_a5",
        "sync",
        "progress_b8",
        *["sync"] * 4,
        "end_b",
        "sync",
        "progress_a10",
    ]
