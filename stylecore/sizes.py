"""A run's pixel sizes, from the options alone.

Torch-free arithmetic, so the scheduler can group and time jobs without the engine.
"""

from __future__ import annotations

from collections.abc import Sequence

from stylecore.options import StyleOptions, resized


def output_size(width: int, height: int, opts: StyleOptions) -> tuple[int, int]:
    """(w, h) with the chosen side at `opts.size`, aspect kept, sized as torchvision's `Resize`."""
    return resized(width, height, opts.size, opts.size_side)


def scale_sizes(final: tuple[int, int], opts: StyleOptions) -> list[tuple[int, int]]:
    """Coarse-to-fine sizes, halving the long side, never below `min_scale_size`."""
    w, h = final
    sizes = [final]
    for i in range(1, opts.scales):
        k = 0.5**i
        if max(w, h) * k < opts.min_scale_size:
            break
        sizes.append((max(1, round(w * k)), max(1, round(h * k))))
    return sizes[::-1]


def split_steps(total: int, sizes: Sequence[tuple[int, int]]) -> list[int]:
    """Equal steps per scale, remainder to the finest: coarse steps cost a quarter as much and
    settle the large-scale structure the fine steps would otherwise spend most of their time on."""
    n = len(sizes)
    base = total // n
    steps = [base] * n
    steps[-1] += total - base * n
    return steps


__all__ = ["output_size", "scale_sizes", "split_steps"]
