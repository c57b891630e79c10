"""End to end: how many jobs members may have, who decides, and what survives a restart.

The executor owns every per-member limit (a server's own `max_jobs_per_user`, and the operator's
`STYLEBOT_MAX_JOBS_PER_MEMBER` across all servers); the bot words its refusal, naming where the
limit applies. Jobs accepted before a restart all come back, whatever the limits are now, and wait
for a worker rather than fail. Server admins cannot set limits past the operator's ceilings.
"""

from __future__ import annotations

import time

import pytest

pytest.register_assert_rewrite("bot_fixtures")

from bot_fixtures import LONG_JOB, BotEnv, job_id_of  # noqa: E402

from bot import messages  # noqa: E402
from bot.db import JobRecord  # noqa: E402
from bot.guild_settings import Ceilings  # noqa: E402
from stylecore.executors.base import new_job_id  # noqa: E402
from stylecore.options import StyleOptions  # noqa: E402

pytest_plugins = ["bot_fixtures"]
pytestmark = pytest.mark.asyncio(loop_scope="session")


def stored(bot_env: BotEnv, owner_id: int, state: str = "queued", steps: int = 3) -> JobRecord:
    """The row of a small job that a previous bot process accepted in the test server's #general."""
    return JobRecord(
        job_id=new_job_id(),
        guild_id=bot_env.fd.guild.id,
        channel_id=bot_env.fd.channel.id,
        owner_id=owner_id,
        state=state,
        source="slash",
        options=StyleOptions(size=32, steps=steps, seed=1, report_every=1).validate().to_dict(),
        filesize_limit=8 * 2**20,
        created_at=time.time(),
    )


async def test_limits_in_this_server_and_across_all_servers(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    art, (alice_there,) = bot_env.add_server("Other Server", fd.member)
    await bot_env.start_bot(own_executor=True, max_jobs_per_member=3, guild_defaults={"max_jobs_per_user": 2})

    ids = []
    for i in range(2):
        inter = await bot_env.stylize(**LONG_JOB)
        ids.append(job_id_of(await bot_env.wait_text(inter, "Stylizing" if i == 0 else "**Queued**")))
    # This server's own limit: two.
    here = await bot_env.stylize(**LONG_JOB)
    assert await bot_env.wait_ephemeral(here) == messages.too_many_jobs(ids, 2, where="server")
    # In the other server she has none yet: one more is fine, then the cap across servers (3) holds.
    inter = await bot_env.stylize(alice_there, channel=art, **LONG_JOB)
    ids.append(job_id_of(await bot_env.wait_text(inter, "**Queued**")))
    there = await bot_env.stylize(alice_there, channel=art, **LONG_JOB)
    assert await bot_env.wait_ephemeral(there) == messages.too_many_jobs(ids, 3, where="everywhere")

    for job_id in reversed(ids):  # the waiting ones first, so none starts
        answer = await fd.slash_command("cancel", {"job": job_id}, user=fd.member)
        assert await bot_env.wait_ephemeral(answer) == messages.cancelling(job_id)
    for job_id in ids:
        await bot_env.wait_state(job_id, "cancelled", timeout=60)


async def test_every_accepted_job_comes_back_after_a_restart_whatever_the_limits(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    bob = bot_env.add_member("bob")
    alice_id, bob_id = fd.member.user.id, bob.user.id
    # Four jobs a previous process accepted, one of them running when it stopped...
    records = [stored(bot_env, alice_id, "running")]
    records += [stored(bot_env, alice_id) for _ in range(2)] + [stored(bot_env, bob_id)]
    await bot_env.store_jobs(*records)
    # ...and now room for one waiting job, and one job per member, in this server and everywhere.
    bot = await bot_env.start_bot(
        own_executor=True, queue_size=1, max_jobs_per_member=1, guild_defaults={"max_jobs_per_user": 1}
    )
    assert bot.recovered == 4
    for record in records:
        await bot_env.wait_state(record.job_id, "done", timeout=180)
        posted = [m for m in fd.messages_in(fd.channel) if f"job `{record.job_id}`" in m.content]
        assert posted and "**Done**" in posted[-1].content and posted[-1].attachments
        assert f"<@{record.owner_id}>" in posted[-1].content  # a new message, so its owner is mentioned


async def test_stored_jobs_wait_for_a_worker_instead_of_failing(bot_env: BotEnv) -> None:
    alice_id = bot_env.fd.member.user.id
    records = [stored(bot_env, alice_id), stored(bot_env, alice_id)]
    await bot_env.store_jobs(*records)
    bot_env.executor.unavailable = "every start failed"  # as a real executor whose workers cannot start
    bot = await bot_env.start_bot()
    assert bot.recovered == 0
    # The bot keeps trying in the background; meanwhile the jobs stay accepted, not failed.
    await bot_env.fd.wait_until(lambda: bot_env.executor.refused >= 2, 30, "a second attempt")
    for record in records:
        row = await bot.db.get_job(record.job_id)
        assert row is not None and row.state == "queued"
    bot_env.executor.unavailable = None  # a worker is back
    for record in records:
        await bot_env.wait_state(record.job_id, "done", timeout=120)


async def test_server_admins_cannot_pass_the_operators_ceilings(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    admin = fd.moderator
    await bot_env.start_bot(guild_defaults={"cooldown_seconds": 30.0})

    async def set_(setting: str, value: str) -> str:
        inter = await fd.slash_command("stylebot config set", {"setting": setting, "value": value}, user=admin)
        return await bot_env.wait_ephemeral(inter)

    ceiling = Ceilings()  # the defaults: STYLEBOT_CEILING_* and STYLEBOT_FLOOR_* unset
    for setting, value, shown, bound in (
        ("max_size", "4096", "4096 px", f"{ceiling.max_size} px"),
        ("max_steps", "100000", "100000", f"{ceiling.max_steps}"),
        ("max_jobs_per_user", "100", "100", f"{ceiling.max_jobs_per_user}"),
    ):
        assert await set_(setting, value) == messages.cannot_set(
            setting, messages.beyond_bound(shown, bound, floor=False)
        )
    floor = f"{ceiling.cooldown_seconds:g} s"
    assert await set_("cooldown_seconds", "0") == messages.cannot_set(
        "cooldown_seconds", messages.beyond_bound("0 s", floor, floor=True)
    )
    assert await set_("cooldown_seconds", str(ceiling.cooldown_seconds)) == messages.setting_changed(
        "cooldown_seconds", floor
    )
    assert await set_("max_size", str(ceiling.max_size)) == messages.setting_changed(
        "max_size", f"{ceiling.max_size} px"
    )
    await bot_env.stop_bot()

    # The operator lowers the ceiling: the stored 2048 px reads as the new ceiling at once.
    await bot_env.start_bot(guild_defaults={"cooldown_seconds": 30.0}, ceilings=Ceilings(max_size=128))
    show = await bot_env.wait_ephemeral(await fd.slash_command("stylebot config show", user=admin))
    assert "`max_size` = **128 px**" in show
    over = await bot_env.stylize(size=200)
    assert await bot_env.wait_ephemeral(over) == messages.size_over_limit(200, 128)
