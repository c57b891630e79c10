"""What a job will cost and which jobs may share a worker's stack, read from its content
image's header only: cheap, never a full decode, and free of torch, because it runs in the
caller's process at submit time.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Hashable

from stylecore.executors.base import Job
from stylecore.options import StyleOptions, resized


def output_pixels(width: int, height: int, size: int, side: str = "long") -> int:
    """Pixels of the final image the engine will make from a `width`×`height` input (the
    engine's own rule, `stylecore.options.resized`); an unknown input size counts as a square."""
    if width <= 0 or height <= 0:
        return size * size
    w, h = resized(width, height, size, side)
    return w * h


def header_size(data: bytes) -> tuple[int, int] | None:
    """The image's (width, height) from its header; None when Pillow cannot read one."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:
        return None


def stack_key(size: tuple[int, int], options: StyleOptions) -> Hashable | None:
    """Which queued jobs the dispatcher may send to one worker as a stack; None: always alone.

    Keyed on the inputs of `stylecore.batch.batch_key` (the final size, and the options its
    scale sizes derive from) rather than on that function, which needs the engine and so
    torch. Jobs equal here have equal batch keys; the worker groups a stack by `batch_key`
    itself after fitting sizes to memory, so at worst a stack runs as smaller ones.
    """
    if options.optimizer != "adam":  # L-BFGS steps with a line search of its own
        return None
    final = resized(*size, options.size, options.size_side)
    return (final, options.scales, options.min_scale_size, options.device, options.weights, options.fast)


@dataclasses.dataclass(frozen=True)
class JobSize:
    """A job's output pixels (for time estimates) and its stack key."""

    pixels: int
    stack_key: Hashable | None


def size_job(job: Job, device: str | None = None) -> JobSize:
    """Size `job` as its worker will see it (`device`: the executor's forced device, if any)."""
    opts = job.options if device is None else dataclasses.replace(job.options, device=device)
    size = header_size(job.content)
    if size is None:  # unreadable input: it fails alone, quickly, in the worker
        return JobSize(opts.size * opts.size, None)
    return JobSize(output_pixels(*size, opts.size, opts.size_side), stack_key(size, opts))


__all__ = ["JobSize", "header_size", "output_pixels", "size_job", "stack_key"]
