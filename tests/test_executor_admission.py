"""Who may queue how much: the group's and the operator's per-member limits, the queue's size,
reservations and readmitted jobs, on the pure scheduler (no processes; a fake clock)."""

from __future__ import annotations

import gc
import re

import pytest

from stylecore.executors.base import QueueFull, UserLimitReached
from stylecore.executors.scheduler import FairScheduler, StepTimeModel


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sched(clock: Clock | None = None, **kw) -> FairScheduler:
    kw.setdefault("max_queue", 20)
    kw.setdefault("max_per_user_queued", 10)
    return FairScheduler(slots=1, model=StepTimeModel(prior_per_mpx=1.0), clock=clock or Clock(), **kw)


def add(s: FairScheduler, job_id: str, user: str, group: str | None = None, **kw) -> None:
    s.add(job_id, user, 1_000_000, 10, group=group, **kw)


# -- limits ------------------------------------------------------------------------------


def test_a_groups_limit_counts_queued_and_running_jobs_in_that_group_only() -> None:
    s = sched()
    add(s, "a0", "ann", "g1", max_active=2)
    assert s.pick() == "a0"  # running still counts
    add(s, "a1", "ann", "g1", max_active=2)
    with pytest.raises(UserLimitReached) as exc:
        add(s, "a2", "ann", "g1", max_active=2)
    err = exc.value
    assert (err.scope, err.limit, err.job_ids, err.pending, err.counts) == ("group", 2, ("a0", "a1"), 0, "active")
    add(s, "a2", "ann", "g2", max_active=2)  # another group has its own count
    add(s, "b0", "bob", "g1", max_active=2)  # and another member
    add(s, "a3", "ann", "g1", max_active=3)  # the group's limit is the one sent with the job
    s.finish("a0")
    add(s, "a4", "ann", "g1", max_active=3)  # an ended job frees its place


def test_a_member_of_many_groups_gets_one_quota_across_them() -> None:
    s = sched(max_per_user_active=3)
    for i, group in enumerate(["g1", "g2", "g3"]):
        add(s, f"a{i}", "ann", group, max_active=2)
    with pytest.raises(UserLimitReached) as exc:
        add(s, "a3", "ann", "g4", max_active=2)
    err = exc.value
    assert (err.scope, err.limit, err.job_ids, err.counts) == ("everywhere", 3, ("a0", "a1", "a2"), "active")
    assert s.pick() == "a0"  # running jobs count too
    with pytest.raises(UserLimitReached, match="limit is 3"):
        add(s, "a3", "ann", None)
    s.finish("a0")
    add(s, "a3", "ann", None)


def test_the_waiting_cap_counts_queued_jobs_in_every_group() -> None:
    s = sched(max_per_user_queued=2)
    add(s, "a0", "ann", "g1")
    add(s, "a1", "ann", "g2")
    with pytest.raises(UserLimitReached) as exc:
        add(s, "a2", "ann", "g3")
    assert (exc.value.scope, exc.value.counts, exc.value.job_ids) == ("everywhere", "waiting", ("a0", "a1"))


def test_a_refusal_is_a_plain_sentence_a_caller_can_reword() -> None:
    s = sched()
    add(s, "a0", "ann", "g1", max_active=1)
    r = s.reserve("ann", "g2", max_active=2)
    with pytest.raises(UserLimitReached) as exc:
        add(s, "a1", "ann", "g2", max_active=1)
    text = str(exc.value)
    assert text == (
        "you already have 1 job(s) queued or running here (1 starting); the limit is 1: "
        "wait for one to finish or cancel one"
    )
    assert not re.search(r"discord|server|guild|bot\b", text, re.I)
    r.release()


def test_the_queue_counts_everyone_and_says_when_a_slot_frees() -> None:
    s = sched(max_queue=2)
    add(s, "x0", "xia")
    assert s.pick() == "x0"
    add(s, "a0", "ann")
    add(s, "b0", "bob")
    with pytest.raises(QueueFull, match=r"queue is full \(2 jobs waiting\).*slot should free up in about 10 s"):
        add(s, "c0", "cat")


# -- reservations --------------------------------------------------------------------------


