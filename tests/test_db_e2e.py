"""End to end: the storage cap on stored inputs, seen from Discord."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("bot_fixtures")

from bot_fixtures import CONTENT, STYLE, BotEnv, job_id_of  # noqa: E402

pytest_plugins = ["bot_fixtures"]
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_inputs_over_a_members_cap_are_evicted_and_the_buttons_say_so(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    one_job = len(CONTENT) + len(STYLE)
    bot = await bot_env.start_bot(inputs_max_bytes_per_member=one_job)
    first = await bot_env.wait_done(await bot_env.stylize(steps=2))
    first_id = job_id_of(first)
    assert await bot.db.inputs_bytes(fd.member.user.id) == one_job  # the images as uploaded

    other = await bot_env.wait_done(await bot_env.stylize(bot_env.add_member("bob"), steps=2))
    assert await bot.db.get_inputs(first_id) is not None  # another member's job counts for them only

    second = await bot_env.wait_done(await bot_env.stylize(steps=2))
    # storing the second job's inputs took the member over the cap: the older finished job's went
    assert await bot.db.get_inputs(first_id) is None
    assert await bot.db.get_inputs(job_id_of(second)) is not None
    assert await bot.db.get_inputs(job_id_of(other)) is not None
    late = await fd.click_button(first, f"stylebot:again:rerun:{first_id}", user=fd.member)
    assert "no longer kept" in await bot_env.wait_ephemeral(late)
