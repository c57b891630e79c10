"""End to end: one quota check per request, one message for both per-member limits.

The server's limit (per member, from the database) counts requests still downloading, so two
requests at once cannot both slip through; the queue's own per-user limit is worded the same way.
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("bot_fixtures")

from bot_fixtures import CONTENT, STYLE, BotEnv, job_id_of  # noqa: E402

from bot import messages  # noqa: E402

pytest_plugins = ["bot_fixtures"]
pytestmark = pytest.mark.asyncio(loop_scope="session")

LONG = {"size": 32, "steps": 2000}
SLOW_DOWNLOAD = 8.0  # the content image of the first request is held this long, then gone


async def test_a_request_still_downloading_counts_against_the_server_limit(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    await bot_env.start_bot(guild_defaults={"max_jobs_per_user": 1})
    slow = lambda r: r.path.endswith("/slow.png")  # noqa: E731
    fd.fail_next("GET", r"/(ephemeral-)?attachments/.*", 404, delay=SLOW_DOWNLOAD, predicate=slow)
    first = await fd.slash_command(
        "stylize", {"content": ("slow.png", CONTENT), "style": ("style.png", STYLE)}, user=fd.member
    )
    await fd._wait_until(lambda: any(slow(r) and r.fault for r in fd.requests), 30, "the slow download")

    second = await bot_env.stylize()
    assert await bot_env.wait_ephemeral(second) == messages.too_many_jobs([], 1, starting=1)
    # The first request ends (its image vanished) and gives its place back.
    gone = await bot_env.wait_ephemeral(first, timeout=SLOW_DOWNLOAD + 30)
    assert gone == messages.attachment_gone("content image")
    third = await bot_env.stylize(steps=2)
    assert (await bot_env.wait_done(third)).attachments


async def test_the_queues_own_limit_reads_like_the_servers(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    await bot_env.start_bot(guild_defaults={"max_jobs_per_user": 10})  # above the queue's 5 waiting per user
    ids = []
    for i in range(6):  # one runs, five wait
        inter = await bot_env.stylize(**LONG)
        msg = await bot_env.wait_text(inter, "Stylizing" if i == 0 else "**Queued**")
        ids.append(job_id_of(msg))
    refused = await bot_env.stylize(**LONG)
    assert await bot_env.wait_ephemeral(refused) == messages.too_many_jobs(ids)

    for job_id in reversed(ids):  # the waiting ones first, so none starts
        answer = await fd.slash_command("cancel", {"job": job_id}, user=fd.member)
        assert await bot_env.wait_ephemeral(answer) == messages.cancelling(job_id)
    for job_id in ids:
        await bot_env.wait_state(job_id, "cancelled", timeout=60)
