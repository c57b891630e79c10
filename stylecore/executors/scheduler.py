"""The fair queue both backends share: pure, synchronous and free of I/O so it can be
tested exhaustively and reasoned about without an event loop.

Fairness is taking turns twice over: first between groups (the least recently served group
first), then between the members of the chosen group (its least recently served member
first). A busy group with many members cannot starve a group with one job, and a burst of
ten jobs from one member does not push the rest of their group back ten places. Jobs of one
size still share a worker's stack, within a bounded window of that order. Who may queue how
much is `admission`'s business. Positions and ETAs come from simulating the queue over the
worker slots with step times measured on the machine, so they stay honest as the hardware
or sizes change.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from stylecore.executors.admission import Admission, Claim, Limits, Reservation


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
    """A job as the queue sees it: whose it is, in which group, what it costs, and when it
    arrived (`seq`)."""

    job_id: str
    user_id: str
    group: str | None
    pixels: int
    steps: int
    seq: int


@dataclass
class _Member:
    """One member's jobs in one group."""

    queued: list[_Ticket] = field(default_factory=list)
    running: int = 0
    last: int = -1  # pick number of the member's last start in this group; -1 = never


@dataclass
class _Group:
    members: dict[str, _Member] = field(default_factory=dict)
    last: int = -1  # pick number of the group's last start; -1 = never


