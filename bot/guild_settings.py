"""Per-server settings: what they are, their defaults, and how a typed value is parsed.

One table of `Setting`s drives `/stylebot config`, the database and the env overrides
(`STYLEBOT_<KEY>`), so a new setting is added in exactly one place.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class SettingError(ValueError):
    """A value that cannot be used for a setting; the message is shown to the admin as is."""


@dataclass(frozen=True)
class Setting:
    key: str
    description: str
    parse: Callable[[str], Any]
    fmt: Callable[[Any], str] = str


def _int_in(lo: int, hi: int, unit: str = "") -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise SettingError(f"expected a whole number, got {raw!r}") from None
        if not lo <= value <= hi:
            raise SettingError(f"must be between {lo} and {hi}{unit}, got {value}")
        return value

    return parse


def _float_in(lo: float, hi: float, unit: str = "") -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise SettingError(f"expected a number, got {raw!r}") from None
        if not lo <= value <= hi:
            raise SettingError(f"must be between {lo:g} and {hi:g}{unit}, got {value:g}")
        return value

    return parse


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
            raise SettingError(f"expected channel mentions like #art or channel ids, or 'all'; got {token!r}")
        ids.append(int(m.group(1) or m.group(2)))
    return tuple(dict.fromkeys(ids))


def _fmt_channels(value: tuple[int, ...]) -> str:
    return " ".join(f"<#{c}>" for c in value) if value else "all channels"


SETTINGS: dict[str, Setting] = {
    s.key: s
    for s in (
        Setting(
            "default_size",
            "output size (long side, px) when /stylize gives none",
            _int_in(16, 4096, " px"),
            lambda v: f"{v} px",
        ),
        Setting("max_size", "largest size members may ask for", _int_in(16, 4096, " px"), lambda v: f"{v} px"),
        Setting("default_steps", "optimisation steps when none are given", _int_in(1, 100_000)),
        Setting("max_steps", "most steps members may ask for", _int_in(1, 100_000)),
        Setting(
            "default_strength",
            "style strength when none is given (1.0 = normal)",
            _float_in(0.0, 10.0),
            lambda v: f"{v:g}",
        ),
        Setting(
            "preview_interval",
            "seconds between preview images while running (0 = none)",
            _float_in(0.0, 3600.0, " s"),
            lambda v: f"{v:g} s",
        ),
        Setting("max_jobs_per_user", "queued + running jobs one member may have", _int_in(1, 100)),
        Setting(
            "cooldown_seconds",
            "seconds a member waits between jobs",
            _float_in(0.0, 86400.0, " s"),
            lambda v: f"{v:g} s",
        ),
        Setting("allowed_channels", "channels where the bot takes jobs (empty = all)", _channels, _fmt_channels),
    )
}


@dataclass(frozen=True)
class GuildSettings:
    """A server's effective settings (stored overrides on top of the bot-wide defaults)."""

    default_size: int = 512
    max_size: int = 1024
    default_steps: int = 300
    max_steps: int = 1000
    default_strength: float = 1.0
    preview_interval: float = 10.0
    max_jobs_per_user: int = 2
    cooldown_seconds: float = 30.0
    allowed_channels: tuple[int, ...] = ()

    def check(self) -> GuildSettings:
        """Cross-field rules that a single value cannot break on its own."""
        if self.default_size > self.max_size:
            raise SettingError(f"default_size ({self.default_size} px) can't be above max_size ({self.max_size} px)")
        if self.default_steps > self.max_steps:
            raise SettingError(f"default_steps ({self.default_steps}) can't be above max_steps ({self.max_steps})")
        return self

    def with_overrides(self, overrides: Mapping[str, Any]) -> GuildSettings:
        known = {k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items() if k in SETTINGS}
        return dataclasses.replace(self, **known)

    def channel_allowed(self, channel_id: int | None, parent_id: int | None = None) -> bool:
        if not self.allowed_channels:
            return True
        return channel_id in self.allowed_channels or (parent_id is not None and parent_id in self.allowed_channels)

    def describe(self, key: str) -> str:
        return SETTINGS[key].fmt(getattr(self, key))


def parse_setting(key: str, raw: str) -> Any:
    """Parse what an admin typed for `key`; raise SettingError with a message fit to show."""
    setting = SETTINGS.get(key)
    if setting is None:
        raise SettingError(f"unknown setting {key!r}; choose one of: {', '.join(SETTINGS)}")
    return setting.parse(raw)
