"""End to end: painting from the gallery, server styles, blends, the /styles sheet and the number
suggestions, through the real bot and discord.py against the fake Discord."""

from __future__ import annotations

import io

import pytest

pytest.register_assert_rewrite("bot_fixtures")

from bot_fixtures import CONTENT, STYLE, BotEnv, image_of, job_id_of, make_png  # noqa: E402
from fakediscord import Interaction  # noqa: E402

from bot import messages  # noqa: E402
from stylecore import gallery  # noqa: E402
from stylecore.option_specs import OPTION_SPECS  # noqa: E402

pytest_plugins = ["bot_fixtures"]
pytestmark = pytest.mark.asyncio(loop_scope="session")

STARRY = gallery.get("starry_night")


async def choices_of(bot_env: BotEnv, inter: Interaction) -> list[dict[str, object]]:
    await bot_env.fd.wait_until(lambda: inter.autocomplete_choices is not None, 10, "autocomplete choices")
    return list(inter.autocomplete_choices or [])


async def test_a_painting_from_the_gallery_by_name_or_artist(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    await bot_env.start_bot()
    # Autocomplete finds a painting by its artist and by its title.
    by_artist = await choices_of(bot_env, await fd.autocomplete("stylize", {"painting": "gogh"}, "painting"))
    assert by_artist[0] == {"name": STARRY.label, "value": "painting:starry_night"}
    by_title = await choices_of(bot_env, await fd.autocomplete("stylize", {"painting": "great wa"}, "painting"))
    assert [c["value"] for c in by_title] == ["painting:great_wave"]

    inter = await fd.slash_command(
        "stylize", {"content": ("cat.png", CONTENT), "painting": "painting:starry_night"}, user=fd.member
    )
    msg = await bot_env.wait_done(inter)
    assert f"🖌️ {STARRY.label}" in msg.content
    assert image_of(msg.attachments[0].data).size == (48, 36)
    # The result's alt text says what it shows: the content, the painting, the settings.
    alt = msg.attachments[0].description or ""
    assert alt.startswith(f"cat.png repainted in the style of {STARRY.label}; size 48 px · 6 steps")

    # A title typed without picking a suggestion works too; an unknown one is refused clearly.
    typed = await fd.slash_command(
        "stylize", {"content": ("cat.png", CONTENT), "painting": "the scream"}, user=fd.member
    )
    assert "🖌️ The Scream — Edvard Munch" in (await bot_env.wait_done(typed)).content
    unknown = await fd.slash_command("stylize", {"content": ("c.png", CONTENT), "painting": "Mona"}, user=fd.member)
    assert await bot_env.wait_ephemeral(unknown) == messages.unknown_style("Mona")
    # Neither a style image nor a painting: one of the two is required.
    neither = await fd.slash_command("stylize", {"content": ("c.png", CONTENT)}, user=fd.member)
    assert await bot_env.wait_ephemeral(neither) == messages.NO_STYLE_GIVEN


async def test_a_blend_of_an_upload_and_a_painting_says_what_was_blended(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    bot = await bot_env.start_bot()
    inter = await fd.slash_command(
        "stylize",
        {"content": ("cat.png", CONTENT), "style": ("mine.png", STYLE), "painting": "starry", "blend": "2,1"},
        user=fd.member,
    )
    msg = await bot_env.wait_done(inter)
    assert f"🖌️ Blend: mine.png ×2 + {STARRY.label} ×1" in msg.content
    assert "a blend of mine.png (2 parts), " + STARRY.label + " (1 part)" in (msg.attachments[0].description or "")
    job_id = job_id_of(msg)
    record = await bot.db.get_job(job_id)
    assert record is not None and tuple(record.options["style_blend"]) == (2.0, 1.0)
    stored = await bot.db.get_inputs(job_id)
    assert stored is not None and stored[:2] == (CONTENT, STYLE) and stored[2] == gallery.load("starry_night")

    # Re-run keeps the blend: the same styles, weights and names.
    rerun = await fd.click_button(msg, f"stylebot:again:rerun:{job_id}")
    again = await bot_env.wait_done(rerun)
    assert f"🖌️ Blend: mine.png ×2 + {STARRY.label} ×1" in again.content

    # Weights that don't match the styles, and more styles than a blend takes, are refused.
    wrong = await fd.slash_command(
        "stylize",
        {"content": ("c.png", CONTENT), "style": ("s.png", STYLE), "painting": "starry", "blend": "1,2,3"},
        user=fd.member,
    )
    assert await bot_env.wait_ephemeral(wrong) == messages.bad_blend("1,2,3", 2)
    four = await fd.slash_command(
        "stylize",
        {
            "content": ("c.png", CONTENT),
            "style": ("s.png", STYLE),
            "painting": "starry",
            "style2": ("t.png", STYLE),
            "painting2": "scream",
        },
        user=fd.member,
    )
    assert await bot_env.wait_ephemeral(four) == messages.too_many_styles(4, 3)


async def test_admins_add_server_styles_that_only_their_server_can_pick(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    art, _ = bot_env.add_server("Elsewhere", fd.member)
    bot = await bot_env.start_bot(max_server_styles=2)
    admin = fd.moderator
    logo = make_png(90, 60, 7)

    add = await fd.slash_command("stylebot style add", {"name": "Our  Logo", "image": ("logo.png", logo)}, user=admin)
    assert await bot_env.wait_ephemeral(add) == messages.style_added("Our Logo")
    kept = await bot.styles.get(fd.guild.id, "our logo")
    assert kept is not None and image_of(kept.image).format == "JPEG"  # the bot's own copy, not the upload

    # Members can't add; names are unique, never a painting's; the image is checked like any upload.
    member_add = await fd.slash_command(
        "stylebot style add", {"name": "Mine", "image": ("m.png", logo)}, user=fd.member
    )
    assert await bot_env.wait_ephemeral(member_add) == messages.NOT_ADMIN
    again = await fd.slash_command("stylebot style add", {"name": "OUR LOGO", "image": ("l.png", logo)}, user=admin)
    assert await bot_env.wait_ephemeral(again) == messages.style_name_taken("OUR LOGO")
    painting = await fd.slash_command(
        "stylebot style add", {"name": "The Starry Night", "image": ("l.png", logo)}, user=admin
    )
    assert await bot_env.wait_ephemeral(painting) == messages.name_of_a_painting(STARRY.label)
    broken = await fd.slash_command(
        "stylebot style add", {"name": "Broken", "image": ("b.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64)}, user=admin
    )
    assert (await bot_env.wait_ephemeral(broken)).startswith("The style image can't be used.")
    await bot_env.wait_ephemeral(
        await fd.slash_command("stylebot style add", {"name": "Second", "image": ("s.png", STYLE)}, user=admin)
    )
    full = await fd.slash_command("stylebot style add", {"name": "Third", "image": ("t.png", STYLE)}, user=admin)
    assert await bot_env.wait_ephemeral(full) == messages.too_many_server_styles(2)

    # The server's styles come first in its autocomplete, and nowhere else.
    here = await choices_of(bot_env, await fd.autocomplete("stylize", {"painting": "logo"}, "painting"))
    assert here == [{"name": messages.server_style_choice("Our Logo"), "value": "server:Our Logo"}]
    there = await choices_of(bot_env, await fd.autocomplete("stylize", {"painting": "logo"}, "painting", channel=art))
    assert there == []
    inter = await fd.slash_command(
        "stylize", {"content": ("cat.png", CONTENT), "painting": "server:Our Logo"}, user=fd.member
    )
    assert "🖌️ Our Logo" in (await bot_env.wait_done(inter)).content
    elsewhere = await fd.slash_command(
        "stylize", {"content": ("cat.png", CONTENT), "painting": "server:Our Logo"}, user=fd.member, channel=art
    )
    assert await bot_env.wait_ephemeral(elsewhere) == messages.unknown_style("Our Logo")

    # Listed as a picture with who added them; removed by name.
    listing = await fd.slash_command("stylebot style list", user=fd.member)
    shown = await fd.wait_for_original(listing, lambda m: bool(m.attachments) and not m.loading)
    assert f"• Our Logo — added by <@{admin.user.id}>" in shown.content and "(2 of 2)" in shown.content
    assert image_of(shown.attachments[0].data).format == "PNG"
    remove = await fd.slash_command("stylebot style remove", {"name": "our logo"}, user=admin)
    assert await bot_env.wait_ephemeral(remove) == messages.style_removed("our logo")
    assert await bot.styles.names(fd.guild.id) == ["Second"]


async def test_styles_shows_the_gallery_and_the_servers_styles_as_one_picture(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    bot = await bot_env.start_bot()
    await bot.styles.add(fd.guild.id, "Logo", image_of_jpeg(), added_by=1)
    inter = await fd.slash_command("styles", user=fd.member)
    msg = await fd.wait_for_original(inter, lambda m: bool(m.attachments) and not m.loading)
    assert msg.ephemeral
    sheet = image_of(msg.attachments[0].data)
    count = len(gallery.paintings()) + 1
    assert sheet.format == "PNG" and sheet.width > sheet.height > 0
    assert msg.attachments[0].description == messages.sheet_alt_text(count)
    for painting in gallery.paintings():
        assert painting.credit in msg.content  # the attributions travel with the pictures
    assert "**This server's styles:** Logo" in msg.content


def image_of_jpeg() -> bytes:
    buf = io.BytesIO()
    image_of(make_png(40, 30, 9)).convert("RGB").save(buf, "JPEG")
    return buf.getvalue()


async def test_the_form_offers_the_same_paintings_and_server_styles(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    bot = await bot_env.start_bot()
    await bot.styles.add(fd.guild.id, "Logo", image_of_jpeg(), added_by=1)
    photo = await fd.post_message(author=fd.member, content="look", attachments=[("cat.png", CONTENT)])
    inter = await fd.context_menu("Stylize this image", photo, user=fd.member)
    modal = await fd.wait_for_modal(inter)
    select = modal["components"][1]["component"]
    values = [o["value"] for o in select["options"]]
    assert values == [f"painting:{p.key}" for p in gallery.paintings()] + ["server:Logo"]
    submit = await fd.submit_modal(inter, {"stylebot:modal:painting": ["server:Logo", "painting:the_scream"]})
    msg = await bot_env.wait_done(submit)
    assert "🖌️ Blend: Logo ×1 + The Scream — Edvard Munch ×1" in msg.content
    empty = await fd.context_menu("Stylize this image", photo, user=fd.member)
    await fd.wait_for_modal(empty)
    nothing = await fd.submit_modal(empty, {})
    assert await bot_env.wait_ephemeral(nothing) == messages.NO_STYLE_GIVEN


async def test_size_and_steps_suggestions_stay_within_the_servers_limits(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    await bot_env.start_bot(guild_defaults={"default_size": 300, "max_size": 600, "max_steps": 250})
    sizes = await choices_of(bot_env, await fd.autocomplete("stylize", {"size": ""}, "size"))
    assert [c["value"] for c in sizes] == [256, 300, 512, 600]
    assert sizes[0]["name"] == messages.named_value("small", "256 px")
    assert sizes[1]["name"] == messages.server_default_value("300 px")
    assert sizes[3]["name"] == messages.largest_value("600 px")
    typed = await choices_of(bot_env, await fd.autocomplete("stylize", {"size": 40}, "size"))
    assert typed[0] == {"name": messages.typed_value("40 px"), "value": 40}
    too_big = await choices_of(bot_env, await fd.autocomplete("stylize", {"size": 9000}, "size"))
    assert 9000 not in [c["value"] for c in too_big] and max(c["value"] for c in too_big) <= 600
    steps = await choices_of(bot_env, await fd.autocomplete("stylize", {"steps": ""}, "steps"))
    spec = OPTION_SPECS["steps"]
    assert [c["value"] for c in steps] == sorted({*[v for v, _ in spec.suggestions(high=250)], 6, 250})
