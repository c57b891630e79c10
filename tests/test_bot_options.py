"""Every bot surface of an option agrees with its declaration in stylecore.option_specs, and every
sentence the bot says comes from bot.messages."""

from __future__ import annotations

import ast
from pathlib import Path

import discord
import pytest

from bot import messages
from bot.cogs.stylize.commands import Stylize
from bot.cogs.stylize.requests import again_choices, build_options, server_defaults
from bot.errors import OverLimit
from bot.guild_settings import SETTINGS, GuildSettings, SettingError, parse_setting
from stylecore.option_specs import OPTION_SPECS
from stylecore.options import StyleOptions

BOT = Path(__file__).resolve().parent.parent / "bot"
_KINDS = {
    int: discord.AppCommandOptionType.integer,
    float: discord.AppCommandOptionType.number,
    str: discord.AppCommandOptionType.string,
}


def test_stylize_parameters_are_the_declarations() -> None:
    offered = [p for p in Stylize.stylize.parameters if p.name in OPTION_SPECS]
    assert [p.name for p in offered] == [s.name for s in OPTION_SPECS.values() if s.per_job]
    assert {p.name for p in offered} >= {"size", "steps", "strength", "preserve_colors", "seed"}
    for param in offered:
        spec = OPTION_SPECS[param.name]
        assert param.type is _KINDS[spec.kind] and not param.required
        assert param.min_value == spec.low and param.max_value == spec.high
        assert param.description.lower() == spec.help.lower()
        assert [(c.value, c.name) for c in param.choices] == list((spec.choices or {}).items())
    # Members read labels, not the engine's values.
    colors = next(p for p in offered if p.name == "preserve_colors")
    assert all(c.name != c.value for c in colors.choices)


def test_an_option_declared_per_job_reaches_the_command_without_touching_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The `style_scale` change: declare it per_job in stylecore and /stylize offers it."""
    import dataclasses

    from discord import app_commands

    from bot.cogs.stylize.parameters import job_options

    spec = dataclasses.replace(OPTION_SPECS["style_scale"], per_job=True)
    monkeypatch.setitem(OPTION_SPECS, "style_scale", spec)

    async def stylize(interaction: discord.Interaction, content: discord.Attachment, **choices: object) -> None:
        pass

    command = app_commands.Command(name="stylize", description="d", callback=job_options(stylize))
    param = command.get_parameter("style_scale")
    assert param is not None and param.type is discord.AppCommandOptionType.number and not param.required
    assert (param.min_value, param.max_value) == (spec.low, spec.high)


@pytest.mark.parametrize(
    ("setting", "option"),
    [
        ("default_size", "size"),
        ("max_size", "size"),
        ("default_steps", "steps"),
        ("max_steps", "steps"),
        ("default_strength", "strength"),
    ],
)
def test_server_settings_stay_within_the_option_bounds(setting: str, option: str) -> None:
    spec = OPTION_SPECS[option]
    assert spec.low is not None and spec.high is not None
    assert parse_setting(setting, str(spec.high)) == spec.high
    assert parse_setting(setting, str(spec.low)) == spec.low
    past = spec.kind(spec.high + (1 if spec.kind is int else 0.5))
    with pytest.raises(SettingError) as err:
        parse_setting(setting, str(past))
    assert str(err.value) == f"must be {spec.bounds()}, got {spec.fmt(past).split()[0]}"
    assert SETTINGS[setting].fmt(spec.high) == spec.fmt(spec.high)


def test_options_are_built_from_server_defaults_and_refused_over_its_limits() -> None:
    settings = GuildSettings(default_size=64, max_size=96, default_steps=5, max_steps=50, default_strength=2.0)
    opts = build_options(settings, {"preserve_colors": "histogram", "seed": None})
    assert (opts.size, opts.steps, opts.strength, opts.preserve_colors) == (64, 5, 2.0, "histogram")
    seed = OPTION_SPECS["seed"]
    assert opts.seed is not None and seed.problem(opts.seed) is None  # a random seed within the declaration
    assert server_defaults(settings) == {"size": 64, "steps": 5, "strength": 2.0}
    with pytest.raises(OverLimit) as err:
        build_options(settings, {"size": 128})
    assert str(err.value) == messages.size_over_limit(128, 96)
    with pytest.raises(OverLimit) as err:
        build_options(settings, {"steps": 51})
    assert str(err.value) == messages.steps_over_limit(51, 50)


def test_more_and_less_style_stay_within_the_strength_bounds() -> None:
    spec = OPTION_SPECS["strength"]
    parent = StyleOptions(size=48, steps=3, strength=float(spec.high) * 0.9, seed=5, style_scale=2.0).to_dict()
    more = again_choices(parent, "more")
    assert more["strength"] == spec.high and more["seed"] == 5 and more["style_scale"] == 2.0
    assert again_choices({**parent, "strength": 1.0}, "less")["strength"] == round(1 / 1.5, 4)
    assert again_choices({**parent, "strength": spec.low}, "less")["strength"] == spec.low
    rerun = again_choices(parent, "rerun")
    assert rerun["seed"] is None and rerun["strength"] == parent["strength"]
    assert set(more) <= set(OPTION_SPECS)


def test_a_newly_offered_option_shows_in_the_settings_line_by_itself() -> None:
    base = StyleOptions(size=48, steps=6, seed=3).to_dict()
    assert messages.settings_line(base) == "size 48 px · 6 steps · strength 1 · seed 3"
    scaled = {**base, "style_scale": 2.0, "preserve_colors": "luminance"}
    assert (
        messages.settings_line(scaled)
        == "size 48 px · 6 steps · strength 1 · colors luminance · style scale 2 · seed 3"
    )


# Calls whose first argument is text a person reads: it must come from bot.messages.
_SPEAKERS = {
    "send_message",
    "send",
    "reply",
    "Frame",
    "SettingError",
    "BadInput",
    "OverLimit",
    "OnCooldown",
    "TooManyJobs",
    "ChannelNotAllowed",
    "NotAdmin",
    "BotLacksPermissions",
    "JobNotFound",
    "NotYourJob",
    "InputsExpired",
    "ShuttingDown",
}


def _literal_text(node: ast.expr) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def test_every_sentence_the_bot_says_comes_from_the_messages_module() -> None:
    found = []
    for path in sorted(BOT.rglob("*.py")):
        if path.parent.name == "messages":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            texts = [a for a in node.args[:1] if _literal_text(a)]
            texts += [k.value for k in node.keywords if k.arg == "content" and _literal_text(k.value)]
            if name in _SPEAKERS and texts:
                found.append(f"{path.relative_to(BOT.parent)}:{node.lineno} {name}(...)")
    assert not found, "user-facing text outside bot/messages/:\n" + "\n".join(found)
