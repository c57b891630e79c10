"""Process-wide settings for the bot, read once from the environment and an optional .env file.

Everything an operator can change lives here so that the rest of the bot never reads `os.environ`
itself. pydantic-settings does the reading and type checking, so every bad variable is reported
in one error at start-up instead of one per restart, and the token is a `SecretStr` that shows
`'**********'` in any `repr`, log line or traceback.

A field's name is how the code reads it; its alias is the variable an operator sets. Variables in
human units (hours, MB, GB) are converted once here, so the rest of the bot sees seconds and bytes;
a value given from Python (tests, embedding) is already in those units.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bot.guild_settings import SETTINGS, Ceilings, GuildSettings, SettingError, parse_setting
from stylecore.executors import KINDS, ExecutorConfig
from stylecore.imageio import DEFAULT_MAX_PIXELS
from stylecore.imageio.isolated import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT, DEFAULT_WORKERS


class ConfigError(ValueError):
    """Missing or malformed environment variables; the message names every one of them."""


def _from_unit(unit: float, name: str, *, to: type = int) -> BeforeValidator:
    """Text from the environment is a number of `name` (hours, MB, GB); scale it to seconds or bytes."""

    def scale(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"expected a number of {name}") from None
        if number < 0:
            raise ValueError("must not be negative")
        return to(number * unit)

    return BeforeValidator(scale)


def _off_means_none(value: Any) -> Any:
    return None if isinstance(value, str) and value.strip().lower() in ("off", "none", "disabled", "-1") else value


def _url(*schemes: str, example: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().rstrip("/")
            if not value.startswith(tuple(f"{s}://" for s in schemes)):
                raise ValueError(f"must start with {' or '.join(f'{s}://' for s in schemes)}, e.g. {example}")
        return value

    return check


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return check


def _ids(value: Any) -> Any:
    """Discord ids separated by commas or spaces ("123, 456"); mentions like <@123> are accepted too."""
    if not isinstance(value, str):
        return value
    ids = set()
    for token in re.split(r"[\s,]+", value.strip()):
        digits = token.strip("<@!#&>")
        if not token:
            continue
        if not digits.isdigit():
            raise ValueError("expected Discord ids separated by commas (e.g. 123456789012345678, 223456789012345678)")
        ids.add(int(digits))
    return frozenset(ids)


def _var(name: str | AliasChoices, default: Any, **constraints: Any) -> Any:
    """A field read from the variable `name`; Python code may still pass it by the field's own name."""
    return Field(default, validation_alias=name, **constraints)


MESSAGE_CONTENT_MODES: tuple[str, ...] = ("auto", "on", "off")
MiB = 2**20
GiB = 2**30
Hours = Annotated[float, _from_unit(3600.0, "hours", to=float)]
Days = Annotated[float, _from_unit(86400.0, "days", to=float)]
MebiBytes = Annotated[int, _from_unit(MiB, "MB")]
GibiBytes = Annotated[int, _from_unit(GiB, "GB")]
Lower = Annotated[str, BeforeValidator(str.lower)]
HttpUrl = Annotated[str, BeforeValidator(_url("http", "https", example="https://proxy.example/api/v10"))]
WsUrl = Annotated[str, BeforeValidator(_url("ws", "wss", example="wss://gateway.example"))]
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(str.upper)]
Port = Annotated[int | None, BeforeValidator(_off_means_none)]  # "off" disables the server
Ids = Annotated[frozenset[int], NoDecode, BeforeValidator(_ids)]  # not JSON: a plain list of ids


