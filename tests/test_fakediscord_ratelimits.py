"""The fake's rate limits: strict mode speaks Discord's bucket headers and 429s, and the audit counts
requests that ignore an announced reset. Checked twice: with raw aiohttp requests (to see the exact
wire format) and with the real discord.py client, which must wait on its own.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

import aiohttp
import discord
import pytest
from discord.ext import commands
from fakediscord import FakeDiscord
from fakediscord.fixtures import client_logged_no_errors  # noqa: F401

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("client_logged_no_errors")]


def _auth(fd: FakeDiscord) -> dict[str, str]:
    return {"Authorization": f"Bot {fd.token}"}


async def _post(http: aiohttp.ClientSession, fd: FakeDiscord, channel_id: int, **kw: Any) -> aiohttp.ClientResponse:
    async with http.post(f"{fd.api_base}/channels/{channel_id}/messages", headers=_auth(fd), **kw) as r:
        await r.read()
        return r


def _upload(name: str) -> aiohttp.FormData:
    form = aiohttp.FormData(quote_fields=False)
    form.add_field("payload_json", '{"content": "file"}', content_type="application/json")
    form.add_field("files[0]", b"data", filename=name, content_type="text/plain")
    return form


async def test_strict_buckets_send_discords_headers_and_429s() -> None:
    async with FakeDiscord(strict_rate_limits=True) as fd, aiohttp.ClientSession() as http:
        fd.rate_limits.set_limit("message_create", limit=2, window=2.0)
        say = {"json": {"content": "hi"}}
        first, second = await _post(http, fd, fd.channel.id, **say), await _post(http, fd, fd.channel.id, **say)
        assert (first.status, second.status) == (200, 200)
        assert first.headers["X-RateLimit-Bucket"] == "message_create"
        assert first.headers["X-RateLimit-Limit"] == "2"
        assert [first.headers["X-RateLimit-Remaining"], second.headers["X-RateLimit-Remaining"]] == ["1", "0"]
        assert 0 < float(second.headers["X-RateLimit-Reset-After"]) <= 2.0
        assert float(second.headers["X-RateLimit-Reset"]) > 1e9  # epoch seconds

        # Over the limit: 429 with the body and headers Discord documents.
        async with http.post(f"{fd.api_base}/channels/{fd.channel.id}/messages", headers=_auth(fd), **say) as r:
            body = await r.json()
            assert r.status == 429
            assert body["message"] and body["global"] is False and 0 < body["retry_after"] <= 2.0
            assert r.headers["X-RateLimit-Remaining"] == "0" and r.headers["X-RateLimit-Scope"] == "user"
            assert float(r.headers["X-RateLimit-Reset-After"]) == body["retry_after"]
            assert int(r.headers["Retry-After"]) >= 1 and r.headers["Via"]
        # Another channel is another bucket (channel_id is a top-level resource).
        assert (await _post(http, fd, fd.other_channel.id, **say)).status == 200
        # Coming back before the announced reset is dishonoured (and refused again) ...
        assert (await _post(http, fd, fd.channel.id, **say)).status == 429
        report = fd.rate_limit_report()
        assert report.buckets["message_create"].exhausted == 1 and report.dishonoured == 1
        # ... waiting as told is not (the announced wait itself is what is under test here).
        await asyncio.sleep(body["retry_after"])
        again = await _post(http, fd, fd.channel.id, **say)
        assert again.status == 200 and again.headers["X-RateLimit-Remaining"] == "1"

        report = fd.rate_limit_report()
        assert (report.sent_429, report.dishonoured) == (2, 1)
        assert report.buckets["message_create"].requests == 6
        limited = [r for r in fd.requests if r.rate_limited]
        assert [r.rate_limited for r in limited] == ["message_create", "message_create"]
        assert "message_create" in str(report) and "dishonoured" in str(report)

        # Routes without a rule of their own get a per-route bucket, with headers too.
        async with http.get(f"{fd.api_base}/channels/{fd.channel.id}", headers=_auth(fd)) as r:
            assert r.status == 200 and r.headers["X-RateLimit-Bucket"] == "GET /channels/{channel_id}"
        # Error answers carry the bucket's headers as well.
        async with http.get(f"{fd.api_base}/channels/1", headers=_auth(fd)) as r:
            assert r.status == 404 and "X-RateLimit-Remaining" in r.headers


async def test_uploads_are_a_sub_limit_and_strict_mode_is_off_by_default() -> None:
    async with FakeDiscord() as fd, aiohttp.ClientSession() as http:
        plain = await _post(http, fd, fd.channel.id, json={"content": "hi"})
        assert plain.status == 200 and "X-RateLimit-Bucket" not in plain.headers
        assert fd.rate_limit_report().sent_429 == 0

        fd.rate_limits.strict = True
        fd.rate_limits.set_limit("uploads", limit=1, window=5.0)
        assert (await _post(http, fd, fd.channel.id, data=_upload("a.txt"))).status == 200
        second = await _post(http, fd, fd.channel.id, data=_upload("b.txt"))
        # The route's own bucket still has room: a hidden sub-limit, as Discord reports one.
        assert second.status == 429 and second.headers["X-RateLimit-Bucket"] == "message_create"
        assert int(second.headers["X-RateLimit-Remaining"]) > 0
        assert (await _post(http, fd, fd.channel.id, json={"content": "text only"})).status == 200
        assert (await _post(http, fd, fd.other_channel.id, data=_upload("c.txt"))).status == 200
        report = fd.rate_limit_report()
        assert report.buckets["uploads"].exhausted == 1 and report.buckets["uploads"].requests == 3
        assert report.dishonoured == 0


async def test_forced_429s_carry_the_bucket_and_are_audited() -> None:
    async with FakeDiscord() as fd, aiohttp.ClientSession() as http:
        fd.rate_limits.force_429("POST", "/channels/{c}/messages", times=2, retry_after=1.0)
        first = await _post(http, fd, fd.channel.id, json={"content": "x"})
        assert first.status == 429 and first.headers["X-RateLimit-Bucket"] == "message_create"
        assert first.headers["X-RateLimit-Reset-After"] == "1.000" and first.headers["Retry-After"] == "1"
        early = await _post(http, fd, fd.channel.id, json={"content": "x"})  # ignores the 429
        assert early.status == 429 and fd.requests[-1].rate_limited == "message_create"
        await asyncio.sleep(1.0)  # as announced
        second = await _post(http, fd, fd.channel.id, json={"content": "x"})
        assert second.status == 429  # the second forced one
        await asyncio.sleep(float(second.headers["X-RateLimit-Reset-After"]))
        assert (await _post(http, fd, fd.channel.id, json={"content": "x"})).status == 200
        stats = fd.rate_limit_report().buckets["message_create"]
        assert (stats.forced, stats.dishonoured, stats.exhausted) == (2, 1, 0)
        with pytest.raises(ValueError):
            fd.rate_limits.set_limit("message_edit", limit=0)
        with pytest.raises(KeyError):
            fd.rate_limits.set_limit("no_such_bucket", limit=1)


def _make_bot(setup: Any = None) -> commands.Bot:
    intents = discord.Intents.default()
    bot = commands.Bot(command_prefix="!", intents=intents, guild_ready_timeout=0.05, help_command=None)
    if setup is not None:
        setup(bot)
    return bot


async def test_discord_py_waits_on_exhausted_buckets_and_honours_every_429() -> None:
    """A bot that edits messages as fast as it can: discord.py must pace itself from the headers
    (no 429 at all) and, when 429s come anyway, wait before it retries (none dishonoured)."""
    edited = asyncio.Event()

    def setup(bot: commands.Bot) -> None:
        @bot.tree.command(name="count", description="Edits its answer many times")
        async def count(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            for i in range(6):
                await interaction.edit_original_response(content=f"step {i}")
            await interaction.edit_original_response(
                content="done", attachments=[discord.File(io.BytesIO(b"png"), "r.png")]
            )
            edited.set()

    async with FakeDiscord(strict_rate_limits=True) as fd:
        for name in ("message_create", "message_edit", "interaction_edit"):
            fd.rate_limits.set_limit(name, limit=2, window=0.3)
        bot = _make_bot(setup)
        async with fd.running(bot):
            await bot.tree.sync()
            channel = bot.get_channel(fd.channel.id)
            assert isinstance(channel, discord.TextChannel)
            messages = [await channel.send(f"message {i}") for i in range(3)]
            for i in range(5):
                await messages[0].edit(content=f"edit {i}")
            inter = await fd.slash_command("count")
            await asyncio.wait_for(edited.wait(), 20)
            assert fd.original_message(inter).content == "done"  # type: ignore[union-attr]

            report = fd.rate_limit_report()
            assert report.buckets["message_create"].requests == 3
            assert report.buckets["message_edit"].requests == 5
            assert report.buckets["interaction_edit"].requests == 7
            assert report.sent_429 == 0, str(report)

            # 429s the headers did not announce: discord.py sleeps retry_after and retries.
            fd.rate_limits.force_429("PATCH", "/channels/{c}/messages/{m}", times=2, retry_after=0.2)
            fd.rate_limits.force_429("PATCH", "/webhooks/{a}/{t}/messages/{m}", times=1, retry_after=0.2)
            edited.clear()
            inter = await fd.slash_command("count")
            for i in range(3):
                await messages[1].edit(content=f"after 429 {i}")
            await asyncio.wait_for(edited.wait(), 20)
            assert fd.get_message(messages[1].id).content == "after 429 2"  # type: ignore[union-attr]
            report = fd.rate_limit_report()
            assert report.buckets["message_edit"].forced == 2 and report.buckets["interaction_edit"].forced == 1
            assert report.dishonoured == 0, str(report)

            # Concurrent edits share the channel's bucket; every one lands, whatever 429s the race costs.
            more = [await channel.send(f"more {i}") for i in range(3)]
            await asyncio.gather(*(m.edit(content=f"together {k}") for k, m in enumerate(messages + more)))
            stored = [fd.get_message(m.id) for m in messages + more]
            assert [m.content for m in stored if m is not None] == [f"together {k}" for k in range(6)]
