"""Fixtures and helpers for StyleBot's end-to-end tests.

Loaded with ``pytest_plugins = ["bot_fixtures"]`` by tests/test_bot_*.py so that the
session-scoped executor exists once for all of them. Everything runs in the session event
loop (the executor's worker stays warm between tests); each test gets a fresh fake Discord
on 127.0.0.1 and a fresh data directory, and drives the real discord.py client running the
real bot. Tests assert on the requests the bot made, as recorded by the fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest_asyncio
from fakediscord import Channel, FakeDiscord, Interaction, Member, Message, Perm, RecordedRequest
from PIL import Image
from worker_hooks import LONG_RUNS

from bot.bot import StyleBot
from bot.config import BotConfig
from bot.db import Database, JobRecord
from stylecore.executors import ExecutorConfig, make_executor
from stylecore.executors.admission import Reservation
from stylecore.executors.backend import Backend, Emit, SlotListener
from stylecore.executors.base import (
    Executor,
    Job,
    JobEvent,
    JobHandle,
    JobResult,
    JobState,
    QueueEntry,
    WorkersUnavailable,
)
from stylecore.executors.dispatcher import Dispatcher
from stylecore.imageio import IsolatedDecoder

# Test-sized defaults for every server: tiny images, few steps, fast previews, no cooldown.
TEST_GUILD_DEFAULTS: dict[str, Any] = {
    "default_size": 48,
    "max_size": 96,
    "default_steps": 6,
    "max_steps": 2000,
    "preview_interval": 0.5,
    "max_jobs_per_user": 3,
    "cooldown_seconds": 0.0,
}
# A job that keeps the one CPU worker busy until the test cancels it: long in steps (the most the
# defaults allow), never in pixels, so no test depends on how fast the machine is.
LONG_JOB: dict[str, Any] = {"size": 32, "steps": TEST_GUILD_DEFAULTS["max_steps"]}
EDIT_INTERVAL = 0.3  # the configured minimum between progress edits (3 s in production)
JOB_TIMEOUT = 120.0  # generous: the machine is shared and CPU-bound


def make_png(width: int, height: int, seed: int = 0) -> bytes:
    """A small structured test image (gradients plus noise), PNG-encoded."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / max(1, width - 1), y / max(1, height - 1), (x + y) / max(1, width + height - 2)], -1)
    arr = np.clip(base * 200 + rng.normal(0, 25, (height, width, 3)), 0, 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


CONTENT = make_png(80, 60, 1)
STYLE = make_png(64, 64, 2)


def image_of(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


class _HeldHandle(JobHandle):
    """A real job's handle whose end is held back until the test opens the gate."""

    def __init__(self, inner: JobHandle, gate: asyncio.Event) -> None:
        self.inner, self.gate, self.job_id = inner, gate, inner.job_id

    async def events(self) -> AsyncIterator[JobEvent]:
        async for ev in self.inner.events():
            if ev.terminal:
                await self.gate.wait()
            yield ev

    async def cancel(self) -> bool:
        return await self.inner.cancel()

    async def result(self) -> JobResult:
        return await self.inner.result()

    @property
    def state(self) -> JobState:
        return self.inner.state


class GatedExecutor(Executor):
    """The shared real executor, with a gate on every job's terminal event.

    The gate is open unless a test closes it; then the bot sees a job's progress but not its
    end, so a test can wait for a progress edit to appear (a condition) instead of hoping the
    job is slow enough for one (a timing assumption that fails on a fast CPU). `unavailable`
    (a reason) makes every submission and reservation refused as a real executor refuses them
    while none of its workers can start; `refused` counts those refusals.
    """

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.gate.set()
        self.unavailable: str | None = None
        self.refused = 0

    async def start(self) -> None:
        await self.inner.start()

    def _check_available(self) -> None:
        if self.unavailable is not None:
            self.refused += 1
            raise WorkersUnavailable(f"no worker is running ({self.unavailable}); try again in a few minutes")

    def reserve(
        self, user_id: str, group: str | None = None, max_active: int | None = None, *, timeout: float | None = None
    ) -> Reservation:
        self._check_available()
        return self.inner.reserve(user_id, group, max_active, timeout=timeout)

    async def submit(self, job: Job, *, reservation: Reservation | None = None, readmit: bool = False) -> JobHandle:
        self._check_available()
        return _HeldHandle(await self.inner.submit(job, reservation=reservation, readmit=readmit), self.gate)

    def get(self, job_id: str) -> JobHandle | None:
        return self.inner.get(job_id)

    def queue(self) -> list[QueueEntry]:
        return self.inner.queue()

    def workers(self) -> list[dict[str, Any]]:
        return self.inner.workers()

    async def shutdown(self, grace: float = 30.0) -> list[Job]:
        return await self.inner.shutdown(grace)

    def __getattr__(self, name: str) -> Any:  # backend extras, e.g. worker_pids()
        return getattr(self.inner, name)


class StartingBackend(Backend):
    """Worker slots that stay "starting" for ever: jobs queue in the real dispatcher (positions,
    ETAs, fairness) and none ever runs, so a test can fill a queue as long as it likes."""

    def __init__(self, config: ExecutorConfig) -> None:
        self.slots = 1

    async def start(self, listener: SlotListener) -> None:
        pass

    async def run(self, slot: int, jobs: list[Job], emit: Emit) -> None:
        raise AssertionError("no slot was ever ready")

    def request_cancel(self, slot: int, job_id: str) -> None:
        pass

    async def kill(self, slot: int) -> None:
        pass

    async def close(self) -> None:
        pass

    def worker_info(self) -> list[dict[str, Any]]:
        return [{"slot": 0, "ready": False, "state": "starting", "pid": None}]


def idle_executor(**fields: Any) -> Dispatcher:
    """A real dispatcher over `StartingBackend` (start it before use)."""
    config = ExecutorConfig(**fields)
    return Dispatcher(StartingBackend(config), config)


class BotEnv:
    """One fake Discord plus the bots a test starts against it (same data dir unless told)."""

    def __init__(self, fd: FakeDiscord, data_dir: Path, executor: Executor) -> None:
        self.fd = fd
        self.data_dir = data_dir
        self.executor = GatedExecutor(executor)
        self.bot: StyleBot | None = None
        self._stack = contextlib.AsyncExitStack()
        self._bots: list[tuple[StyleBot, contextlib.AbstractAsyncContextManager[Any]]] = []

    def config(self, **overrides: Any) -> BotConfig:
        defaults = dict(TEST_GUILD_DEFAULTS)
        defaults.update(overrides.pop("guild_defaults", {}))
        base: dict[str, Any] = dict(
            token=self.fd.token,
            data_dir=self.data_dir,
            executor="local",
            workers=1,
            device="cpu",
            worker_setup_hook=LONG_RUNS,  # for a bot that builds its own executor: long jobs stay long
            health_host="127.0.0.1",
            health_port=0,
            api_base=self.fd.api_base,
            gateway_url=self.fd.gateway_url,
            edit_interval=EDIT_INTERVAL,
            shutdown_grace=0.0,
            dev_guild_id=self.fd.guild.id,
            guild_defaults=defaults,
        )
        base.update(overrides)
        return BotConfig(**base)

    async def start_bot(
        self,
        *,
        own_executor: bool = False,
        executor: Executor | None = None,
        decoder: IsolatedDecoder | None = None,
        **overrides: Any,
    ) -> StyleBot:
        """Start a bot and wait for on_ready; `own_executor` makes it build its own from config,
        `executor` hands it one the test made (and started) itself, and `decoder` replaces the image
        checker it builds from config (the test closes that one)."""
        bot = StyleBot(
            self.config(**overrides),
            executor=None if own_executor else executor or self.executor,
            decoder=decoder,
            guild_ready_timeout=0.1,
        )
        cm = self.fd.running(bot, ready_timeout=180.0 if own_executor else 30.0)
        await cm.__aenter__()
        self._bots.append((bot, cm))
        self.bot = bot
        return bot

    async def stop_bot(self, bot: StyleBot | None = None) -> None:
        bot = bot or self.bot
        for i, (b, cm) in enumerate(self._bots):
            if b is bot:
                del self._bots[i]
                await cm.__aexit__(None, None, None)
                break
        if self.bot is bot:
            self.bot = None

    async def close(self) -> None:
        while self._bots:
            await self.stop_bot(self._bots[-1][0])

    # -- driving -------------------------------------------------------------------------

    def hold_results(self) -> None:
        """Jobs of bots on the shared executor report progress but not their end until `release_results`."""
        self.executor.gate.clear()

    def release_results(self) -> None:
        self.executor.gate.set()

    def add_member(self, name: str) -> Member:
        st = self.fd.state
        return st.add_member(self.fd.guild, st.add_user(name, global_name=name.title()))

    def add_server(self, name: str, *members: Member) -> tuple[Channel, list[Member]]:
        """Another server with the bot and these members in it, and its one channel. Call it before
        the bot starts: the server reaches the bot with READY, as every server it is in does."""
        st = self.fd.state
        guild = st.add_guild(name, self.fd.owner)
        role = st.add_role(guild, "StyleBot", Perm.BOT_DEFAULT, bot_id=st.bot_user.id)
        st.add_member(guild, st.bot_user, [role])
        there = [st.add_member(guild, m.user) for m in members]
        return st.add_channel("art", guild=guild), there

    async def store_jobs(self, *records: JobRecord, content: bytes = CONTENT, style: bytes = STYLE) -> None:
        """Jobs a previous bot process accepted and left unfinished, in the database the next one opens."""
        db = Database(self.config().db_path)
        await db.open()
        try:
            for record in records:
                await db.add_job(record, content, style, ttl=3600.0)
        finally:
            await db.close()

    async def stylize(
        self,
        user: Member | None = None,
        content: bytes = CONTENT,
        style: bytes = STYLE,
        *,
        channel: Channel | None = None,
        **options: Any,
    ) -> Interaction:
        return await self.fd.slash_command(
            "stylize",
            {"content": ("content.png", content), "style": ("style.png", style), **options},
            user=user or self.fd.member,
            channel=channel,
        )

    async def wait_done(self, inter: Interaction, timeout: float = JOB_TIMEOUT) -> Message:
        """The interaction's message once it shows the finished result."""
        return await self.fd.wait_for_original(
            inter, lambda m: "**Done**" in m.content and bool(m.attachments), timeout=timeout
        )

    async def wait_edit_with_file(self, inter: Interaction, filename: str, timeout: float = JOB_TIMEOUT) -> None:
        """Some edit of the interaction's message has carried a file named `filename`."""

        def check() -> bool:
            msg = self.fd.original_message(inter)
            return msg is not None and any(any(f.filename == filename for f in r.files) for r in self.edits_of(msg.id))

        await self.fd._wait_until(check, timeout, f"an edit of {inter.id} with {filename}")

    async def wait_text(self, inter: Interaction, text: str, timeout: float = JOB_TIMEOUT) -> Message:
        return await self.fd.wait_for_original(inter, lambda m: text in m.content, timeout=timeout)

    async def wait_ephemeral(self, inter: Interaction, timeout: float = 10.0) -> str:
        """Text of the private answer: an ephemeral response or an ephemeral follow-up."""

        def check() -> str | None:
            for cb in inter.callbacks:
                data = cb.get("data") or {}
                if cb.get("type") == 4 and data.get("flags", 0) & 64:
                    return str(data.get("content"))
            for m in self.fd.followups(inter):
                if m.ephemeral:
                    return m.content
            msg = self.fd.original_message(inter)
            if msg is not None and msg.ephemeral and not msg.loading:
                return msg.content
            return None

        return await self.fd._wait_until(check, timeout, f"ephemeral answer to {inter.id}")

    async def wait_state(self, job_id: str, state: str, timeout: float = 10.0) -> None:
        """The job's row reaches `state` (written right after its final message is delivered)."""
        assert self.bot is not None
        db = self.bot.db
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            rec = await db.get_job(job_id)
            if rec is not None and rec.state == state:
                return
            if loop.time() > deadline:
                raise AssertionError(f"job {job_id} is {rec and rec.state!r}, expected {state!r}")
            await asyncio.sleep(0.05)

    def edits_of(self, message_id: int, *, via: str = "any") -> list[RecordedRequest]:
        """Every edit request for one message, by token (webhook) or bot token (channel), in order."""
        hook = re.compile(r"/webhooks/\d+/[^/]+/messages/(@original|\d+)")
        chan = re.compile(rf"/channels/\d+/messages/{message_id}")
        out = []
        for r in self.fd.requests:
            if r.method != "PATCH" or not r.done:
                continue
            if (via in ("any", "webhook") and hook.fullmatch(r.path) and _edited_id(r) == message_id) or (
                via in ("any", "channel") and chan.fullmatch(r.path)
            ):
                out.append(r)
        return out


def _edited_id(r: RecordedRequest) -> int | None:
    resp = r.response if isinstance(r.response, dict) else None
    return int(resp["id"]) if resp and "id" in resp else None


def assert_throttled(edits: list[RecordedRequest], minimum: float = EDIT_INTERVAL) -> None:
    """Consecutive edits of one message arrive at least `minimum` seconds apart."""
    times = [r.at for r in edits]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g >= minimum - 0.02 for g in gaps), f"edits closer than {minimum}s: {gaps}"


def custom_ids(message: Message, prefix: str = "stylebot:") -> list[str]:
    return [c for c in message.custom_ids if c.startswith(prefix)]


def job_id_of(message: Message) -> str:
    m = re.search(r"job `([0-9a-f]+)`", message.content)
    assert m, f"no job id in {message.content!r}"
    return m.group(1)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def style_executor() -> AsyncIterator[Executor]:
    """One warm CPU worker shared by every bot the tests start."""
    ex = make_executor(
        "local",
        workers=1,
        device="cpu",
        max_queue=20,
        max_per_user_queued=5,
        kill_grace=3.0,
        worker_setup_hook=LONG_RUNS,  # a long test job stays long: no early stop
    )
    await ex.start()
    try:
        yield ex
    finally:
        await ex.shutdown(grace=0)


@pytest_asyncio.fixture(loop_scope="session")
async def bot_env(style_executor: Executor, tmp_path: Path) -> AsyncIterator[BotEnv]:
    async with FakeDiscord() as fd:
        e = BotEnv(fd, tmp_path / "data", style_executor)
        try:
            yield e
        finally:
            e.release_results()
            await e.close()


Predicate = Callable[[Message], bool]
