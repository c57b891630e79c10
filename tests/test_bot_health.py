"""End to end: the health probes tell a process that is up from a bot that can work.

A worker that cannot (re)start leaves the bot connected but useless: `/livez` stays 200, `/readyz`
turns 503 and says why, `/healthz` keeps its documented meaning, and members are told plainly.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

pytest.register_assert_rewrite("bot_fixtures")

from bot_fixtures import LONG_JOB, BotEnv, job_id_of  # noqa: E402
from executor_helpers import hooked_local_executor  # noqa: E402
from worker_hooks import FAULTS_ENV  # noqa: E402

from bot import messages  # noqa: E402

pytest_plugins = ["bot_fixtures"]
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _probe(port: int, path: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as r:
        return r.status, await r.json()


async def test_readyz_says_why_when_no_worker_can_start(
    bot_env: BotEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fd = bot_env.fd
    faults = tmp_path / "faults"
    faults.mkdir()
    monkeypatch.setenv(FAULTS_ENV, str(faults))  # the workers started below read their switches here
    ex = hooked_local_executor(kill_grace=5.0)
    await ex.start()
    try:
        bot = await bot_env.start_bot(executor=ex)
        assert bot.health is not None
        port = bot.health.port
        for path in ("/livez", "/readyz", "/healthz"):
            status, body = await _probe(port, path)
            assert status == 200 and body["ok"] is True, (path, body)
        assert (await _probe(port, "/readyz"))[1]["ready_workers"] == 1

        running = await bot_env.stylize(**LONG_JOB)
        await bot_env.wait_text(running, "Stylizing")
        waiting = await bot_env.stylize(bot_env.add_member("bob"), size=32, steps=3)
        waiting_id = job_id_of(await bot_env.wait_text(waiting, "**Queued**"))
        (faults / "crash").touch()  # every worker start from now on fails
        os.kill(ex.worker_pids()[0], signal.SIGKILL)

        # The queued job cannot run anywhere: it ends with a plain reason instead of waiting forever.
        failed = await bot_env.wait_text(waiting, "Failed", timeout=60)
        assert messages.failure(None, "no_worker") in failed.content
        await bot_env.wait_state(waiting_id, "failed")
        await fd.wait_until(lambda: ex.ready_workers() == 0 and ex.workers()[0].get("error"), 30, "a failed start")

        status, body = await _probe(port, "/readyz")
        assert status == 503 and body["ok"] is False and body["ready_workers"] == 0
        assert body["why"] == [messages.no_worker_ready(["RuntimeError: injected start-up failure"])], body
        assert (await _probe(port, "/livez"))[0] == 200
        assert (await _probe(port, "/healthz"))[0] == 200  # connected and taking jobs, as documented

        # A new request is refused at once, in words a member understands.
        refused = await bot_env.stylize(size=32, steps=3)
        assert await bot_env.wait_ephemeral(refused) == messages.NO_WORKERS

        # Once a worker can start again, the bot is ready again by itself.
        (faults / "crash").unlink()
        await fd.wait_until(lambda: ex.ready_workers() == 1, 240, "a worker is ready again")
        assert (await _probe(port, "/readyz"))[0] == 200
        again = await bot_env.stylize(size=32, steps=2)
        assert (await bot_env.wait_done(again, timeout=180)).attachments
    finally:
        (faults / "crash").unlink(missing_ok=True)
        await bot_env.close()
        await ex.shutdown(grace=0)
