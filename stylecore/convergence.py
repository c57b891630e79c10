"""When a run has stopped improving, and how many steps a run is expected to take.

Steps are a cap, not a count: how many steps an image needs depends on the pair and the
size, and past a point further steps change the picture too little to see while costing as
much as the first. The rule watches the total loss where the engine reads it anyway (its
report points) and ends a scale once the loss falls by less than `stop_tol` of itself per
step, measured over at least `WINDOW` steps, after `min_steps`. Adam's loss on a whole image
is smooth enough for this (the gradient is averaged over every pixel; Kingma & Ba 2015).

Torch-free, so a scheduler can ask `expected_steps` without the engine.
"""

from __future__ import annotations

import math

from stylecore.options import StyleOptions

# Shortest span the loss decrease is measured over: shorter spans see Adam's step-to-step
# wobble rather than the trend.
WINDOW = 10


class Convergence:
    """Watches one scale's losses; `update` says when the run may stop."""

    def __init__(self, tol: float, min_steps: int) -> None:
        self.tol, self.min_steps = tol, min_steps
        self.history: list[tuple[int, float]] = []

    def update(self, step: int, loss: float) -> bool:
        """Record the loss after `step` (counted within this scale); True once converged."""
        self.history.append((step, loss))
        if self.tol <= 0 or step < self.min_steps or not math.isfinite(loss):
            return False
        before = next(((s, v) for s, v in reversed(self.history) if step - s >= WINDOW), None)
        if before is None:
            return False
        s0, v0 = before
        rate = (v0 - loss) / (abs(loss) * (step - s0)) if loss else 0.0
        return rate < self.tol


def stops_early(opts: StyleOptions) -> bool:
    """Whether a run of these options may end before its cap (the seed preset never does)."""
    return opts.stop_tol > 0 and opts.min_steps < opts.steps


def expected_steps(opts: StyleOptions, done: int = 0) -> int:
    """Steps a run of these options is expected to take in all, for time estimates (a queue's
    ETA, a running job's time left): its cap when it cannot stop early, else `TYPICAL_STEPS`
    within [min_steps, steps]; a run already `done` steps in and past that is expected to need
    at least one more `WINDOW`.

    Torch-free: a scheduler calls it at submit time; progress bars keep the cap as their
    total and end where a run says it converged."""
    if not stops_early(opts):
        return opts.steps
    return min(opts.steps, max(opts.min_steps, TYPICAL_STEPS, done + WINDOW))


# Steps the default settings took to reach the reference's 2000-step quality at 341x256 on a
# town x brushwork pair (docs/benchmarks.md); a placeholder until the benchmark set's
# converged runs are measured, when it becomes their typical (median) count.
TYPICAL_STEPS = 120


__all__ = ["TYPICAL_STEPS", "WINDOW", "Convergence", "expected_steps", "stops_early"]
