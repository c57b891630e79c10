"""End to end: what happens to a request's images before its job is queued.

A request first takes its place in the executor's queue (so "queue full" and "too many jobs"
cost no download); its attachments are then downloaded a few at a time (per member and in all)
and checked: the header in the bot's process, the full decode in a disposable child process.
Every bad image is refused at once with a private message, and nothing of it is queued or kept.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

pytest.register_assert_rewrite("bot_fixtures")

from bot_fixtures import CONTENT, STYLE, BotEnv, job_id_of  # noqa: E402
from decode_hooks import CRASH_MARKER  # noqa: E402
from imagefiles import jpeg_claiming, png_with_corrupt_pixels  # noqa: E402
from PIL import Image, PngImagePlugin  # noqa: E402

from bot import messages  # noqa: E402
from bot.db import ACTIVE_STATES  # noqa: E402
from stylecore.executors.base import QueueFull  # noqa: E402
from stylecore.imageio import DecoderFailed, IsolatedDecoder, NotAnImage, TruncatedImage  # noqa: E402

pytest_plugins = ["bot_fixtures"]
pytestmark = pytest.mark.asyncio(loop_scope="session")

TESTS = Path(__file__).parent
CDN = r"/(ephemeral-)?attachments/.*"


def png(img: Image.Image, **save: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **save)
    return buf.getvalue()


def downloads(bot_env: BotEnv) -> int:
    return sum(1 for r in bot_env.fd.requests if not r.api and r.method == "GET")


async def no_active_jobs(bot_env: BotEnv) -> None:
    assert bot_env.bot is not None
    assert await bot_env.bot.db.jobs_in(ACTIVE_STATES) == []
    assert bot_env.executor.queue() == []


async def test_bad_images_are_refused_before_anything_is_queued(bot_env: BotEnv) -> None:
    await bot_env.start_bot()
    bomb = png(Image.new("L", (8000, 6000)))  # 48 megapixels of real, highly compressible pixels
    cases = {
        "not an image": (b"just some text pretending to be a picture\n" * 8, NotAnImage.default_user_message),
        "cut short": (jpeg_claiming(6000, 6000), TruncatedImage.default_user_message),  # ~700 bytes for 36 MP
        "a bomb": (bomb, "That image is too large (8000×6000); the limit is 40 megapixels."),
        # A plausible header over pixel data that is not a zlib stream: only the full decode, in
        # the child process, can find it, and it does so before the job is queued.
        "damaged pixels": (png_with_corrupt_pixels(), TruncatedImage.default_user_message),
    }
    for name, (data, problem) in cases.items():
        inter = await bot_env.stylize(content=data)
        text = await bot_env.wait_ephemeral(inter, timeout=60)
        assert text == messages.unusable_image("content image", problem), name
        assert bot_env.fd.original_message(inter) is None, name  # the public "thinking" message is gone
    await no_active_jobs(bot_env)
    # The refusals gave their places back: the member's next request runs.
    assert (await bot_env.wait_done(await bot_env.stylize(steps=2))).attachments


async def test_a_decoder_that_crashes_costs_only_its_own_process(
    bot_env: BotEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", CRASH_MARKER.decode())
    hostile = png(Image.new("RGB", (64, 48), (200, 30, 30)), pnginfo=info)
    async with IsolatedDecoder(entry="decode_hooks:segfaults_on_marker") as decoder:
        bot = await bot_env.start_bot(decoder=decoder)
        inter = await bot_env.stylize(content=hostile)
        text = await bot_env.wait_ephemeral(inter, timeout=60)
        assert text == messages.unusable_image("content image", DecoderFailed.default_user_message)
        assert not bot.is_closed() and decoder.running == 0
        await no_active_jobs(bot_env)
        # The same bot, through the same decoder, goes on with the next upload.
        assert (await bot_env.wait_done(await bot_env.stylize(steps=2))).attachments
        await bot_env.stop_bot()


async def test_a_full_queue_is_refused_before_any_download(bot_env: BotEnv) -> None:
    await bot_env.start_bot()
    places = []
    try:
        while True:  # other callers of the executor hold every place in its queue
            places.append(bot_env.executor.reserve(f"someone-else-{len(places)}"))
    except QueueFull:
        pass
    before = downloads(bot_env)
    inter = await bot_env.stylize()
    assert (await bot_env.wait_ephemeral(inter)).startswith("The queue is full right now")
    assert downloads(bot_env) == before
    for place in places:
        place.release()
    assert (await bot_env.wait_done(await bot_env.stylize(steps=2))).attachments


async def test_a_request_still_downloading_counts_against_the_server_limit(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    await bot_env.start_bot(guild_defaults={"max_jobs_per_user": 1})
    slow = lambda r: r.path.endswith("/slow.png")  # noqa: E731
    held = fd.hold("GET", CDN, predicate=slow)
    fd.fail_next("GET", CDN, 404, predicate=slow)  # once released, the image turns out to be gone
    first = await fd.slash_command(
        "stylize", {"content": ("slow.png", CONTENT), "style": ("style.png", STYLE)}, user=fd.member
    )
    # Its content image is held at the CDN; its style image came through.
    await fd.wait_until(lambda: bool(held.waiting) and downloads(bot_env) == 2, 30, "the first request's downloads")

    second = await bot_env.stylize()
    assert await bot_env.wait_ephemeral(second) == messages.too_many_jobs([], 1, starting=1)
    assert downloads(bot_env) == 2  # refused before downloading anything

    held.release()  # the first request ends (its image vanished) and gives its place back
    assert await bot_env.wait_ephemeral(first, timeout=30) == messages.attachment_gone("content image")
    third = await bot_env.stylize(steps=2)
    assert (await bot_env.wait_done(third)).attachments


async def test_downloads_are_capped_per_member_and_in_all(bot_env: BotEnv) -> None:
    fd = bot_env.fd
    bot = await bot_env.start_bot(max_downloads=3, max_downloads_per_member=2)
    slots = bot.jobs.uploads.slots
    alice, bob, carol = fd.member, bot_env.add_member("bob"), bot_env.add_member("carol")
    held = fd.hold("GET", CDN)  # the CDN answers a download only when the test lets it through

    async def request(member: object, name: str) -> object:
        files = {"content": (f"{name}-content.png", CONTENT), "style": (f"{name}-style.png", STYLE)}
        return await fd.slash_command("stylize", {**files, "steps": 2}, user=member)

    def member_of(r: object) -> str:
        return r.path.rsplit("/", 1)[-1].split("-")[0].rstrip("0123456789")  # type: ignore[attr-defined]

    def in_flight(who: str | None = None) -> int:
        return sum(1 for r in held.waiting if who is None or member_of(r) == who)

    def settled(left: int) -> bool:
        """Every download the bot has not finished is either at the CDN or waiting for a slot."""
        return slots.active == len(held.waiting) and slots.active + slots.waiting == left

    # Alice's two requests: two of her images download, her other two wait for her own slots.
    asks = [await request(alice, "alice1"), await request(alice, "alice2")]
    await fd.wait_until(lambda: settled(4) and in_flight() == 2, 30, "alice at her own cap")
    # Bob takes the last shared slot; his second image and both of Carol's wait for one.
    asks.append(await request(bob, "bob1"))
    asks.append(await request(carol, "carol1"))
    await fd.wait_until(lambda: settled(8) and in_flight() == 3, 30, "every shared slot taken")
    # One download at a time: each finished one lets exactly one more start, never past a cap.
    for left in range(7, 0, -1):
        held.let_through(1)
        await fd.wait_until(lambda left=left: settled(left), 30, f"{left} downloads left")
        assert in_flight() == min(3, left) and max(in_flight(m) for m in ("alice", "bob", "carol")) <= 2
    assert held.peak == 3
    held.release()
    done = [await bot_env.wait_done(inter) for inter in asks]
    assert len({job_id_of(m) for m in done}) == 4
    assert slots.active == slots.waiting == 0 and not slots._members


async def test_a_shutdown_answers_requests_still_downloading(bot_env: BotEnv) -> None:
    """Requests let in before SIGTERM whose images are still on their way are told the bot is
    restarting while it can still answer, not left thinking (or answered into a closed session)."""
    fd = bot_env.fd
    await bot_env.start_bot()
    held = fd.hold("GET", CDN)  # the images never arrive before the bot stops
    slash = await bot_env.stylize()
    bob = bot_env.add_member("bob")  # (a member downloads two images at a time)
    mention = await fd.post_message(
        fd.channel, bob, f"<@{fd.bot_user.id}>", attachments=[("a.png", CONTENT), ("b.png", STYLE)]
    )
    await fd.wait_until(lambda: len(held.waiting) == 4, 30, "both requests' downloads")

    await bot_env.stop_bot()
    assert await bot_env.wait_ephemeral(slash) == messages.RESTARTING
    replies = [m for m in fd.messages_in(fd.channel.id) if (m.reference or {}).get("message_id") == str(mention.id)]
    assert [m.content for m in replies] == [messages.RESTARTING]
    held.release()
