"""End-to-end proofs that the fake Discord speaks the wire protocol the real discord.py client expects.

Each test runs a tiny, test-local ``commands.Bot`` (not the product bot) against ``FakeDiscord``
on 127.0.0.1, drives it the way Discord would, and asserts on what the client did and sent.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any

import discord
import pytest
from discord import app_commands
from discord.ext import commands
from fakediscord import FakeDiscord, Intent, Perm
from fakediscord.fixtures import client_logged_no_errors  # noqa: F401
from PIL import Image

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("client_logged_no_errors")]


def png_bytes(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def make_bot(setup: Callable[[commands.Bot], Any] | None = None, *, members: bool = False) -> commands.Bot:
    """A minimal bot; short guild_ready_timeout so on_ready fires quickly after GUILD_CREATE."""
    intents = discord.Intents.default()
    intents.message_content = True
    intents.members = members
    bot = commands.Bot(command_prefix="!", intents=intents, guild_ready_timeout=0.05, help_command=None)
    if setup is not None:
        setup(bot)
    return bot


async def test_bot_connects_and_becomes_ready() -> None:
    async with FakeDiscord() as fd:
        bot = make_bot(members=True)  # members intent: exercises REQUEST_GUILD_MEMBERS chunking too
        async with fd.running(bot):
            assert bot.is_ready()
            assert bot.user is not None and bot.user.id == fd.bot_user.id
            assert bot.application_id == fd.application_id
            guild = bot.get_guild(fd.guild.id)
            assert guild is not None and guild.name == "Fake Guild"
            assert {c.name for c in guild.text_channels} == {"general", "gallery"}
            assert guild.me is not None and fd.bot_role.id in [r.id for r in guild.me.roles]
            mod = guild.get_member(fd.moderator.id)
            assert mod is not None and mod.guild_permissions.manage_guild
            plain = guild.get_member(fd.member.id)
            assert plain is not None and not plain.guild_permissions.manage_messages
            assert fd.identify_count == 1
            assert any(d == "recv" and f.get("op") == 8 for d, f in fd.gateway_log)
            assert fd.requests_matching("GET", "/users/@me")
            assert fd.requests_matching("GET", "/oauth2/applications/@me")
            # the client sends a heartbeat straight after HELLO and gets an ACK
            assert any(d == "recv" and f.get("op") == 1 for d, f in fd.gateway_log)
            assert any(d == "send" and f.get("op") == 11 for d, f in fd.gateway_log)
        assert bot.is_closed()


async def test_slash_command_attachment_defer_download_edit_with_file() -> None:
    seen: dict[str, Any] = {}

    def setup(bot: commands.Bot) -> None:
        @bot.tree.command(name="flip", description="Reverse an uploaded file")
        @app_commands.describe(image="the picture")
        async def flip(interaction: discord.Interaction, image: discord.Attachment) -> None:
            await interaction.response.defer(thinking=True)
            data = await image.read()
            seen.update(filename=image.filename, size=image.size, ctype=image.content_type, w=image.width)
            seen["perms"] = interaction.permissions
            await interaction.edit_original_response(
                content=f"got {len(data)} bytes",
                attachments=[discord.File(io.BytesIO(data[::-1]), "out.png")],
            )

    src = png_bytes()
    async with FakeDiscord() as fd:
        bot = make_bot(setup)
        async with fd.running(bot):
            synced = await bot.tree.sync()
            assert [c.name for c in synced] == ["flip"] and synced[0].id > 0
            (cmd,) = fd.state.global_commands.values()
            assert cmd.options[0]["type"] == 11

            inter = await fd.slash_command("flip", {"image": ("cat.png", src)}, user=fd.moderator)
            patch = await fd.wait_for_request("PATCH", "/webhooks/{app}/{token}/messages/@original")

            callback = fd.requests_matching("POST", "/interactions/{id}/{token}/callback")[0]
            assert callback.json["type"] == 5 and callback.query.get("with_response")
            assert inter.response_type == 5
            assert patch.status == 200
            assert patch.files[0].filename == "out.png"
            assert patch.file_bytes(0) == src[::-1]
            assert patch.json["content"] == f"got {len(src)} bytes"
            assert fd.requests_matching("GET", "/ephemeral-attachments/.*"), "bot downloaded via the CDN URL"
            msg = fd.original_message(inter)
            assert msg is not None and not msg.loading and msg.content == f"got {len(src)} bytes"
            assert msg.attachments[0].data == src[::-1]
            assert (seen["filename"], seen["size"], seen["ctype"], seen["w"]) == (
                "cat.png",
                len(src),
                "image/png",
                8,
            )
            assert seen["perms"].manage_guild and seen["perms"].manage_messages


async def test_a_hold_keeps_downloads_in_flight_until_released() -> None:
    sizes: list[int] = []

    def setup(bot: commands.Bot) -> None:
        @bot.tree.command(name="pair", description="Download two files at once")
        async def pair(interaction: discord.Interaction, a: discord.Attachment, b: discord.Attachment) -> None:
            await interaction.response.defer(thinking=True)
            sizes.extend(len(d) for d in await asyncio.gather(a.read(), b.read()))
            await interaction.edit_original_response(content="got both")

    async with FakeDiscord() as fd:
        bot = make_bot(setup)
        async with fd.running(bot):
            await bot.tree.sync()
            hold = fd.hold("GET", r"/(ephemeral-)?attachments/.*")
            inter = await fd.slash_command(
                "pair", {"a": ("a.png", png_bytes()), "b": ("b.png", png_bytes(size=(9, 9)))}
            )
            await fd.wait_until(lambda: len(hold.waiting) == 2, 10, "both downloads held")
            assert not sizes and all(not r.done for r in hold.waiting)
            hold.release()
            await fd.wait_for_original(inter, lambda m: m.content == "got both")
            assert sorted(sizes) == sorted([len(png_bytes()), len(png_bytes(size=(9, 9)))])
            assert hold.peak == 2 and [kind for kind, _ in hold.log].count("released") == 2
            assert not hold.waiting


async def test_button_click_round_trip() -> None:
    class Panel(discord.ui.View):
        @discord.ui.button(label="Go", custom_id="panel:go", style=discord.ButtonStyle.primary)
        async def go(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
            await interaction.response.edit_message(content=f"clicked by {interaction.user.name}", view=None)

    def setup(bot: commands.Bot) -> None:
        @bot.tree.command(name="panel", description="Show a button")
        async def panel(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("press it", view=Panel())

    async with FakeDiscord() as fd:
        bot = make_bot(setup)
        async with fd.running(bot):
            await bot.tree.sync()
            inter = await fd.slash_command("panel")
            msg = await fd.wait_for_original(inter)
            assert msg.content == "press it" and msg.custom_ids == ["panel:go"]
            assert not msg.ephemeral

            click = await fd.click_button(msg, "panel:go", user=fd.member)
            await fd.wait_for_response(click)
            assert click.response_type == 7
            assert msg.content == "clicked by alice" and msg.components == []
            assert msg.revisions and msg.revisions[-1]["content"] == "press it"
            with pytest.raises(ValueError):
                await fd.click_button(msg, "panel:go")


async def test_context_menu_modal_with_file_upload() -> None:
    submitted: asyncio.Future[tuple[str, list[discord.Attachment], bytes]] | None = None
    targets: list[discord.Message] = []

    class Restyle(discord.ui.Modal, title="Restyle"):
        prompt = discord.ui.Label(text="Prompt", component=discord.ui.TextInput(custom_id="prompt"))
        style = discord.ui.Label(text="Style image", component=discord.ui.FileUpload(custom_id="style"))

        async def on_submit(self, interaction: discord.Interaction) -> None:
            assert isinstance(self.prompt.component, discord.ui.TextInput)
            assert isinstance(self.style.component, discord.ui.FileUpload)
            files = list(self.style.component.values)
            data = await files[0].read()
            await interaction.response.send_message(f"styling with {files[0].filename}", ephemeral=True)
            assert submitted is not None
            submitted.set_result((self.prompt.component.value, files, data))

    def setup(bot: commands.Bot) -> None:
        @app_commands.context_menu(name="Restyle")
        async def restyle(interaction: discord.Interaction, message: discord.Message) -> None:
            targets.append(message)
            await interaction.response.send_modal(Restyle())

        bot.tree.add_command(restyle)

    content_png, style_png = png_bytes((10, 10, 10)), png_bytes((0, 0, 250), (4, 4))
    async with FakeDiscord() as fd:
        submitted = asyncio.get_running_loop().create_future()
        bot = make_bot(setup)
        async with fd.running(bot):
            bot.tree.copy_global_to(guild=discord.Object(fd.guild.id))
            await bot.tree.sync(guild=discord.Object(fd.guild.id))  # guild-scoped registration path
            assert [c.name for c in fd.state.guild_commands[fd.guild.id].values()] == ["Restyle"]
            target = await fd.post_message(content="make this art", attachments=[("photo.png", content_png)])
            inter = await fd.context_menu("Restyle", target, user=fd.member)
            modal = await fd.wait_for_modal(inter)
            assert modal["title"] == "Restyle" and modal["components"][1]["component"]["type"] == 19

            sub = await fd.submit_modal(inter, {"prompt": "van gogh", "style": [("starry.png", style_png)]})
            prompt, files, data = await asyncio.wait_for(submitted, 5)
            assert prompt == "van gogh"
            assert [f.filename for f in files] == ["starry.png"] and files[0].content_type == "image/png"
            assert data == style_png
            reply = await fd.wait_for_original(sub)
            assert reply.ephemeral and reply.content == "styling with starry.png"
            assert targets[0].id == target.id and targets[0].content == "make this art"
            assert targets[0].attachments[0].filename == "photo.png"
            with pytest.raises(ValueError):
                await fd.submit_modal(inter, {"prompt": "x"})  # required file upload left empty


async def test_message_reply_with_reference() -> None:
    seen: asyncio.Queue[discord.Message] = asyncio.Queue()

    def setup(bot: commands.Bot) -> None:
        @bot.event
        async def on_message(message: discord.Message) -> None:
            if message.author.bot:
                return
            await seen.put(message)
            if message.reference is not None:
                await message.reply("saw your reply", mention_author=False)

    async with FakeDiscord() as fd:
        bot = make_bot(setup)
        async with fd.running(bot):
            original = await fd.post_message(author=fd.moderator, content="original post")
            first = await asyncio.wait_for(seen.get(), 5)
            assert first.content == "original post" and first.reference is None
            reply = await fd.post_message(
                author=fd.member,
                content=f"hey {fd.bot_user.mention}",
                attachments=[("sketch.png", png_bytes())],
                reference=original,
            )
            got = await asyncio.wait_for(seen.get(), 5)
            assert got.id == reply.id and got.type is discord.MessageType.reply
            assert got.reference is not None and got.reference.message_id == original.id
            resolved = got.reference.resolved
            assert isinstance(resolved, discord.Message)
            assert resolved.content == "original post" and resolved.author.id == fd.moderator.id
            assert {u.id for u in got.mentions} == {fd.bot_user.id, fd.moderator.id}
            assert got.attachments[0].filename == "sketch.png"
            assert isinstance(got.author, discord.Member)

            answer = await fd.wait_for_message(fd.channel, lambda m: m.author.id == fd.bot_user.id)
            assert answer.content == "saw your reply"
            assert answer.reference is not None and answer.reference["message_id"] == str(reply.id)
            assert answer.type == 19


async def test_message_content_hidden_without_intent() -> None:
    seen: asyncio.Queue[discord.Message] = asyncio.Queue()
    async with FakeDiscord() as fd:
        bot = commands.Bot(command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.05)

        @bot.event
        async def on_message(message: discord.Message) -> None:
            await seen.put(message)

        async with fd.running(bot):
            await fd.post_message(content="secret")
            await fd.post_message(content=f"{fd.bot_user.mention} visible")
            hidden, shown = await asyncio.wait_for(seen.get(), 5), await asyncio.wait_for(seen.get(), 5)
            assert hidden.content == "" and shown.content.endswith("visible")


async def test_a_privileged_intent_the_application_lacks_is_refused_with_4014() -> None:
    seen: asyncio.Queue[discord.Message] = asyncio.Queue()
    async with FakeDiscord(privileged_intents=Intent.PRIVILEGED & ~Intent.MESSAGE_CONTENT) as fd:
        with pytest.raises(discord.PrivilegedIntentsRequired):
            async with fd.running(make_bot()):  # asks for MESSAGE_CONTENT
                pass
        assert [f["op"] for d, f in fd.gateway_log if d == "recv" and f.get("op") == 2] == [2]
        assert fd.identify_count == 0

        bot = commands.Bot(command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.05)

        @bot.event
        async def on_message(message: discord.Message) -> None:
            await seen.put(message)

        async with fd.running(bot):
            assert not bot.application_flags.gateway_message_content_limited
            assert bot.application_flags.gateway_guild_members_limited
            photo = await fd.post_message(author=fd.member, content="my cat", attachments=[("cat.png", png_bytes())])
            await fd.post_message(
                author=fd.member,
                content=f"{fd.bot_user.mention} paint it",
                attachments=[("style.png", png_bytes())],
                reference=photo,
                mention_author=False,
            )
            first, reply = await asyncio.wait_for(seen.get(), 5), await asyncio.wait_for(seen.get(), 5)
            assert first.content == "" and not first.attachments
            # The mention shows its own content, not that of the message it replies to.
            assert reply.content.endswith("paint it") and reply.attachments
            resolved = reply.reference.resolved if reply.reference else None
            assert isinstance(resolved, discord.Message) and resolved.id == photo.id and not resolved.attachments
            channel = bot.get_channel(fd.channel.id)
            assert isinstance(channel, discord.TextChannel)
            fetched = await channel.fetch_message(photo.id)  # REST hides it too
            assert fetched.content == "" and not fetched.attachments


async def test_rate_limit_429_is_retried() -> None:
    def setup(bot: commands.Bot) -> None:
        @bot.tree.command(name="ping", description="Replies pong")
        async def ping(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("pong")

    async with FakeDiscord() as fd:
        bot = make_bot(setup)
        async with fd.running(bot):
            fd.fail_next("POST", "/channels/{c}/messages", 429, retry_after=0.2)
            channel = bot.get_channel(fd.channel.id)
            assert isinstance(channel, discord.TextChannel)
            sent = await channel.send("hello", file=discord.File(io.BytesIO(b"abc"), "a.txt"))
            posts = fd.requests_matching("POST", "/channels/{c}/messages")
            assert [r.status for r in posts] == [429, 200]
            assert posts[0].fault and posts[1].files[0].data == b"abc"
            assert posts[1].at - posts[0].at >= 0.18
            stored = fd.get_message(sent.id)
            assert stored is not None and stored.attachments[0].content_type == "text/plain"
            assert await sent.attachments[0].read() == b"abc"

            # the webhook/interaction adapter has its own retry loop; it needs the Via header too
            await bot.tree.sync()
            fd.fail_next("POST", "/interactions/{id}/{token}/callback", 429, retry_after=0.1)
            inter = await fd.slash_command("ping")
            reply = await fd.wait_for_original(inter)
            assert reply.content == "pong"
            callbacks = fd.requests_matching("POST", "/interactions/{id}/{token}/callback")
            assert [r.status for r in callbacks] == [429, 200]


async def test_network_errors_and_nonces_make_a_retried_create_safe() -> None:
    import aiohttp

    async with FakeDiscord() as fd:
        bot = make_bot()
        async with fd.running(bot):
            channel = bot.get_channel(fd.channel.id)
            assert isinstance(channel, discord.TextChannel)
            mine = lambda: [m for m in fd.messages_in(fd.channel) if m.author.id == fd.bot_user.id]  # noqa: E731

            # The connection closes before the request is handled: nothing happened.
            fd.drop_next("POST", "/channels/{c}/messages")
            with pytest.raises(aiohttp.ClientError):
                await channel.send("lost")
            assert mine() == []
            # ...after it is handled: the message exists, but the client never heard of it.
            fd.drop_next("POST", "/channels/{c}/messages", after=True)
            with pytest.raises(aiohttp.ClientError):
                await channel.send("made", nonce="job-1")
            assert [m.content for m in mine()] == ["made"]
            # Retrying with the same nonce (discord.py sends enforce_nonce) returns that message.
            again = await channel.send("made", nonce="job-1")
            assert again.id == mine()[0].id and len(mine()) == 1
            posts = fd.requests_matching("POST", "/channels/{c}/messages")
            assert [r.status for r in posts] == [0, 0, 200] and all(r.fault for r in posts[:2])
            # Another nonce makes another message.
            await channel.send("other", nonce="job-2")
            assert [m.content for m in sorted(mine(), key=lambda m: m.id)] == ["made", "other"]


async def test_webhook_edit_errors_surface_in_bot() -> None:
    gate = asyncio.Event()
    errors: asyncio.Queue[BaseException] = asyncio.Queue()

    def setup(bot: commands.Bot) -> None:
        @bot.tree.command(name="slow", description="Defers, waits, edits")
        async def slow(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            await gate.wait()
            try:
                await interaction.edit_original_response(content="done")
            except discord.HTTPException as exc:
                await errors.put(exc)

    async with FakeDiscord() as fd:
        bot = make_bot(setup)
        async with fd.running(bot):
            await bot.tree.sync()
            # 1) token expired (15-minute lifetime passed) -> 401 Invalid Webhook Token
            inter = await fd.slash_command("slow")
            await fd.wait_for_response(inter)
            fd.expire_token(inter)
            gate.set()
            exc = await asyncio.wait_for(errors.get(), 5)
            assert isinstance(exc, discord.HTTPException) and exc.status == 401 and exc.code == 50027
            # 2) injected 404 on the edit -> discord.NotFound
            gate.clear()
            fd.fail_next(
                "PATCH",
                "/webhooks/{app}/{token}/messages/@original",
                404,
                json={
                    "message": "Unknown Message",
                    "code": 10008,
                },
            )
            inter2 = await fd.slash_command("slow")
            await fd.wait_for_response(inter2)
            gate.set()
            exc2 = await asyncio.wait_for(errors.get(), 5)
            assert isinstance(exc2, discord.NotFound) and exc2.code == 10008
            assert fd.original_message(inter2) is not None and fd.original_message(inter2).loading  # type: ignore[union-attr]


async def test_late_ack_and_double_ack_are_rejected() -> None:
    gate = asyncio.Event()
    results: asyncio.Queue[Any] = asyncio.Queue()

    def setup(bot: commands.Bot) -> None:
        @bot.tree.command(name="late", description="Acks late")
        async def late(interaction: discord.Interaction) -> None:
            await gate.wait()
            try:
                await interaction.response.send_message("too late")
            except discord.HTTPException as exc:
                await results.put(exc)

    async with FakeDiscord() as fd:
        bot = make_bot(setup)
        async with fd.running(bot):
            await bot.tree.sync()
            inter = await fd.slash_command("late")
            fd.advance_clock(3.5)  # past Discord's 3 s acknowledgement window
            gate.set()
            exc = await asyncio.wait_for(results.get(), 5)
            assert isinstance(exc, discord.NotFound) and exc.code == 10062
            assert not inter.responded


async def test_gateway_drop_resumes_and_replays() -> None:
    seen: asyncio.Queue[discord.Message] = asyncio.Queue()
    resumed = asyncio.Event()

    def setup(bot: commands.Bot) -> None:
        @bot.event
        async def on_message(message: discord.Message) -> None:
            await seen.put(message)

        @bot.event
        async def on_resumed() -> None:
            resumed.set()

    async with FakeDiscord() as fd:
        bot = make_bot(setup)
        async with fd.running(bot):
            await fd.drop_gateway(4000)
            # sent while the socket is down: must be replayed on RESUME
            await fd.post_message(content="while you were away")
            await fd.wait_for_resume()
            await asyncio.wait_for(resumed.wait(), 5)
            msg = await asyncio.wait_for(seen.get(), 5)
            assert msg.content == "while you were away"
            assert fd.identify_count == 1 and fd.resume_count == 1
            resume_frames = [f for d, f in fd.gateway_log if d == "recv" and f.get("op") == 6]
            assert resume_frames and resume_frames[0]["d"]["seq"] >= 2
            # first connect used DEFAULT_GATEWAY, the resume used READY's resume_gateway_url
            assert [c["path"] for c in fd.connection_log] == ["/", "/resume/"]
            assert fd.connection_log[0]["query"]["v"] == "10"

            # op 7 RECONNECT also resumes, and interactions keep working afterwards
            await fd.reconnect_gateway()
            await fd.wait_for_resume(2)
            await fd.post_message(content="after reconnect")
            assert (await asyncio.wait_for(seen.get(), 5)).content == "after reconnect"


async def test_an_unreachable_gateway_refuses_until_it_is_back() -> None:
    async with FakeDiscord() as fd:
        bot = make_bot()
        async with fd.running(bot):
            await fd.gateway_unreachable()
            await fd.wait_until(lambda: fd.gateway.refused >= 1, 10, "a refused reconnect")
            assert fd.resume_count == 0 and not [s for s in fd.sessions.values() if s.conn is not None and not s.dead]
            fd.gateway_reachable()
            await fd.wait_for_resume(timeout=30)  # discord.py's own backoff brings it back
            await fd.wait_until(lambda: bot.ws is not None and bot.ws.open, 10, "an open socket")


async def test_followups_selects_and_autocomplete() -> None:
    picked: list[str] = []

    def setup(bot: commands.Bot) -> None:
        @bot.tree.command(name="think", description="Defer then follow up")
        async def think(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)
            first = await interaction.followup.send("result", file=discord.File(io.BytesIO(b"img"), "r.png"))
            assert (await interaction.original_response()).id == first.id  # replaced the "thinking" message
            extra = await interaction.followup.send("only you", ephemeral=True, wait=True)
            await extra.edit(content="only you (edited)")

        @bot.tree.command(name="pick", description="Pick a colour")
        async def pick(interaction: discord.Interaction, colour: str) -> None:
            select: discord.ui.Select[discord.ui.View] = discord.ui.Select(
                custom_id="pick:shade",
                options=[discord.SelectOption(label=x, value=x) for x in ("light", "dark")],
            )

            async def chosen(i: discord.Interaction) -> None:
                picked.extend(select.values)
                await i.response.defer()
                await i.edit_original_response(content=f"{colour} {select.values[0]}", view=None)

            select.callback = chosen  # type: ignore[method-assign]
            view = discord.ui.View()
            view.add_item(select)
            await interaction.response.send_message(f"{colour}?", view=view)

        @pick.autocomplete("colour")
        async def colours(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            return [app_commands.Choice(name=c, value=c) for c in ("red", "green", "blue") if c.startswith(current)]

    async with FakeDiscord() as fd:
        bot = make_bot(setup)
        async with fd.running(bot):
            await bot.tree.sync()
            inter = await fd.slash_command("think")
            edited = await fd.wait_for_request("PATCH", "/webhooks/{app}/{token}/messages/{id}")
            original = fd.original_message(inter)
            assert original is not None and not original.loading and original.content == "result"
            assert original.attachments[0].data == b"img"
            (extra,) = fd.followups(inter)
            assert extra.ephemeral and extra.content == "only you (edited)" and edited.path.endswith(str(extra.id))

            ac = await fd.autocomplete("pick", {"colour": "g"}, focused="colour")
            await fd.wait_for_response(ac)
            assert ac.response_type == 8 and ac.autocomplete_choices == [{"name": "green", "value": "green"}]

            p = await fd.slash_command("pick", {"colour": "green"})
            menu = await fd.wait_for_original(p)
            choice = await fd.select_menu(menu, "pick:shade", ["dark"])
            await fd.wait_for_original(choice, lambda m: m.content == "green dark")
            assert picked == ["dark"] and choice.response_type == 6 and menu.components == []


async def test_prefix_command_rest_surface_and_permissions() -> None:
    history: list[str] = []
    perms: dict[str, tuple[bool, bool]] = {}

    def setup(bot: commands.Bot) -> None:
        @bot.tree.command(name="whoami", description="Report permissions")
        async def whoami(interaction: discord.Interaction) -> None:
            p = interaction.permissions
            perms[interaction.user.name] = (p.manage_messages, p.manage_guild)
            await interaction.response.send_message("ok", ephemeral=True)

        @bot.tree.command(name="purge", description="Moderators only")
        @app_commands.default_permissions(manage_messages=True)
        async def purge(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("purged", ephemeral=True)

        @bot.command()
        async def hi(ctx: commands.Context[commands.Bot]) -> None:
            async with ctx.typing():
                msg = await ctx.send("hello")
            await msg.add_reaction("\N{THUMBS UP SIGN}")
            await msg.edit(content="hello again")
            history.extend([m.content async for m in ctx.channel.history(limit=5)])
            await ctx.author.send("psst")
            await msg.delete()

    async with FakeDiscord() as fd:
        bot = make_bot(setup)
        async with fd.running(bot):
            await fd.post_message(content="!hi", author=fd.member)
            dm = await fd.wait_for_request("POST", "/channels/{c}/messages", lambda r: r.json["content"] == "psst")
            await fd.wait_for_request("DELETE", "/channels/{c}/messages/{m}")
            assert fd.requests_matching("POST", "/channels/{c}/typing")
            assert fd.requests_matching("PUT", "/channels/{c}/messages/{m}/reactions/{e}/@me")
            assert history[:2] == ["hello again", "!hi"]
            assert dm.path != f"/channels/{fd.channel.id}/messages"
            (deleted,) = [m for m in fd.state.channel_messages(fd.channel.id, include_deleted=True) if m.deleted]
            assert deleted.content == "hello again" and "\N{THUMBS UP SIGN}" in deleted.reactions

            # permission overwrites and upload limits are enforced like Discord does
            await fd.set_overwrite(fd.other_channel, fd.bot_role, deny=Perm.SEND_MESSAGES)
            gallery = bot.get_channel(fd.other_channel.id)
            assert isinstance(gallery, discord.TextChannel)
            with pytest.raises(discord.Forbidden) as forbidden:
                await gallery.send("nope")
            assert forbidden.value.code == 50013
            general = bot.get_channel(fd.channel.id)
            assert isinstance(general, discord.TextChannel)
            too_big = discord.File(io.BytesIO(b"x" * (fd.attachment_size_limit + 1)), "big.bin")
            with pytest.raises(discord.HTTPException) as big:
                await general.send(file=too_big)
            assert big.value.status == 413 and big.value.code == 40005

            # interaction `member.permissions` reflects roles: a Manage Messages member vs a plain one
            await bot.tree.sync()
            carol = await fd.add_member("carol", permissions=Perm.MANAGE_MESSAGES)
            for who in (carol, fd.member):
                inter = await fd.slash_command("whoami", user=who)
                await fd.wait_for_response(inter)
            assert perms == {"carol": (True, False), "alice": (False, False)}
            # default_member_permissions hides /purge from alice, as the Discord client would
            with pytest.raises(PermissionError):
                await fd.slash_command("purge", user=fd.member)
            ok = await fd.slash_command("purge", user=fd.moderator)
            assert (await fd.wait_for_original(ok)).content == "purged"
