"""The fair queue both backends share: pure, synchronous and free of I/O so it can be
tested exhaustively and reasoned about without an event loop.

Fairness is "least recently served user first": a burst of ten jobs from one user does
not push everyone else back ten places, each waiting user gets one start per round.
Positions and ETAs come from simulating the queue over the worker slots with step times
measured on this machine, so they stay honest as the hardware or sizes change.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stylecore.executors.base import QueueFull, UserLimitReached


class StepTimeModel:
    """Seconds per optimisation step as a function of pixel count, learnt from real runs.

    Step cost grows roughly linearly with pixels, so samples are kept per power-of-two
    pixel bucket (an exponential moving average) and an unseen size is scaled linearly
    from the nearest measured bucket. Before any measurement the `prior` (seconds per
    step per megapixel) is used, so the first ETAs are rough but not absent.
    """

    def __init__(self, prior_per_mpx: float = 2.0, smoothing: float = 0.3) -> None:
        self.prior_per_mpx = prior_per_mpx
        self.smoothing = smoothing
        self._buckets: dict[int, tuple[int, float]] = {}  # bucket -> (pixels of last sample, s/step)

    @staticmethod
    def _bucket(pixels: int) -> int:
        return max(0, int(math.log2(max(1, pixels))))

    def observe(self, pixels: int, seconds_per_step: float) -> None:
        if not seconds_per_step > 0 or not math.isfinite(seconds_per_step):
            return
        b = self._bucket(pixels)
        old = self._buckets.get(b)
        value = seconds_per_step if old is None else old[1] + self.smoothing * (seconds_per_step - old[1])
        self._buckets[b] = (pixels, value)

    def seconds_per_step(self, pixels: int) -> float:
        if not self._buckets:
            return self.prior_per_mpx * pixels / 1e6
        b = self._bucket(pixels)
        if b in self._buckets:
            return self._buckets[b][1]
        nearest = min(self._buckets, key=lambda k: abs(k - b))
        ref_pixels, rate = self._buckets[nearest]
        return rate * pixels / max(1, ref_pixels)

    def job_seconds(self, pixels: int, steps: int) -> float:
        return self.seconds_per_step(pixels) * steps


@dataclass
class _Ticket:
    """A job as the queue sees it: whose it is, what it costs, and when it arrived (`seq`)."""

    job_id: str
    user_id: str
    pixels: int
    steps: int
    seq: int


@dataclass
class _User:
    queued: deque[_Ticket] = field(default_factory=deque)
    running: int = 0
    last_served: int = -1  # pick counter at the last start; -1 = never


@dataclass(frozen=True)
class QueuePlace:
    """Where a queued job stands: 1-based position in start order and seconds to done."""

    job_id: str
    position: int
    start_in: float
    eta: float


@dataclass(frozen=True)
class Batching:
    """How the dispatcher stacks queued jobs on one slot (see `FairScheduler.pick_more`), so
    that `plan` can foresee it: without this a queue of same-size jobs on a GPU would be
    planned one after another, its ETAs several times too long."""

    key_of: Callable[[str], Hashable | None]  # a job's batch key; None: it always runs alone
    max_batch: int
    window: int


class FairScheduler:
    """Per-user round robin with limits and a bounded queue.

    `add` refuses with an exception whose text is fit for the user; `pick` hands out the next
    job for a free slot (or None when every waiting user is at their running limit);
    `finish` returns a running job's user quota. Running jobs' remaining time is told to
    `plan` by the caller, which knows their progress.
    """

    def __init__(
        self,
        *,
        slots: int,
        max_queue: int = 50,
        max_per_user_queued: int = 3,
        max_per_user_running: int = 1,
        model: StepTimeModel | None = None,
    ) -> None:
        if slots < 1 or max_queue < 1 or max_per_user_queued < 1 or max_per_user_running < 1:
            raise ValueError("slots and every limit must be at least 1")
        self.slots = slots
        self.max_queue = max_queue
        self.max_per_user_queued = max_per_user_queued
        self.max_per_user_running = max_per_user_running
        self.model = model or StepTimeModel()
        self._users: dict[str, _User] = {}
        self._waiting: dict[str, _Ticket] = {}
        self._running: dict[str, _Ticket] = {}
        self._seq = itertools.count()
        self._picks = itertools.count()
        self._front: deque[str] = deque()  # retried jobs jump the round robin

    # -- admission ------------------------------------------------------------------------

    @property
    def queued_count(self) -> int:
        return len(self._waiting)

    def running_ids(self) -> list[str]:
        return list(self._running)

    def add(self, job_id: str, user_id: str, pixels: int, steps: int) -> None:
        """Queue a job or raise QueueFull / UserLimitReached with a reason fit for a user."""
        if job_id in self._waiting or job_id in self._running:
            raise ValueError(f"job {job_id} is already known")
        user = self._users.get(user_id)
        if user is not None and len(user.queued) >= self.max_per_user_queued:
            raise UserLimitReached(
                f"you already have {len(user.queued)} job(s) waiting (the limit is "
                f"{self.max_per_user_queued}); wait for one to start or cancel one"
            )
        if len(self._waiting) >= self.max_queue:
            wait = self._first_free_in()
            hint = f"; a slot should free up in about {_fmt_seconds(wait)}" if wait else ""
            raise QueueFull(f"the queue is full ({len(self._waiting)} jobs waiting); try again later{hint}")
        entry = _Ticket(job_id, user_id, pixels, steps, next(self._seq))
        self._users.setdefault(user_id, _User()).queued.append(entry)
        self._waiting[job_id] = entry

    def requeue_front(self, job_id: str) -> None:
        """Put a running job back at the head of the queue (its worker died; retry it next).

        Bypasses the queue bounds on purpose: the job was already admitted once.
        """
        entry = self._running.pop(job_id)
        user = self._users.setdefault(entry.user_id, _User())
        user.running -= 1
        user.queued.appendleft(entry)
        self._waiting[job_id] = entry
        self._front.append(job_id)

    def remove(self, job_id: str) -> bool:
        """Drop a queued job (cancel); False if it is not queued."""
        entry = self._waiting.pop(job_id, None)
        if entry is None:
            return False
        user = self._users[entry.user_id]
        user.queued.remove(entry)
        if job_id in self._front:
            self._front.remove(job_id)
        self._prune(entry.user_id)
        return True

    def drain(self) -> list[str]:
        """Remove every queued job, in the order they would have started (for shutdown)."""
        order = self.order()
        for job_id in order:
            self.remove(job_id)
        return order

    # -- dispatch -------------------------------------------------------------------------

    def pick(self) -> str | None:
        """The job a free slot should run next, now marked running; None if none may start."""
        entry = self._choose(self._users_view(), list(self._front))
        if entry is None:
            return None
        self._start(entry)
        return entry.job_id

    def pick_more(self, match: Callable[[str], bool], limit: int, window: int) -> list[str]:
        """After `pick`: up to `limit` more queued jobs to share the picked job's slot, now running.

        Only the next `window` jobs in round-robin order are considered, and each must satisfy
        `match` (the same batch key) and its user's running limit, so a job can move up at most
        `window - 1` places and never past what round robin would give it anyway. `plan`
        foresees the same choice (`Batching`).
        """
        taken = self._joiners(self._users_view(), list(self._front), lambda e: match(e.job_id), limit, window)
        for entry in taken:
            self._start(entry)
        return [entry.job_id for entry in taken]

    def _joiners(
        self,
        users: Mapping[str, Sequence[Any]],
        front: list[str],
        match: Callable[[_Ticket], bool],
        limit: int,
        window: int,
    ) -> list[_Ticket]:
        """Up to `limit` of the next `window` jobs in round-robin order that `match` and whose
        user may run one more job: what joins a stack, for `pick_more` and `plan` alike."""
        running = {uid: u[1] for uid, u in users.items()}
        out: list[_Ticket] = []
        for entry in _round_robin({uid: (u[0], u[2]) for uid, u in users.items()}, front, window):
            if len(out) >= limit:
                break
            if running[entry.user_id] < self.max_per_user_running and match(entry):
                out.append(entry)
                running[entry.user_id] += 1
        return out

    def _start(self, entry: _Ticket) -> None:
        user = self._users[entry.user_id]
        user.queued.remove(entry)
        user.running += 1
        user.last_served = next(self._picks)
        del self._waiting[entry.job_id]
        if entry.job_id in self._front:
            self._front.remove(entry.job_id)
        self._running[entry.job_id] = entry

    def finish(self, job_id: str, *, seconds: float | None = None, steps: int | None = None) -> None:
        """A running job ended; a measured run (seconds for steps) feeds the time model."""
        entry = self._running.pop(job_id, None)
        if entry is None:
            return
        if seconds and steps:
            self.model.observe(entry.pixels, seconds / steps)
        self._users[entry.user_id].running -= 1
        self._prune(entry.user_id)

    def _prune(self, user_id: str) -> None:
        # Forget idle users so memory stays bounded; a returning user then counts as new,
        # which is what round robin would give them anyway.
        user = self._users.get(user_id)
        if user is not None and not user.queued and user.running <= 0:
            del self._users[user_id]

    def _users_view(self) -> dict[str, tuple[list[_Ticket], int, int]]:
        return {uid: (list(u.queued), u.running, u.last_served) for uid, u in self._users.items()}

    def _choose(self, users: dict[str, tuple[list[_Ticket], int, int]], front: list[str]) -> _Ticket | None:
        for job_id in front:
            for queued, running, _ in users.values():
                for e in queued:
                    if e.job_id == job_id and running < self.max_per_user_running:
                        return e
        eligible = [
            (last, queued[0].seq, queued[0])
            for queued, running, last in users.values()
            if queued and running < self.max_per_user_running
        ]
        if not eligible:
            return None
        return min(eligible, key=lambda t: (t[0], t[1]))[2]

    # -- introspection --------------------------------------------------------------------

    def order(self) -> list[str]:
        """Queued job ids in the order they will start, if nothing else is submitted."""
        return [p.job_id for p in self.plan({})]

    def plan(
        self,
        running_left: dict[str, float],
        *,
        running_groups: Sequence[Sequence[str]] | None = None,
        batching: Batching | None = None,
    ) -> list[QueuePlace]:
        """Simulate the queue over the slots to give each queued job a position and ETA.

        `running_left` maps running job ids to their estimated seconds left (the caller
        knows their progress); running jobs not in it are assumed to need a full run.
        `running_groups` says which running jobs share a slot (a stack; default: each its
        own), and `batching` lets queued jobs form stacks as `pick_more` will. A user's next
        job can only start once one of theirs finishes, as in `pick`.
        """
        users = {uid: [list(q), r, last] for uid, (q, r, last) in self._users_view().items()}
        front = list(self._front)
        tie = itertools.count()
        busy: list[tuple[float, int, tuple[str, ...]]] = []  # (slot frees at, tiebreak, its jobs' users)
        groups = [list(g) for g in running_groups or []]
        grouped = {job_id for g in groups for job_id in g}
        groups += [[job_id] for job_id in self._running if job_id not in grouped]
        for group in groups:
            entries = [self._running[j] for j in group if j in self._running]
            if entries:
                left = max(running_left.get(e.job_id, self.model.job_seconds(e.pixels, e.steps)) for e in entries)
                heapq.heappush(busy, (max(0.0, left), next(tie), tuple(e.user_id for e in entries)))
        free = max(0, self.slots - len(busy))
        picks = itertools.count(max((u[2] for u in users.values()), default=-1) + 1)
        out: list[QueuePlace] = []
        now = 0.0

        def start(entry: _Ticket) -> None:
            user = users[entry.user_id]
            user[0].remove(entry)
            user[1] += 1
            user[2] = next(picks)
            if entry.job_id in front:
                front.remove(entry.job_id)

        while any(u[0] for u in users.values()):
            if free > 0:
                entry = self._choose({uid: (u[0], u[1], u[2]) for uid, u in users.items()}, front)
                if entry is not None:
                    start(entry)
                    stack = [entry, *self._plan_joiners(entry, users, front, batching)]
                    for member in stack[1:]:
                        start(member)
                    ends = [now + self.model.job_seconds(e.pixels, e.steps) for e in stack]
                    for e, end in zip(stack, ends, strict=True):
                        out.append(QueuePlace(e.job_id, len(out) + 1, now, end))
                    heapq.heappush(busy, (max(ends), next(tie), tuple(e.user_id for e in stack)))
                    free -= 1
                    continue
            # No free slot, or every waiting user is at their running limit: jump to the
            # next slot that frees up.
            if not busy:
                break
            finish_at, _, uids = heapq.heappop(busy)
            now = max(now, finish_at)
            for uid in uids:
                if uid in users:
                    users[uid][1] -= 1
            free += 1
        return out

    def _plan_joiners(
        self, head: _Ticket, users: dict[str, list], front: list[str], batching: Batching | None
    ) -> list[_Ticket]:
        """The queued jobs `pick_more` would stack with `head` (already started in `users`)."""
        if batching is None or batching.max_batch <= 1:
            return []
        key = batching.key_of(head.job_id)
        if key is None:
            return []
        return self._joiners(
            users, front, lambda e: batching.key_of(e.job_id) == key, batching.max_batch - 1, batching.window
        )

    def _first_free_in(self) -> float | None:
        if not self._running:
            return None
        return min(self.model.job_seconds(e.pixels, e.steps) for e in self._running.values())


def _round_robin(users: dict[str, tuple[list[_Ticket], int]], front: list[str], n: int) -> list[_Ticket]:
    """The next `n` queued jobs in fair order (retried jobs first, then least recently served
    user first), running limits aside: the window from which jobs may join a stack."""
    queues = {uid: list(q) for uid, (q, _) in users.items()}
    last = {uid: served for uid, (_, served) in users.items()}
    out: list[_Ticket] = []
    by_id = {e.job_id: e for q in queues.values() for e in q}
    for job_id in front:
        if len(out) < n and job_id in by_id:
            entry = by_id[job_id]
            queues[entry.user_id].remove(entry)
            out.append(entry)
    rounds = itertools.count(max(last.values(), default=-1) + 1)
    for uid in dict.fromkeys(e.user_id for e in out):  # (in order: deterministic)
        last[uid] = next(rounds)
    while len(out) < n:
        waiting = [(last[uid], q[0].seq, uid) for uid, q in queues.items() if q]
        if not waiting:
            break
        uid = min(waiting)[2]
        out.append(queues[uid].pop(0))
        last[uid] = next(rounds)
    return out


def _fmt_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"
