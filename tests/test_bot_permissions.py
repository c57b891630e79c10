"""End to end: who may act on a job is decided where the job lives.

Cancelling someone else's job takes Manage Messages in the job's own channel, wherever /cancel is
run; a result's buttons start work only in the server (or the DM) where the result was made (the DM
cases: test_bot_units.py).
"""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("bot_fixtures")

from bot_fixtures import LONG_JOB, BotEnv, job_id_of  # noqa: E402
from fakediscord import Perm  # noqa: E402

from bot import messages  # noqa: E402

pytest_plugins = ["bot_fixtures"]
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_cancel_needs_manage_messages_in_the_jobs_own_channel(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    await bot_env.start_bot()
    alice, mod = fd.member, fd.moderator
    # Carol moderates #gallery only.
    carol = await fd.add_member("carol")
    await fd.set_overwrite(fd.other_channel, carol, allow=Perm.MANAGE_MESSAGES)

    in_general = await bot_env.stylize(alice, **LONG_JOB)
    general_msg = await bot_env.wait_text(in_general, "Stylizing")
    in_gallery = await bot_env.stylize(bot_env.add_member("dave"), channel=fd.other_channel, **LONG_JOB)
    gallery_id = job_id_of(await bot_env.wait_text(in_gallery, "**Queued**"))
    general_id = job_id_of(general_msg)

    # Her rights in #gallery, where she asks, do not reach a job in #general...
    denied = await fd.slash_command("cancel", {"job": general_id}, user=carol, channel=fd.other_channel)
    assert await bot_env.wait_ephemeral(denied) == messages.NOT_YOUR_JOB
    button = await fd.click_button(general_msg, f"stylebot:cancel:{general_id}", user=carol)
    assert await bot_env.wait_ephemeral(button) == messages.NOT_YOUR_JOB
    # ...while a job in #gallery is hers to cancel, even asked from #general.
    allowed = await fd.slash_command("cancel", {"job": gallery_id}, user=carol, channel=fd.channel)
    assert await bot_env.wait_ephemeral(allowed) == messages.cancelling(gallery_id)
    assert f"Cancelled** by <@{carol.user.id}>" in (await bot_env.wait_text(in_gallery, "Cancelled")).content

    # A server-wide moderator may cancel anywhere; the job that was denied is still running until then.
    assert "Stylizing" in fd.original_message(in_general).content
    by_mod = await fd.slash_command("cancel", {"job": general_id}, user=mod, channel=fd.other_channel)
    assert await bot_env.wait_ephemeral(by_mod) == messages.cancelling(general_id)
    await bot_env.wait_state(general_id, "cancelled", timeout=60)
    await bot_env.wait_state(gallery_id, "cancelled")


async def test_result_buttons_work_only_where_their_job_ran(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    bot = await bot_env.start_bot()
    result = await bot_env.wait_done(await bot_env.stylize(steps=2))
    job_id = job_id_of(result)
    await bot_env.wait_state(job_id, "done")
    before = len(await bot.db.jobs_in(("queued", "running", "done")))

    # The stored job says it ran in another server (or in a member's DMs): its images start nothing here.
    for elsewhere in ({"guild_id": fd.guild.id + 1}, {"guild_id": None}):
        await bot.db.update_job(job_id, **elsewhere)
        for action in ("more", "less", "rerun"):
            click = await fd.click_button(result, f"stylebot:again:{action}:{job_id}", user=fd.member)
            assert await bot_env.wait_ephemeral(click) == messages.JOB_ELSEWHERE
            assert fd.original_message(click).ephemeral  # refused privately, before any public "thinking"
    assert len(await bot.db.jobs_in(("queued", "running", "done"))) == before
