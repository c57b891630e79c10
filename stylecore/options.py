"""Options for one style-transfer run.

A frozen dataclass so that a job's settings can be stored, hashed, pickled to a worker
process and compared; `validate()` turns nonsense into a clear `OptionsError` before any
work is queued.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from stylecore.option_specs import OPTION_SPECS, OptionsError

STYLE_LAYERS: tuple[str, ...] = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
CONTENT_LAYER = "conv4_2"
SEED_STYLE_WEIGHTS: tuple[float, ...] = (1.0, 0.75, 0.2, 0.2, 0.2)

Optimizer = Literal["adam", "lbfgs"]
Init = Literal["content", "noise", "style"]
PreserveColors = Literal["none", "luminance", "histogram"]
SizeSide = Literal["long", "short"]


@dataclass(frozen=True)
class StyleOptions:
    """Everything that shapes a run.

    Loss units follow the common PyTorch rendering of Gatys et al. 2016: the content term is the
    mean squared conv4_2 difference and each style term is the mean squared Gram difference
    divided by the layer's d*h*w, all measured on the weights' own input scale, so
    `style_weight=1e9` with `content_weight=1` is the usual alpha/beta ratio (the `seed` preset).

    The defaults were picked by measurement (docs/benchmarks.md): Adam at lr 0.02 in [0,1]
    units (about 30x the seed preset's step) reaches the seed preset's 2000-step loss in
    ~100-200 steps. In these units alpha=1 makes the content term ~1e-12 of the total, so only
    a tiny lr keeps the photo recognisable; with a large lr the content has to be held by its
    weight: at alpha=3e11 a fixed VGG19 scorer's content distance ended just above the seed
    preset's, at 1e12 below it on seven of the eight benchmark pairs, at 1.5e12 on all eight (with
    `stop_tol` 0.004; 2e12 needed a tolerance so tight that runs took longer). The style image is
    stretched to the output's shape, as the seed preset does (`style_fit="area"` keeps its aspect
    instead).
    """

    size: int = 512
    size_side: SizeSide = "long"
    steps: int = 200
    # Steps are a cap: a run ends once its loss has changed by less than `stop_tol` of itself
    # per step for a whole window, after `min_steps` (stylecore.convergence); stop_tol=0 always
    # runs the cap.
    min_steps: int = 50
    stop_tol: float = 0.004
    content_weight: float = 1.5e12
    style_weight: float = 1e9
    style_layer_weights: tuple[float, ...] = SEED_STYLE_WEIGHTS
    tv_weight: float = 0.0
    strength: float = 1.0
    optimizer: Optimizer = "adam"
    lr: float = 0.02
    lr_half_life: int = 0  # Adam's lr halves every this many steps of a scale (0: constant)
    lr_space: Literal["rgb", "normalized"] = "rgb"
    init: Init = "content"
    scales: int = 1
    min_scale_size: int = 128
    ema: float = 0.0
    clamp: bool = True
    preserve_colors: PreserveColors = "none"
    style_scale: float = 1.0
    style_blend: tuple[float, ...] = ()
    style_fit: Literal["area", "stretch"] = "stretch"
    seed: int | None = 0
    preview_every: int = 0
    preview_size: int = 256
    report_every: int = 1
    timelapse: Literal["none", "gif", "webp"] = "none"
    weights: str = "original"
    device: str = "auto"
    fast: bool = True

    def validate(self) -> StyleOptions:
        """Raise OptionsError naming the first bad field; return self for chaining."""

        def bad(msg: str) -> OptionsError:
            return OptionsError(msg)

        for spec in OPTION_SPECS.values():  # bounds and choices, declared once in option_specs
            spec.check(getattr(self, spec.name))
        if len(self.style_layer_weights) != len(STYLE_LAYERS):
            raise bad(f"style_layer_weights needs {len(STYLE_LAYERS)} values, one per {STYLE_LAYERS}")
        if any(not w >= 0 for w in self.style_layer_weights):
            raise bad("style_layer_weights must all be >= 0")
        if any(not w >= 0 for w in self.style_blend) or (self.style_blend and sum(self.style_blend) <= 0):
            raise bad("style_blend weights must be >= 0 with a positive sum")
        if self.preview_every < 0:
            raise bad("preview_every must be >= 0 (0 = no previews)")
        if self.report_every < 1:
            raise bad("report_every must be >= 1")
        if self.timelapse not in ("none", "gif", "webp"):
            raise bad("timelapse must be 'none', 'gif' or 'webp'")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise bad(f"device must be auto, cpu or cuda, got {self.device!r}")
        return self

    def replace(self, **changes: Any) -> StyleOptions:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StyleOptions:
        """Build from stored settings, ignoring keys this version does not know."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
        return cls(**kw).validate()


def resized(width: int, height: int, size: int, side: str = "long") -> tuple[int, int]:
    """(w, h) with the `side` ("long" or "short") at `size`, aspect kept, up or down.

    The other side is truncated, not rounded, as torchvision's `transforms.Resize(size)` (and
    its `max_size`) computes it, so a 1024x768 photo at short side 128 is 170x128 here too.
    The one sizing rule: the engine resizes by it and the scheduler estimates times by it, so
    here it needs nothing heavier than arithmetic.
    """
    # Which side is set: torchvision takes the width as the short side when w <= h.
    width_is_set = width >= height if side == "long" else width <= height
    ref, other = (width, height) if width_is_set else (height, width)
    scaled = max(1, int(size * other / ref))
    return (size, scaled) if width_is_set else (scaled, size)


_PRESETS: dict[str, dict[str, Any]] = {
    # Gatys et al. as commonly run in PyTorch: short side 400 (torchvision's Resize(400)), Adam
    # (Kingma & Ba 2015) lr 0.003 in ImageNet-normalised units,
    # 2000 single-scale steps from the content image, no clamping during the run.
    "seed": dict(
        size=400,
        size_side="short",
        steps=2000,
        stop_tol=0.0,
        lr_half_life=0,
        content_weight=1.0,
        style_weight=1e9,
        style_layer_weights=SEED_STYLE_WEIGHTS,
        tv_weight=0.0,
        optimizer="adam",
        lr=0.003,
        lr_space="normalized",
        init="content",
        scales=1,
        ema=0.0,
        clamp=False,
        style_fit="stretch",
    ),
    "default": {},
}


def preset(name: str, **overrides: Any) -> StyleOptions:
    """Named starting points; `seed` is the plain Gatys et al. recipe, the baseline for comparisons."""
    if name not in _PRESETS:
        raise OptionsError(f"unknown preset {name!r}; choose one of {sorted(_PRESETS)}")
    return dataclasses.replace(StyleOptions(), **{**_PRESETS[name], **overrides}).validate()


PRESET_NAMES: tuple[str, ...] = tuple(_PRESETS)


def report_every_for(steps: int, events: int = 100) -> int:
    """Steps between progress reports so that a run sends about `events` of them.

    Each report reads the loss back from the device, a host sync that stalls a GPU's queue of
    kernels; a step of a 512 px job on a large card takes milliseconds, so reporting every step
    would cost a visible share of its speed while nobody can watch 100 updates a second.
    """
    return max(1, steps // max(1, events))


__all__ = [
    "CONTENT_LAYER",
    "PRESET_NAMES",
    "STYLE_LAYERS",
    "OptionsError",
    "StyleOptions",
    "preset",
    "report_every_for",
]