def test_a_reservation_holds_a_place_until_its_job_takes_it() -> None:
    s = sched(max_queue=3)
    r1 = s.reserve("ann", "g1", max_active=2)
    r2 = s.reserve("ann", "g1", max_active=2)
    assert s.reserved_count == 2 and r1.held
    with pytest.raises(UserLimitReached) as exc:  # two downloads under way fill her quota here
        s.reserve("ann", "g1", max_active=2)
    assert (exc.value.scope, exc.value.job_ids, exc.value.pending) == ("group", (), 2)
    bobs = s.reserve("bob", "g1")  # the queue's third place
    with pytest.raises(QueueFull, match=r"\(3 jobs waiting\)"):  # refused before any download
        s.reserve("cat", "g2")
    add(s, "a0", "ann", "g1", max_active=2, reservation=r1)
    assert not r1.held and r1.state == "used" and s.reserved_count == 2 and s.queued_count == 1
    assert bobs.held
    add(s, "a1", "ann", "g1", max_active=1, reservation=r2)  # its place is not checked again
    assert s.order() == ["a0", "a1"]
    with pytest.raises(ValueError, match="already used"):
        add(s, "a2", "ann", "g1", reservation=r1)


def test_a_reservation_is_for_its_own_member_and_group() -> None:
    s = sched()
    r = s.reserve("ann", "g1")
    with pytest.raises(ValueError, match="one user and group"):
        add(s, "b0", "bob", "g1", reservation=r)
    with pytest.raises(ValueError, match="one user and group"):
        add(s, "a0", "ann", "g2", reservation=r)
    assert r.held and s.queued_count == 0
    with pytest.raises(ValueError, match="another executor"):
        add(sched(), "a0", "ann", "g1", reservation=r)
    with pytest.raises(ValueError, match="needs no reservation"):
        add(s, "a0", "ann", "g1", reservation=r, readmit=True)


async def test_a_request_that_ends_without_a_job_gives_its_place_back() -> None:
    s = sched(max_queue=1)
    with pytest.raises(RuntimeError):
        async with s.reserve("ann"):
            assert s.reserved_count == 1
            raise RuntimeError("the download failed")
    assert s.reserved_count == 0
    with s.reserve("ann") as r:  # the sync form too
        add(s, "a0", "ann", reservation=r)
    assert s.queued_count == 1 and s.reserved_count == 0  # leaving after submit frees nothing twice
    s.remove("a0")
    r = s.reserve("ann")
    r.release()
    r.release()  # idempotent
    assert not r.held and s.reserved_count == 0
    with pytest.raises(ValueError, match="already released"):
        add(s, "a0", "ann", reservation=r)


def test_a_forgotten_reservation_is_reclaimed_when_collected() -> None:
    s = sched(max_queue=1)
    s.reserve("ann")  # dropped at once
    gc.collect()
    assert s.reserved_count == 0
    s.reserve("bob")  # the place is free again


def test_a_reservation_expires_at_its_deadline() -> None:
    clock = Clock()
    s = sched(clock, max_queue=1, reservation_timeout=60.0)
    r = s.reserve("ann")
    assert r.deadline == clock.now + 60
    with pytest.raises(QueueFull):
        s.reserve("bob")
    clock.now += 59.9
    assert r.held
    clock.now += 0.1  # a hung download holds the place no longer
    assert not r.held and s.reserved_count == 0
    short = s.reserve("bob", timeout=5)
    assert short.deadline == clock.now + 5
    clock.now += 5
    # A job whose reservation expired is admitted afresh: in while there is room...
    add(s, "a0", "ann", reservation=r)
    assert s.queued_count == 1 and r.state == "used"
    # ...and refused like any other job when there is none.
    s.remove("a0")
    late = s.reserve("bob", timeout=1)
    clock.now += 1
    add(s, "c0", "cat")  # the expired reservation's place
    with pytest.raises(QueueFull):
        add(s, "b0", "bob", reservation=late)


def test_reservation_arguments_are_checked() -> None:
    s = sched()
    with pytest.raises(ValueError):
        s.reserve("ann", max_active=0)
    with pytest.raises(ValueError):
        s.reserve("ann", timeout=0)
    with pytest.raises(ValueError):
        FairScheduler(slots=1, reservation_timeout=0)
    with pytest.raises(ValueError):
        FairScheduler(slots=1, max_per_user_active=0)


# -- accepted work -------------------------------------------------------------------------


def test_readmitted_jobs_bypass_every_limit_but_still_count() -> None:
    s = sched(max_queue=3, max_per_user_queued=2, max_per_user_active=2)
    recovered = [(f"a{i}", "ann", "g1") for i in range(4)] + [(f"b{i}", "bob", "g2") for i in range(3)]
    for job_id, user, group in recovered:  # more than the queue holds, and than each member may have
        add(s, job_id, user, group, max_active=1, readmit=True)
    assert s.queued_count == 7
    with pytest.raises(UserLimitReached):  # they count: ann may not add more now
        add(s, "a9", "ann", "g3")
    with pytest.raises(QueueFull):
        add(s, "c0", "cat")
    started = []
    while (j := s.pick()) is not None:  # and every one of them runs, in turns
        started.append(j)
        s.finish(j)
    assert started == ["a0", "b0", "a1", "b1", "a2", "b2", "a3"]
