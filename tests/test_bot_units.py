"""Unit tests for the bot's pure parts: server settings parsing, wording, the throttled progress
editor (with an injected clock) and log redaction. Config and database: test_config.py, test_db.py."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from bot import messages
from bot.checks import check_job_belongs_here
from bot.cogs.stylize.progress import Frame, MessageTarget, ProgressEditor
from bot.cogs.stylize.uploads import DownloadSlots
from bot.errors import JobElsewhere, describe
from bot.guild_settings import Ceilings, GuildSettings, SettingError, parse_setting
from bot.logs import RedactingFilter, RedactingFormatter
from stylecore.executors.base import QueueFull
from stylecore.imageio import NotAnImage
from stylecore.notes import CODES as NOTE_CODES
from stylecore.notes import Note

# -- guild settings -------------------------------------------------------------------------


def test_parse_setting_values_and_errors() -> None:
    assert parse_setting("max_size", " 768 ") == 768
    assert parse_setting("default_strength", "1.5") == 1.5
    assert parse_setting("allowed_channels", "<#123456789012345678>, 223456789012345678") == (
        123456789012345678,
        223456789012345678,
    )
    assert parse_setting("allowed_channels", "all") == ()
    with pytest.raises(SettingError, match="between 16 and 4096"):
        parse_setting("max_size", "9000")
    with pytest.raises(SettingError, match="whole number"):
        parse_setting("max_steps", "lots")
    with pytest.raises(SettingError, match="unknown setting"):
        parse_setting("colour", "red")
    with pytest.raises(SettingError, match="channel mentions"):
        parse_setting("allowed_channels", "#general")


def test_guild_settings_cross_checks_and_channels() -> None:
    s = GuildSettings(default_size=512, max_size=1024)
    with pytest.raises(SettingError, match=r"default_size .* max_size"):
        s.with_overrides({"max_size": 256}).check()
    s = s.with_overrides({"allowed_channels": [111]})
    assert s.allowed_channels == (111,)
    assert s.channel_allowed(111) and not s.channel_allowed(222)
    assert s.channel_allowed(222, parent_id=111)  # a thread under an allowed channel
    assert s.describe("allowed_channels") == "<#111>"


def test_ceilings_bound_what_admins_set_but_not_the_operators_defaults() -> None:
    base, bounds = GuildSettings(), Ceilings(max_size=2048, max_steps=2000, max_jobs_per_user=5, cooldown_seconds=5)
    for key, value, named in (
        ("max_size", 4096, "above this bot's ceiling of 2048 px"),
        ("max_steps", 100_000, "above this bot's ceiling of 2000"),
        ("max_jobs_per_user", 100, "above this bot's ceiling of 5"),
        ("cooldown_seconds", 0.0, "below this bot's minimum of 5 s"),
    ):
        with pytest.raises(SettingError, match=named):
            bounds.check(key, value, base)
    for key, value in (("max_size", 2048), ("max_steps", 2000), ("max_jobs_per_user", 5), ("cooldown_seconds", 5)):
        bounds.check(key, value, base)
    bounds.check("default_strength", 10.0, base)  # settings without a bound are the declarations' business
    # An operator's own default beyond a bound (STYLEBOT_COOLDOWN_SECONDS=0): admins may set it again.
    generous = GuildSettings(cooldown_seconds=0.0, max_size=4096)
    bounds.check("cooldown_seconds", 0.0, generous)
    bounds.check("max_size", 4096, generous)
    assert Ceilings.env_name("max_size") == "STYLEBOT_CEILING_MAX_SIZE"
    assert Ceilings.env_name("cooldown_seconds") == "STYLEBOT_FLOOR_COOLDOWN_SECONDS"
    assert set(Ceilings.bounded()) <= set(GuildSettings.__dataclass_fields__)


def test_overrides_beyond_a_lowered_ceiling_are_clamped_when_read() -> None:
    base = GuildSettings(default_size=256, max_size=512)
    stored = {"max_size": 1024, "default_size": 800, "cooldown_seconds": 6.0, "max_jobs_per_user": 4}
    assert Ceilings().apply(base, stored) == base.with_overrides(stored)  # within the default bounds
    lowered = Ceilings(max_size=640, max_jobs_per_user=3, cooldown_seconds=10.0).apply(base, stored)
    assert (lowered.max_size, lowered.default_size) == (640, 640)  # a default follows its maximum down
    assert (lowered.max_jobs_per_user, lowered.cooldown_seconds) == (3, 10.0)
    assert lowered.check() is lowered
    with pytest.raises(SettingError, match=r"STYLEBOT_CEILING_MAX_STEPS: .*whole number"):
        Ceilings.parse({"max_steps": "many"})


async def test_download_slots_cap_each_member_and_everyone() -> None:
    slots = DownloadSlots(total=3, per_member=2)
    release = asyncio.Event()
    now: dict[int, int] = {}

    async def download(member: int) -> None:
        async with slots.slot(member):
            now[member] = now.get(member, 0) + 1
            assert now[member] <= 2 and sum(now.values()) <= 3
            try:
                await release.wait()
            finally:
                now[member] -= 1

    async def settled() -> None:
        while sum(now.values()) != slots.active or slots.active + slots.waiting != sum(not t.done() for t in tasks):
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(download(m)) for m in (1, 1, 1, 2, 2, 3)]
    await settled()
    assert now == {1: 2, 2: 1} and slots.waiting == 3  # member 1's third waits on member 1's own cap
    tasks[0].cancel()  # a request ended while downloading: its slots go to the next in line
    await asyncio.wait([tasks[0]])
    await settled()
    assert sum(now.values()) == 3 and slots.waiting == 2
    release.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert slots.active == slots.waiting == 0 and not slots._members


# -- wording and errors ---------------------------------------------------------------------


def test_status_lines_name_the_card_and_what_fits() -> None:
    gpu = {
        "slot": 0,
        "ready": True,
        "device": "cuda",
        "gpu": "NVIDIA H200",
        "memory_total": 140 * 2**30,
        "memory_budget": 120 * 2**30,
        "max_side": 3000,
    }
    assert messages.worker_line(gpu) == "`0` cuda (NVIDIA H200, 140 GiB) · ready · jobs up to 3000 px fit in 120 GiB"
    down = {"slot": 1, "ready": False, "device": "cpu", "max_side": None}
    assert messages.worker_line(down) == "`1` cpu · down · no memory cap"
    text = messages.status("ray", [gpu, down], 1, 2, max_size=4096, default_size=512)
    assert "ray executor, 2 worker(s)" in text and "Jobs: 1 running, 2 waiting" in text
    assert "above what fits in a worker's memory (3000 px)" in text
    assert messages.size_warning(2048, [gpu, down]) is None


def test_render_texts() -> None:
    opts = {"size": 512, "steps": 300, "strength": 1.5, "preserve_colors": "luminance", "seed": 7}
    assert messages.settings_line(opts) == "size 512 px · 300 steps · strength 1.5 · colors luminance · seed 7"
    now = 1_800_000_000.0
    text = messages.running("abc123", opts, 150, 300, 65.0, 1234.5, now=now)
    assert "step 150/300 (50%)" in text and "done <t:1800000075:R>" in text and "loss 1.23e+03" in text
    # a queued job's eta runs to the end of its own run (JobEvent.eta), so it says when it is done
    assert "position 2 · done <t:1800000030:R>" in messages.queued("abc123", opts, 2, 30.0, now=now)
    assert "`abc123` queued, position 2, done <t:1800000030:R>" in messages.queue_entry(
        "abc123", "queued", position=2, eta=30.0, now=now
    )
    assert "you can start another job <t:1800000013:R>" in messages.cooldown(12.2, 30, now=now)
    assert messages.fmt_duration(3.25) == "3.2 s" and messages.fmt_duration(7300) == "2 h 01 min"
    # steps are a cap: a run that stopped early says where, so "300 steps" is not read as what it ran
    done = dict(seconds=5.0, width=64, height=48, device="cpu", fmt="png")
    assert "-# Converged at step 87 of 300" in messages.done("abc123", opts, converged_at=87, **done)
    assert "onverged" not in messages.done("abc123", opts, **done)


def test_times_are_discord_timestamps_that_move_only_when_the_estimate_does() -> None:
    # Discord shows <t:unix:R> in each reader's language and counts it down; an estimate that
    # shrinks as time passes keeps the same text, so the progress message is not edited for it.
    now = 1_800_000_000.0
    assert messages.fmt_when(40.0, now) == "<t:1800000040:R>"
    assert {messages.fmt_when(300.0 - dt, now + dt) for dt in (0.0, 1.0, 2.5, 4.0)} == {"<t:1800000300:R>"}
    assert messages.fmt_when(3601.0, now) == "<t:1800003660:R>"  # a minute's precision an hour out
    assert messages.fmt_when(None, now) is None and messages.fmt_when(float("nan"), now) is None


def test_describe_errors_are_specific() -> None:
    assert describe(NotAnImage("x"))[0].startswith("That file isn't an image")
    msg, expected = describe(QueueFull("50 jobs are waiting"))
    assert expected and "50 jobs are waiting" in msg
    msg, expected = describe(RuntimeError("boom"))
    assert not expected and "boom" not in msg
    assert "worker" in messages.failure("x", "worker_lost")


def test_every_executor_note_has_its_own_wording() -> None:
    """The executor's notes are data; the bot words each code itself (and reads an unknown one, from a
    newer executor, as the note's own English rather than failing)."""
    examples = {
        "ran_smaller": Note.of("ran_smaller", size=700, asked=1024, memory="gpu"),
        "oom_retry": Note.of("oom_retry", size=1024, smaller=716),
        "alone_after_oom": Note.of("alone_after_oom", jobs=3),
        "worker_lost_retry": Note.of("worker_lost_retry"),
    }
    assert set(examples) == set(NOTE_CODES)
    for code, note in examples.items():
        text = messages.executor_note(note)
        assert text and text[0].isupper() and text != str(note), code  # the bot's own words
    assert messages.executor_note(examples["ran_smaller"]) == "Ran at 700 px instead of 1024 px: not enough GPU memory"
    assert "not enough memory" in messages.executor_note(Note.of("ran_smaller", size=20, asked=32, memory="ram"))
    newer = Note("warmed_up", (("seconds", 3),))  # type: ignore[arg-type]
    assert messages.executor_note(newer) == "Warmed up (seconds 3)"
    assert messages.executor_note(None) is None