class _FairOrder:
    """Who starts next: retried jobs first, then the least recently served group, and in it
    the least recently served member (ties: the earlier job). `pick`, the window jobs may join
    a stack from, and `plan` all run these same rules, `plan` on a copy, so what it foresees is
    what happens."""

    def __init__(self) -> None:
        self.groups: dict[str | None, _Group] = {}
        self.queued: dict[str, _Ticket] = {}
        self.running: dict[str, int] = {}  # user -> running jobs in every group
        self.front: list[str] = []  # retried jobs, in the order they go first
        self.picks = 0

    def copy(self) -> _FairOrder:
        out = _FairOrder()
        out.groups = {
            key: _Group({uid: _Member(list(m.queued), m.running, m.last) for uid, m in g.members.items()}, g.last)
            for key, g in self.groups.items()
        }
        out.queued = dict(self.queued)
        out.running = dict(self.running)
        out.front = list(self.front)
        out.picks = self.picks
        return out

    def _member(self, t: _Ticket) -> _Member:
        return self.groups.setdefault(t.group, _Group()).members.setdefault(t.user_id, _Member())

    def push(self, t: _Ticket) -> None:
        self._member(t).queued.append(t)
        self.queued[t.job_id] = t

    def push_front(self, t: _Ticket) -> None:
        """A running job back at the head of the queue (its worker was lost)."""
        member = self._member(t)
        member.queued.insert(0, t)
        self.queued[t.job_id] = t
        self.front.append(t.job_id)
        self.end(t)

    def remove(self, t: _Ticket) -> None:
        self._dequeue(t)
        self._prune(t)

    def _dequeue(self, t: _Ticket) -> None:
        self.groups[t.group].members[t.user_id].queued.remove(t)
        del self.queued[t.job_id]
        if t.job_id in self.front:
            self.front.remove(t.job_id)

    def start(self, t: _Ticket) -> None:
        self._dequeue(t)
        group = self.groups[t.group]
        member = group.members[t.user_id]
        member.running += 1
        self.running[t.user_id] = self.running.get(t.user_id, 0) + 1
        group.last = member.last = self.picks
        self.picks += 1

    def end(self, t: _Ticket) -> None:
        self.groups[t.group].members[t.user_id].running -= 1
        self.running[t.user_id] -= 1
        if self.running[t.user_id] <= 0:
            del self.running[t.user_id]
        self._prune(t)

    def _prune(self, t: _Ticket) -> None:
        # Forget idle members and groups so memory stays bounded; a returning one then counts
        # as new, which is what taking turns would give it anyway.
        group = self.groups[t.group]
        member = group.members[t.user_id]
        if not member.queued and member.running <= 0:
            del group.members[t.user_id]
            if not group.members:
                del self.groups[t.group]

    def next(self, max_running: float) -> _Ticket | None:
        """The job to start next among those whose member runs fewer than `max_running`."""
        for job_id in self.front:
            t = self.queued[job_id]
            if self.running.get(t.user_id, 0) < max_running:
                return t
        best: tuple[int, int, _Ticket] | None = None
        for group in self.groups.values():
            # (seq is unique, so tuples never compare their tickets)
            heads = [
                (m.last, m.queued[0].seq, m.queued[0])
                for uid, m in group.members.items()
                if m.queued and self.running.get(uid, 0) < max_running
            ]
            if not heads:
                continue
            key = (group.last, min(seq for _, seq, _ in heads))
            if best is None or key < best[:2]:
                best = (*key, min(heads)[2])
        return best[2] if best is not None else None

    def window(self, n: int) -> list[_Ticket]:
        """The next `n` queued jobs in fair order, running limits aside: the jobs that may join
        a stack."""
        sim = self.copy()
        out: list[_Ticket] = []
        while len(out) < n and (t := sim.next(math.inf)) is not None:
            sim.start(t)
            out.append(t)
        return out


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
    """Fair turns over groups, then over members, with limits and a bounded queue.

    `add` (or `reserve` first, then `add` with the reservation) admits a job or refuses with
    an exception whose text is fit for the user (see `admission`); `pick` hands out the next
    job for a free slot (or None when every waiting member is at their running limit);
    `finish` ends a running job. Running jobs' remaining time is told to `plan` by the caller,
    which knows their progress.
    """

    def __init__(
        self,
        *,
        slots: int,
        max_queue: int = 50,
        max_per_user_queued: int = 3,
        max_per_user_running: int = 1,
        max_per_user_active: int | None = None,
        reservation_timeout: float = 120.0,
        model: StepTimeModel | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if slots < 1 or max_per_user_running < 1:
            raise ValueError("slots and every limit must be at least 1")
        self.slots = slots
        self.max_per_user_running = max_per_user_running
        self.admission = Admission(
            Limits(max_queue, max_per_user_queued, max_per_user_active),
            reservation_timeout=reservation_timeout,
            clock=clock,
        )
        self.model = model or StepTimeModel()
        self._order = _FairOrder()
        self._running: dict[str, _Ticket] = {}
        self._seq = itertools.count()

    # -- admission ------------------------------------------------------------------------

    @property
    def queued_count(self) -> int:
        return len(self._order.queued)

    @property
    def reserved_count(self) -> int:
        """Open reservations (each holds a place in the queue)."""
        return self.admission.reserved

    def running_ids(self) -> list[str]:
        return list(self._running)

    def check(self, user_id: str, group: str | None = None, max_active: int | None = None) -> None:
        """Raise UserLimitReached or QueueFull if one more job of `user_id` in `group` would not
        be admitted now (see `admission` for the rules)."""
        claims = [Claim(t.job_id, t.user_id, t.group, False, t.seq) for t in self._order.queued.values()]
        claims += [Claim(t.job_id, t.user_id, t.group, True, t.seq) for t in self._running.values()]
        self.admission.check(user_id, group, max_active, claims, queued=self.queued_count, full_hint=self._full_hint)

    def reserve(
        self, user_id: str, group: str | None = None, max_active: int | None = None, *, timeout: float | None = None
    ) -> Reservation:
        """Hold a place for a job not yet submitted, or refuse as `add` would."""
        if timeout is not None and not timeout > 0:
            raise ValueError("a reservation's timeout must be positive seconds")
        self.check(user_id, group, max_active)
        return self.admission.hold(user_id, group, max_active, timeout)

    def add(
        self,
        job_id: str,
        user_id: str,
        pixels: int,
        steps: int,
        *,
        group: str | None = None,
        max_active: int | None = None,
        reservation: Reservation | None = None,
        readmit: bool = False,
    ) -> None:
        """Queue a job or raise QueueFull / UserLimitReached with a reason fit for a user.

        With a held `reservation` the job takes its place unchecked (an expired one is ignored);
        `readmit` queues a job accepted once before without checking any limit."""
        if job_id in self._order.queued or job_id in self._running:
            raise ValueError(f"job {job_id} is already known")
        if reservation is not None and readmit:
            raise ValueError("a readmitted job needs no reservation")
        held = reservation is not None and reservation.redeem(self.admission.ledger, user_id, group)
        if not (held or readmit):
            self.check(user_id, group, max_active)
        self._order.push(_Ticket(job_id, user_id, group, pixels, steps, next(self._seq)))

    def requeue_front(self, job_id: str) -> None:
        """Put a running job back at the head of the queue (its worker died; retry it next).

        Bypasses the queue bounds on purpose: the job was already admitted once.
        """
        self._order.push_front(self._running.pop(job_id))

    def remove(self, job_id: str) -> bool:
        """Drop a queued job (cancel); False if it is not queued."""
        entry = self._order.queued.get(job_id)
        if entry is None:
            return False
        self._order.remove(entry)
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
        entry = self._order.next(self.max_per_user_running)
        if entry is None:
            return None
        self._start(entry)
        return entry.job_id

    def pick_more(self, match: Callable[[str], bool], limit: int, window: int) -> list[str]:
        """After `pick`: up to `limit` more queued jobs to share the picked job's slot, now running.

        Only the next `window` jobs in fair order are considered, and each must satisfy
        `match` (the same batch key) and its member's running limit, so a job can move up at
        most `window - 1` places and never past what taking turns would give it anyway.
        `plan` foresees the same choice (`Batching`).
        """
        taken = self._joiners(self._order, lambda e: match(e.job_id), limit, window)
        for entry in taken:
            self._start(entry)
        return [entry.job_id for entry in taken]

    def _joiners(self, order: _FairOrder, match: Callable[[_Ticket], bool], limit: int, window: int) -> list[_Ticket]:
        """Up to `limit` of the next `window` jobs in fair order that `match` and whose member
        may run one more job: what joins a stack, for `pick_more` and `plan` alike."""
        running = dict(order.running)
        out: list[_Ticket] = []
        for entry in order.window(window):
            if len(out) >= limit:
                break
            if running.get(entry.user_id, 0) < self.max_per_user_running and match(entry):
                out.append(entry)
                running[entry.user_id] = running.get(entry.user_id, 0) + 1
        return out

    def _start(self, entry: _Ticket) -> None:
        self._order.start(entry)
        self._running[entry.job_id] = entry

    def finish(self, job_id: str, *, seconds: float | None = None, steps: int | None = None) -> None:
        """A running job ended; a measured run (seconds for steps) feeds the time model."""
        entry = self._running.pop(job_id, None)
        if entry is None:
            return
        if seconds and steps:
            self.model.observe(entry.pixels, seconds / steps)
        self._order.end(entry)

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
        own), and `batching` lets queued jobs form stacks as `pick_more` will. A member's next
        job can only start once one of theirs finishes, as in `pick`.
        """
        sim = self._order.copy()
        tie = itertools.count()
        busy: list[tuple[float, int, tuple[_Ticket, ...]]] = []  # (slot frees at, tiebreak, its jobs)
        stacks = [list(g) for g in running_groups or []]
        stacked = {job_id for g in stacks for job_id in g}
        stacks += [[job_id] for job_id in self._running if job_id not in stacked]
        for stack in stacks:
            entries = tuple(self._running[j] for j in stack if j in self._running)
            if entries:
                left = max(running_left.get(e.job_id, self.model.job_seconds(e.pixels, e.steps)) for e in entries)
                heapq.heappush(busy, (max(0.0, left), next(tie), entries))
        free = max(0, self.slots - len(busy))
        out: list[QueuePlace] = []
        now = 0.0
        while sim.queued:
            if free > 0 and (entry := sim.next(self.max_per_user_running)) is not None:
                sim.start(entry)
                stack = [entry, *self._plan_joiners(entry, sim, batching)]
                for member in stack[1:]:
                    sim.start(member)
                ends = [now + self.model.job_seconds(e.pixels, e.steps) for e in stack]
                for e, end in zip(stack, ends, strict=True):
                    out.append(QueuePlace(e.job_id, len(out) + 1, now, end))
                heapq.heappush(busy, (max(ends), next(tie), tuple(stack)))
                free -= 1
                continue
            # No free slot, or every waiting member is at their running limit: jump to the
            # next slot that frees up.
            if not busy:
                break
            finish_at, _, ended = heapq.heappop(busy)
            now = max(now, finish_at)
            for e in ended:
                sim.end(e)
            free += 1
        return out

    def _plan_joiners(self, head: _Ticket, order: _FairOrder, batching: Batching | None) -> list[_Ticket]:
        """The queued jobs `pick_more` would stack with `head` (already started in `order`)."""
        if batching is None or batching.max_batch <= 1:
            return []
        key = batching.key_of(head.job_id)
        if key is None:
            return []
        return self._joiners(order, lambda e: batching.key_of(e.job_id) == key, batching.max_batch - 1, batching.window)

    def _full_hint(self) -> str:
        if not self._running:
            return ""
        wait = min(self.model.job_seconds(e.pixels, e.steps) for e in self._running.values())
        return f"; a slot should free up in about {_fmt_seconds(wait)}" if wait else ""


def _fmt_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"
