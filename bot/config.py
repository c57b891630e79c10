"""Process-wide settings for the bot, read once from the environment and an optional .env file.

Everything an operator can change lives here so that the rest of the bot never reads
`os.environ` itself. Secrets are wrapped in `Secret` so that a stray `repr(config)` in a
log line or a traceback shows `Secret('***')` instead of the token.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from bot.guild_settings import SETTINGS, SettingError, parse_setting


class ConfigError(ValueError):
    """A missing or malformed environment variable; the message names the variable."""


class Secret:
    """A string that never shows itself in `repr`/`str`, so it cannot leak through logging."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class BotConfig:
    """Operator settings. Per-server settings live in SQLite instead (see `guild_settings`)."""

    token: Secret = field(default_factory=lambda: Secret(""))
    executor: str = "local"
    workers: int = 1
    device: str = "auto"
    queue_size: int = 32
    ray_address: str | None = None
    data_dir: Path = Path("data")
    log_level: str = "INFO"
    dev_guild_id: int | None = None
    sync_commands: bool = True
    health_host: str = "0.0.0.0"
    health_port: int | None = 8080
    api_base: str | None = None
    gateway_url: str | None = None
    inputs_ttl: float = 24 * 3600.0
    shutdown_grace: float = 60.0
    edit_interval: float = 3.0
    token_lifetime: float = 14 * 60.0
    max_input_bytes: int = 20 * 1024 * 1024
    max_input_pixels: int = 40_000_000
    memory_limit: int | None = None  # bytes a worker's job may use; larger jobs run smaller and say so
    guild_defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "stylebot.sqlite3"

    def executor_config(self) -> dict[str, Any]:
        """Keyword arguments for `stylecore.executors.make_executor(kind, **config)`."""
        cfg: dict[str, Any] = {"workers": self.workers, "max_queue": self.queue_size}
        if self.device != "auto":
            cfg["device"] = self.device
        if self.memory_limit is not None:
            cfg["memory_limit"] = self.memory_limit
        if self.executor == "ray" and self.ray_address:
            cfg["ray_address"] = self.ray_address
        return cfg

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, dotenv_path: str | os.PathLike[str] | None = ".env"
    ) -> BotConfig:
        """Read the settings; real environment variables win over the .env file."""
        env: dict[str, str] = {}
        if dotenv_path is not None and Path(dotenv_path).is_file():
            env.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
        env.update(os.environ if environ is None else environ)
        return cls._parse(env)

    @classmethod
    def _parse(cls, env: Mapping[str, str]) -> BotConfig:
        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() != "" else None

        def num(name: str, kind: type, default: Any, *, minimum: float | None = None) -> Any:
            raw = get(name)
            if raw is None:
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise ConfigError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
            if minimum is not None and value < minimum:
                raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
            return value

        executor = (get("STYLEBOT_EXECUTOR") or "local").lower()
        if executor not in ("local", "ray"):
            raise ConfigError(f"STYLEBOT_EXECUTOR must be 'local' or 'ray', got {executor!r}")
        health_raw = get("STYLEBOT_HEALTH_PORT")
        if health_raw is not None and health_raw.lower() in ("off", "none", "disabled", "-1"):
            health_port: int | None = None
        else:
            health_port = num("STYLEBOT_HEALTH_PORT", int, 8080, minimum=0)
        log_level = (get("STYLEBOT_LOG_LEVEL") or get("LOG_LEVEL") or "INFO").upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError(f"STYLEBOT_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
        api_base = get("DISCORD_API_BASE")
        if api_base is not None:
            api_base = api_base.rstrip("/")
            if not api_base.startswith(("http://", "https://")):
                raise ConfigError("DISCORD_API_BASE must be an http(s) URL such as https://proxy.example/api/v10")
        gateway = get("DISCORD_GATEWAY_URL")
        if gateway is not None and not gateway.startswith(("ws://", "wss://")):
            raise ConfigError("DISCORD_GATEWAY_URL must be a ws:// or wss:// URL")
        defaults: dict[str, Any] = {}
        for key in SETTINGS:
            raw = get(f"STYLEBOT_{key.upper()}")
            if raw is not None:
                try:
                    defaults[key] = parse_setting(key, raw)
                except SettingError as exc:
                    raise ConfigError(f"STYLEBOT_{key.upper()}: {exc}") from None
        return cls(
            token=Secret(get("DISCORD_TOKEN") or ""),
            executor=executor,
            workers=num("STYLEBOT_WORKERS", int, 1, minimum=1),
            device=(get("STYLEBOT_DEVICE") or "auto").lower(),
            queue_size=num("STYLEBOT_QUEUE_SIZE", int, 32, minimum=1),
            ray_address=get("STYLEBOT_RAY_ADDRESS"),
            data_dir=Path(get("STYLEBOT_DATA_DIR") or "data"),
            log_level=log_level,
            dev_guild_id=num("STYLEBOT_DEV_GUILD", int, None, minimum=1),
            sync_commands=(get("STYLEBOT_SYNC_COMMANDS") or "on").lower() not in ("0", "off", "false", "no"),
            health_host=get("STYLEBOT_HEALTH_HOST") or "0.0.0.0",
            health_port=health_port,
            api_base=api_base,
            gateway_url=gateway,
            inputs_ttl=num("STYLEBOT_INPUT_TTL_HOURS", float, 24.0, minimum=0) * 3600.0,
            shutdown_grace=num("STYLEBOT_SHUTDOWN_GRACE", float, 60.0, minimum=0),
            edit_interval=num("STYLEBOT_EDIT_INTERVAL", float, 3.0, minimum=0.05),
            max_input_bytes=int(num("STYLEBOT_MAX_INPUT_MB", float, 20.0, minimum=0.01) * 1024 * 1024),
            memory_limit=_gib(num("STYLEBOT_MEMORY_LIMIT_GB", float, None, minimum=0.01)),
            guild_defaults=defaults,
        )

    def require_token(self) -> str:
        if not self.token:
            raise ConfigError("DISCORD_TOKEN is not set (put it in the environment or in .env)")
        return self.token.reveal()


def _gib(value: float | None) -> int | None:
    return None if value is None else int(value * 2**30)
