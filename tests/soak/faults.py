"""The faults a public bot meets, injected while members use it: a worker killed (SIGKILL) and a
worker hung (SIGSTOP) in the middle of a job, a restart (SIGTERM, then a new process on the same
data directory), and 429s on edits and uploads beyond the fake's strict limits.

Each fault waits for a moment when it hurts: a worker busy with a job while others wait. Whether
it landed is read back from what the bot then did (a job failed with its worker; the hung worker
was killed and its job failed for the executor's time limit), and a kill that hit a worker between
jobs is tried again.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from bot import messages
from soak.botproc import BotProcess
from soak.members import Load
from soak.world import TERMINAL

KILL_TRIES = 3
EDIT_ROUTES = (
    ("PATCH", "/channels/{c}/messages/{m}"),
    ("PATCH", "/webhooks/{a}/{t}/messages/{m}"),
    ("POST", "/channels/{c}/messages"),
    ("POST", "/webhooks/{a}/{t}"),
)


@dataclass
class FaultLog:
    kills: list[int] = field(default_factory=list)  # worker pids sent SIGKILL
    kill_landed: bool = False
    stops: list[int] = field(default_factory=list)  # worker pids sent SIGSTOP
    stop_landed: bool = False
    restarts: int = 0
    in_flight_at_restart: dict[str, int] = field(default_factory=dict)  # jobs queued/running at SIGTERM
    notes: list[str] = field(default_factory=list)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _failed_for(load: Load, reason: str) -> int:
    """Jobs whose message shows they failed for the executor's `reason`."""
    text = messages.failure(None, reason)
    return sum(1 for m in load.view.bot_messages() if TERMINAL["failed"] in m.content and text in m.content)


async def _busy_worker(load: Load, bot: BotProcess, rng: random.Random, timeout: float) -> int | None:
    """A worker running a job while another job waits (so it is not between jobs for long)."""

    def pick() -> int | None:
        counts = load.view.counts()
        if counts.get("queued", 0) + counts.get("running", 0) < 2:
            return None
        busy = bot.busy_workers()
        return rng.choice(busy) if busy else None

    try:
        return await load.fd.wait_until(pick, timeout, "a busy worker with jobs waiting")
    except TimeoutError:
        return None


async def inject(load: Load, bot: BotProcess, restart: Callable[[], Awaitable[None]], *, kill_grace: float) -> FaultLog:
    """Kill a busy worker, restart the bot, then hang a busy worker; sets `load.faults_done`."""
    rng = random.Random(load.params.seed + 1)
    log = FaultLog()
    fd = load.fd
    try:
        for _ in range(KILL_TRIES):
            pid = await _busy_worker(load, bot, rng, timeout=180)
            if pid is None:
                log.notes.append("no worker was busy with jobs waiting: no SIGKILL")
                break
            lost_before = _failed_for(load, "worker_lost")
            os.kill(pid, signal.SIGKILL)
            log.kills.append(pid)
            load.note(f"SIGKILL worker {pid}")
            try:
                await fd.wait_until(lambda b=lost_before: _failed_for(load, "worker_lost") > b, 60, "a lost job")
                log.kill_landed = True
                load.note("a job failed with its worker")
                break
            except TimeoutError:
                log.notes.append(f"SIGKILL of worker {pid} hit it between jobs; trying again")

        # The restart: while jobs wait and run, so some are paused and resumed by the next process.
        def backlog() -> bool:
            counts = load.view.counts()
            return counts.get("running", 0) > 0 and counts.get("queued", 0) > 0

        with contextlib.suppress(TimeoutError):
            await fd.wait_until(backlog, 90, "jobs running and waiting")
        load.note(f"restart with {load.view.counts()}")
        log.in_flight_at_restart = {k: v for k, v in load.view.counts().items() if k in ("queued", "running", "paused")}
        await restart()
        log.restarts += 1

        # The hang: no cancel may reach the stopped worker's job (its stop request would get the
        # worker killed too), so the executor's job timeout is what has to catch it. Which job that
        # is cannot be seen from outside: cancels wait until the worker is chosen and the ones sent
        # have been carried out; then only cancels of jobs accepted before the SIGSTOP wait (the bot
        # writes a job's row before it queues the job), since a later one cannot be on that worker.
        load.freeze(None)
        with contextlib.suppress(TimeoutError):
            await fd.wait_until(lambda: load.cancels_pending() == 0, 60, "cancelled jobs to end")
        pid = await _busy_worker(load, bot, rng, timeout=180)
        if pid is None:
            log.notes.append("no worker was busy with jobs waiting after the restart: no SIGSTOP")
        else:
            timed_out_before = _failed_for(load, "timeout")
            os.kill(pid, signal.SIGSTOP)
            load.freeze(bot.job_ids())
            log.stops.append(pid)
            load.note(f"SIGSTOP worker {pid}")
            # The executor stops a job after job_timeout, then kills a worker that does not answer.
            deadline = load.params.job_timeout + 2 * kill_grace + 60
            try:
                await fd.wait_until(lambda: not _alive(pid), deadline, "the hung worker to be killed")
                load.note(f"the executor killed the stopped worker {pid}")
                await fd.wait_until(
                    lambda: _failed_for(load, "timeout") > timed_out_before, 60, "its job to fail for the time limit"
                )
                log.stop_landed = True
                load.note("its job failed for the time limit")
            except TimeoutError as exc:
                log.notes.append(f"the stopped worker {pid}: {exc}")
    finally:
        load.thaw()
        load.faults_done.set()
    return log


async def sprinkle_429s(load: Load) -> None:
    """Force a 429 on an edit or upload route each time the number of jobs crosses a random mark."""
    rng = random.Random(load.params.seed + 2)
    p = load.params
    expected = max(2, int(p.members * p.actions_per_member * (1 - p.hostile_share)))
    marks = sorted(rng.randint(1, expected) for _ in range(p.forced_429s))
    for mark in marks:
        await load.fd.wait_until(lambda m=mark: len(load.view.messages_by_job()) >= m, 10**6, "jobs")
        method, pattern = rng.choice(EDIT_ROUTES)
        load.fd.rate_limits.force_429(method, pattern, times=1, retry_after=round(rng.uniform(0.2, 1.5), 3))
