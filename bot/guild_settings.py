"""Per-server settings: what they are, their defaults, how a typed value is parsed, and the
operator's bounds on them.

One table of `Setting`s drives `/stylebot config`, the database and the env overrides
(`STYLEBOT_<KEY>`), so a new setting is added in exactly one place. The settings that bound a
job option (default_size, max_size, default_steps, ...) take their range from the option's
declaration in `stylecore.option_specs`, so a server can never allow what the engine refuses.
`Ceilings` are the bot-wide bounds a server's admins cannot pass (`STYLEBOT_CEILING_<KEY>`,
`STYLEBOT_FLOOR_<KEY>`), parsed by the same table.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from bot import messages
from stylecore.option_specs import OPTION_SPECS, OptionsError, OptionSpec
from stylecore.options import StyleOptions


class SettingError(ValueError):
    """A value that cannot be used for a setting; the message is shown to the admin as is."""


@dataclass(frozen=True)
class Setting:
    key: str
    description: str
    parse: Callable[[str], Any]
    fmt: Callable[[Any], str] = str


def _within(spec: OptionSpec) -> Callable[[str], Any]:
    """Parse typed text as a value `spec` accepts."""

    def parse(raw: str) -> Any:
        try:
            return spec.parse(raw)
        except OptionsError as exc:
            raise SettingError(str(exc)) from None

    return parse


def _bounded(key: str, spec: OptionSpec, description: str) -> Setting:
    return Setting(key, description, _within(spec), spec.fmt)


_CHANNEL = re.compile(r"^(?:<#(\d{15,25})>|(\d{15,25}))$")


def _channels(raw: str) -> tuple[int, ...]:
    text = raw.strip()
    if text.lower() in ("", "all", "any", "none", "*", "everywhere"):
        return ()
    ids: list[int] = []
    for token in re.split(r"[\s,]+", text):
        if not token:
            continue
        m = _CHANNEL.match(token)
        if not m:
            raise SettingError(messages.bad_channels(token))
        ids.append(int(m.group(1) or m.group(2)))
    return tuple(dict.fromkeys(ids))


# Settings of the bot alone (not job options): their own ranges.
_PREVIEW_INTERVAL = OptionSpec("preview_interval", float, "", 0.0, 3600.0, unit="s")
_JOBS_PER_MEMBER = OptionSpec("max_jobs_per_user", int, "", 1, 100)
_COOLDOWN = OptionSpec("cooldown_seconds", float, "", 0.0, 86400.0, unit="s")

_SIZE, _STEPS, _STRENGTH = OPTION_SPECS["size"], OPTION_SPECS["steps"], OPTION_SPECS["strength"]

SETTINGS: dict[str, Setting] = {
    s.key: s
    for s in (
        _bounded("default_size", _SIZE, "output size (long side, px) when /stylize gives none"),
        _bounded("max_size", _SIZE, "largest size members may ask for"),
        _bounded("default_steps", _STEPS, "optimisation steps when none are given"),
        _bounded("max_steps", _STEPS, "most steps members may ask for"),
        _bounded("default_strength", _STRENGTH, "style strength when none is given (1.0 = normal)"),
        _bounded("preview_interval", _PREVIEW_INTERVAL, "seconds between preview images while running (0 = none)"),
        _bounded("max_jobs_per_user", _JOBS_PER_MEMBER, "queued + running jobs one member may have"),
        _bounded("cooldown_seconds", _COOLDOWN, "seconds a member waits between jobs"),
        Setting("allowed_channels", "channels where the bot takes jobs (empty = all)", _channels, messages.channels),
    )
}


# (default, maximum) pairs: a default may not exceed its maximum (`GuildSettings.check`).
_DEFAULT_AND_MAX: tuple[tuple[str, str], ...] = (("default_size", "max_size"), ("default_steps", "max_steps"))


@dataclass(frozen=True)
class GuildSettings:
    """A server's effective settings (stored overrides on top of the bot-wide defaults)."""

    default_size: int = 512
    max_size: int = 1024
    # A cap, like the engine's own default: a run ends sooner once its image stops changing.
    default_steps: int = StyleOptions.steps
    max_steps: int = 1000
    default_strength: float = 1.0
    preview_interval: float = 10.0
    max_jobs_per_user: int = 2
    cooldown_seconds: float = 30.0
    allowed_channels: tuple[int, ...] = ()

    def check(self) -> GuildSettings:
        """Cross-field rules that a single value cannot break on its own."""
        for default_key, max_key in _DEFAULT_AND_MAX:
            if getattr(self, default_key) > getattr(self, max_key):
                raise SettingError(
                    messages.default_above_max(default_key, self.describe(default_key), max_key, self.describe(max_key))
                )
        return self

    def with_overrides(self, overrides: Mapping[str, Any]) -> GuildSettings:
        known = {k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items() if k in SETTINGS}
        return dataclasses.replace(self, **known)

    def limits_for(self, option: str) -> tuple[Any, Any]:
        """(this server's default, the most its members may ask for) of a job option it bounds."""
        default_key, max_key = next((d, m) for d, m in _DEFAULT_AND_MAX if d == f"default_{option}")
        return getattr(self, default_key), getattr(self, max_key)

    def channel_allowed(self, channel_id: int | None, parent_id: int | None = None) -> bool:
        if not self.allowed_channels:
            return True
        return channel_id in self.allowed_channels or (parent_id is not None and parent_id in self.allowed_channels)

    def describe(self, key: str) -> str:
        return SETTINGS[key].fmt(getattr(self, key))


