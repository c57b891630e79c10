"""End to end: a finished picture reaches its member whatever Discord's side does, exactly once.

Faults come from the fake (network errors before and after a request takes effect, 5xx, 429s with
and without Discord's headers, 413) on the upload of the result only, so everything before it runs
normally. Every test ends with the job's row closed (done, or failed with a reason), which is what
frees the member's place.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

pytest.register_assert_rewrite("bot_fixtures")

from bot_fixtures import BotEnv, image_of, job_id_of  # noqa: E402
from fakediscord import Message, RecordedRequest  # noqa: E402

from bot import messages  # noqa: E402

pytest_plugins = ["bot_fixtures"]
pytestmark = pytest.mark.asyncio(loop_scope="session")

FAST_RETRY: dict[str, Any] = {"delivery_backoff": 0.05, "delivery_timeout": 20.0}
EDIT_ORIGINAL = r"/webhooks/\d+/[^/]+/messages/@original"
POST_MESSAGE = "/channels/{c}/messages"


def uploads_result(r: RecordedRequest) -> bool:
    """The request that carries the finished picture (not a progress preview)."""
    return any((f.filename or "").startswith("stylized.") for f in r.files)


def results_for(bot_env: BotEnv, job_id: str) -> list[Message]:
    """Messages in the channel that show this job's result (its picture and its buttons)."""
    fd = bot_env.fd
    return [
        m
        for m in fd.messages_in(fd.channel)
        if m.author.id == fd.bot_user.id and m.attachments and f"stylebot:again:rerun:{job_id}" in m.custom_ids
    ]


async def _held_job(bot_env: BotEnv, **options: Any) -> tuple[Any, str]:
    """A job whose run has ended but whose result the bot has not seen yet."""
    bot_env.hold_results()
    inter = await bot_env.stylize(**{"steps": 2, **options})
    msg = await bot_env.fd.wait_for_original(inter, lambda m: "step 2/2" in m.content, timeout=120)
    return inter, job_id_of(msg)