def test_a_dm_result_is_its_owners_alone() -> None:
    check_job_belongs_here(None, 7, None, 7)  # its owner, in DMs
    check_job_belongs_here(100, 7, 100, 8)  # anyone in the server it ran in
    refused = [
        (None, 7, None, 8),  # someone else's DM job
        (None, 7, 100, 7),  # a DM job, from a server
        (100, 7, None, 7),  # a server's job, from DMs
        (100, 7, 200, 7),  # another server's job
    ]
    for case in refused:
        with pytest.raises(JobElsewhere):
            check_job_belongs_here(*case)


def test_queue_pages_fit_whatever_the_lines() -> None:
    lines = [f"`{i:012x}` queued, position {i}, done in ~1 h 02 min — <@{10**18 + i}>" for i in range(100)]
    pages = messages.queue_pages(lines, admin=True, others=0)
    assert len(pages) == 7 and all(len(p) <= messages.MESSAGE_LIMIT for p in pages)
    assert [line for p in pages for line in p.splitlines()[1:]] == lines
    huge = messages.queue_pages(["x" * 5000, "y"], admin=False, others=0, per_page=10)
    assert all(len(p) <= messages.MESSAGE_LIMIT for p in huge) and huge[-1].endswith("y")
    assert messages.queue_pages([], admin=False, others=2) == [
        f"{messages.NO_ACTIVE_JOBS} (2 job(s) from others are in the queue.)"
    ]


