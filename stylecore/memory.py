"""How much device memory a job needs, known from its size before it runs.

A job that runs out of GPU memory half-way wastes its own time and, in a batch, everyone
else's; so a worker asks this module first and, when a job cannot fit, runs it at the
largest size that does and says so. The estimate counts what the optimisation really keeps:
every activation autograd saves for the backward pass through VGG19 up to conv5_1 (from the
layer shapes: ReLU outputs, max-pool indices, the converted network input, the fp32 copies
the Gram and content losses keep), the backward pass's transient gradients, the optimiser
state and targets per job, and the network weights once. `tests/test_memory.py` checks the
activation count against what autograd actually saves on CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stylecore.notes import MEMORY_WORDS, Memory, Note
from stylecore.options import CONTENT_LAYER, STYLE_LAYERS, StyleOptions, resized
from stylecore.vgg19 import CONFIG, CONV_INDEX

# Multiplies the whole estimate: allocator rounding and fragmentation, cuDNN workspaces and
# the kernels' temporaries are real but not countable from shapes; 1.3 keeps a margin that a
# caching allocator's blocks fit in without being so loose that sizes are refused for nothing.
SAFETY = 1.3
# Fixed per-process headroom for cuDNN/cuBLAS workspaces and the autocast weight casts' churn.
WORKSPACE_BYTES = 256 * 2**20
_FP32 = 4
_INDEX = 8  # max-pool indices are int64


@dataclass(frozen=True)
class _Layer:
    kind: str  # "conv" or "pool"
    name: str
    channels: int  # output channels
    level: int  # how many 2x2 pools came before: spatial size is (h >> level, w >> level)


def _layers() -> list[_Layer]:
    """VGG19's convolutions and pools up to the deepest layer a run reads, from the network's config."""
    deepest = max(CONV_INDEX[name] for name in (*STYLE_LAYERS, CONTENT_LAYER))
    names = iter(CONV_INDEX)
    out: list[_Layer] = []
    index, level, channels = 0, 0, 3
    for v in CONFIG:
        if index > deepest:
            break
        if v == "M":
            out.append(_Layer("pool", f"pool{level + 1}", channels, level))
            level += 1
            index += 1
        else:
            channels = int(v)
            out.append(_Layer("conv", next(names), channels, level))
            index += 2  # the conv and its ReLU
    return out


def _pixels(width: int, height: int, level: int) -> int:
    return (height >> level) * (width >> level)


def weight_count() -> int:
    """Parameters of the convolutions a run executes (conv1_1..conv5_1)."""
    total, cin = 0, 3
    for layer in _layers():
        if layer.kind == "conv":
            total += cin * layer.channels * 9 + layer.channels
            cin = layer.channels
    return total


def conv_flops(width: int, height: int) -> int:
    """Multiply-adds x 2 of one forward pass through conv1_1..conv5_1 for one image."""
    total, cin = 0, 3
    for layer in _layers():
        if layer.kind == "conv":
            total += 2 * cin * layer.channels * 9 * _pixels(width, height, layer.level)
            cin = layer.channels
    return total


def saved_activation_bytes(
    width: int, height: int, batch: int = 1, dtype_bytes: int = 2, channels_last: bool = True, tv: bool = True
) -> int:
    """Bytes autograd keeps between the forward and backward pass of one optimisation step.

    `dtype_bytes` is the network's activation precision (2 under bf16 autocast, 4 in fp32).
    In-place ReLUs mean a conv output, its ReLU result and the next layer's saved input are
    one tensor, counted once.
    """
    per = 3 * width * height * dtype_bytes  # the converted input conv1_1 saves
    for layer in _layers():
        n = layer.channels * _pixels(width, height, layer.level)
        if layer.kind == "conv":
            per += n * dtype_bytes
        else:  # the pooled output (next conv's saved input) and the indices
            pooled = layer.channels * _pixels(width, height, layer.level + 1)
            per += pooled * dtype_bytes + pooled * _INDEX
    by_name = {layer.name: layer for layer in _layers()}
    # A Gram reads its ReLU output in place (a view in either memory format, in the network's
    # precision), so it saves nothing new; the content difference and the Gram differences are
    # fp32 tensors the squares keep.
    content = by_name[CONTENT_LAYER]
    per += content.channels * _pixels(width, height, content.level) * _FP32  # (F - target) for the square
    per += sum(by_name[n].channels ** 2 for n in STYLE_LAYERS) * _FP32  # (G - target) per layer
    if tv:
        per += 2 * 3 * width * height * _FP32
    return per * batch


def estimate_job_bytes(
    width: int,
    height: int,
    batch: int = 1,
    dtype_bytes: int = 2,
    channels_last: bool = True,
    *,
    style_scale: float = 1.0,
    safety: float = SAFETY,
) -> int:
    """Peak device bytes for `batch` jobs of `width`x`height` stepping together, network included.

    The peak is the larger of two phases that never overlap: the optimisation step (saved
    activations plus the backward pass's two largest gradient buffers) and the target pass
    (a no-grad forward of the style image, `style_scale`² times the output's area), on top of
    what stays for the whole run (weights, optimiser state, images and targets).
    """
    px = width * height
    weights = weight_count() * _FP32 + (weight_count() * dtype_bytes if dtype_bytes != _FP32 else 0)
    # Per job for the whole run: u, its gradient, Adam's two moments, u*scale, the stacked and
    # channels-last copies, the content image, EMA and the previous scale's image (3 ch fp32 each),
    # plus the content target at conv4_2 and the five style Grams.
    layers = {layer.name: layer for layer in _layers()}
    content = layers[CONTENT_LAYER]
    resident = 10 * 3 * px * _FP32 + content.channels * _pixels(width, height, content.level) * _FP32
    resident += sum(layers[n].channels ** 2 for n in STYLE_LAYERS) * _FP32
    widest = max(layer.channels * _pixels(width, height, layer.level) for layer in _layers())
    step = saved_activation_bytes(width, height, 1, dtype_bytes, channels_last) + 2 * widest * dtype_bytes
    style_px = px * style_scale**2
    targets = style_px * (3 * _FP32 + 3 * dtype_bytes + 2 * layers["conv1_1"].channels * dtype_bytes)
    peak = weights + WORKSPACE_BYTES + batch * (resident + max(step, targets))
    return math.ceil(peak * safety)


def max_side_for(
    free_bytes: int,
    aspect: float = 1.0,
    batch: int = 1,
    dtype_bytes: int = 2,
    channels_last: bool = True,
    *,
    style_scale: float = 1.0,
    limit: int = 4096,
) -> int:
    """The largest long side (px) whose job fits in `free_bytes`; 0 if not even 16 px fits.

    `aspect` is short side / long side (1 = square, 0.75 = 4:3); any orientation gives the
    same pixels. A binary search, which is sound because the estimate grows with the size.
    """
    aspect = min(1.0, max(aspect, 1e-3))

    def fits(side: int) -> bool:
        short = max(1, round(side * aspect))
        return estimate_job_bytes(side, short, batch, dtype_bytes, channels_last, style_scale=style_scale) <= free_bytes

    lo, hi = 16, limit
    if not fits(lo):
        return 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def fit_options(
    options: StyleOptions,
    content_size: tuple[int, int],
    free_bytes: int,
    *,
    batch: int = 1,
    dtype_bytes: int = 2,
    channels_last: bool = True,
    memory: Memory = "gpu",
) -> tuple[StyleOptions, Note | None]:
    """`options` unchanged when the job fits in `free_bytes`, else shrunk to fit with a note.

    Returns the options to run with and the note for the user (None when nothing changed),
    which names the `memory` ("gpu" or "ram") that ran short. Raises MemoryError when not even
    the smallest size fits.
    """
    w, h = resized(*content_size, options.size, options.size_side)
    need = estimate_job_bytes(w, h, batch, dtype_bytes, channels_last, style_scale=options.style_scale)
    if need <= free_bytes:
        return options, None
    long_side, short_side = max(w, h), min(w, h)
    side = max_side_for(
        free_bytes,
        short_side / long_side,
        batch,
        dtype_bytes,
        channels_last,
        style_scale=options.style_scale,
        limit=long_side,
    )
    # options.size names the long or the short side; scale it by what the long side may be.
    size = math.floor(options.size * side / long_side)
    if side == 0 or size < 16:
        words = MEMORY_WORDS[memory]
        raise MemoryError(f"not enough {words} for even a 16 px job ({free_bytes / 2**30:.1f} GiB free)")
    return options.replace(size=size), Note.of("ran_smaller", size=size, asked=options.size, memory=memory)


__all__ = [
    "SAFETY",
    "conv_flops",
    "estimate_job_bytes",
    "fit_options",
    "max_side_for",
    "saved_activation_bytes",
    "weight_count",
]