class BotConfig(BaseSettings):
    """Operator settings. Per-server settings live in SQLite instead (see `guild_settings`)."""

    model_config = SettingsConfigDict(
        frozen=True,
        case_sensitive=True,
        env_ignore_empty=True,  # .env.example's `STYLEBOT_DEV_GUILD=` means "not set"
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
        str_strip_whitespace=True,
    )

    token: SecretStr = _var("DISCORD_TOKEN", SecretStr(""))
    # -- where jobs run
    executor: Annotated[Lower, AfterValidator(_one_of(KINDS))] = _var("STYLEBOT_EXECUTOR", "local")
    # None: the executor's own choice (one worker per GPU; on a CPU-only host see
    # stylecore.executors.config.default_cpu_workers). A number overrides it on every host.
    workers: int | None = _var("STYLEBOT_WORKERS", None, ge=1)
    device: Lower = _var("STYLEBOT_DEVICE", "auto")
    queue_size: int = _var("STYLEBOT_QUEUE_SIZE", ExecutorConfig().max_queue, ge=1)
    ray_address: str | None = _var("STYLEBOT_RAY_ADDRESS", None)
    memory_limit: GibiBytes | None = _var("STYLEBOT_MEMORY_LIMIT_GB", None, gt=0)  # per worker; see README
    # Seconds one attempt of a job may run; then it is stopped (its worker killed if it does not
    # answer) and fails as "took too long". Also what catches a worker that hangs mid-job.
    job_timeout: float = _var("STYLEBOT_JOB_TIMEOUT", ExecutorConfig().job_timeout, gt=0)
    # "module:function" each worker calls first, before the network loads (logging, tracing).
    worker_setup_hook: str | None = _var("STYLEBOT_WORKER_SETUP_HOOK", None)
    # -- storage
    data_dir: Path = _var("STYLEBOT_DATA_DIR", Path("data"))
    inputs_ttl: Hours = _var("STYLEBOT_INPUT_TTL_HOURS", 24 * 3600.0, ge=0)
    job_history: Days = _var("STYLEBOT_JOB_HISTORY_DAYS", 30 * 86400.0, ge=0)
    inputs_max_bytes: GibiBytes = _var("STYLEBOT_INPUTS_MAX_GB", 2 * GiB, ge=0)
    inputs_max_bytes_per_member: MebiBytes = _var("STYLEBOT_INPUTS_MAX_MB_PER_MEMBER", 200 * MiB, ge=0)
    max_input_bytes: MebiBytes = _var("STYLEBOT_MAX_INPUT_MB", 20 * MiB, gt=0)
    max_input_pixels: int = DEFAULT_MAX_PIXELS
    max_server_styles: int = _var("STYLEBOT_MAX_SERVER_STYLES", 25, ge=0)  # styles a server's admins may add
    # -- admission: what one member and everyone together may have in flight
    max_jobs_per_member: int = _var("STYLEBOT_MAX_JOBS_PER_MEMBER", 5, ge=1)  # in all servers together
    max_downloads: int = _var("STYLEBOT_MAX_DOWNLOADS", 8, ge=1)  # attachments downloading at once
    max_downloads_per_member: int = _var("STYLEBOT_MAX_DOWNLOADS_PER_MEMBER", 2, ge=1)
    decode_workers: int = _var("STYLEBOT_DECODE_WORKERS", DEFAULT_WORKERS, ge=1)  # images checked at once
    decode_memory: MebiBytes = _var("STYLEBOT_DECODE_MEMORY_MB", DEFAULT_MEMORY_LIMIT, ge=16 * MiB)  # each
    decode_timeout: float = _var("STYLEBOT_DECODE_TIMEOUT", DEFAULT_TIMEOUT, gt=0)  # seconds per image
    # -- Discord
    dev_guild_id: int | None = _var("STYLEBOT_DEV_GUILD", None, ge=1)
    sync_commands: bool = _var("STYLEBOT_SYNC_COMMANDS", True)
    api_base: HttpUrl | None = _var("DISCORD_API_BASE", None)
    gateway_url: WsUrl | None = _var("DISCORD_GATEWAY_URL", None)
    token_lifetime: float = 14 * 60.0  # an interaction token lives 15 min (Discord docs); keep a minute spare
    edit_interval: float = _var("STYLEBOT_EDIT_INTERVAL", 3.0, ge=0.05)
    # A job's final message: tries per way of sending it, the first wait between tries (doubling,
    # at most 30 s) and the limit per try (see bot.cogs.stylize.retry).
    delivery_attempts: int = Field(4, ge=1)
    delivery_backoff: float = Field(2.0, ge=0)
    delivery_timeout: float = Field(30.0, gt=0)
    # The privileged Message Content intent (Discord's developer docs, "Message Content Intent"): "on"
    # requires it, "off" never asks for it, "auto" asks and connects without it when Discord refuses
    # (close code 4014). Without it only reading the message a member replies to is lost.
    message_content: Annotated[Lower, AfterValidator(_one_of(MESSAGE_CONTENT_MODES))] = _var(
        "STYLEBOT_MESSAGE_CONTENT", "auto"
    )
    # -- operations
    log_level: LogLevel = _var(AliasChoices("STYLEBOT_LOG_LEVEL", "LOG_LEVEL"), "INFO")
    shutdown_grace: float = _var("STYLEBOT_SHUTDOWN_GRACE", 60.0, ge=0)
    health_host: str = _var("STYLEBOT_HEALTH_HOST", "127.0.0.1")
    health_port: Port = _var("STYLEBOT_HEALTH_PORT", 8080, ge=0, le=65535)
    # members and servers refused outright, on top of those blocked with /stylebot operator block
    blocked_users: Ids = _var("STYLEBOT_BLOCKED_USERS", frozenset())
    blocked_guilds: Ids = _var("STYLEBOT_BLOCKED_GUILDS", frozenset())
    # bot-wide defaults for per-server settings, from STYLEBOT_<SETTING> (see _guild_defaults)
    guild_defaults: Mapping[str, Any] = Field(default_factory=dict)
    # bounds server admins cannot pass, from STYLEBOT_CEILING_<SETTING> / STYLEBOT_FLOOR_<SETTING>
    ceilings: Ceilings = Field(default_factory=Ceilings)

    @field_validator("guild_defaults", mode="before")
    @classmethod
    def _parse_guild_defaults(cls, value: Mapping[str, Any]) -> dict[str, Any]:
        """Text is parsed as an admin's `/stylebot config set` would be; all problems are named at once."""
        parsed: dict[str, Any] = {}
        problems: list[str] = []
        for key, raw in value.items():
            try:
                parsed[key] = parse_setting(key, raw) if isinstance(raw, str) else raw
            except SettingError as exc:
                problems.append(f"STYLEBOT_{key.upper()}: {exc}")
        if not problems:
            try:
                GuildSettings().with_overrides(parsed).check()
            except SettingError as exc:
                problems.append(f"STYLEBOT_<SETTING> defaults: {exc}")
        if problems:
            raise ValueError("\n  ".join(problems))
        return parsed

    @field_validator("ceilings", mode="before")
    @classmethod
    def _parse_ceilings(cls, value: Ceilings | Mapping[str, Any]) -> Ceilings:
        """Each bound is checked by its setting's declaration, not against the defaults (see `Ceilings`)."""
        if isinstance(value, Ceilings):
            return value
        try:
            return Ceilings.parse(value)
        except SettingError as exc:
            raise ValueError(str(exc)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only what the caller passes: `from_env` is what reads the environment, so a config built in
        Python (tests, embedding) never picks up whatever the process happens to export."""
        return (init_settings,)

    @classmethod
    def from_env(cls, *, dotenv_path: str | os.PathLike[str] | None = ".env") -> BotConfig:
        """Read the settings; real environment variables win over the .env file (if it exists)."""
        env = EnvSettingsSource(cls)
        dotenv = DotEnvSettingsSource(cls, env_file=dotenv_path)
        try:
            return cls(**{**dotenv(), **env(), **_guild_defaults(env, dotenv), **_ceilings(env, dotenv)})
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "stylebot.sqlite3"

    def executor_config(self) -> dict[str, Any]:
        """Keyword arguments for `stylecore.executors.make_executor(kind, **config)`."""
        cfg: dict[str, Any] = {
            "max_queue": self.queue_size,
            # One cap for a member across servers: on jobs queued or running, so waiting ones are
            # bounded by it too (the executor's own cap on waiting jobs would otherwise bind first).
            "max_per_user_active": self.max_jobs_per_member,
            "max_per_user_queued": self.max_jobs_per_member,
            "job_timeout": self.job_timeout,
        }
        if self.workers is not None:  # else the executor's own default (one per GPU, or its CPU rule)
            cfg["workers"] = self.workers
        if self.device != "auto":
            cfg["device"] = self.device
        if self.memory_limit is not None:
            cfg["memory_limit"] = self.memory_limit
        if self.worker_setup_hook:
            cfg["worker_setup_hook"] = self.worker_setup_hook
        if self.executor == "ray" and self.ray_address:
            cfg["ray_address"] = self.ray_address
        return cfg

    def require_token(self) -> str:
        if not self.token.get_secret_value():
            raise ConfigError("DISCORD_TOKEN is not set (put it in the environment or in .env)")
        return self.token.get_secret_value()


def _describe(exc: ValidationError) -> str:
    """One line per bad variable, named as the operator wrote it, with the value that was refused."""
    lines = ["bad settings:"]
    for err in exc.errors():
        name = ".".join(str(part) for part in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if name in ("guild_defaults", "ceilings"):  # the message names each variable itself
            lines.append(f"  {message}")
        else:
            shown = f" (got {err['input']!r})" if isinstance(err["input"], str) else ""
            lines.append(f"  {name}: {message}{shown}")
    return "\n".join(lines)


def _guild_defaults(*sources: EnvSettingsSource) -> dict[str, Any]:
    """`STYLEBOT_<SETTING>` for every per-server setting (first source wins), so a new setting needs no
    field here; the values are parsed by the `guild_defaults` validator."""
    found: dict[str, str] = {}
    for source in reversed(sources):
        for key in SETTINGS:
            raw = source.env_vars.get(f"STYLEBOT_{key.upper()}")
            if raw is not None:
                found[key] = raw
    return {"guild_defaults": found} if found else {}


def _ceilings(*sources: EnvSettingsSource) -> dict[str, Any]:
    """`STYLEBOT_CEILING_<SETTING>` / `STYLEBOT_FLOOR_<SETTING>` for every bounded setting (first source
    wins); the ones not set keep their defaults."""
    found: dict[str, str] = {}
    for source in reversed(sources):
        for key in Ceilings.bounded():
            raw = source.env_vars.get(Ceilings.env_name(key))
            if raw is not None:
                found[key] = raw
    return {"ceilings": found} if found else {}
