"""The option declarations and the engine surfaces derived from them: validation and the CLI."""

from __future__ import annotations

import dataclasses
from typing import Literal, get_args, get_origin, get_type_hints

import pytest

from stylecore.cli import build_parser, options_from_args
from stylecore.option_specs import OPTION_SPECS, OptionsError, OptionSpec
from stylecore.options import StyleOptions

DEFAULTS = StyleOptions()
FIELD_TYPES = get_type_hints(StyleOptions)


def _outside(spec: OptionSpec) -> list[object]:
    """Values just past each declared bound (and one that is not a choice)."""
    if spec.choices is not None:
        return ["not-a-choice"]
    out: list[object] = []
    step = 1 if spec.kind is int else 1e-6
    if spec.low is not None:
        out.append(spec.low if spec.low_open else spec.kind(spec.low - step))
    if spec.high is not None:
        out.append(spec.high if spec.high_open else spec.kind(spec.high + step))
    return out


def _inside(spec: OptionSpec) -> list[object]:
    if spec.choices is not None:
        return list(spec.choices)
    values = [spec.low, spec.high]
    if spec.low_open and spec.low is not None:
        values[0] = spec.low + (1 if spec.kind is int else 1e-6)
    if spec.high_open and spec.high is not None:
        values[1] = spec.high - (1 if spec.kind is int else 1e-6)
    return [spec.kind(v) for v in values if v is not None]


def test_every_declaration_names_a_field_of_the_right_type() -> None:
    fields = {f.name for f in dataclasses.fields(StyleOptions)}
    for name, spec in OPTION_SPECS.items():
        assert spec.name == name and name in fields
        default = getattr(DEFAULTS, name)
        assert spec.problem(default) is None, f"{name}: the engine's default {default!r} is outside its declaration"
        if default is not None:
            assert isinstance(default, spec.kind), (name, default, spec.kind)
        hint = FIELD_TYPES[name]
        if get_origin(hint) is Literal:  # the type's values and the declared choices agree
            assert set(get_args(hint)) == set(spec.choices or ()), name


@pytest.mark.parametrize("name", list(OPTION_SPECS))
def test_validate_takes_its_bounds_from_the_declaration(name: str) -> None:
    spec = OPTION_SPECS[name]
    for value in _inside(spec):
        assert getattr(StyleOptions(**{name: value}).validate(), name) == value
    for value in _outside(spec):
        with pytest.raises(OptionsError, match=rf"^{name} must be") as err:
            StyleOptions(**{name: value}).validate()
        assert spec.bounds() in str(err.value)


def test_non_finite_and_wrong_kinds_are_refused() -> None:
    with pytest.raises(OptionsError, match="strength must be a finite number"):
        StyleOptions(strength=float("inf")).validate()
    with pytest.raises(OptionsError, match="size must be a whole number"):
        StyleOptions(size=48.5).validate()  # type: ignore[arg-type]
    assert StyleOptions(seed=None).validate().seed is None  # seed is optional: None = random


def test_parse_reads_typed_text_and_words_problems_without_the_name() -> None:
    size, strength = OPTION_SPECS["size"], OPTION_SPECS["strength"]
    assert size.parse(" 768 ") == 768 and strength.parse("1.5") == 1.5
    with pytest.raises(OptionsError, match=r"^expected a whole number, got 'big'$"):
        size.parse("big")
    with pytest.raises(OptionsError, match=r"^must be between 16 and 4096 px, got 9000$"):
        size.parse("9000")
    assert size.fmt(512) == "512 px" and strength.fmt(1.0) == "1" and OPTION_SPECS["lr"].fmt(0.02) == "0.02"


def test_cli_flags_are_the_declarations() -> None:
    parser = build_parser()
    flags = {a.dest: a for a in parser._actions}
    for name, spec in OPTION_SPECS.items():
        action = flags[name]
        assert action.option_strings == ["--" + name.replace("_", "-")]
        assert action.type is spec.kind
        assert (list(action.choices) if action.choices else None) == (list(spec.choices) if spec.choices else None)
        assert spec.help in action.help and spec.fmt(getattr(DEFAULTS, name)) in action.help
        if spec.choices is None and spec.kind is not str:
            assert spec.bounds() in action.help
    args = parser.parse_args(["c.png", "s.png", "-o", "o.png", "--preserve-colors", "luminance", "--style-scale", "2"])
    opts = options_from_args(args)
    assert opts.preserve_colors == "luminance" and opts.style_scale == 2.0
    with pytest.raises(OptionsError, match=r"style_scale must be between 0\.1 and 4"):
        options_from_args(parser.parse_args(["c.png", "s.png", "-o", "o.png", "--style-scale", "9"]))
