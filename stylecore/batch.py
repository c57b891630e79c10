"""Several jobs of one size in one stack: the GPU throughput path.

A single 256-512 px job leaves most of a large GPU idle (kernel launches and small
convolutions); stacking jobs along the batch dimension fills it. Every job keeps what makes
it its own run - options, steps, lr, strength, layer weights, init, seed, colours,
callbacks, optimiser, when it stops - and only the forward/backward through the network is
shared, so a job's pixels do not depend on which other jobs it ran beside (see
`tests/test_batch.py`).

Importing this module does not load PyTorch: a scheduler groups jobs by `batch_key` in a
process that never runs one; `stylize_batch` loads the engine when it is called.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stylecore.events import CancelFn, ImageSource, JobOutcome, ProgressFn
from stylecore.options import StyleOptions
from stylecore.sizes import output_size, scale_sizes

if TYPE_CHECKING:
    from stylecore.network import VGGFeatures

BatchKey = Hashable


@dataclass
class BatchItem:
    """One job of a batch: its inputs, its own options and its own callbacks.

    `on_finish` is called the moment this job ends (result or `Cancelled`), while the others
    may still be running, so a worker can hand the result back without waiting for the batch.
    """

    content: ImageSource
    style: ImageSource | Sequence[ImageSource]
    options: StyleOptions = field(default_factory=StyleOptions)
    on_progress: ProgressFn | None = None
    should_cancel: CancelFn | None = None
    on_finish: Callable[[JobOutcome], None] | None = None


def batch_key(content_size: tuple[int, int], options: StyleOptions) -> BatchKey | None:
    """What jobs must share to run in one stack; None for a job that never batches.

    Same final size and scale sizes (so their images stack at every scale), same device,
    fast flag and weights (one network, one precision). Everything else may differ per job.
    L-BFGS evaluates its loss through a closure of its own and keeps curvature pairs of its
    own steps, so it does not step in lockstep with others and always runs alone.
    """
    if options.optimizer != "adam":
        return None
    final = output_size(*content_size, options)
    return (final, tuple(scale_sizes(final, options)), options.device, options.weights, options.fast)


def stylize_batch(items: Sequence[BatchItem], *, model: VGGFeatures | None = None) -> list[JobOutcome]:
    """Run `items` together; one outcome per item, in order (a `Cancelled` carries its partial).

    All items must have the same `batch_key` (a single item may be anything `stylize` takes).
    Each job's result equals what `stylize` gives for it alone, up to the floating-point
    effect of the batch size on the convolution kernels (see tests/samepixels.py). Errors
    such as out-of-memory end the whole call; the caller decides what to re-run.
    """
    from stylecore.engine import Run, run_stack
    from stylecore.network import get_model

    if not items:
        return []
    runs = [Run(it.content, it.style, it.options, it.on_progress, it.should_cancel) for it in items]
    if len(runs) > 1:
        keys = {batch_key(r.content_img.size, r.opts) for r in runs}
        if None in keys or len(keys) != 1:
            raise ValueError(
                "jobs in one batch need the same batch_key (size, scales, device, weights, "
                "fast flag, and Adam); group them with stylecore.batch.batch_key first"
            )
        if len({r.plan for r in runs}) != 1:
            raise ValueError("jobs in one batch must resolve to the same device plan")
    first = runs[0]
    model = model if model is not None else get_model(first.opts.weights, first.device, first.plan.channels_last)
    return run_stack(runs, model, [it.on_finish for it in items])


__all__ = ["BatchItem", "BatchKey", "batch_key", "stylize_batch"]
