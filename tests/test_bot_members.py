"""End to end: help, forgetting a member, leaving a server, and the bot in DMs, through the real bot
and discord.py against the fake Discord."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

pytest.register_assert_rewrite("bot_fixtures")

from bot_fixtures import CONTENT, STYLE, BotEnv, image_of, job_id_of  # noqa: E402

from bot import messages  # noqa: E402
from bot.guide import guide  # noqa: E402

pytest_plugins = ["bot_fixtures"]
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    """Wait for a condition on the bot's database (which the fake cannot observe), checking often."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_help_is_private_and_a_mention_without_images_gets_the_same(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    bot = await bot_env.start_bot(inputs_ttl=6 * 3600.0)
    await bot.db.save_guild_overrides(fd.guild.id, {"max_size": 80, "allowed_channels": [fd.channel.id]})
    inter = await fd.slash_command("stylebot help", user=fd.member)
    text = await bot_env.wait_ephemeral(inter)
    assert text == await guide(bot, fd.guild.id)
    # The three ways to start, this server's limits, how long inputs are kept and why, cancel and delete.
    for part in (
        "/stylize",
        "Stylize this image",
        "Mention me",
        "size up to 80 px (default 48)",
        f"Jobs only in <#{fd.channel.id}>",
        "for 6 hours",
        "so More style",
        "/cancel",
        "🗑️",
        "/stylebot forget",
    ):
        assert part in text, part

    hello = await fd.post_message(author=fd.member, content=f"<@{fd.bot_user.id}> how does this work?")
    reply = await fd.wait_for_message(fd.channel, lambda m: (m.reference or {}).get("message_id") == str(hello.id))
    assert reply.content == text
    assert not bot.jobs.followers  # a question started no job


