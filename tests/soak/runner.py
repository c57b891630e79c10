"""One soak run from start to audit: the fake Discord with strict rate limits and two servers, the
bot in its own process, the members and the faults at the same time, a restart in the middle, then
every job left to end, the bot stopped, and what happened checked against what should have.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fakediscord import FakeDiscord, RateLimitReport

from bot.config import BotConfig
from soak.audit import Audit
from soak.botproc import DATABASE, BotProcess
from soak.faults import FaultLog, inject, sprinkle_429s
from soak.images import hostile_files
from soak.members import Load, MemberScript, settle
from soak.params import SoakParams
from soak.world import TERMINAL, JobView, build_world
from stylecore.executors import ExecutorConfig
from stylecore.imageio import ImageLimits

START_TIMEOUT = 240.0  # a bot start loads torch and the network in every worker: slow on a busy CPU


@dataclass
class SoakResult:
    params: SoakParams
    audit: Audit
    faults: FaultLog
    log_path: Path

    @property
    def problems(self) -> list[str]:
        return self.audit.problems

    def summary(self) -> str:
        return self.audit.summary(self.faults)


def bot_environment(fd: FakeDiscord, params: SoakParams, data_dir: Path) -> dict[str, str]:
    """The operator's settings for the soak, as environment variables (nothing inherited that
    could change them: a developer's own STYLEBOT_* or DISCORD_* variables are left out)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STYLEBOT_", "DISCORD_"))}
    (low_size, high_size), (low_steps, high_steps) = params.sizes, params.steps
    env.update(
        DISCORD_TOKEN=fd.token,
        DISCORD_API_BASE=fd.api_base,
        DISCORD_GATEWAY_URL=fd.gateway_url,
        STYLEBOT_DATA_DIR=str(data_dir),
        STYLEBOT_DEVICE="cpu",
        STYLEBOT_WORKERS=str(params.workers),
        STYLEBOT_HEALTH_PORT="off",
        STYLEBOT_SHUTDOWN_GRACE=str(params.shutdown_grace),
        STYLEBOT_EDIT_INTERVAL=str(params.edit_interval),
        STYLEBOT_JOB_TIMEOUT=str(params.job_timeout),
        STYLEBOT_MAX_JOBS_PER_MEMBER=str(params.max_jobs_per_member),
        STYLEBOT_LOG_LEVEL="INFO",
        # every server's defaults: the context menu's and the reply flow's jobs use these
        STYLEBOT_DEFAULT_SIZE=str((low_size + high_size) // 2),
        STYLEBOT_MAX_SIZE=str(high_size),
        STYLEBOT_DEFAULT_STEPS=str(low_steps),
        STYLEBOT_MAX_STEPS=str(high_steps),
        STYLEBOT_MAX_JOBS_PER_USER=str(max(1, params.max_jobs_per_member - 1)),
        STYLEBOT_PREVIEW_INTERVAL=str(params.preview_interval),
        STYLEBOT_COOLDOWN_SECONDS="0",
    )
    return env


async def wait_ready(fd: FakeDiscord, bot: BotProcess) -> None:
    """The new process logged in, its commands exist and it said it is ready (its executor and
    workers start before it connects, so by then jobs can run)."""
    await fd.wait_for_identify(bot.incarnation, timeout=START_TIMEOUT)
    await fd.wait_until_connected(timeout=START_TIMEOUT)
    await fd.wait_until(lambda: fd.state.find_command("stylize", 1, None), 60, "the /stylize command")
    await fd.wait_until(lambda: bot.ready_at.get(bot.incarnation), 60, "the bot's on_ready")


def read_database(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """(jobs by id, stored input bytes by job id) from the bot's SQLite file once it has exited."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        db.row_factory = sqlite3.Row
        jobs = {r["job_id"]: dict(r) for r in db.execute("SELECT * FROM jobs")}
        inputs = {
            r["job_id"]: r["n"]
            for r in db.execute("SELECT job_id, length(content) + length(style) + length(more_styles) AS n FROM inputs")
        }
    return jobs, inputs


async def run_soak(params: SoakParams, workdir: Path) -> SoakResult:
    config = BotConfig()  # the limits the bot checks uploads against (the soak changes none of them)
    hostiles = await hostile_files(ImageLimits(max_bytes=config.max_input_bytes, max_pixels=config.max_input_pixels))
    data_dir = workdir / "data"
    log_path = workdir / "bot.log"
    async with FakeDiscord(strict_rate_limits=True) as fd:
        fd.rate_limits.set_limit("uploads", *params.upload_limit)
        _, people = build_world(fd, params.members)
        bot = BotProcess(bot_environment(fd, params, data_dir), workdir, log_path)
        load = Load(fd, params, hostiles, JobView(fd))
        faults = FaultLog()
        started: list[asyncio.Task[Any]] = []
        try:
            await bot.start()
            await wait_ready(fd, bot)
            load.started = time.monotonic()
            load.note("bot ready")
            load.gate.set()

            async def restart() -> None:
                load.gate.clear()
                await fd.wait_until(lambda: load.in_flight == 0, 120, "requests being sent")
                await bot.terminate(timeout=params.shutdown_grace + 30)
                load.note("bot exited")
                await bot.start()
                await wait_ready(fd, bot)
                load.note("bot ready again")
                load.gate.set()

            kill_grace = ExecutorConfig().kill_grace
            injector = asyncio.create_task(inject(load, bot, restart, kill_grace=kill_grace), name="soak-faults")
            started.append(injector)
            started.append(asyncio.create_task(sprinkle_429s(load), name="soak-429s"))
            await asyncio.gather(*(MemberScript(load, person, i).run() for i, person in enumerate(people)))
            load.note("members done")
            faults = await injector
            if load.tasks:  # cancels still waiting for their moment
                await asyncio.wait(set(load.tasks), timeout=params.settle_timeout)
            with contextlib.suppress(TimeoutError):  # the audit names the jobs that never ended
                await fd.wait_until(
                    lambda: all(s in TERMINAL for s in load.view.states().values()),
                    params.settle_timeout,
                    "every job to end",
                )
            load.note(f"settled: {load.view.counts()}")
            await bot.terminate(timeout=params.shutdown_grace + 30)
        finally:
            leftover = [*load.tasks, *started]
            for task in leftover:
                task.cancel()
            await asyncio.gather(*leftover, return_exceptions=True)
            await bot.kill()
        for attempt in load.attempts:
            settle(fd, attempt)
        report: RateLimitReport = fd.rate_limit_report()
        jobs, inputs = read_database(data_dir / DATABASE)
        audit = Audit(params, fd, load, bot, report, jobs, inputs)
        audit.check(faults)
    return SoakResult(params, audit, faults, log_path)
