"""The memory estimate: counted from the layer shapes, checked against what autograd keeps."""

from __future__ import annotations

import pytest
import torch
from conftest import _smooth_image

from stylecore import StyleOptions
from stylecore.devices import DevicePlan
from stylecore.memory import (
    conv_flops,
    estimate_job_bytes,
    fit_options,
    max_side_for,
    saved_activation_bytes,
)
from stylecore.notes import Note
from stylecore.objective import Objective, make_targets

GiB = 2**30


PLANS = {
    "fp32": DevicePlan(torch.device("cpu"), None, False),
    # the fast path's layout and precision (on a CPU without bf16 units oneDNN emulates it: slow, same tensors)
    "bf16-nhwc": DevicePlan(torch.device("cpu"), torch.bfloat16, True),
}


@pytest.mark.parametrize("precision", sorted(PLANS))
@pytest.mark.parametrize(("w", "h", "batch", "tv"), [(64, 48, 1, 0.0), (67, 45, 3, 0.0), (96, 64, 2, 1.0)])
def test_activation_count_matches_what_autograd_saves(vgg, style_img, w, h, batch, tv, precision):
    """Every tensor autograd saves for one step's backward on CPU, by distinct storage (in-place
    ReLUs share one), network weights left out; odd sizes check the pools' floors."""
    opts = StyleOptions(size=w, scales=1, device="cpu", tv_weight=tv)
    plan = PLANS[precision]
    targets = make_targets(vgg, _smooth_image(w, h, 1), [style_img], [1.0], (w, h), opts, plan)
    objective = Objective(vgg, [(targets, opts)] * batch, plan)
    weights = {t.untyped_storage().data_ptr() for t in [*vgg.parameters(), *vgg.buffers()]}
    # autocast's bf16 copies of the weights, made once per process, are counted with the weights
    weight_shapes = {tuple(p.shape) for p in vgg.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if tuple(t.shape) in weight_shapes and t.dtype == plan.autocast_dtype:
            return t
        if storage.data_ptr() not in weights and storage.nbytes() > 64:  # skip per-job scalars
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    u = torch.rand(batch, 3, h, w, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        objective(u * 1.0)
    counted = saved_activation_bytes(
        w, h, batch, dtype_bytes=plan.activation_bytes, channels_last=plan.channels_last, tv=bool(tv)
    )
    # exact but for the TV differences, counted at full width/height instead of one less
    assert counted == pytest.approx(sum(saved.values()), rel=1e-3)


def test_conv_flops_match_the_network_run(vgg):
    flops = 0

    def hook(module: torch.nn.Conv2d, inputs, output) -> None:
        nonlocal flops
        k = module.kernel_size[0] * module.kernel_size[1]
        flops += 2 * module.in_channels * module.out_channels * k * output.shape[-2] * output.shape[-1]

    convs = [m for m in vgg.layers if isinstance(m, torch.nn.Conv2d)]
    handles = [m.register_forward_hook(hook) for m in convs]
    try:
        with torch.no_grad():
            vgg(torch.rand(1, 3, 40, 56), ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv4_2", "conv5_1"))
    finally:
        for hd in handles:
            hd.remove()
    assert conv_flops(56, 40) == flops


def test_estimate_grows_with_size_batch_and_precision():
    sides = [64, 128, 256, 512, 768, 1024, 2048]
    by_side = [estimate_job_bytes(s, s * 3 // 4) for s in sides]
    assert by_side == sorted(by_side) and len(set(by_side)) == len(by_side)
    assert estimate_job_bytes(512, 400) < estimate_job_bytes(512, 401) < estimate_job_bytes(513, 401)
    by_batch = [estimate_job_bytes(512, 512, batch=b) for b in (1, 2, 3, 4, 8)]
    assert by_batch == sorted(by_batch) and len(set(by_batch)) == len(by_batch)
    assert estimate_job_bytes(512, 512, dtype_bytes=4, channels_last=False) > estimate_job_bytes(512, 512)
    assert estimate_job_bytes(512, 512, style_scale=4.0) > estimate_job_bytes(512, 512)
    # plausible magnitudes: a 1024 px bf16 job needs gigabytes, not megabytes or hundreds of GB
    assert 1 * GiB < estimate_job_bytes(1024, 1024) < 8 * GiB


def test_max_side_is_the_largest_that_fits_and_grows_with_memory():
    sides = [max_side_for(g * GiB, aspect=0.75) for g in (1, 2, 4, 8, 16, 80)]
    assert sides == sorted(sides) and sides[0] > 256
    for free in (1 * GiB, 5 * GiB):
        side = max_side_for(free, aspect=0.75, limit=100_000)
        assert estimate_job_bytes(side, round(side * 0.75)) <= free
        assert estimate_job_bytes(side + 1, round((side + 1) * 0.75)) > free
    assert max_side_for(4 * GiB, batch=4) < max_side_for(4 * GiB)
    assert max_side_for(10 * 2**20) == 0  # not even 16 px
    assert max_side_for(200 * GiB) == 4096  # capped at the largest size a job may ask for


def test_fit_options_shrinks_only_what_does_not_fit():
    opts = StyleOptions(size=2048)
    need = estimate_job_bytes(2048, 1536)
    same, note = fit_options(opts, (4000, 3000), need)
    assert same is opts and note is None
    smaller, note = fit_options(opts, (4000, 3000), need // 2)
    assert 1024 < smaller.size < 2048
    assert note == Note.of("ran_smaller", size=smaller.size, asked=2048, memory="gpu")
    assert str(note) == f"ran at {smaller.size} px instead of 2048 px: not enough GPU memory"
    assert estimate_job_bytes(smaller.size, smaller.size * 3 // 4) <= need // 2
    # the short side named by size_side scales the same way
    short, _ = fit_options(StyleOptions(size=1536, size_side="short"), (4000, 3000), need // 2)
    assert short.size == pytest.approx(smaller.size * 0.75, abs=2)
    with pytest.raises(MemoryError, match="not enough GPU memory"):
        fit_options(opts, (4000, 3000), 2**20)
