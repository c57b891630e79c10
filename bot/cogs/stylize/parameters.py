"""Slash-command parameters built from the engine's option declarations.

`Transform[int, Declared("size")]` in a command's signature gives the parameter the declared
bounds and labelled choices (Discord shows and enforces them, see "Application Command Option" in
Discord's developer docs), `Suggested` adds autocomplete within the server's limits to a
numeric one, and `describe_declared` gives each such parameter the declared help as its
description — so /stylize never restates a bound, a choice or a help line.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import discord
from discord import app_commands

from bot import messages
from stylecore.option_specs import OPTION_SPECS, OptionsError, OptionSpec

F = TypeVar("F", bound=Callable[..., Any])

_TYPES = {
    int: discord.AppCommandOptionType.integer,
    float: discord.AppCommandOptionType.number,
    str: discord.AppCommandOptionType.string,
}


class Declared(app_commands.Transformer):
    """`app_commands.Transform[int, Declared("size")]`: the parameter's type, range and choices read
    from the option's declaration, as `app_commands.Range[int, 16, 4096]` would state them."""

    def __init__(self, name: str) -> None:
        self.spec: OptionSpec = OPTION_SPECS[name]

    @property
    def type(self) -> discord.AppCommandOptionType:
        return _TYPES[self.spec.kind]

    @property
    def min_value(self) -> int | float | None:
        return None if self.spec.low is None else self.spec.kind(self.spec.low)

    @property
    def max_value(self) -> int | float | None:
        return None if self.spec.high is None else self.spec.kind(self.spec.high)

    @property
    def choices(self) -> list[app_commands.Choice[int | float | str]] | None:
        if self.spec.choices is None:
            return None
        return [app_commands.Choice(name=label, value=value) for value, label in self.spec.choices.items()]

    async def transform(self, interaction: discord.Interaction[Any], value: Any, /) -> Any:
        """Discord enforces the range and choices; this catches open bounds and anything sent around them."""
        try:
            return self.spec.check(self.spec.kind(value))
        except (OptionsError, ValueError) as exc:
            raise app_commands.TransformerError(value, self.type, self) from exc


class Suggested(Declared):
    """`Transform[int, Suggested("size")]`: a declared option that stays a plain number, with
    autocomplete suggestions (Discord allows them on integer and number options) that fit the
    server's limit: the declared named values ("small — 256 px"), the server's default and its
    largest allowed value, and what the member has typed when it fits."""

    @property
    def choices(self) -> None:
        return None  # Discord refuses choices and autocomplete on one option

    async def autocomplete(  # type: ignore[override]
        self, interaction: discord.Interaction[Any], value: int | float | str, /
    ) -> list[app_commands.Choice[int | float | str]]:
        settings = await interaction.client.jobs.settings_for(interaction.guild_id)
        default, highest = settings.limits_for(self.spec.name)
        offered: dict[Any, str] = {}
        typed = str(value).strip()
        if typed:
            try:
                number = self.spec.kind(typed)
            except ValueError:
                number = None
            if number is not None and self.spec.problem(number) is None and number <= highest:
                offered[number] = messages.typed_value(self.spec.fmt(number))
        offered.setdefault(default, messages.server_default_value(self.spec.fmt(default)))
        for number, name in self.spec.suggestions(high=highest):
            offered.setdefault(number, messages.named_value(name, self.spec.fmt(number)))
        offered.setdefault(highest, messages.largest_value(self.spec.fmt(highest)))
        picked = [(n, label) for n, label in offered.items() if not typed or str(n).startswith(typed)]
        picked = picked or list(offered.items())
        return [app_commands.Choice(name=label, value=n) for n, label in sorted(picked)][:25]


def job_options(func: F) -> F:
    """Give a command callback one optional parameter per option members set on each request
    (`OptionSpec.per_job`), after the ones it declares itself; the callback takes them as
    `**choices`. A new per-job option is then declared once, in `stylecore.option_specs`, and
    appears on the command (with its bounds, choices or suggestions, and help) without an edit
    here or in the command. Options with suggestions stay numbers with autocomplete (`Suggested`);
    the others carry their bounds and labelled choices (`Declared`)."""
    signature = inspect.signature(func)
    params = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    for spec in OPTION_SPECS.values():
        if spec.per_job:
            transformer = Suggested(spec.name) if spec.suggested else Declared(spec.name)
            params.append(
                inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=transformer)
            )
    func.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return func


def describe_declared(func: F) -> F:
    """`app_commands.describe` for every parameter of `func` that names a declared option."""
    names = [name for name in inspect.signature(func).parameters if name in OPTION_SPECS]
    help_lines = {name: OPTION_SPECS[name].help for name in names}
    return app_commands.describe(**{n: (h[:1].upper() + h[1:])[:100] for n, h in help_lines.items()})(func)
