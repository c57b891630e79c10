"""Members using the bot at the same time, the three ways Discord offers: /stylize, a reply (or one
message with two images) that mentions the bot, and the "Stylize this image" context menu with its
form. Some requests carry a bad or hostile image; some accepted jobs are cancelled by their owner
at a random moment, with the button or with /cancel.

Every request is recorded as an `Attempt` with the answer the member saw; the audit judges them.
Members pause while the bot restarts (`Load.gate`), as people would see it offline; requests
already sent when the restart begins are answered (or not) by the bot as it drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

from fakediscord import FakeDiscord, Interaction, Member, Message

from bot import messages
from soak.images import Hostile, photo
from soak.params import SoakParams
from soak.world import JOB_ID, TERMINAL, JobView, Server, SoakMember

FLOWS = ("slash", "slash", "reply", "two_images", "menu")
LIMIT_REFUSAL = messages.too_many_jobs(["x"], 9).partition("1 job")[0]  # how every limit refusal starts
ANSWER_TIMEOUT = 60.0  # a member gives up waiting (the audit looks again at the end)
FORM_SECONDS = (1.0, 3.0)  # how long a member takes to fill in the context menu's form


@dataclass
class Attempt:
    """One request and what the member saw in answer."""

    member: str
    server: str
    flow: str
    hostile: Hostile | None = None
    what: str | None = None  # which image was hostile: "content image" or "style image"
    at: float = field(default_factory=time.monotonic)
    interaction: Interaction | None = None  # the one whose answer counts (the form's, for the menu)
    request: Message | None = None  # the message that mentioned the bot (reply flows)
    answer: str | None = None
    job_id: str | None = None
    error: str | None = None  # the fake refused to send it (a driver problem, not the bot's)


@dataclass
class Cancel:
    """A member's cancel of one of their jobs: how, at which moment, and the answer."""

    job_id: str
    how: str  # "button" | "command"
    moment: str  # "accepted" | "queued" | "running"
    sent: bool = False
    answer: str | None = None
    note: str | None = None


@dataclass
class Load:
    """Everything the members share: the fake, the seeded randomness and the restart gate."""

    fd: FakeDiscord
    params: SoakParams
    hostiles: list[Hostile]
    view: JobView
    attempts: list[Attempt] = field(default_factory=list)
    cancels: list[Cancel] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)  # set while the bot takes requests
    in_flight: int = 0  # members in the middle of sending a request
    faults_done: asyncio.Event = field(default_factory=asyncio.Event)
    frozen: set[str] | None = field(default_factory=set)  # jobs not to be cancelled now (None: any job)
    freeze_changed: asyncio.Event = field(default_factory=asyncio.Event)  # set when `frozen` changes
    started: float = field(default_factory=time.monotonic)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    timeline: list[tuple[float, str]] = field(default_factory=list)

    def note(self, text: str) -> None:
        """A moment worth showing in the summary (faults, restarts, phases)."""
        self.timeline.append((time.monotonic() - self.started, text))

    @contextlib.asynccontextmanager
    async def turn(self, *, cancelling: str | None = None) -> Any:
        """Send only while the bot is up (and no cancel of a job that may be on a hung worker); the
        restart waits for requests being sent to be out."""
        while not self.gate.is_set() or (cancelling is not None and self.is_frozen(cancelling)):
            await (self.freeze_changed if self.gate.is_set() else self.gate).wait()
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def keep_going(self, done: int) -> bool:
        """A member goes on until their share is done (a number of requests, or the minutes of the
        full profile), and beyond it while the faults still wait for their moment, within a cap."""
        p = self.params
        elapsed = time.monotonic() - self.started
        if p.minutes is None:
            if done < p.actions_per_member:
                return True
            within_cap = done < max(4 * p.actions_per_member, 40)
        else:
            if elapsed < p.minutes * 60:
                return True
            within_cap = elapsed < 2 * p.minutes * 60
        return within_cap and not self.faults_done.is_set()

    def __post_init__(self) -> None:
        self.freeze_changed.set()

    def freeze(self, jobs: set[str] | None) -> None:
        """Hold back cancels of `jobs` (None: of every job) until `thaw`: a hung worker's job must be
        caught by the job timeout, not by the stop request a cancel sends."""
        self.frozen = None if jobs is None else set(jobs)
        self.freeze_changed.set()  # the cancels waiting now look again (at the new set)
        self.freeze_changed = asyncio.Event()

    def is_frozen(self, job_id: str) -> bool:
        return self.frozen is None or job_id in self.frozen

    def thaw(self) -> None:
        self.frozen = set()
        self.freeze_changed.set()

    def cancels_pending(self) -> int:
        """Cancels sent whose job has not ended yet (its worker may still be stopping it)."""
        return sum(1 for c in self.cancels if c.sent and self.view.state_of(c.job_id) not in TERMINAL)

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def interaction_answer(fd: FakeDiscord, inter: Interaction) -> str | None:
    """What the member sees in answer: the job's message, or a private reply."""
    msg = fd.original_message(inter)
    if msg is not None and not msg.loading and not msg.ephemeral and JOB_ID.search(msg.content):
        return msg.content
    for cb in inter.callbacks:
        data = cb.get("data") or {}
        if cb.get("type") == 4 and data.get("flags", 0) & 64:
            return str(data.get("content"))
    for m in fd.followups(inter):
        if m.ephemeral:
            return m.content
    if msg is not None and not msg.loading:
        return msg.content
    return None