async def test_network_errors_5xx_and_429s_on_the_upload_are_retried(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    await bot_env.start_bot(**FAST_RETRY)
    inter, job_id = await _held_job(bot_env)
    fd.drop_next("PATCH", EDIT_ORIGINAL, predicate=uploads_result)  # the connection drops
    fd.fail_next("PATCH", EDIT_ORIGINAL, 503, predicate=uploads_result)  # discord.py does not retry a 503
    fd.drop_next("PATCH", EDIT_ORIGINAL, after=True, predicate=uploads_result)  # edited, answer lost
    fd.fail_next("PATCH", EDIT_ORIGINAL, 429, retry_after=0.2, predicate=uploads_result)  # honoured by discord.py
    fd.fail_next("PATCH", EDIT_ORIGINAL, 429, headers={"Via": ""}, predicate=uploads_result)  # Cloudflare's kind
    bot_env.release_results()

    done = await bot_env.wait_done(inter)
    await bot_env.wait_state(job_id, "done")
    assert image_of(done.attachments[0].data).format == "PNG"
    uploads = [r for r in fd.requests if r.method == "PATCH" and uploads_result(r)]
    assert [r.status for r in uploads] == [0, 503, 0, 429, 429, 200]
    assert results_for(bot_env, job_id) == [done]  # one message shows it, the job's own
    assert not fd.rate_limit_report().dishonoured


async def test_a_message_that_cannot_take_the_result_gets_a_new_one_once(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    bot = await bot_env.start_bot(**FAST_RETRY)
    inter, job_id = await _held_job(bot_env)
    await fd.delete_message(fd.original_message(inter))  # e.g. a moderator removed it mid-job
    fd.drop_next("POST", POST_MESSAGE, after=True, predicate=uploads_result)  # posted, answer lost
    fd.fail_next("POST", POST_MESSAGE, 503, predicate=uploads_result)
    bot_env.release_results()

    await bot_env.wait_state(job_id, "done", timeout=60)
    [posted] = results_for(bot_env, job_id)  # the retries carried the same nonce: one message
    assert posted.content.startswith(f"<@{fd.member.user.id}> ✅ **Done**")
    assert fd.member.user.id in [u.id for u in posted.mentions]
    assert (await bot.db.get_job(job_id)).message_id == posted.id
    creates = [r for r in fd.requests if r.method == "POST" and uploads_result(r)]
    assert [r.status for r in creates] == [0, 503, 200]
    assert len({(r.json or {}).get("nonce") for r in creates}) == 1


async def test_an_upload_refused_for_its_size_is_sent_as_a_smaller_jpeg(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    await bot_env.start_bot(**FAST_RETRY)
    inter, job_id = await _held_job(bot_env, size=96)
    fd.fail_next("PATCH", EDIT_ORIGINAL, 413, predicate=lambda r: any(f.filename == "stylized.png" for f in r.files))
    bot_env.release_results()

    done = await bot_env.wait_done(inter)
    await bot_env.wait_state(job_id, "done")
    assert image_of(done.attachments[0].data).format == "JPEG" and done.attachments[0].filename == "stylized.jpg"
    assert messages.SENT_SMALLER in done.content
    assert results_for(bot_env, job_id) == [done]


async def test_when_nothing_gets_through_the_job_fails_clearly_and_frees_its_place(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    await bot_env.start_bot(guild_defaults={"max_jobs_per_user": 1}, **FAST_RETRY)
    inter, job_id = await _held_job(bot_env)
    for method, path in (("PATCH", EDIT_ORIGINAL), ("POST", POST_MESSAGE)):
        fd.drop_next(method, path, times=100, predicate=uploads_result)  # no upload ever gets through
    bot_env.release_results()

    failed = await bot_env.wait_text(inter, "Failed", timeout=60)
    await bot_env.wait_state(job_id, "failed")
    assert messages.RESULT_UNDELIVERED in failed.content
    assert not failed.attachments and not failed.custom_ids
    assert await bot_env.wait_ephemeral(inter) == messages.failed_privately(job_id, messages.RESULT_UNDELIVERED)
    row = await bot_env.bot.db.get_job(job_id)  # type: ignore[union-attr]
    assert row.error == "delivery: ServerDisconnectedError"
    tried = [r for r in fd.requests if uploads_result(r)]
    assert {r.status for r in tried} == {0}
    assert {r.files[0].filename for r in tried} == {"stylized.png", "stylized.jpg"}  # the smaller one too
    assert len(tried) == 4 * 4  # each way of sending it, each tried delivery_attempts times

    fd.clear_faults()
    nxt = await bot_env.stylize(steps=2)  # the member's one place is free again
    assert (await bot_env.wait_done(nxt)).attachments


# -- a crash between the post and the row's update -------------------------------------------


async def _crash_at(bot: Any, state: str, *, after_write: bool) -> asyncio.Event:
    """From now on the bot "dies" when it writes `state` to a job's row (before or after the write):
    the writing task never returns, as if the process had stopped there. The event is set then."""
    real = bot.db.update_job
    reached = asyncio.Event()

    async def update_job(job_id: str, **changes: Any) -> None:
        if changes.get("state") == state:
            if after_write:
                await real(job_id, **changes)
            reached.set()
            await asyncio.Event().wait()  # never
        await real(job_id, **changes)

    bot.db.update_job = update_job
    return reached


async def _die(bot_env: BotEnv) -> None:
    """The process is gone: its job tasks end where they stood, nothing more is said or written."""
    bot = bot_env.bot
    assert bot is not None
    tasks = [f.task for f in bot.jobs.followers.values() if f.task is not None]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await bot_env.stop_bot()


def _state_on_disk(bot_env: BotEnv, job_id: str) -> tuple[str, int | None]:
    with sqlite3.connect(bot_env.data_dir / "stylebot.sqlite3") as db:
        return db.execute("SELECT state, message_id FROM jobs WHERE job_id = ?", (job_id,)).fetchone()


async def _job_until_a_crash_at(bot_env: BotEnv, state: str, *, after_write: bool) -> Any:
    """Starts the bot and runs a short job until the bot "dies" writing `state` (see `_crash_at`);
    the job's interaction."""
    bot = await bot_env.start_bot(**FAST_RETRY)
    crashed = await _crash_at(bot, state, after_write=after_write)
    inter = await bot_env.stylize(steps=2)
    await asyncio.wait_for(crashed.wait(), 120)
    return inter


async def test_a_result_posted_just_before_a_crash_is_found_not_posted_again(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    inter = await _job_until_a_crash_at(bot_env, "done", after_write=False)
    done = fd.original_message(inter)
    job_id = job_id_of(done)
    assert results_for(bot_env, job_id) == [done]  # it was posted...
    await _die(bot_env)
    assert _state_on_disk(bot_env, job_id) == ("delivering", done.id)  # ...but the row never heard

    mark = len(fd.requests)
    bot = await bot_env.start_bot(**FAST_RETRY)
    assert bot.recovered == 0  # found in Discord: nothing to run again
    await bot_env.wait_state(job_id, "done")
    assert results_for(bot_env, job_id) == [done]
    assert not [r for r in fd.requests[mark:] if r.method in ("PATCH", "POST") and "/messages" in r.path]


async def test_a_crash_before_the_post_runs_the_job_again_into_the_same_message(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    inter = await _job_until_a_crash_at(bot_env, "delivering", after_write=True)
    job_id = job_id_of(fd.original_message(inter))
    await _die(bot_env)
    assert _state_on_disk(bot_env, job_id)[0] == "delivering"
    assert results_for(bot_env, job_id) == []  # the picture never reached Discord

    bot = await bot_env.start_bot(own_executor=True, **FAST_RETRY)  # a new process, a new executor
    assert bot.recovered == 1  # so the job runs again...
    await bot_env.wait_state(job_id, "done", timeout=120)
    [shown] = results_for(bot_env, job_id)
    assert shown.id == inter.original_message_id  # ...and its own message shows the result, once


async def test_a_new_message_posted_just_before_a_crash_is_found_in_the_channel(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    bot = await bot_env.start_bot(**FAST_RETRY)
    inter, job_id = await _held_job(bot_env)
    first = fd.original_message(inter)
    await fd.delete_message(first)  # the result will go to a new message
    crashed = await _crash_at(bot, "done", after_write=False)
    bot_env.release_results()
    await asyncio.wait_for(crashed.wait(), 60)
    [posted] = results_for(bot_env, job_id)
    await _die(bot_env)
    # The process stopped before it wrote down the new message's id.
    with sqlite3.connect(bot_env.data_dir / "stylebot.sqlite3") as db:
        db.execute("UPDATE jobs SET message_id = ? WHERE job_id = ?", (first.id, job_id))

    bot = await bot_env.start_bot(**FAST_RETRY)
    assert bot.recovered == 0
    await bot_env.wait_state(job_id, "done")
    assert _state_on_disk(bot_env, job_id) == ("done", posted.id)
    assert results_for(bot_env, job_id) == [posted]


async def test_cancelling_a_job_whose_result_is_on_its_way_says_how_it_ended(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    await bot_env.start_bot()
    held = fd.hold("PATCH", EDIT_ORIGINAL, predicate=uploads_result)  # the result is slow to upload
    inter = await bot_env.stylize(steps=2)
    await fd.wait_until(lambda: bool(held.waiting), 120, "the result's upload")
    job_id = job_id_of(fd.original_message(inter))

    answer = await bot_env.wait_ephemeral(await fd.slash_command("cancel", {"job": job_id}, user=fd.member))
    assert answer == messages.already_finished(job_id, "done")  # not its row's "running" or "delivering"
    held.release()
    await bot_env.wait_done(inter)
    await bot_env.wait_state(job_id, "done")
