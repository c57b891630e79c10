"""What a run reports while it works and what it returns.

Plain dataclasses of builtins and PIL images so that they pickle across worker processes
and Ray without dragging tensors along.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from stylecore.notes import Note

# What a run accepts as an image: a PIL image, encoded bytes, or a path.
ImageSource = Image.Image | bytes | str | os.PathLike[str]


@dataclass
class ProgressEvent:
    """One step's report; `preview` is set only every `preview_every` steps.

    `total` is the run's cap. A run that stops because its image stopped improving sends
    `converged=True` on its last event, at `step` < `total` (so a bar ends there); `eta` is
    0 on the last event and otherwise counts the steps the run is expected to take.
    """

    step: int
    total: int
    scale: int
    scales: int
    loss: float | None
    elapsed: float
    eta: float | None
    preview: Image.Image | None = None
    converged: bool = False


@dataclass
class RunStats:
    """How a run went; `converged` says it ended at `steps` because its image stopped improving
    (before its cap), rather than by running out of steps."""

    steps: int
    seconds: float
    content_loss: float
    style_loss: float
    tv_loss: float
    total_loss: float
    size: tuple[int, int]
    device: str
    cancelled: bool = False
    converged: bool = False
    notes: list[Note] = field(default_factory=list)


@dataclass
class StyleResult:
    image: Image.Image
    stats: RunStats
    timelapse: bytes | None = None


class Cancelled(Exception):
    """Raised by `stylize` when `should_cancel` answered True; carries the partial result."""

    def __init__(self, partial: StyleResult | None = None) -> None:
        super().__init__("the run was cancelled")
        self.partial = partial


ProgressFn = Callable[[ProgressEvent], None]
CancelFn = Callable[[], bool]
JobOutcome = StyleResult | Cancelled