def reply_answer(fd: FakeDiscord, request: Message) -> str | None:
    """The bot's reply to a message that mentioned it: the job's message or the refusal."""
    for m in fd.messages_in(request.channel_id):
        if m.author.id == fd.bot_user.id and (m.reference or {}).get("message_id") == str(request.id):
            return m.content
    return None


class MemberScript:
    """One member's requests, made one after another (each member has its own seeded RNG)."""

    def __init__(self, load: Load, person: SoakMember, index: int) -> None:
        self.load, self.person = load, person
        self.rng = random.Random(load.params.seed * 7919 + index)
        self.jobs: list[str] = []

    def active(self) -> int:
        return sum(1 for j in self.jobs if self.load.view.state_of(j) not in TERMINAL)

    async def run(self) -> None:
        done = 0
        # A member's jobs in one server are capped by the server's setting, one below the operator's
        # cap across servers (see runner.bot_environment).
        limit = max(1, self.load.params.max_jobs_per_member - 1)
        while self.load.keep_going(done):
            refused = await self.request()
            done += 1
            # Most people wait for a job to finish before asking again, and everyone does after
            # being told they are at their limit; some ask again at once.
            if refused or self.rng.random() < 0.7:
                with contextlib.suppress(TimeoutError):
                    await self.load.fd.wait_until(lambda: self.active() < limit, 120, "a job of mine to end")

    async def request(self) -> bool:
        """Make one request; True if it was refused for the member's job limit."""
        load, rng = self.load, self.rng
        server, member = rng.choice(self.person.places)
        flow = rng.choice(FLOWS)
        hostile = None
        if rng.random() < load.params.hostile_share:
            hostile = rng.choice([h for h in load.hostiles if flow == "slash" or not h.slash_only])
        what = rng.choice(("content image", "style image")) if hostile else None
        attempt = Attempt(self.person.name, server.name, flow, hostile, what)
        load.attempts.append(attempt)
        files = self.files(attempt)
        try:
            async with load.turn():
                await self.send(attempt, server, member, files)
        except Exception as exc:  # the fake would not send it (e.g. a modal that never came)
            attempt.error = f"{type(exc).__name__}: {exc}"
            return False
        await self.wait_answer(attempt)
        if attempt.job_id is not None:
            self.jobs.append(attempt.job_id)
            if rng.random() < load.params.cancel_share:
                load.spawn(self.cancel(attempt.job_id, server, member))
        return (attempt.answer or "").startswith(LIMIT_REFUSAL)

    def files(self, attempt: Attempt) -> dict[str, tuple[str, bytes]]:
        rng = self.rng
        w, h = rng.choice(((80, 60), (60, 80), (64, 64), (96, 54)))
        out = {
            "content image": ("photo.png", photo(w, h, rng.randrange(10**6))),
            "style image": ("painting.png", photo(48, 48, rng.randrange(10**6))),
        }
        if attempt.hostile is not None and attempt.what is not None:
            out[attempt.what] = (attempt.hostile.filename, attempt.hostile.data)
        return out

    async def send(self, attempt: Attempt, server: Server, member: Member, files: dict[str, tuple[str, bytes]]) -> None:
        fd, rng, p = self.load.fd, self.rng, self.load.params
        content, style = files["content image"], files["style image"]
        mention = f"<@{fd.bot_user.id}>"
        if attempt.flow == "slash":
            options: dict[str, Any] = {"content": content, "style": style}
            options["size"] = rng.randint(*p.sizes)
            options["steps"] = rng.randint(*p.steps)
            if rng.random() < 0.3:
                options["strength"] = round(rng.uniform(0.5, 3.0), 2)
            attempt.interaction = await fd.slash_command("stylize", options, user=member, channel=server.channel)
        elif attempt.flow == "reply":
            shown = await fd.post_message(server.channel, member, "look at this", attachments=[content])
            attempt.request = await fd.post_message(
                server.channel, member, f"{mention} paint it like this", attachments=[style], reference=shown
            )
        elif attempt.flow == "two_images":
            attempt.request = await fd.post_message(server.channel, member, mention, attachments=[content, style])
        else:
            shown = await fd.post_message(server.channel, member, "new photo", attachments=[content])
            menu = await fd.context_menu("Stylize this image", shown, user=member)
            await fd.wait_for_modal(menu, timeout=ANSWER_TIMEOUT)
            # A person takes a moment to fill in a form. discord.py starts listening for the form's
            # submission only once the HTTP answer that opened it has come back to the bot, so a
            # submission sent the instant the form appears can reach the bot first and be dropped
            # (a race no person can win, and nothing the bot can observe or fix).
            await asyncio.sleep(rng.uniform(*FORM_SECONDS))
            strength = f"{rng.uniform(0.5, 3.0):.2f}"
            attempt.interaction = await fd.submit_modal(
                menu, {"stylebot:modal:style": [style], "stylebot:modal:strength": strength}, user=member
            )

    def answer_of(self, attempt: Attempt) -> str | None:
        fd = self.load.fd
        if attempt.interaction is not None:
            return interaction_answer(fd, attempt.interaction)
        if attempt.request is not None:
            return reply_answer(fd, attempt.request)
        return None

    async def wait_answer(self, attempt: Attempt) -> None:
        with contextlib.suppress(TimeoutError):
            await self.load.fd.wait_until(lambda: self.answer_of(attempt), ANSWER_TIMEOUT, "an answer")
        settle(self.load.fd, attempt)

    async def cancel(self, job_id: str, server: Server, member: Member) -> None:
        """Cancel at a random moment: as soon as accepted, while queued, or while running."""
        load, rng, view = self.load, self.rng, self.load.view
        how = rng.choice(("button", "command"))
        moment = rng.choice(("accepted", "queued", "running"))
        cancel = Cancel(job_id, how, moment)
        load.cancels.append(cancel)
        wanted = {"accepted": (), "queued": ("queued",), "running": ("running",)}[moment]
        if wanted:
            with contextlib.suppress(TimeoutError):
                await load.fd.wait_until(
                    lambda: view.state_of(job_id) in (*wanted, *TERMINAL), load.params.job_timeout * 4, "moment"
                )
        async with load.turn(cancelling=job_id):
            if view.state_of(job_id) in TERMINAL:
                cancel.note = "ended before the moment came"
                return
            if how == "button":
                message = next(
                    (m for m in view.messages_by_job().get(job_id, []) if f"stylebot:cancel:{job_id}" in m.custom_ids),
                    None,
                )
                if message is None:
                    cancel.note = "no Cancel button on its message any more"
                    return
                inter = await load.fd.click_button(message, f"stylebot:cancel:{job_id}", user=member)
            else:
                inter = await load.fd.slash_command("cancel", {"job": job_id}, user=member, channel=server.channel)
            cancel.sent = True
        try:
            cancel.answer = await load.fd.wait_until(
                lambda: interaction_answer(load.fd, inter), ANSWER_TIMEOUT, "the cancel's answer"
            )
        except TimeoutError:
            cancel.note = "no answer"


def settle(fd: FakeDiscord, attempt: Attempt) -> None:
    """Read the attempt's answer (again) from what the fake shows now."""
    if attempt.interaction is not None:
        attempt.answer = interaction_answer(fd, attempt.interaction)
    elif attempt.request is not None:
        attempt.answer = reply_answer(fd, attempt.request)
    found = JOB_ID.search(attempt.answer or "")
    attempt.job_id = found.group(1) if found else None


def describe(fd: FakeDiscord, attempt: Attempt) -> str:
    """What the fake shows of an attempt, for a problem report."""
    inter = attempt.interaction
    if inter is not None:
        original = fd.original_message(inter)
        shown = "none" if original is None else f"loading={original.loading} {original.content[:80]!r}"
        types = [cb.get("type") for cb in inter.callbacks]
        return f"interaction {inter.id}: callbacks {types}, original {shown}, followups {len(fd.followups(inter))}"
    if attempt.request is not None:
        return f"message {attempt.request.id} in channel {attempt.request.channel_id}"
    return "nothing was sent"
