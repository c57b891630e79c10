"""What a run reports while it works and what it returns.

Plain dataclasses of builtins and PIL images so that they pickle across worker processes
and Ray without dragging tensors along.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

from stylecore.notes import Note


@dataclass
class ProgressEvent:
    """One step's report; `preview` is set only every `preview_every` steps."""

    step: int
    total: int
    scale: int
    scales: int
    loss: float | None
    elapsed: float
    eta: float | None
    preview: Image.Image | None = None

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0


@dataclass
class RunStats:
    steps: int
    seconds: float
    content_loss: float
    style_loss: float
    tv_loss: float
    total_loss: float
    size: tuple[int, int]
    device: str
    cancelled: bool = False
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