@dataclass(frozen=True)
class Ceilings:
    """The operator's bounds on what a server's admins may set, one field per bounded setting.

    Without them one server's admins could let every member ask for 4096 px, 100 000 steps and
    100 jobs with no cooldown, and so take every worker from every other server. A field bounds
    the setting of the same name from above (`STYLEBOT_CEILING_<KEY>`), or from below for those
    in `FLOORS` (`STYLEBOT_FLOOR_<KEY>`); each value is checked by the setting's own declaration.
    The operator's `STYLEBOT_<KEY>` defaults are not bound by them, and an admin may always set
    the operator's default again (the bound is the more permissive of the two). A stored override
    beyond a bound lowered later is clamped when read, so lowering a ceiling takes effect at once.
    """

    max_size: int = 2048
    max_steps: int = 2000
    max_jobs_per_user: int = 5
    cooldown_seconds: float = 5.0

    FLOORS: ClassVar[frozenset[str]] = frozenset({"cooldown_seconds"})

    @classmethod
    def bounded(cls) -> tuple[str, ...]:
        """The settings that have a bound."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def env_name(cls, key: str) -> str:
        """The variable an operator sets for `key`'s bound."""
        return f"STYLEBOT_{'FLOOR' if key in cls.FLOORS else 'CEILING'}_{key.upper()}"

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Ceilings:
        """Bounds by setting key, text parsed as the setting itself is; one SettingError names every
        bad variable."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        for key, value in raw.items():
            try:
                if key not in cls.bounded():
                    raise SettingError(messages.unknown_setting(key, cls.bounded()))
                values[key] = parse_setting(key, value) if isinstance(value, str) else value
            except SettingError as exc:
                problems.append(f"{cls.env_name(key)}: {exc}")
        if problems:
            raise SettingError("\n  ".join(problems))
        return cls(**values)

    def bound(self, key: str, base: GuildSettings) -> Any:
        """How far an admin may take `key`: the bound, or the operator's default where that goes further."""
        bound, default = getattr(self, key), getattr(base, key)
        return min(bound, default) if key in self.FLOORS else max(bound, default)

    def _beyond(self, key: str, value: Any, base: GuildSettings) -> bool:
        bound = self.bound(key, base)
        return value < bound if key in self.FLOORS else value > bound

    def check(self, key: str, value: Any, base: GuildSettings) -> None:
        """Refuse a value an admin typed for `key` beyond its bound; the message names the bound."""
        if key in self.bounded() and self._beyond(key, value, base):
            fmt = SETTINGS[key].fmt
            raise SettingError(messages.beyond_bound(fmt(value), fmt(self.bound(key, base)), floor=key in self.FLOORS))

    def apply(self, base: GuildSettings, overrides: Mapping[str, Any]) -> GuildSettings:
        """A server's effective settings: its overrides, each within its bound, on the bot-wide defaults."""
        clamped = {
            key: self.bound(key, base)
            for key, value in overrides.items()
            if key in self.bounded() and self._beyond(key, value, base)
        }
        settings = base.with_overrides({**overrides, **clamped})
        for default_key, max_key in _DEFAULT_AND_MAX:  # a default follows its maximum when that was clamped
            if max_key in clamped and getattr(settings, default_key) > clamped[max_key]:
                settings = dataclasses.replace(settings, **{default_key: clamped[max_key]})
        return settings


def parse_setting(key: str, raw: str) -> Any:
    """Parse what an admin typed for `key`; raise SettingError with a message fit to show."""
    setting = SETTINGS.get(key)
    if setting is None:
        raise SettingError(messages.unknown_setting(key, SETTINGS))
    return setting.parse(raw)
