"""End to end: what an operator's Prometheus scrapes from `/metrics` while the bot works.

Real jobs, refusals, a result too big for the upload limit, and Discord answering with a 500 and
a 429 (the fake's faults), each read back from the bot's own HTTP endpoint.
"""

from __future__ import annotations

import os
import signal

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytest.register_assert_rewrite("bot_fixtures")

from bot_fixtures import CONTENT, LONG_JOB, STYLE, BotEnv, job_id_of  # noqa: E402

from bot import messages  # noqa: E402
from bot.bot import StyleBot  # noqa: E402
from bot.metrics import size_bucket  # noqa: E402

pytest_plugins = ["bot_fixtures"]
pytestmark = pytest.mark.asyncio(loop_scope="session")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(bot: StyleBot) -> Samples:
    """Every sample the bot's /metrics serves, keyed by name and labels."""
    assert bot.health is not None
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{bot.health.port}/metrics") as r:
        assert r.status == 200
        text = await r.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def label_sets(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for n, labels in samples if n == name]


async def test_metrics_follow_jobs_refusals_workers_and_discord(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    bot = await bot_env.start_bot()
    before = await scrape(bot)
    assert value(before, "stylebot_message_content_intent") == 1.0
    assert value(before, "stylebot_workers", state="ready") == 1.0
    for reason in ("worker_lost", "oom", "timeout", "bad_input", "no_worker", "internal"):
        assert (("stylebot_job_failures_total", frozenset({("reason", reason)}))) in before

    # A job, with one of its progress edits answered 500 (discord.py retries it) and one 429.
    fd.fail_next("PATCH", r"/webhooks/\d+/[^/]+/messages/@original", 500)
    fd.rate_limits.force_429("PATCH", r"/webhooks/\d+/[^/]+/messages/@original", retry_after=0.2)
    done = await bot_env.wait_done(await bot_env.stylize())
    await bot_env.wait_state(job_id_of(done), "done")
    after = await scrape(bot)
    where = {"device": "cpu", "size": size_bucket(48)}
    assert where["size"] == "<=256"
    assert value(after, "stylebot_queue_wait_seconds_count", **where) == 1.0
    assert value(after, "stylebot_job_duration_seconds_count", **where) == 1.0
    assert value(after, "stylebot_job_duration_seconds_sum", **where) > 0
    assert value(after, "stylebot_jobs_finished_total", state="done") == 1.0
    assert value(after, "stylebot_discord_http_errors_total", status="500") == 1.0
    assert value(after, "stylebot_discord_rate_limited_total", scope="user") == 1.0
    # The worker's memory as the executor reports it; a CPU has no GPU total, and no budget unless set.
    used = label_sets(after, "stylebot_worker_memory_used_bytes")
    assert used == [{"slot": "0", "device": "cpu"}]
    assert value(after, "stylebot_worker_memory_used_bytes", slot="0", device="cpu") > 50 * 2**20
    assert not label_sets(after, "stylebot_worker_memory_total_bytes")
    assert not label_sets(after, "stylebot_worker_memory_budget_bytes")

    # A result over the upload limit goes out as JPEG or WebP, and is counted.
    fd.attachment_size_limit = 3000
    small = await bot_env.wait_done(await bot_env.stylize(content=CONTENT, style=STYLE, size=96, steps=2))
    fmt = "webp" if small.attachments[0].filename.endswith(".webp") else "jpeg"
    fd.attachment_size_limit = 10 * 2**20

    # Refusals, by reason: an attachment that is not an image, and a mention with one image only (a
    # mention without images is a question, answered with the help, not a refusal).
    refused = await fd.slash_command(
        "stylize", {"content": ("notes.txt", b"hello", "text/plain"), "style": ("style.png", STYLE)}, user=fd.member
    )
    await bot_env.wait_ephemeral(refused)
    hint = await fd.post_message(author=fd.member, content=f"<@{fd.bot_user.id}> hi", attachments=[("a.png", STYLE)])
    await fd.wait_for_message(fd.channel, lambda m: (m.reference or {}).get("message_id") == str(hint.id))

    last = await scrape(bot)
    assert value(last, "stylebot_results_reencoded_total", format=fmt) == 1.0
    assert value(last, "stylebot_refusals_total", reason="bad_input") == 2.0
    assert value(last, "stylebot_queue_wait_seconds_count", device="cpu", size="<=256") == 2.0
    # No label carries an id: every label value is one of a few fixed words or small numbers.
    ids = {str(fd.member.user.id), str(fd.guild.id), str(fd.channel.id), job_id_of(done)}
    assert not {v for _, labels in last for _, v in labels} & ids


async def test_a_lost_worker_shows_in_the_metrics(bot_env: BotEnv) -> None:
    bot = await bot_env.start_bot()
    before = await scrape(bot)
    inter = await bot_env.stylize(**LONG_JOB)
    msg = await bot_env.wait_text(inter, "Stylizing")
    os.kill(bot_env.executor.worker_pids()[0], signal.SIGKILL)  # type: ignore[attr-defined]
    failed = await bot_env.wait_text(inter, "Failed", timeout=60)
    assert messages.failure(None, "worker_lost") in failed.content
    await bot_env.wait_state(job_id_of(msg), "failed")

    after = await scrape(bot)
    assert value(after, "stylebot_workers_lost_total") == value(before, "stylebot_workers_lost_total") + 1
    assert value(after, "stylebot_job_failures_total", reason="worker_lost") == 1.0
    assert value(after, "stylebot_jobs_finished_total", state="failed") == 1.0
    # The executor brings a new worker up: the next job runs and the slot is ready again.
    assert (await bot_env.wait_done(await bot_env.stylize(steps=2), timeout=180)).attachments
    assert value(await scrape(bot), "stylebot_workers", state="ready") == 1.0
