"""One declaration per option a person sets: bounds, choices with readable labels, unit, help.

`StyleOptions` owns each field's type and default; this table adds what someone choosing a
value needs to know. `StyleOptions.validate`, the command line and any front end (a chat
command's parameters, a settings form) are all derived from it, so a bound or a help line is
changed here once and every surface follows. It knows nothing of any front end.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class OptionsError(ValueError):
    """An option value that cannot work; the message is fit to show a user."""


def _num(value: float) -> str:
    """A bound or value as people write it: 4096, 0.1, 1e+09."""
    return str(value) if isinstance(value, int) else f"{value:g}"


@dataclass(frozen=True)
class OptionSpec:
    """How one option may be set. `low`/`high` are inclusive unless marked open; `choices` maps
    each accepted value to a label for people; `optional` allows None (e.g. a random seed);
    `suggested` names a few values worth offering where any number in the bounds would do;
    `per_job` marks the options a front end lets a person set on each request (the rest are for
    operators and the command line)."""

    name: str
    kind: type  # int, float or str: how typed text is read
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: Mapping[str, str] | None = None
    unit: str = ""
    optional: bool = False
    suggested: Mapping[float, str] | None = None
    per_job: bool = False

    def suggestions(self, low: float | None = None, high: float | None = None) -> list[tuple[Any, str]]:
        """The declared `suggested` values (value, name) within the bounds and within `low`..`high`
        (a front end's narrower limits), smallest first: what a person is offered to pick from when
        any number would do but a few are worth naming ("small", "medium", "large")."""
        out = []
        for value, name in sorted((self.suggested or {}).items()):
            if (
                self.problem(self.kind(value)) is None
                and (low is None or value >= low)
                and (high is None or value <= high)
            ):
                out.append((self.kind(value), name))
        return out

    def fmt(self, value: Any) -> str:
        """A value with its unit, as messages show it ("512 px", "1.5")."""
        text = _num(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
        return f"{text} {self.unit}" if self.unit else text

    def bounds(self) -> str:
        """The accepted values in words: "between 16 and 4096 px", "at least 0", "one of adam, lbfgs"."""
        if self.choices is not None:
            return "one of " + ", ".join(self.choices)
        unit = f" {self.unit}" if self.unit else ""
        lo = None if self.low is None else _num(self.low)
        hi = None if self.high is None else _num(self.high)
        if lo is not None and hi is not None:
            if self.low_open or self.high_open:
                left = f"more than {lo}" if self.low_open else f"at least {lo}"
                right = f"less than {hi}" if self.high_open else f"at most {hi}"
                return f"{left} and {right}{unit}"
            return f"between {lo} and {hi}{unit}"
        if lo is not None:
            return f"{'more than' if self.low_open else 'at least'} {lo}{unit}"
        if hi is not None:
            return f"{'less than' if self.high_open else 'at most'} {hi}{unit}"
        return "any value"

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value` as a phrase ("must be between 16 and 4096 px, got 9000"), or None."""
        if value is None:
            return None if self.optional else "must be set"
        if self.choices is not None:
            return None if value in self.choices else f"must be {self.bounds()}, got {value!r}"
        if self.kind is str:
            return None if isinstance(value, str) else f"must be text, got {value!r}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, got {value!r}"
        if self.kind is int and not isinstance(value, int):
            return f"must be a whole number, got {_num(value)}"
        if not math.isfinite(value):
            return f"must be a finite number, got {value}"
        too_low = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        return f"must be {self.bounds()}, got {_num(value)}" if too_low or too_high else None

    def check(self, value: Any) -> Any:
        """`value` if it is acceptable, else OptionsError naming the option."""
        problem = self.problem(value)
        if problem is not None:
            raise OptionsError(f"{self.name} {problem}")
        return value

    def parse(self, raw: str) -> Any:
        """A checked value from typed text; OptionsError says what is wrong, without the option's name
        (the caller knows under which name the person typed it)."""
        text = raw.strip()
        if self.kind is int:
            try:
                value: Any = int(text)
            except ValueError:
                raise OptionsError(f"expected a whole number, got {raw!r}") from None
        elif self.kind is float:
            try:
                value = float(text)
            except ValueError:
                raise OptionsError(f"expected a number, got {raw!r}") from None
        else:
            value = text
        problem = self.problem(value)
        if problem is not None:
            raise OptionsError(problem)
        return value


def _specs(*specs: OptionSpec) -> dict[str, OptionSpec]:
    return {s.name: s for s in specs}


OPTION_SPECS: dict[str, OptionSpec] = _specs(
    OptionSpec(
        "size",
        int,
        "output size in pixels (the long side by default)",
        16,
        4096,
        unit="px",
        suggested={256: "small", 512: "medium", 1024: "large", 2048: "extra large"},
        per_job=True,
    ),
    OptionSpec(
        "size_side",
        str,
        "which side of the image size sets",
        choices={"long": "the long side", "short": "the short side"},
    ),
    OptionSpec(
        "steps",
        int,
        "most optimisation steps (a run stops sooner once the image stops changing)",
        1,
        100_000,
        suggested={50: "a quick look", 100: "quick", 200: "normal", 300: "careful", 500: "fine", 1000: "finest"},
        per_job=True,
    ),
    OptionSpec("min_steps", int, "steps a run takes before it may stop as converged", 1, 100_000),
    OptionSpec(
        "stop_tol",
        float,
        "stop once the loss changes by less than this fraction of itself per step (0 = run every step)",
        0.0,
        1.0,
        high_open=True,
    ),
    # Strength scales the style weight (beta in Gatys et al. 2016, who show how the content/style
    # ratio trades one for the other): below 0.1 the photo comes back almost unchanged, above 5 the
    # style has drowned the content, so the range offered is where a change still shows.
    OptionSpec("strength", float, "how strongly to apply the style (1 = normal)", 0.1, 5.0, per_job=True),
    OptionSpec("content_weight", float, "weight of the content loss (alpha in Gatys et al. 2016)", 0.0),
    OptionSpec("style_weight", float, "weight of the style loss (beta in Gatys et al. 2016)", 0.0),
    OptionSpec("tv_weight", float, "total-variation weight (smooths noise)", 0.0),
    OptionSpec("optimizer", str, "how the image is optimised", choices={"adam": "Adam", "lbfgs": "L-BFGS"}),
    OptionSpec(
        "lr", float, "learning rate (in [0,1] RGB units unless lr_space is normalized)", 0.0, 10.0, low_open=True
    ),
    OptionSpec(
        "lr_half_life", int, "Adam's learning rate halves every this many steps of a scale (0 = constant)", 0, 100_000
    ),
    OptionSpec(
        "lr_space",
        str,
        "units of the learning rate",
        choices={"rgb": "[0,1] RGB", "normalized": "ImageNet-normalised input"},
    ),
    OptionSpec(
        "init",
        str,
        "what the optimisation starts from",
        choices={"content": "the content image", "noise": "noise", "style": "the style image"},
    ),
    OptionSpec("scales", int, "coarse-to-fine scales (1 = single scale)", 1, 6),
    OptionSpec("min_scale_size", int, "smallest long side a coarse scale may have", 16, unit="px"),
    OptionSpec("ema", float, "exponential moving average of the image (0 = off)", 0.0, 1.0, high_open=True),
    OptionSpec(
        "preserve_colors",
        str,
        "keep the content image's colours",
        choices={
            "none": "No: use the style's colours",
            "luminance": "Yes: transfer only brightness (luminance)",
            "histogram": "Yes: recolour the style to match (histogram)",
        },
        per_job=True,
    ),
    OptionSpec("style_scale", float, "size of the style's features relative to the output", 0.1, 4.0),
    OptionSpec(
        "style_fit",
        str,
        "how the style image is fitted to the output",
        choices={"stretch": "stretched to the output's shape", "area": "same area, its own aspect"},
    ),
    OptionSpec("seed", int, "random seed, for repeatable results", 0, 2**31 - 1, optional=True, per_job=True),
    OptionSpec("weights", str, "VGG19 weights: original (bundled, offline), torchvision, or PATH.pth"),
    OptionSpec("device", str, "where to run: auto, cpu, cuda or cuda:N"),
)
