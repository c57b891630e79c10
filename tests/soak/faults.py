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

from soak.botproc import BotProcess, is_alive
from soak.members import Load

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


def _failed_rows(rows: dict[str, tuple[str, str]], reason: str) -> int:
    return sum(1 for state, error in rows.values() if state == "failed" and error.startswith(reason))


def _outcome(bot: BotProcess, before: dict[str, tuple[str, str]], reason: str) -> str | None:
    """After a fault hit a worker (`before`: the bot's jobs just before): "landed" once a job has
    failed for `reason` in the bot's database, "missed" when every job that was running then has
    ended otherwise (the worker was between jobs), None until one of them is known."""
    rows = bot.job_states()
    if _failed_rows(rows, reason) > _failed_rows(before, reason):
        return "landed"
    running = [job for job, (state, _) in before.items() if state == "running"]
    return "missed" if all(rows.get(job, ("gone", ""))[0] != "running" for job in running) else None


async def _busy_worker(load: Load, bot: BotProcess, rng: random.Random, timeout: float) -> int | None:
    """A worker running a job while another job waits (so it is not between jobs for long)."""

    def pick() -> int | None:
        states = [state for state, _ in bot.job_states().values()]
        if "running" not in states or "queued" not in states:
            return None
        busy = bot.busy_workers()
        return rng.choice(busy) if busy else None

    try:
        return await load.fd.wait_until(pick, timeout, "a busy worker with jobs waiting")
    except TimeoutError:
        return None


async def _quiet_cancels(load: Load) -> None:
    """Hold back every cancel and let the ones sent be carried out: a worker hit by a fault must not
    also be stopping a cancelled job, or it is the cancel, not the fault, that the bot handles."""
    load.freeze(None)
    with contextlib.suppress(TimeoutError):
        await load.fd.wait_until(lambda: load.cancels_pending() == 0, 60, "cancelled jobs to end")


def _hit(
    load: Load, bot: BotProcess, pid: int, sig: signal.Signals, hits: list[int], *, hold_all: bool = False
) -> dict[str, tuple[str, str]]:
    """Send `sig` to a worker and record it in `hits`; the bot's jobs just before. Cancels of those
    jobs wait until `load.thaw()` (the bot writes a job's row before it queues the job). Cancels of
    later jobs go ahead unless `hold_all`: a killed worker takes no later job, but a stopped one
    that was between jobs is handed the next one, and that job must meet the time limit, not a
    cancel's stop request."""
    jobs = bot.job_states()
    os.kill(pid, sig)
    load.freeze(None if hold_all else set(jobs))
    hits.append(pid)
    load.note(f"{sig.name} worker {pid}")
    return jobs


async def _kill(load: Load, bot: BotProcess, rng: random.Random, log: FaultLog) -> None:
    """SIGKILL a worker in the middle of a job: that job fails as lost (tried again on a miss)."""
    await _quiet_cancels(load)
    for _ in range(KILL_TRIES):
        pid = await _busy_worker(load, bot, rng, timeout=180)
        if pid is None:
            log.notes.append("no worker was busy with jobs waiting: no SIGKILL")
            return
        before = _hit(load, bot, pid, signal.SIGKILL, log.kills)
        try:
            outcome = await load.fd.wait_until(lambda b=before: _outcome(bot, b, "worker_lost"), 60, "its job")
        except TimeoutError:
            outcome = "unseen"
        if outcome == "landed":
            log.kill_landed = True
            load.note("a job failed with its worker")
            return
        log.notes.append(f"SIGKILL of worker {pid}: {outcome} (it was between jobs); trying again")
        load.freeze(None)


async def _stop(load: Load, bot: BotProcess, rng: random.Random, log: FaultLog, *, kill_grace: float) -> None:
    """SIGSTOP a worker in the middle of a job: the executor's job timeout stops the job, then
    kills the worker that does not answer, and the job fails for the time limit."""
    await _quiet_cancels(load)
    pid = await _busy_worker(load, bot, rng, timeout=180)
    if pid is None:
        log.notes.append("no worker was busy with jobs waiting after the restart: no SIGSTOP")
        return
    before = _hit(load, bot, pid, signal.SIGSTOP, log.stops, hold_all=True)
    deadline = load.params.job_timeout + 2 * kill_grace + 60
    try:
        await load.fd.wait_until(lambda: not is_alive(pid), deadline, "the hung worker to be killed")
        load.note(f"the executor killed the stopped worker {pid}")
        # (a worker stopped between jobs is given one, so its job is the one that times out)
        await load.fd.wait_until(
            lambda: _outcome(bot, before, "timeout") == "landed", 60, "a job to fail for the time limit"
        )
    except TimeoutError as exc:
        log.notes.append(f"the stopped worker {pid}: {exc}")
        return
    log.stop_landed = True
    load.note("its job failed for the time limit")


async def inject(load: Load, bot: BotProcess, restart: Callable[[], Awaitable[None]], *, kill_grace: float) -> FaultLog:
    """Kill a busy worker, restart the bot, then hang a busy worker; sets `load.faults_done`."""
    rng = random.Random(load.params.seed + 1)
    log = FaultLog()
    fd = load.fd
    try:
        await _kill(load, bot, rng, log)
        load.thaw()

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

        await _stop(load, bot, rng, log, kill_grace=kill_grace)
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
