"""Admission: whether one more job of a member may join the queue, and places held for jobs
whose inputs are still on their way. The one owner of "how many jobs may this member have".

It sees only neutral keys: a member (`user_id`), the group a job belongs to (any string the
caller chooses, or None) and the group's own limit for one member (`max_active`, given with
each request). A new job or reservation is refused, in this order, when:

1. the member's queued + running + reserved jobs in its group reach the group's `max_active`;
2. the member's queued + running + reserved jobs in all groups reach `max_per_user_active`
   (so a member of many groups does not get each group's quota again);
3. the member's queued + reserved jobs in all groups reach `max_per_user_queued`;
   (1-3 raise `UserLimitReached`, carrying which scope, the limit and the jobs it counted)
4. everyone's queued jobs and open reservations reach `max_queue` (`QueueFull`).

A `Reservation` counts as a queued job from the moment it is granted, so a caller can check
every limit before it downloads or decodes anything, and a member's requests still in
progress count against their quota. It cannot leak: `release()`, the end of its `with` /
`async with` block, its garbage collection and its deadline each give the place back.

Everything here is synchronous, cheap and free of I/O; `FairScheduler` calls it under the
event loop's single thread. The clock is injected so deadlines are tested without waiting.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, NamedTuple

from stylecore.executors.base import QueueFull, UserLimitReached


class Claim(NamedTuple):
    """A member's queued or running job as the limits count it."""

    job_id: str
    user_id: str
    group: str | None
    running: bool
    seq: int  # arrival order, so refusals list the oldest job first


@dataclass(frozen=True)
class Limits:
    """The operator's caps (see `ExecutorConfig`); a group's own limit comes with each request."""

    max_queue: int = 50
    max_per_user_queued: int = 3
    max_per_user_active: int | None = None

    def __post_init__(self) -> None:
        if self.max_queue < 1 or self.max_per_user_queued < 1:
            raise ValueError("max_queue and max_per_user_queued must be at least 1")
        if self.max_per_user_active is not None and self.max_per_user_active < 1:
            raise ValueError("max_per_user_active must be at least 1 (or None for no cap of its own)")


@dataclass
class _Hold:
    user_id: str
    group: str | None
    deadline: float


class Reservation:
    """A place in the queue held for one job of `user_id` in `group` that is not submitted yet.

    Get one from `Executor.reserve`, then pass it to `submit(job, reservation=...)`. Use it as a
    context manager (sync or async) so that a request ending without a job - an error, a
    cancel, a timeout - gives the place back; dropping the object or passing its `deadline`
    (the executor's clock, `time.monotonic` by default) does too.
    """

    def __init__(
        self, ledger: Ledger, token: int, user_id: str, group: str | None, max_active: int | None, deadline: float
    ) -> None:
        self._ledger = ledger
        self._token = token
        self.user_id = user_id
        self.group = group
        self.max_active = max_active
        self.deadline = deadline
        self.state: Literal["held", "used", "released"] = "held"
        # Garbage collection may run inside any other call of the ledger's owner: the callback
        # only queues the token, which the ledger sweeps before its next count.
        self._finalizer = weakref.finalize(self, ledger.dropped.append, token)
        self._finalizer.atexit = False

    @property
    def held(self) -> bool:
        """True while the place still counts (not used, released, dropped or expired)."""
        return self.state == "held" and self._ledger.is_held(self._token)

    def release(self) -> None:
        """Give the place back (no-op once used or released)."""
        if self.state == "held":
            self.state = "released"
            self._ledger.discard(self._token)
        self._finalizer.detach()

    def redeem(self, ledger: Ledger, user_id: str, group: str | None) -> bool:
        """Turn the reservation into its job (the executor's side of `submit`): True when the
        place was still held (the job takes it), False when it expired (the job must be
        admitted afresh)."""
        if ledger is not self._ledger:
            raise ValueError("this reservation was made by another executor")
        if self.state != "held":
            raise ValueError(f"this reservation was already {self.state}")
        if (user_id, group) != (self.user_id, self.group):
            raise ValueError("a reservation is for one user and group; this job belongs to others")
        self.state = "used"
        self._finalizer.detach()
        return self._ledger.discard(self._token)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    async def __aenter__(self) -> Reservation:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<Reservation {self.user_id!r} group={self.group!r} {self.state}>"


