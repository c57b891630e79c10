"""The operator's settings: every variable is read, converted to seconds/bytes once, reported
together when bad, and documented in .env.example with the defaults the code really has."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import AliasChoices

from bot.config import BotConfig, ConfigError
from bot.guild_settings import SETTINGS, Ceilings
from stylecore.executors import KINDS, ExecutorConfig
from stylecore.executors.config import CPU_MAX_WORKERS, default_cpu_workers

ENV_EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    """A clean environment (whatever the machine running the tests exports), and a setter."""
    for name in list(os.environ):
        if name.startswith(("STYLEBOT_", "DISCORD_")) or name == "LOG_LEVEL":
            monkeypatch.delenv(name)

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_env


def load(dotenv_path: Path | None = None) -> BotConfig:
    return BotConfig.from_env(dotenv_path=dotenv_path)


def variables() -> set[str]:
    """Every environment variable BotConfig reads, derived from its fields and the server settings."""
    names = {f"STYLEBOT_{key.upper()}" for key in SETTINGS}
    names.update(Ceilings.env_name(key) for key in Ceilings.bounded())
    for field in BotConfig.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice) for choice in alias.choices)
        elif alias is not None:
            names.add(str(alias))
    return names


def test_config_from_env_and_the_token_never_shows(env, tmp_path: Path) -> None:
    env(
        DISCORD_TOKEN="abc.def.ghi",
        STYLEBOT_WORKERS="2",
        STYLEBOT_DATA_DIR=str(tmp_path),
        STYLEBOT_DEV_GUILD="42",
        STYLEBOT_EXECUTOR="Local",
        DISCORD_API_BASE="http://127.0.0.1:9/api/v10/",
        STYLEBOT_DEFAULT_SIZE="256",
        STYLEBOT_ALLOWED_CHANNELS="<#123456789012345678>",
        STYLEBOT_HEALTH_PORT="off",
        STYLEBOT_SYNC_COMMANDS="off",
        STYLEBOT_JOB_TIMEOUT="45",
        LOG_LEVEL="debug",
    )
    cfg = load()
    assert cfg.workers == 2 and cfg.dev_guild_id == 42 and cfg.health_port is None and cfg.executor == "local"
    assert cfg.data_dir == tmp_path and cfg.db_path.parent == tmp_path
    assert cfg.api_base == "http://127.0.0.1:9/api/v10" and cfg.log_level == "DEBUG" and not cfg.sync_commands
    assert cfg.guild_defaults == {"default_size": 256, "allowed_channels": (123456789012345678,)}
    assert cfg.require_token() == "abc.def.ghi"
    assert "abc.def.ghi" not in repr(cfg) and "abc.def.ghi" not in str(cfg) and "abc.def.ghi" not in str(cfg.token)
    per_member = cfg.max_jobs_per_member
    assert cfg.executor_config() == {
        "workers": 2,
        "max_queue": ExecutorConfig().max_queue,
        "max_per_user_active": per_member,
        "max_per_user_queued": per_member,
        "job_timeout": 45.0,
    }


def test_dotenv_is_read_and_the_environment_wins(env, tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("DISCORD_TOKEN=from-file\nSTYLEBOT_WORKERS=3\nSTYLEBOT_MAX_SIZE=2048\nSTYLEBOT_DEV_GUILD=\n")
    env(STYLEBOT_WORKERS="1", STYLEBOT_MAX_SIZE="768")
    cfg = load(dotenv)
    assert cfg.token.get_secret_value() == "from-file" and cfg.workers == 1 and cfg.dev_guild_id is None
    assert cfg.guild_defaults == {"max_size": 768}
    with pytest.raises(ConfigError, match="DISCORD_TOKEN"):
        load(None).require_token()


def test_every_bad_variable_is_named_in_one_error(env) -> None:
    env(
        STYLEBOT_WORKERS="many",
        STYLEBOT_EXECUTOR="slurm",
        STYLEBOT_MEMORY_LIMIT_GB="0",
        STYLEBOT_INPUT_TTL_HOURS="a day",
        STYLEBOT_INPUTS_MAX_GB="-1",
        DISCORD_API_BASE="ftp://proxy",
        DISCORD_GATEWAY_URL="http://gateway",
        STYLEBOT_HEALTH_PORT="99999",
        STYLEBOT_SYNC_COMMANDS="maybe",
        STYLEBOT_MAX_SIZE="5",
        STYLEBOT_DEFAULT_STEPS="lots",
        STYLEBOT_CEILING_MAX_SIZE="9000",
        STYLEBOT_FLOOR_COOLDOWN_SECONDS="soon",
        STYLEBOT_MAX_DOWNLOADS="0",
        STYLEBOT_DECODE_MEMORY_MB="8",
        STYLEBOT_JOB_TIMEOUT="0",
    )
    with pytest.raises(ConfigError) as info:
        load()
    text = str(info.value)
    named = {line.split(":")[0].strip() for line in text.splitlines()[1:]}
    assert named == {
        "STYLEBOT_WORKERS",
        "STYLEBOT_EXECUTOR",
        "STYLEBOT_MEMORY_LIMIT_GB",
        "STYLEBOT_INPUT_TTL_HOURS",
        "STYLEBOT_INPUTS_MAX_GB",
        "DISCORD_API_BASE",
        "DISCORD_GATEWAY_URL",
        "STYLEBOT_HEALTH_PORT",
        "STYLEBOT_SYNC_COMMANDS",
        "STYLEBOT_MAX_SIZE",
        "STYLEBOT_DEFAULT_STEPS",
        "STYLEBOT_CEILING_MAX_SIZE",
        "STYLEBOT_FLOOR_COOLDOWN_SECONDS",
        "STYLEBOT_MAX_DOWNLOADS",
        "STYLEBOT_DECODE_MEMORY_MB",
        "STYLEBOT_JOB_TIMEOUT",
    }
    # the refused value and the rule are both shown, and the choices come from the executor package
    assert "'many'" in text and "between 16 and 4096" in text and ", ".join(KINDS) in text
    assert "expected a number of hours (got 'a day')" in text


def test_server_defaults_are_checked_together(env) -> None:
    env(STYLEBOT_DEFAULT_SIZE="2000")
    with pytest.raises(ConfigError, match=r"default_size \(2000 px\) can't be above max_size"):
        load()
    env(STYLEBOT_MAX_SIZE="2048")
    assert load().guild_defaults == {"default_size": 2000, "max_size": 2048}


def test_ceilings_and_the_per_member_cap_come_from_the_environment(env) -> None:
    default = load()
    assert default.ceilings == Ceilings()
    assert default.executor_config()["max_per_user_active"] == default.max_jobs_per_member
    env(
        STYLEBOT_CEILING_MAX_SIZE="768",
        STYLEBOT_FLOOR_COOLDOWN_SECONDS="12.5",
        STYLEBOT_MAX_JOBS_PER_MEMBER="3",
        STYLEBOT_COOLDOWN_SECONDS="0",  # the operator's own default may go below the floor
        STYLEBOT_MAX_SIZE="2048",  # and above the ceiling
    )
    cfg = load()
    assert cfg.ceilings == Ceilings(max_size=768, cooldown_seconds=12.5)  # the rest keep their defaults
    assert cfg.guild_defaults == {"cooldown_seconds": 0.0, "max_size": 2048}
    assert cfg.executor_config()["max_per_user_active"] == 3 and cfg.executor_config()["max_per_user_queued"] == 3
    # each bound is checked by its setting's own declaration
    env(STYLEBOT_CEILING_MAX_JOBS_PER_USER="1000")
    with pytest.raises(ConfigError, match=r"STYLEBOT_CEILING_MAX_JOBS_PER_USER: .*between 1 and 100"):
        load()


def test_human_units_become_seconds_and_bytes(env) -> None:
    assert "memory_limit" not in load().executor_config()  # no cap unless the operator sets one
    env(
        STYLEBOT_MEMORY_LIMIT_GB="1.5",
        STYLEBOT_INPUT_TTL_HOURS="0.5",
        STYLEBOT_MAX_INPUT_MB="8",
        STYLEBOT_INPUTS_MAX_GB="0.25",
        STYLEBOT_INPUTS_MAX_MB_PER_MEMBER="0",
        STYLEBOT_DECODE_MEMORY_MB="512",
    )
    cfg = load()
    assert cfg.decode_memory == 512 * 2**20
    assert cfg.memory_limit == 3 * 2**29 and cfg.executor_config()["memory_limit"] == 3 * 2**29
    assert cfg.inputs_ttl == 1800.0 and cfg.max_input_bytes == 8 * 2**20
    assert cfg.inputs_max_bytes == 2**28 and cfg.inputs_max_bytes_per_member == 0
    # from Python the fields are already in seconds and bytes, and the environment is not read
    direct = BotConfig(memory_limit=1000, inputs_ttl=60.0, workers=3)
    assert direct.memory_limit == 1000 and direct.inputs_ttl == 60.0 and direct.workers == 3
    assert direct.inputs_max_bytes == BotConfig().inputs_max_bytes == 2 * 2**30


def test_env_example_documents_every_variable_with_the_real_defaults(env) -> None:
    text = ENV_EXAMPLE.read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.M))
    assert documented == variables() - {"LOG_LEVEL"}  # LOG_LEVEL is only mentioned as an alternative
    assert "LOG_LEVEL also works" in text
    # copying it unchanged (with a token) gives exactly the defaults the code has
    assert load(ENV_EXAMPLE).model_dump() == BotConfig().model_dump()
    assert BotConfig().queue_size == ExecutorConfig().max_queue


def test_blocked_members_and_servers_are_lists_of_ids(env) -> None:
    env(STYLEBOT_BLOCKED_USERS="123456789012345678, <@223456789012345678> 42", STYLEBOT_BLOCKED_GUILDS="")
    config = load()
    assert config.blocked_users == {123456789012345678, 223456789012345678, 42}
    assert config.blocked_guilds == frozenset()
    env(STYLEBOT_BLOCKED_GUILDS="the bad server")
    with pytest.raises(ConfigError, match="STYLEBOT_BLOCKED_GUILDS: expected Discord ids separated by commas"):
        load()


def test_workers_default_to_the_executors_choice_and_a_number_overrides_it(env) -> None:
    default = load()
    assert default.workers is None and "workers" not in default.executor_config()
    executor = ExecutorConfig(**default.executor_config())
    # One per GPU, torch choosing each GPU worker's threads; without GPUs the CPU rule
    # (single-threaded workers, one per core, at most CPU_MAX_WORKERS; the cores split between them).
    assert executor.local_pool(gpus=4, cores=32) == (4, None)
    assert executor.local_pool(gpus=0, cores=2) == (2, 1)
    assert executor.local_pool(gpus=0, cores=1) == (1, 1)
    assert CPU_MAX_WORKERS == 4 and executor.local_pool(gpus=0, cores=16) == (4, 4)
    assert default_cpu_workers(64) == CPU_MAX_WORKERS

    env(STYLEBOT_WORKERS="1")
    one = ExecutorConfig(**load().executor_config())
    assert one.local_pool(gpus=4, cores=32) == (1, None)  # a 4-GPU host gets the one worker asked for
    assert one.local_pool(gpus=0, cores=2) == (1, 2)
    assert ExecutorConfig(workers=3, threads_per_worker=2).local_pool(gpus=0, cores=2) == (3, 2)


def test_message_content_intent_setting(env) -> None:
    assert load().message_content == "auto"
    env(STYLEBOT_MESSAGE_CONTENT="OFF")
    assert load().message_content == "off"
    env(STYLEBOT_MESSAGE_CONTENT="sometimes")
    with pytest.raises(ConfigError) as err:
        load()
    assert "STYLEBOT_MESSAGE_CONTENT: must be one of auto, on, off (got 'sometimes')" in str(err.value)