async def test_the_delete_button_removes_a_result_and_its_images_at_once(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    bot = await bot_env.start_bot()
    bob = bot_env.add_member("bob")
    mine = await bot_env.wait_done(await bot_env.stylize())
    job = job_id_of(mine)
    assert f"stylebot:delete:{job}" in mine.custom_ids

    # Only its owner, or someone with Manage Messages in its channel.
    nope = await fd.click_button(mine, f"stylebot:delete:{job}", user=bob)
    assert await bot_env.wait_ephemeral(nope) == messages.NOT_YOUR_RESULT
    assert not mine.deleted and await bot.db.get_inputs(job) is not None

    gone = await fd.click_button(mine, f"stylebot:delete:{job}", user=fd.member)
    assert await bot_env.wait_ephemeral(gone) == messages.RESULT_DELETED
    assert mine.deleted and await bot.db.get_inputs(job) is None
    record = await bot.db.get_job(job)
    assert record is not None and record.deleted_at is not None
    # A click already on its way from a client that had not seen the deletion: the images are gone.
    late = await fd.click_button(mine, f"stylebot:again:more:{job}", user=fd.member)
    assert await bot_env.wait_ephemeral(late) == messages.INPUTS_DELETED

    # A moderator may delete someone else's result.
    bobs = await bot_env.wait_done(await bot_env.stylize(user=bob))
    modded = await fd.click_button(bobs, f"stylebot:delete:{job_id_of(bobs)}", user=fd.moderator)
    assert await bot_env.wait_ephemeral(modded) == messages.RESULT_DELETED
    assert bobs.deleted and await bot.db.get_inputs(job_id_of(bobs)) is None


async def test_forget_stops_and_deletes_one_members_jobs_and_images_everywhere(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    art, _ = bot_env.add_server("Elsewhere", fd.member)
    bot = await bot_env.start_bot()
    bob = bot_env.add_member("bob")
    here = await bot_env.wait_done(await bot_env.stylize())
    await bot_env.wait_done(await bot_env.stylize(channel=art))
    kept = await bot_env.wait_done(await bot_env.stylize(user=bob))
    await bot.styles.add(fd.guild.id, "Alice's", STYLE, added_by=fd.member.user.id)
    # One more still running when the member asks to be forgotten.
    running = await bot_env.stylize(steps=2000)
    await bot_env.wait_text(running, "Stylizing")

    forget = await fd.slash_command("stylebot forget", user=fd.member)
    text = await bot_env.wait_ephemeral(forget, timeout=60)
    # Three jobs (here, there, and the stopped one, whose images went when it was cancelled).
    assert text == messages.forgotten(stopped=1, jobs=3, inputs=2, styles_unnamed=1)
    assert "**Cancelled**" in (fd.original_message(running) or pytest.fail("no message")).content

    member = fd.member.user.id
    rows = await bot.db.fetch_all("SELECT owner_id FROM jobs")
    assert [r["owner_id"] for r in rows] == [bob.user.id]  # bob's job is untouched
    assert await bot.db.inputs_bytes(member) == 0 and await bot.db.inputs_bytes(bob.user.id) > 0
    style = await bot.styles.get(fd.guild.id, "alice's")
    assert style is not None and style.added_by is None  # the server's style stays, without her name
    # Her old result's buttons no longer know the job; bob's still work.
    rerun = await fd.click_button(here, f"stylebot:again:rerun:{job_id_of(here)}", user=fd.member)
    assert await bot_env.wait_ephemeral(rerun) == messages.forgotten_job(job_id_of(here))
    again = await fd.click_button(kept, f"stylebot:again:rerun:{job_id_of(kept)}", user=bob)
    await bot_env.wait_done(again)

    nothing = await fd.slash_command("stylebot forget", user=fd.member)
    assert await bot_env.wait_ephemeral(nothing) == messages.forgotten(stopped=0, jobs=0, inputs=0, styles_unnamed=0)


async def test_leaving_a_server_deletes_its_data_and_stops_its_jobs(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    art, _ = bot_env.add_server("Elsewhere", fd.member)
    gone = art.guild_id
    assert gone is not None
    bot = await bot_env.start_bot()
    await bot_env.wait_done(await bot_env.stylize(channel=art))
    await bot_env.wait_done(await bot_env.stylize())
    await bot.db.save_guild_overrides(gone, {"max_size": 64})
    await bot.db.save_guild_overrides(fd.guild.id, {"max_size": 64})
    await bot.styles.add(gone, "Theirs", STYLE, added_by=fd.member.user.id)
    running = await bot_env.stylize(channel=art, steps=2000)
    await bot_env.wait_text(running, "Stylizing")

    await fd.remove_bot(fd.state.guilds[gone])

    async def forgotten() -> bool:
        rows = await bot.db.fetch_all("SELECT 1 FROM jobs WHERE guild_id = ?", (gone,))
        return not rows and not bot.jobs.followers

    await eventually(forgotten, "the server's jobs to be stopped and deleted")
    assert await bot.db.guild_overrides(gone) == {}
    assert await bot.styles.names(gone) == []
    assert not [e for e in bot.jobs.queue() if e[0].meta.get("guild_id") == gone]
    # The server the bot is still in keeps everything.
    assert await bot.db.guild_overrides(fd.guild.id) == {"max_size": 64}
    assert len(await bot.db.fetch_all("SELECT 1 FROM jobs WHERE guild_id = ?", (fd.guild.id,))) == 1


async def test_in_a_dm_stylize_works_with_the_bot_wide_defaults_and_limits(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    # Synced globally (DMs see global commands only); a token lifetime of 0 stands in for a job that
    # outlives Discord's 15 minutes, so progress and the result must go through the DM channel itself.
    bot = await bot_env.start_bot(dev_guild_id=None, token_lifetime=0.0)
    # Every command says where it is installed (servers only) and where it may be used.
    for command in fd.state.global_commands.values():
        assert command.data["integration_types"] == [0], command.name
        assert sorted(command.data["contexts"]) == [0, 1], command.name
    await bot.db.save_guild_overrides(fd.guild.id, {"default_size": 32, "max_size": 200})
    dm = fd.state.dm_channel(fd.member.user)

    inter = await bot_env.stylize(channel=dm)
    done = await bot_env.wait_done(inter)
    assert image_of(done.attachments[0].data).size == (48, 36)  # the bot-wide default, not the server's 32
    assert done.id == inter.original_message_id and bot_env.edits_of(done.id, via="channel")
    too_big = await bot_env.stylize(channel=dm, size=150)  # the server allows 200; the bot-wide limit is 96
    assert await bot_env.wait_ephemeral(too_big) == messages.size_over_limit(150, 96)

    painted = await fd.slash_command(
        "stylize", {"content": ("cat.png", CONTENT), "painting": "great wave"}, user=fd.member, channel=dm
    )
    assert "🖌️ The Great Wave" in (await bot_env.wait_done(painted)).content
    help_text = await bot_env.wait_ephemeral(await fd.slash_command("stylebot help", user=fd.member, channel=dm))
    assert help_text == await guide(bot, None) and "Limits in DMs with me" in help_text
    config = await fd.slash_command("stylebot config show", user=fd.member, channel=dm)
    assert await bot_env.wait_ephemeral(config) == messages.NO_DMS
