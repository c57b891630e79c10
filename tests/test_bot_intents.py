"""End to end: the bot with and without Discord's privileged Message Content intent.

The fake Discord plays an application whose developer-portal switch for the intent is off: an
IDENTIFY asking for it is closed with 4014, events and REST reads of other members' messages come
without attachments, and messages that mention the bot keep theirs (Discord's developer docs,
"Message Content Intent").
"""

from __future__ import annotations

import logging

import discord
import pytest

pytest.register_assert_rewrite("bot_fixtures")

from bot_fixtures import CONTENT, STYLE, BotEnv, image_of, make_png  # noqa: E402
from fakediscord import Intent, Message  # noqa: E402

from bot import messages  # noqa: E402
from bot.guide import guide  # noqa: E402

pytest_plugins = ["bot_fixtures"]
pytestmark = pytest.mark.asyncio(loop_scope="session")

WITHOUT_MESSAGE_CONTENT = Intent.PRIVILEGED & ~Intent.MESSAGE_CONTENT


def identified_intents(bot_env: BotEnv) -> list[int]:
    """The intents of every IDENTIFY the bot sent, in order."""
    return [int(f["d"]["intents"]) for d, f in bot_env.fd.gateway_log if d == "recv" and f.get("op") == 2]


def answer_to(bot_env: BotEnv, request: Message, text: str | None = None):
    fd = bot_env.fd
    return lambda m: (
        m.author.id == fd.bot_user.id
        and (m.reference or {}).get("message_id") == str(request.id)
        and (text is None or text in m.content)
    )


async def test_without_the_intent_the_bot_starts_and_only_the_reply_flow_is_lost(
    bot_env: BotEnv, caplog: pytest.LogCaptureFixture
) -> None:
    fd = bot_env.fd
    fd.privileged_intents = WITHOUT_MESSAGE_CONTENT
    caplog.set_level(logging.WARNING, logger="bot.bot")
    bot = await bot_env.start_bot()  # STYLEBOT_MESSAGE_CONTENT defaults to auto

    first, second = identified_intents(bot_env)
    assert first & Intent.MESSAGE_CONTENT and not second & Intent.MESSAGE_CONTENT
    assert not bot.intents.message_content
    warned = [r for r in caplog.records if r.name == "bot.bot" and r.levelno == logging.WARNING]
    assert any("Message Content intent" in r.getMessage() for r in warned)

    # The slash command works.
    inter = await bot_env.stylize()
    done = await bot_env.wait_done(inter)
    assert image_of(done.attachments[0].data).size == (48, 36)

    # A mention with two images works: Discord shows the bot what a message mentioning it carries.
    mention = f"<@{fd.bot_user.id}>"
    both = await fd.post_message(
        author=fd.member, content=mention, attachments=[("tall.png", make_png(40, 80, 3)), ("style.png", STYLE)]
    )
    result = await fd.wait_for_message(fd.channel, answer_to(bot_env, both, "**Done**"), timeout=120)
    assert image_of(result.attachments[0].data).size == (24, 48)

    # Replying to another member's photo: its attachments are withheld, and the bot says why.
    photo = await fd.post_message(author=fd.moderator, content="my cat", attachments=[("cat.png", CONTENT)])
    ask = await fd.post_message(
        author=fd.member, content=f"{mention} like this", attachments=[("style.png", STYLE)], reference=photo
    )
    told = await fd.wait_for_message(fd.channel, answer_to(bot_env, ask))
    assert told.content == messages.REPLIED_TO_UNREADABLE
    assert not told.attachments

    # The context menu still reads the image: Discord sends the target message with the command.
    menu = await fd.context_menu("Stylize this image", photo, user=fd.member)
    await fd.wait_for_modal(menu)
    submitted = await fd.submit_modal(menu, {"stylebot:modal:style": [("style.png", STYLE)]})
    via_menu = await bot_env.wait_done(submitted)
    assert image_of(via_menu.attachments[0].data).size == (48, 36)

    # A mention with no image explains only the ways that work without the intent.
    hint = await fd.post_message(author=fd.member, content=f"{mention} hello")
    usage = await fd.wait_for_message(fd.channel, answer_to(bot_env, hint))
    assert usage.content == await guide(bot, fd.guild.id)
    assert "Mention me with two images" in usage.content and "reply to a message" not in usage.content


async def test_required_intent_stops_the_bot_and_off_never_asks_for_it(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    fd.privileged_intents = WITHOUT_MESSAGE_CONTENT
    with pytest.raises(discord.PrivilegedIntentsRequired):
        await bot_env.start_bot(message_content="on")
    assert identified_intents(bot_env) == [identified_intents(bot_env)[0]]  # no second try

    bot = await bot_env.start_bot(message_content="off")
    asked = identified_intents(bot_env)[1:]
    assert len(asked) == 1 and not asked[0] & Intent.MESSAGE_CONTENT
    assert bot.is_ready() and not bot.intents.message_content