# -- progress editor ------------------------------------------------------------------------


class FakeClock:
    """Time that only moves when the test (or a simulated request) moves it."""

    def __init__(self) -> None:
        self.t = 1000.0
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
        for deadline, fut in list(self._waiters):
            if deadline <= self.t + 1e-9 and not fut.done():
                fut.set_result(None)
        self._waiters = [(d, f) for d, f in self._waiters if not f.done()]

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self.t + seconds, fut))
        await fut


class RecordingTarget(MessageTarget):
    """Stands in for Discord: records when each edit happened on the injected clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.channel_id, self.message_id = 1, None
        self.edits: list[tuple[float, Frame]] = []

    async def edit(self, frame: Frame) -> None:
        self.clock.advance(0.2)  # every request takes a while
        self.edits.append((self.clock(), frame))


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_progress_editor_throttles_dedupes_and_delivers_final() -> None:
    clock = FakeClock()
    target = RecordingTarget(clock)
    editor = ProgressEditor(target, min_interval=3.0, preview_interval=10.0, clock=clock, sleep=clock.sleep)
    for step in range(1, 101):
        editor.show(Frame(f"step {step}", "cancel"))
        if step % 10 == 0:
            editor.preview(f"jpeg {step}".encode())
        clock.advance(0.25)  # 4 steps per second
        await _settle()
    for _ in range(30):  # let the last state and the last preview out
        clock.advance(0.5)
        await _settle()
    assert target.edits[-1][1].content == "step 100"
    # Unchanged state: no edits at all.
    before = len(target.edits)
    for _ in range(10):
        editor.show(Frame("step 100", "cancel"))
        clock.advance(1)
        await _settle()
    assert len(target.edits) == before
    finishing = asyncio.create_task(editor.finish(Frame("done", "result", files=(("out.png", b"png"),))))
    while not finishing.done():
        clock.advance(0.5)
        await _settle()

    times = [t for t, _ in target.edits]
    starts = [t - 0.2 for t in times]
    # From the end of one edit to the start of the next: never less than the minimum.
    assert all(b - a >= 3.0 - 1e-9 for a, b in zip(times, starts[1:], strict=False))
    assert 5 <= len(target.edits) <= 12  # ~25 s of updates at most one per 3 s, plus the final
    previews = [t for t, f in target.edits if f.files and f.files[0][0] == "preview.jpg"]
    assert previews and all(b - a >= 10.0 for a, b in itertools.pairwise(previews))
    assert target.edits[-1][1].content == "done" and target.edits[-1][1].files == (("out.png", b"png"),)
    contents = [f.content for _, f in target.edits if not f.files]
    assert len(contents) == len(set(contents))  # no edit repeats the previous text


async def test_progress_editor_final_retries_after_failures() -> None:
    import discord

    clock = FakeClock()

    class Flaky(RecordingTarget):
        fails = 2

        async def edit(self, frame: Frame) -> None:
            if self.fails:
                self.fails -= 1
                raise discord.HTTPException(_Resp(500), "server error")
            await super().edit(frame)

    target = Flaky(clock)
    editor = ProgressEditor(target, min_interval=3.0, clock=clock, sleep=clock.sleep)
    finishing = asyncio.create_task(editor.finish(Frame("done")))
    while not finishing.done():
        clock.advance(0.5)
        await _settle()
    assert finishing.result()
    assert [f.content for _, f in target.edits] == ["done"]


class _Resp:
    def __init__(self, status: int) -> None:
        self.status = status
        self.reason = "x"


# -- logging ----------------------------------------------------------------------------------


def test_redacting_filter_scrubs_tokens() -> None:
    f = RedactingFilter(["MTIz.secret.token"])
    record = logging.LogRecord(
        "discord.http",
        logging.DEBUG,
        __file__,
        1,
        "PATCH %s with token %s",
        ("https://x/api/v10/webhooks/123/aW50ZXJhY3Rpb24.abc-_/messages/@original", "MTIz.secret.token"),
        None,
    )
    f.filter(record)
    text = record.getMessage()
    assert "MTIz.secret.token" not in text and "aW50ZXJhY3Rpb24" not in text
    assert "/webhooks/123/[REDACTED]" in text
    # Gateway payloads dumped at DEBUG, and tracebacks, are scrubbed by the formatter too.
    fmt = RedactingFormatter("%(message)s", f)
    try:
        raise RuntimeError("{'token': 'aW50ZXJhY3Rpb24abc', 'id': '1'}")
    except RuntimeError:
        import sys

        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    out = fmt.format(rec)
    assert "aW50ZXJhY3Rpb24abc" not in out and "'token': '[REDACTED]'" in out
