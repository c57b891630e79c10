"""End to end: the real bot on the real discord.py client against the fake Discord.

Covers the user-facing flows: /stylize from defer to the final image with throttled
progress and previews, the reply flow, the context menu with its modal, the result
buttons (also after a restart), bad inputs and the admin settings.
"""

from __future__ import annotations

import itertools
import re
import time

import aiohttp
import pytest

pytest.register_assert_rewrite("bot_fixtures")

from bot_fixtures import (  # noqa: E402
    CONTENT,
    EDIT_INTERVAL,
    JOB_TIMEOUT,
    STYLE,
    BotEnv,
    assert_throttled,
    custom_ids,
    image_of,
    job_id_of,
    make_png,
)
from fakediscord import Overwrite, Perm  # noqa: E402

from bot import messages  # noqa: E402
from bot.guide import guide  # noqa: E402
from stylecore.option_specs import OPTION_SPECS  # noqa: E402

pytest_plugins = ["bot_fixtures"]
pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_stylize_end_to_end_with_progress_preview_and_result(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    bot = await bot_env.start_bot()
    bot_env.hold_results()  # however fast this CPU is, the job's progress is shown before its end
    inter = await bot_env.stylize(size=48, steps=12)

    # Acknowledged at once with a public "thinking" deferral.
    await fd.wait_for_response(inter, timeout=3.0)
    assert inter.response_type == 5 and not inter.ephemeral

    await fd.wait_for_original(inter, lambda m: "step 12/12" in m.content, timeout=JOB_TIMEOUT)
    await bot_env.wait_edit_with_file(inter, "preview.jpg")
    bot_env.release_results()
    msg = await bot_env.wait_done(inter)
    job_id = job_id_of(msg)

    # The final image: a valid PNG of the asked size (long side 48 from an 80x60 content).
    final = msg.attachments[0]
    img = image_of(final.data)
    assert img.format == "PNG" and img.size == (48, 36)
    assert "size 48 px · 12 steps · strength 1" in msg.content and "Done" in msg.content
    assert custom_ids(msg) == [
        *(f"stylebot:again:{a}:{job_id}" for a in ("more", "less", "rerun")),
        f"stylebot:delete:{job_id}",
    ]

    # Progress: several edits of the same message, throttled, with step/% text and a preview.
    edits = bot_env.edits_of(msg.id)
    assert len(edits) >= 3
    assert_throttled(edits, EDIT_INTERVAL)
    texts = [(r.json or {}).get("content", "") for r in edits]
    assert any("Queued" in t or "Starting" in t for t in texts)
    running = [t for t in texts if "step " in t and "%" in t]
    assert running, texts
    previews = [r for r in edits if any(f.filename == "preview.jpg" for f in r.files)]
    assert previews, "no progress edit carried a preview image"
    assert image_of(previews[0].files[0].data).format == "JPEG"
    # No edit merely repeats the previous one.
    for a, b in itertools.pairwise(edits):
        assert (a.json or {}).get("content") != (b.json or {}).get("content") or b.files

    await bot_env.wait_state(job_id, "done")
    assert (await bot.db.get_job(job_id)).message_id == msg.id

    # Operations endpoints.
    assert bot.health is not None
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{bot.health.port}/healthz") as r:
            assert r.status == 200 and (await r.json())["ok"] is True
        async with http.get(f"http://127.0.0.1:{bot.health.port}/metrics") as r:
            text = await r.text()
    assert 'stylebot_jobs_finished_total{state="done"} 1.0' in text
    assert "stylebot_step_seconds_count" in text and "stylebot_jobs_queued" in text
    # The bot token never appears in anything it sent.
    assert all(fd.token not in (r.body or b"").decode("latin-1") for r in fd.requests)


async def test_result_falls_back_to_jpeg_when_over_the_upload_limit(bot_env: BotEnv) -> None:
    bot_env.fd.attachment_size_limit = 3000  # the PNG of a 96 px noisy result is bigger than this
    await bot_env.start_bot()
    inter = await bot_env.stylize(content=CONTENT, style=STYLE, size=96, steps=2)
    msg = await bot_env.wait_done(inter)
    att = msg.attachments[0]
    assert att.size <= 3000 and image_of(att.data).format in ("JPEG", "WEBP")
    assert "to fit the upload limit" in msg.content


async def test_reply_flow_and_two_attachment_mention(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    bot = await bot_env.start_bot()
    mention = f"<@{fd.bot_user.id}>"
    bot_env.hold_results()
    photo = await fd.post_message(author=fd.member, content="my cat", attachments=[("cat.png", CONTENT)])
    ask = await fd.post_message(
        author=fd.member,
        content=f"{mention} in this style please",
        attachments=[("style.png", STYLE)],
        reference=photo,
    )

    def result_for(request_id: int):
        return lambda m: (
            m.author.id == fd.bot_user.id
            and (m.reference or {}).get("message_id") == str(request_id)
            and "**Done**" in m.content
            and bool(m.attachments)
        )

    def progress_for(request_id: int):
        return lambda m: (m.reference or {}).get("message_id") == str(request_id) and "step " in m.content

    await fd.wait_for_message(fd.channel, progress_for(ask.id), timeout=120)
    bot_env.release_results()
    msg = await fd.wait_for_message(fd.channel, result_for(ask.id), timeout=120)
    img = image_of(msg.attachments[0].data)
    assert img.size == (48, 36)  # the replied-to photo is the content, at the server default size
    edits = bot_env.edits_of(msg.id, via="channel")  # no interaction: edits go through the channel
    assert len(edits) >= 2
    assert_throttled(edits)

    # A single message that mentions the bot with two images: first = content, second = style.
    both = await fd.post_message(
        author=fd.member,
        content=f"{mention}",
        attachments=[("tall.png", make_png(40, 80, 3)), ("style.png", STYLE)],
    )
    msg2 = await fd.wait_for_message(fd.channel, result_for(both.id), timeout=120)
    assert image_of(msg2.attachments[0].data).size == (24, 48)

    # A mention without images gets the help, not a job.
    hint = await fd.post_message(author=fd.member, content=f"{mention} hello")
    reply = await fd.wait_for_message(fd.channel, lambda m: (m.reference or {}).get("message_id") == str(hint.id))
    assert reply.content == await guide(bot, fd.guild.id)


async def test_context_menu_opens_modal_with_file_upload(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    await bot_env.start_bot()
    photo = await fd.post_message(author=fd.member, content="look", attachments=[("cat.png", CONTENT)])
    inter = await fd.context_menu("Stylize this image", photo, user=fd.member)
    modal = await fd.wait_for_modal(inter)
    labels = [c for c in modal["components"] if c["type"] == 18]
    kinds = [c["component"]["type"] for c in labels]
    assert kinds == [19, 3, 4]  # a file upload, a painting select and a text input, each in a label
    assert modal["components"][0]["component"]["custom_id"] == "stylebot:modal:style"
    strength = OPTION_SPECS["strength"]
    assert strength.bounds() in modal["components"][2]["description"]  # from the option's declaration
    assert modal["components"][2]["component"]["value"] == "1"  # this server's default_strength

    submit = await fd.submit_modal(
        inter, {"stylebot:modal:style": [("style.png", STYLE)], "stylebot:modal:strength": "2.5"}
    )
    msg = await bot_env.wait_done(submit)
    assert "strength 2.5" in msg.content
    assert image_of(msg.attachments[0].data).size == (48, 36)

    # A strength outside its declared bounds is refused with the bounds.
    again = await fd.context_menu("Stylize this image", photo, user=fd.member)
    await fd.wait_for_modal(again)
    over = await fd.submit_modal(
        again, {"stylebot:modal:style": [("style.png", STYLE)], "stylebot:modal:strength": "12"}
    )
    assert await bot_env.wait_ephemeral(over) == messages.bad_field("Strength", strength.problem(12.0) or "")

    # A message without an image is refused privately.
    text_only = await fd.post_message(author=fd.member, content="no picture here")
    refused = await fd.context_menu("Stylize this image", text_only, user=fd.member)
    assert await bot_env.wait_ephemeral(refused) == messages.NO_IMAGE_IN_MESSAGE


async def test_result_buttons_start_new_jobs_even_after_restart(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    bot = await bot_env.start_bot()
    first = await bot_env.stylize(steps=2, strength=1.0, seed=5)
    result = await bot_env.wait_done(first)
    job_id = job_id_of(result)

    more = await fd.click_button(result, f"stylebot:again:more:{job_id}", user=fd.member)
    more_msg = await bot_env.wait_done(more)
    assert "strength 1.5" in more_msg.content and "seed 5" in more_msg.content
    more_id = job_id_of(more_msg)
    assert (await bot.db.get_job(more_id)).parent_id == job_id

    # Restart: the buttons are DynamicItems, so a fresh process still answers them.
    await bot_env.stop_bot()
    bot = await bot_env.start_bot()
    less = await fd.click_button(result, f"stylebot:again:less:{job_id}", user=fd.member)
    less_msg = await bot_env.wait_done(less)
    assert "strength 0.6667" in less_msg.content
    rerun = await fd.click_button(result, f"stylebot:again:rerun:{job_id}", user=fd.member)
    rerun_msg = await bot_env.wait_done(rerun)
    assert "strength 1 " in rerun_msg.content and re.search(r"seed (\d+)", rerun_msg.content)[1] != "5"

    # Once the stored inputs are past their TTL the button says so instead of failing.
    await bot.db.purge_expired(now=time.time() + bot.config.inputs_ttl + 1)
    late = await fd.click_button(result, f"stylebot:again:rerun:{job_id}", user=fd.member)
    assert await bot_env.wait_ephemeral(late) == messages.inputs_expired(bot.config.inputs_ttl)


async def test_bad_inputs_get_specific_private_messages(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    await bot_env.start_bot()

    not_image = await fd.slash_command(
        "stylize", {"content": ("notes.txt", b"hello"), "style": ("s.png", STYLE)}, user=fd.member
    )
    assert await bot_env.wait_ephemeral(not_image) == messages.not_an_image("content image", "notes.txt")

    broken = await bot_env.stylize(content=b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    text = await bot_env.wait_ephemeral(broken)
    assert "damaged" in text or "can read" in text
    assert fd.original_message(broken) is None  # the public "thinking" message was removed

    too_big = await bot_env.stylize(size=200)
    assert await bot_env.wait_ephemeral(too_big) == messages.size_over_limit(200, 96)
    too_long = await bot_env.stylize(steps=5000)
    assert await bot_env.wait_ephemeral(too_long) == messages.steps_over_limit(5000, 2000)

    # A channel where the bot cannot attach files: refused before any work.
    fd.other_channel.overwrites[fd.bot_role.id] = Overwrite(fd.bot_role.id, 0, deny=Perm.ATTACH_FILES)
    inter = await fd.slash_command(
        "stylize",
        {"content": ("c.png", CONTENT), "style": ("s.png", STYLE)},
        user=fd.member,
        channel=fd.other_channel,
    )
    assert await bot_env.wait_ephemeral(inter) == messages.bot_lacks(["attach_files"])
    assert not [m for m in fd.messages_in(fd.other_channel) if not m.ephemeral]

    # Attachments only: a URL in a message is never fetched.
    mention = f"<@{fd.bot_user.id}>"
    before = len([r for r in fd.requests if not r.api])
    url = f"{fd.base_url}/attachments/1/2/evil.png"
    await fd.post_message(author=fd.member, content=f"{mention} {url} {url}")
    await fd.wait_for_message(fd.channel, lambda m: m.author.id == fd.bot_user.id)
    assert len([r for r in fd.requests if not r.api]) == before


async def test_admin_config_show_set_reset_and_refusals(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    await bot_env.start_bot()
    admin = fd.moderator  # has Manage Server

    show = await fd.slash_command("stylebot config show", user=admin)
    text = await bot_env.wait_ephemeral(show)
    assert "`max_size` = **96 px** *(default)*" in text

    set_ = await fd.slash_command("stylebot config set", {"setting": "max_size", "value": "64"}, user=admin)
    assert await bot_env.wait_ephemeral(set_) == messages.setting_changed("max_size", "64 px")
    chans = await fd.slash_command(
        "stylebot config set", {"setting": "allowed_channels", "value": fd.other_channel.mention}, user=admin
    )
    assert fd.other_channel.mention in await bot_env.wait_ephemeral(chans)

    bad = await fd.slash_command("stylebot config set", {"setting": "max_steps", "value": "lots"}, user=admin)
    assert "Can't set `max_steps`: expected a whole number" in await bot_env.wait_ephemeral(bad)
    clash = await fd.slash_command("stylebot config set", {"setting": "default_size", "value": "80"}, user=admin)
    assert "can't be above max_size (64 px)" in await bot_env.wait_ephemeral(clash)

    # /stylebot also holds help and forget, which are for everyone, so members see the group (Discord
    # sets default permissions per top-level command) and its admin commands refuse them at run time.
    nope = await fd.slash_command("stylebot config set", {"setting": "max_size", "value": "4096"}, user=fd.member)
    assert await bot_env.wait_ephemeral(nope) == messages.NOT_ADMIN

    # The settings apply: the limit is named, and the channel restriction holds.
    over = await bot_env.stylize(size=80, channel=fd.other_channel)
    assert await bot_env.wait_ephemeral(over) == messages.size_over_limit(80, 64)
    elsewhere = await bot_env.stylize()
    assert await bot_env.wait_ephemeral(elsewhere) == messages.channel_not_allowed([fd.other_channel.id])

    reset = await fd.slash_command("stylebot config reset", {"setting": "max_size"}, user=admin)
    assert await bot_env.wait_ephemeral(reset) == messages.setting_reset("max_size", "96 px")
    reset_all = await fd.slash_command("stylebot config reset", user=admin)
    assert await bot_env.wait_ephemeral(reset_all) == messages.ALL_SETTINGS_RESET
    show = await fd.slash_command("stylebot config show", user=admin)
    assert "`allowed_channels` = **all channels** *(default)*" in await bot_env.wait_ephemeral(show)

    # Status: the CPU worker, uncapped, and the queue; hidden from members like the rest.
    status = await bot_env.wait_ephemeral(await fd.slash_command("stylebot status", user=admin))
    assert "local executor, 1 worker(s)" in status and "`0` cpu · ready · no memory cap" in status
    assert "Jobs: 0 running, 0 waiting" in status and "sizes up to 96 px (default 48 px)" in status
    assert "⚠️" not in status