class Ledger:
    """Open reservations, swept of expired and garbage-collected ones before each count."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._holds: dict[int, _Hold] = {}
        self._tokens = itertools.count()
        self.dropped: list[int] = []  # tokens of reservations collected while held

    def open(self, user_id: str, group: str | None, max_active: int | None, timeout: float) -> Reservation:
        token = next(self._tokens)
        deadline = self.clock() + timeout
        self._holds[token] = _Hold(user_id, group, deadline)
        return Reservation(self, token, user_id, group, max_active, deadline)

    def discard(self, token: int) -> bool:
        """Forget a hold; True if it still counted until now."""
        self.sweep()
        return self._holds.pop(token, None) is not None

    def is_held(self, token: int) -> bool:
        self.sweep()
        return token in self._holds

    def sweep(self) -> None:
        while self.dropped:
            self._holds.pop(self.dropped.pop(), None)
        now = self.clock()
        for token in [t for t, h in self._holds.items() if h.deadline <= now]:
            del self._holds[token]

    def holds(self) -> list[_Hold]:
        self.sweep()
        return list(self._holds.values())


class Admission:
    """The limits plus the open reservations: `check` says whether one more job (or
    reservation) of a member fits, given the jobs already queued and running."""

    def __init__(self, limits: Limits, *, reservation_timeout: float, clock: Callable[[], float]) -> None:
        if not reservation_timeout > 0:
            raise ValueError("reservation_timeout must be positive seconds")
        self.limits = limits
        self.reservation_timeout = reservation_timeout
        self.ledger = Ledger(clock)

    @property
    def reserved(self) -> int:
        """Open reservations (each counts as a queued job)."""
        return len(self.ledger.holds())

    def check(
        self,
        user_id: str,
        group: str | None,
        max_active: int | None,
        jobs: Iterable[Claim],
        *,
        queued: int,
        full_hint: Callable[[], str] = str,
    ) -> None:
        """Raise UserLimitReached or QueueFull if one more job of `user_id` in `group` would
        break a limit. `jobs`: every queued and running job; `queued`: how many are queued."""
        if max_active is not None and max_active < 1:
            raise ValueError("max_active must be at least 1 (or None for no group limit)")
        holds = self.ledger.holds()
        mine = sorted((c for c in jobs if c.user_id == user_id), key=lambda c: c.seq)
        my_holds = [h for h in holds if h.user_id == user_id]
        if max_active is not None:
            here = [c.job_id for c in mine if c.group == group]
            pending = sum(1 for h in my_holds if h.group == group)
            if len(here) + pending >= max_active:
                raise UserLimitReached("group", max_active, tuple(here), pending)
        cap = self.limits.max_per_user_active
        if cap is not None and len(mine) + len(my_holds) >= cap:
            raise UserLimitReached("everywhere", cap, tuple(c.job_id for c in mine), len(my_holds))
        waiting = [c.job_id for c in mine if not c.running]
        cap = self.limits.max_per_user_queued
        if len(waiting) + len(my_holds) >= cap:
            raise UserLimitReached("everywhere", cap, tuple(waiting), len(my_holds), counts="waiting")
        if queued + len(holds) >= self.limits.max_queue:
            raise QueueFull(f"the queue is full ({queued + len(holds)} jobs waiting); try again later{full_hint()}")

    def hold(self, user_id: str, group: str | None, max_active: int | None, timeout: float | None) -> Reservation:
        """A new reservation, granted unchecked: `check` it first."""
        if timeout is not None and not timeout > 0:
            raise ValueError("a reservation's timeout must be positive seconds")
        return self.ledger.open(user_id, group, max_active, timeout or self.reservation_timeout)


__all__ = ["Admission", "Claim", "Ledger", "Limits", "Reservation"]
