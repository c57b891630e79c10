"""End to end: the operator's controls. Members and servers blocked from the environment or with
/stylebot operator block are refused plainly before anything of theirs is downloaded; only the
application's owner may block, unblock or take a result down, and blocks survive a restart."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("bot_fixtures")

from bot_fixtures import CONTENT, STYLE, BotEnv, job_id_of  # noqa: E402
from fakediscord import FakeDiscord  # noqa: E402

from bot import messages  # noqa: E402

pytest_plugins = ["bot_fixtures"]
pytestmark = pytest.mark.asyncio(loop_scope="session")


def downloads(fd: FakeDiscord) -> int:
    """Requests to the CDN: attachment downloads."""
    return len([r for r in fd.requests if not r.api])


async def test_blocked_members_and_servers_from_the_environment_are_refused_before_any_download(
    bot_env: BotEnv,
) -> None:
    fd = bot_env.fd
    bob = bot_env.add_member("bob")
    await bot_env.start_bot(blocked_users=frozenset({bob.user.id}))
    before = downloads(fd)

    slash = await bot_env.stylize(bob)
    assert await bot_env.wait_ephemeral(slash) == messages.BLOCKED_MEMBER
    photo = await fd.post_message(author=bob, content="look", attachments=[("cat.png", CONTENT)])
    menu = await fd.context_menu("Stylize this image", photo, user=bob)
    assert await bot_env.wait_ephemeral(menu) == messages.BLOCKED_MEMBER
    assert menu.modal is None  # no form either
    mention = await fd.post_message(
        author=bob, content=f"<@{fd.bot_user.id}>", attachments=[("c.png", CONTENT), ("s.png", STYLE)]
    )
    reply = await fd.wait_for_message(fd.channel, lambda m: (m.reference or {}).get("message_id") == str(mention.id))
    assert reply.content == messages.BLOCKED_MEMBER
    assert downloads(fd) == before  # nothing of theirs was fetched

    # Everyone else is served as usual.
    assert (await bot_env.wait_done(await bot_env.stylize(steps=2))).attachments

    # A blocked server: nobody in it is served.
    await bot_env.stop_bot()
    await bot_env.start_bot(blocked_guilds=frozenset({fd.guild.id}))
    refused = await bot_env.stylize(fd.member)
    assert await bot_env.wait_ephemeral(refused) == messages.BLOCKED_SERVER


async def test_the_operator_blocks_unblocks_and_takes_a_result_down(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    operator, admin, alice = fd.owner, fd.moderator, fd.member  # fd.owner owns the application
    bot = await bot_env.start_bot()

    # A server admin sees /stylebot but is no operator.
    nope = await fd.slash_command("stylebot operator block", {"what": "user", "target": str(alice.user.id)}, user=admin)
    assert await bot_env.wait_ephemeral(nope) == messages.NOT_OPERATOR

    block = await fd.slash_command(
        "stylebot operator block", {"what": "user", "target": f"<@{alice.user.id}>", "reason": "spam"}, user=operator
    )
    assert await bot_env.wait_ephemeral(block) == messages.now_blocked("user", alice.user.id, "spam")
    refused = await bot_env.stylize(alice)
    assert await bot_env.wait_ephemeral(refused) == messages.BLOCKED_MEMBER
    listing = await bot_env.wait_ephemeral(await fd.slash_command("stylebot operator blocked", user=operator))
    assert listing == messages.block_list([("user", alice.user.id, True, "spam")])

    # Stored: still blocked after a restart; then lifted.
    await bot_env.stop_bot()
    bot = await bot_env.start_bot()
    assert await bot_env.wait_ephemeral(await bot_env.stylize(alice)) == messages.BLOCKED_MEMBER
    lift = await fd.slash_command(
        "stylebot operator unblock", {"what": "user", "target": str(alice.user.id)}, user=operator
    )
    assert await bot_env.wait_ephemeral(lift) == messages.now_unblocked("user", alice.user.id)
    again = await fd.slash_command(
        "stylebot operator unblock", {"what": "user", "target": str(alice.user.id)}, user=operator
    )
    assert await bot_env.wait_ephemeral(again) == messages.not_blocked("user", alice.user.id)
    bad = await fd.slash_command("stylebot operator block", {"what": "guild", "target": "the fake one"}, user=operator)
    assert await bot_env.wait_ephemeral(bad) == messages.bad_target("guild", "the fake one")

    # Take a result down: its message goes, its images go, its buttons say so.
    result = await bot_env.wait_done(await bot_env.stylize(alice, steps=2))
    job_id = job_id_of(result)
    await bot_env.wait_state(job_id, "done")
    assert await bot.db.get_inputs(job_id) is not None
    down = await fd.slash_command("stylebot operator takedown", {"job": job_id, "reason": "reported"}, user=operator)
    assert await bot_env.wait_ephemeral(down) == messages.taken_down(job_id, True)
    assert fd.get_message(result.id) is None or fd.get_message(result.id).deleted
    row = await bot.db.get_job(job_id)
    assert row.state == "removed" and "reported" in (row.error or "")
    assert await bot.db.get_inputs(job_id) is None
    not_owner = await fd.slash_command("stylebot operator takedown", {"job": job_id}, user=admin)
    assert await bot_env.wait_ephemeral(not_owner) == messages.NOT_OPERATOR
