"""When a run has stopped improving, and how many steps a run is expected to take.

Steps are a cap, not a count: how many steps an image needs depends on the pair and the
size, and past a point further steps change the picture too little to see while costing as
much as the first. The rule watches the total loss where the engine reads it anyway (its
report points) and ends a scale once the loss has changed by less than `stop_tol` of itself
per step (each change measured over at least `WINDOW` steps) at every report point of a whole
`WINDOW`, and not before `min_steps`. Adam's loss on a whole image is smooth enough for this
(the gradient is averaged over every pixel; Kingma & Ba 2015) except for its occasional
overshoots, which the quiet window lets pass. `stop_tol` was chosen on part of the benchmark
set (benchmarks/stop_rule.py, docs/benchmarks.md).

Torch-free, so a scheduler can ask `expected_steps` without the engine.
"""

from __future__ import annotations

import math

from stylecore.options import StyleOptions

# Shortest span the loss decrease is measured over: shorter spans see Adam's step-to-step
# wobble rather than the trend.
WINDOW = 10


class Convergence:
    """Watches one scale's losses; `update` says when the run may stop.

    Converged means the loss has changed by less than `tol` of itself per step, in either
    direction, at every report point for a whole `WINDOW` of steps. Adam at a useful learning
    rate overshoots now and then: the loss jumps by several per cent and recovers within a
    few steps. A rule that took any small or negative change as the end stopped runs in the
    middle of such a jump, on an image worse than the one ten steps before; requiring a
    quiet window in both directions lets the jump and its recovery pass.
    """

    def __init__(self, tol: float, min_steps: int) -> None:
        self.tol, self.min_steps = tol, min_steps
        self.history: list[tuple[int, float]] = []
        self.quiet_since: int | None = None  # first step of the current run of quiet report points

    def update(self, step: int, loss: float) -> bool:
        """Record the loss after `step` (counted within this scale); True once converged."""
        self.history.append((step, loss))
        before = next(((s, v) for s, v in reversed(self.history) if step - s >= WINDOW), None)
        if self.tol <= 0 or before is None or not math.isfinite(loss):
            self.quiet_since = None
            return False
        s0, v0 = before
        rate = (v0 - loss) / (abs(loss) * (step - s0)) if loss else 0.0
        if not abs(rate) < self.tol:  # (a NaN before is not quiet either)
            self.quiet_since = None
            return False
        if self.quiet_since is None:
            self.quiet_since = step
        return step >= self.min_steps and step - self.quiet_since >= WINDOW


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


# The median step at which the default settings stopped over the eight pairs of the benchmark
# set (Resize(256), cap 200: 121 to 200 steps, median 170.5; docs/benchmarks.md,
# benchmarks/stop_rule.py).
TYPICAL_STEPS = 170


__all__ = ["TYPICAL_STEPS", "WINDOW", "Convergence", "expected_steps", "stops_early"]
