"""End to end, operations side: queue and cancel, limits, restarts, SIGTERM, failures.

Long-running jobs here are 32 px with thousands of steps: they keep the single CPU
worker busy until the test cancels them, so nothing depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("bot_fixtures")

from bot_fixtures import LONG_JOB, BotEnv, assert_throttled, idle_executor, image_of, job_id_of  # noqa: E402
from fakediscord import FakeDiscord  # noqa: E402
from worker_hooks import LONG_RUNS  # noqa: E402

from bot import messages  # noqa: E402
from bot.bot import SHUTDOWN_MARGIN  # noqa: E402
from stylecore.executors.worker import plan_of  # noqa: E402
from stylecore.memory import estimate_job_bytes, max_side_for  # noqa: E402
from stylecore.options import StyleOptions  # noqa: E402

pytest_plugins = ["bot_fixtures"]
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_queue_positions_cancel_and_limits(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    await bot_env.start_bot(guild_defaults={"max_jobs_per_user": 2})
    alice, bob, mod = fd.member, bot_env.add_member("bob"), fd.moderator

    a1 = await bot_env.stylize(alice, **LONG_JOB)
    a1_msg = await bot_env.wait_text(a1, "Stylizing")
    a2 = await bot_env.stylize(alice, **LONG_JOB)
    b1 = await bot_env.stylize(bob, **LONG_JOB)
    # Fair queue: bob's first job goes before alice's second.
    b1_msg = await bot_env.wait_text(b1, "**Queued** — position 1")
    a2_msg = await bot_env.wait_text(a2, "**Queued** — position 2")
    ids = {name: job_id_of(m) for name, m in (("a1", a1_msg), ("a2", a2_msg), ("b1", b1_msg))}
    # Estimates are Discord timestamps, which each reader's client shows in their language.
    assert re.search(r"step \d+/\d+ \(\d+%\) · done <t:\d+:R>", (await bot_env.wait_text(a1, "done <t:")).content)

    # /queue: your own jobs with positions; an admin sees everyone's.
    mine = await bot_env.wait_ephemeral(await fd.slash_command("queue", user=alice))
    assert f"`{ids['a1']}` running" in mine and f"`{ids['a2']}` queued, position 2" in mine
    assert ids["b1"] not in mine
    bobs = await bot_env.wait_ephemeral(await fd.slash_command("queue", user=bob))
    assert f"`{ids['b1']}` queued, position 1" in bobs and ids["a1"] not in bobs
    everyone = await bot_env.wait_ephemeral(await fd.slash_command("queue", user=mod))
    assert all(i in everyone for i in ids.values()) and f"<@{bob.user.id}>" in everyone

    # /cancel offers your active jobs as choices.
    ac = await fd.autocomplete("cancel", {"job": ""}, "job", user=alice)
    await fd._wait_until(lambda: ac.autocomplete_choices is not None, 10, "autocomplete")
    assert {c["value"] for c in ac.autocomplete_choices} == {ids["a1"], ids["a2"]}

    # Per-user limit from the server settings, with the reason.
    third = await bot_env.stylize(alice, **LONG_JOB)
    assert await bot_env.wait_ephemeral(third) == messages.too_many_jobs([ids["a1"], ids["a2"]], 2)

    # Cancel button: not for someone else's job, but fine for a moderator (Manage Messages).
    denied = await fd.click_button(a1_msg, f"stylebot:cancel:{ids['a1']}", user=bob)
    assert await bot_env.wait_ephemeral(denied) == messages.NOT_YOUR_JOB
    by_mod = await fd.click_button(a2_msg, f"stylebot:cancel:{ids['a2']}", user=mod)
    assert await bot_env.wait_ephemeral(by_mod) == messages.cancelling(ids["a2"])
    assert f"Cancelled** by <@{mod.user.id}>" in (await bot_env.wait_text(a2, "Cancelled")).content

    # /cancel with an id, then /cancel without one (your latest job).
    await bot_env.wait_ephemeral(await fd.slash_command("cancel", {"job": ids["a1"]}, user=alice))
    await bot_env.wait_text(a1, "Cancelled")
    await bot_env.wait_text(b1, "Stylizing")  # bob's job moves up and starts
    await bot_env.wait_ephemeral(await fd.slash_command("cancel", user=bob))
    final = await bot_env.wait_text(b1, "Cancelled")
    assert not final.attachments and not final.custom_ids  # preview and Cancel button removed
    for job in ids.values():
        await bot_env.wait_state(job, "cancelled")
    again = await fd.slash_command("cancel", {"job": ids["a1"]}, user=alice)
    assert await bot_env.wait_ephemeral(again) == messages.already_finished(ids["a1"], "cancelled")

    # Cooldown set by an admin applies to the next job.
    await bot_env.wait_ephemeral(
        await fd.slash_command("stylebot config set", {"setting": "cooldown_seconds", "value": "600"}, user=mod)
    )
    cooled = await bot_env.stylize(bob, **LONG_JOB)
    asked = time.time()
    wait = re.fullmatch(r"Please wait: you can start another job <t:(\d+):R> .*", await bot_env.wait_ephemeral(cooled))
    assert wait and asked < int(wait[1]) <= asked + 601  # a Discord timestamp, counted from bob's last job


async def test_queued_job_and_settings_survive_a_restart(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    await bot_env.start_bot()
    alice, bob, mod = fd.member, bot_env.add_member("bob"), fd.moderator
    await bot_env.wait_ephemeral(
        await fd.slash_command("stylebot config set", {"setting": "default_steps", "value": "3"}, user=mod)
    )

    long = await bot_env.stylize(alice, **LONG_JOB)
    await bot_env.wait_text(long, "Stylizing")
    queued = await bot_env.stylize(bob)  # default_steps = 3 from the admin setting
    queued_msg = await bot_env.wait_text(queued, "**Queued** — position 1")
    queued_id, long_id = job_id_of(queued_msg), job_id_of(bot_env.fd.original_message(long))
    assert "3 steps" in queued_msg.content

    await bot_env.stop_bot()  # grace 0: nothing may finish; everything is kept for the next start
    assert "Paused" in fd.original_message(queued).content
    assert "Paused" in fd.original_message(long).content

    mark = len(fd.requests)
    bot = await bot_env.start_bot(own_executor=True)  # a new process would build its own executor
    assert bot.recovered == 2
    show = await bot_env.wait_ephemeral(await fd.slash_command("stylebot config show", user=mod))
    assert "`default_steps` = **3**" in show and "`default_steps` = **3** *(default)*" not in show

    # The long job is back too; cancelling it lets the queued one run to the end.
    await fd.wait_for_original(long, lambda m: "Stylizing" in m.content, timeout=180)
    await bot_env.wait_ephemeral(await fd.slash_command("cancel", {"job": long_id}, user=alice))
    done = await bot_env.wait_done(queued)
    assert image_of(done.attachments[0].data).size == (48, 36)
    # After the restart the interaction token is gone: every edit went through the channel.
    after = [r for r in fd.requests[mark:] if r.method == "PATCH"]
    assert after and all(r.path.startswith("/channels/") for r in after)
    restarted = [
        r for r in bot_env.edits_of(done.id, via="channel") if "restarted" in (r.json or {}).get("content", "")
    ]
    assert restarted, "the message never said the job was re-queued"
    await bot_env.wait_state(queued_id, "done")


async def test_owner_is_told_when_a_stored_job_cannot_be_recovered(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    await bot_env.start_bot()
    inter = await bot_env.stylize(**LONG_JOB)
    job_id = job_id_of(await bot_env.wait_text(inter, "Stylizing"))
    await bot_env.stop_bot()
    # The stored inputs are lost while the bot is down (e.g. a restored backup without them).
    with sqlite3.connect(bot_env.data_dir / "stylebot.sqlite3") as db:
        db.execute("DELETE FROM inputs WHERE job_id = ?", (job_id,))
    bot = await bot_env.start_bot()
    assert bot.recovered == 0
    told = await bot_env.wait_text(inter, "Failed")
    assert messages.INPUTS_LOST_IN_RESTART in told.content and f"<@{fd.member.user.id}>" not in told.content
    await bot_env.wait_state(job_id, "failed")


async def test_global_commands_are_synced_only_when_they_change(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    sync = f"/applications/{fd.application_id}/commands"
    await bot_env.start_bot(dev_guild_id=None)
    assert len(fd.requests_matching("PUT", sync)) == 1
    assert fd.state.find_command("stylize", 1, None) is not None
    assert fd.state.find_command("Stylize this image", 3, None) is not None
    await bot_env.stop_bot()
    await bot_env.start_bot(dev_guild_id=None)  # same definitions: no second sync
    assert len(fd.requests_matching("PUT", sync)) == 1
    await bot_env.stop_bot()

    # Another application (a new token) on the same data directory gets its commands at once.
    async with FakeDiscord() as other:
        assert other.application_id != fd.application_id
        env = BotEnv(other, bot_env.data_dir, bot_env.executor.inner)
        try:
            await env.start_bot(dev_guild_id=None)
            assert len(other.requests_matching("PUT", f"/applications/{other.application_id}/commands")) == 1
            assert other.state.find_command("stylize", 1, None) is not None
        finally:
            await env.close()


async def test_expired_token_continues_on_the_same_message_via_the_channel(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    await bot_env.start_bot()
    # The job's end is held until its token has expired, however fast this CPU runs its steps
    # (a short job once went from queued to done between two progress edits).
    bot_env.hold_results()
    inter = await bot_env.stylize(size=48, steps=20)
    msg = await bot_env.wait_text(inter, "Stylizing")
    fd.expire_token(inter)  # from now on webhook calls answer 401 Invalid Webhook Token
    bot_env.release_results()

    done = await fd.wait_for_message(fd.channel, lambda m: m.id == msg.id and "**Done**" in m.content, timeout=120)
    assert done.attachments and image_of(done.attachments[0].data).size == (48, 36)
    rejected = [r for r in fd.requests if r.method == "PATCH" and r.path.startswith("/webhooks/") and r.status == 401]
    assert len(rejected) == 1  # one refusal, then the bot switched for good
    channel_edits = bot_env.edits_of(msg.id, via="channel")
    assert channel_edits and channel_edits[-1].files
    assert_throttled(bot_env.edits_of(msg.id))
    # Same message, no stray new one.
    assert [m.id for m in fd.messages_in(fd.channel) if m.author.id == fd.bot_user.id] == [msg.id]


async def test_switches_to_the_channel_before_the_token_expires(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    # A lifetime of 0 stands in for a job that outlives Discord's 15 minutes: the bot must not wait
    # for a 401 but move to the channel itself, on the very message the interaction created.
    await bot_env.start_bot(token_lifetime=0.0)
    inter = await bot_env.stylize(size=48, steps=4)
    done = await bot_env.wait_done(inter)
    assert done.id == inter.original_message_id
    assert not bot_env.edits_of(done.id, via="webhook")
    channel = bot_env.edits_of(done.id, via="channel")
    assert len(channel) >= 2 and channel[-1].files
    assert not [r for r in fd.requests if r.status == 401]
    assert [m.id for m in fd.messages_in(fd.channel) if m.author.id == fd.bot_user.id] == [done.id]


@asynccontextmanager
async def _bot_process(
    bot_env: BotEnv, data: Path, **env: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, asyncio.Task[bytes]]]:
    """`python -m bot` against the fake, configured through the environment as an operator would;
    killed if still running at the end, its log printed if the test fails inside."""
    fd = bot_env.fd
    environ = {
        **os.environ,
        "DISCORD_TOKEN": fd.token,
        "DISCORD_API_BASE": fd.api_base,
        "DISCORD_GATEWAY_URL": fd.gateway_url,
        "STYLEBOT_DATA_DIR": str(data),
        "STYLEBOT_DEV_GUILD": str(fd.guild.id),
        "STYLEBOT_DEVICE": "cpu",
        "STYLEBOT_WORKERS": "1",  # one job runs, the next waits (the CPU default is one worker per core)
        "STYLEBOT_HEALTH_PORT": "0",
        "STYLEBOT_SHUTDOWN_GRACE": "1",
        "STYLEBOT_EDIT_INTERVAL": "0.3",
        "STYLEBOT_LOG_LEVEL": "DEBUG",
        "STYLEBOT_DEFAULT_SIZE": "32",
        "STYLEBOT_COOLDOWN_SECONDS": "0",
        # A long job stays long however fast the machine (tests/worker_hooks.py).
        "STYLEBOT_WORKER_SETUP_HOOK": LONG_RUNS,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")])),
        **env,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        env=environ,
        cwd=str(data.parent),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    logs = asyncio.create_task(proc.stdout.read())  # type: ignore[union-attr]
    try:
        yield proc, logs
    except Exception:
        if proc.returncode is None:
            proc.kill()
        print((await logs).decode(errors="replace")[-6000:])
        raise
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _two_jobs(bot_env: BotEnv) -> tuple[Any, Any]:
    """Once the bot process is up: one job running, one waiting."""
    fd = bot_env.fd
    await fd.wait_until_connected(timeout=180)
    await fd._wait_until(lambda: fd.state.find_command("stylize", 1, fd.guild.id), 30, "command sync")
    long = await bot_env.stylize(fd.member, size=32, steps=1000)
    await bot_env.wait_text(long, "Stylizing", timeout=60)
    queued = await bot_env.stylize(bot_env.add_member("bob"), size=32, steps=3)
    await bot_env.wait_text(queued, "Queued", timeout=30)
    return long, queued


def _states(data: Path) -> list[str]:
    with sqlite3.connect(data / "stylebot.sqlite3") as db:
        return [r[0] for r in db.execute("SELECT state FROM jobs ORDER BY created_at")]


async def test_sigterm_stops_taking_jobs_and_persists_the_rest(bot_env: BotEnv, tmp_path: Path) -> None:
    fd = bot_env.fd
    data = tmp_path / "sigterm-data"
    async with _bot_process(bot_env, data) as (proc, logs):
        long, queued = await _two_jobs(bot_env)
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), 60)
    out = (await logs).decode(errors="replace")
    assert rc == 0, out[-3000:]
    assert "shutdown requested" in out
    assert "Paused" in fd.original_message(long).content and "Paused" in fd.original_message(queued).content
    assert _states(data) == ["queued", "queued"]
    # Secrets never reach the logs, even at DEBUG with request URLs logged.
    leaks = [line for line in out.splitlines() if any(t in line for t in (fd.token, long.token, queued.token))]
    assert not leaks, [line[:200] for line in leaks[:5]]
    assert "[REDACTED]" in out


async def test_sigterm_while_discord_is_unreachable_exits_within_the_grace(bot_env: BotEnv, tmp_path: Path) -> None:
    fd = bot_env.fd
    data = tmp_path / "unreachable-data"
    grace = 3.0
    async with _bot_process(bot_env, data, STYLEBOT_SHUTDOWN_GRACE=str(grace)) as (proc, logs):
        await _two_jobs(bot_env)
        # Discord goes dark: the gateway is a black hole, and REST requests are never answered.
        await fd.gateway_unreachable(hang=True)
        fd.fail_next("*", r"/(channels|webhooks|interactions)/.*", 503, times=10**6, delay=3600.0)
        await fd.wait_until(lambda: fd.gateway.refused >= 1, 120, "a reconnect attempt")
        loop = asyncio.get_running_loop()
        sent = loop.time()
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(proc.wait(), grace + 60)
        took = loop.time() - sent
    out = (await logs).decode(errors="replace")
    print(f"exited {took:.1f} s after SIGTERM (grace {grace:g} s)")
    assert rc == 0, out[-3000:]
    assert took <= grace + SHUTDOWN_MARGIN + 4, out[-3000:]  # (and a few seconds for the interpreter to end)
    assert _states(data) == ["queued", "queued"]  # both wait for the next start


async def test_worker_killed_mid_job_tells_the_user_and_the_bot_carries_on(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    await bot_env.start_bot()
    inter = await bot_env.stylize(**LONG_JOB)
    msg = await bot_env.wait_text(inter, "Stylizing")
    job_id = job_id_of(msg)
    pids = bot_env.executor.worker_pids()  # type: ignore[attr-defined]
    assert pids
    os.kill(pids[0], signal.SIGKILL)

    failed = await bot_env.wait_text(inter, "Failed", timeout=60)
    assert messages.failure(None, "worker_lost") in failed.content
    assert not failed.custom_ids  # no Cancel button on a finished job
    told = messages.failed_privately(job_id, messages.failure(None, "worker_lost"))
    assert await bot_env.wait_ephemeral(inter) == told
    await bot_env.wait_state(job_id, "failed")

    # The bot is alive and the executor brings a new worker up for the next job.
    assert await bot_env.wait_ephemeral(await fd.slash_command("queue", user=fd.member)) == messages.NO_ACTIVE_JOBS
    nxt = await bot_env.stylize(steps=2)
    assert (await bot_env.wait_done(nxt, timeout=180)).attachments


async def test_a_job_over_the_memory_limit_runs_smaller_and_the_messages_say_so(bot_env: BotEnv) -> None:
    # A limit that holds a 32 px job but not the 48 px default, in the precision the worker will
    # plan (bf16 where this CPU has bf16 units or STYLECORE_FAST=1 says so, else fp32).
    plan = plan_of(StyleOptions(device="cpu"))
    precision = {"dtype_bytes": plan.activation_bytes, "channels_last": plan.channels_last}
    limit = estimate_job_bytes(32, 24, **precision)
    assert estimate_job_bytes(48, 36, **precision) > limit
    await bot_env.start_bot(own_executor=True, memory_limit=limit)
    # Admins see what fits before anyone runs a job, and that the server's limit is above it.
    fits = max_side_for(limit, 0.75, 1, **precision)
    assert 32 <= fits < 48
    status = await bot_env.wait_ephemeral(await bot_env.fd.slash_command("stylebot status", user=bot_env.fd.moderator))
    assert f"cpu · ready · jobs up to {fits} px fit in {limit / 2**30:.1f} GiB" in status
    assert f"`max_size` is above what fits in a worker's memory ({fits} px)" in status
    set_ = await bot_env.fd.slash_command(
        "stylebot config set", {"setting": "max_size", "value": "64"}, user=bot_env.fd.moderator
    )
    assert f"({fits} px): larger jobs run" in await bot_env.wait_ephemeral(set_)
    inter = await bot_env.stylize(steps=3)
    done = await bot_env.wait_done(inter, timeout=180)
    w, h = image_of(done.attachments[0].data).size
    assert max(w, h) < 48 and (w, h) != (0, 0)
    note = "instead of 48 px: not enough memory"
    assert note in done.content and "Ran at " in done.content
    # ...and it was said while the job ran, not only at the end.
    during = [(r.json or {}).get("content", "") for r in bot_env.edits_of(done.id)]
    assert any(("Stylizing" in c or "Starting" in c) and note in c for c in during), during


async def test_queue_with_forty_jobs_pages_within_the_message_limit(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    ex = idle_executor(max_queue=100, max_per_user_queued=100)  # nothing runs: every job waits
    await ex.start()
    try:
        await bot_env.start_bot(executor=ex, guild_defaults={"max_jobs_per_user": 100})
        members = [fd.member, *(bot_env.add_member(f"user{i}") for i in range(3))]
        ids = []
        for i in range(40):
            inter = await bot_env.stylize(members[i % len(members)], steps=3)
            ids.append(job_id_of(await bot_env.wait_text(inter, "**Queued**")))

        # An admin sees every job, a page at a time, each page one message.
        listing = await fd.slash_command("queue", user=fd.moderator)
        first = await bot_env.wait_ephemeral(listing)
        message = fd.original_message(listing)
        pages, seen = [first], set()
        assert "page 1/" in first
        count = int(re.search(r"page 1/(\d+)", first)[1])
        assert count >= 3
        assert message.find_component(message.custom_ids[0])["disabled"]  # no page before the first
        for n in range(2, count + 1):
            turn = await fd.click_button(message, message.custom_ids[1], user=fd.moderator)
            await fd.wait_until(lambda n=n: f"page {n}/" in fd.original_message(listing).content, 10, f"page {n}")
            assert turn.response_type == 7  # the same message, updated
            message = fd.original_message(listing)
            pages.append(message.content)
        assert message.find_component(message.custom_ids[1])["disabled"]  # no page after the last
        for page in pages:
            assert len(page) <= messages.MESSAGE_LIMIT
            found = re.findall(r"`([0-9a-f]{12})` queued", page)
            assert not seen & set(found)
            seen |= set(found)
        assert seen == set(ids)  # every job once, in the queue's order
        order = [j for page in pages for j in re.findall(r"`([0-9a-f]{12})` queued", page)]
        assert order == [e.job_id for e in ex.queue()]

        # Back a page; and nobody else can page through the moderator's listing.
        back = await fd.click_button(message, message.custom_ids[0], user=fd.moderator)
        await fd.wait_until(lambda: f"page {count - 1}/" in fd.original_message(listing).content, 10, "back")
        assert back.response_type == 7
        other = await fd.click_button(fd.original_message(listing), message.custom_ids[0], user=fd.member)
        assert await bot_env.wait_ephemeral(other) == messages.NOT_YOUR_LISTING

        # A member's own ten jobs fit one page: no buttons.
        mine = await fd.slash_command("queue", user=members[1])
        text = await bot_env.wait_ephemeral(mine)
        assert "page" not in text and len(re.findall(r"`[0-9a-f]{12}` queued", text)) == 10
        assert not fd.original_message(mine).custom_ids
    finally:
        await bot_env.close()
        await ex.shutdown(grace=0)
