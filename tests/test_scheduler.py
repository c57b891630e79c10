"""The fair queue's pure logic: order, limits, bounds and estimates, without processes.
(Who may queue how much, and reservations, are in test_executor_admission.py.)"""

from __future__ import annotations

import random

import pytest

from stylecore.executors.base import QueueFull, UserLimitReached
from stylecore.executors.scheduler import Batching, FairScheduler, StepTimeModel


def sched(slots: int = 1, **kw: int) -> FairScheduler:
    kw.setdefault("max_queue", 20)
    kw.setdefault("max_per_user_queued", 10)
    kw.setdefault("max_per_user_running", 1)
    return FairScheduler(slots=slots, model=StepTimeModel(prior_per_mpx=1.0), **kw)


def add(
    s: FairScheduler, job_id: str, user: str, pixels: int = 1_000_000, steps: int = 10, group: str | None = None
) -> None:
    s.add(job_id, user, pixels, steps, group=group)


def drain_picks(s: FairScheduler) -> list[str]:
    """Start and finish jobs one at a time, recording the start order."""
    out = []
    while (j := s.pick()) is not None:
        out.append(j)
        s.finish(j)
    return out


def test_burst_of_one_user_does_not_starve_another() -> None:
    s = sched()
    for i in range(4):
        add(s, f"a{i}", "alice")
    add(s, "b0", "bob")
    add(s, "b1", "bob")
    add(s, "c0", "carol")
    assert s.order() == ["a0", "b0", "c0", "a1", "b1", "a2", "a3"]
    assert drain_picks(s) == ["a0", "b0", "c0", "a1", "b1", "a2", "a3"]


def test_newcomer_goes_before_a_user_who_was_just_served() -> None:
    s = sched()
    add(s, "a0", "alice")
    add(s, "a1", "alice")
    assert s.pick() == "a0"  # alice is running a0; a1 waits
    add(s, "b0", "bob")
    s.finish("a0")
    assert s.pick() == "b0"
    s.finish("b0")
    assert s.pick() == "a1"


def test_a_lone_group_is_not_starved_by_a_busy_one() -> None:
    s = sched(max_queue=50, max_per_user_queued=10)
    for i in range(4):  # a busy group: four members, three jobs each, all queued first
        for m in range(4):
            add(s, f"busy-m{m}-{i}", f"m{m}", group="busy")
    add(s, "lone", "solo", group="quiet")
    started = drain_picks(s)
    assert started.index("lone") <= 1  # within the first round: one start per group
    # Within the busy group its members still take turns.
    assert started[:5] == ["busy-m0-0", "lone", "busy-m1-0", "busy-m2-0", "busy-m3-0"]


def test_groups_take_turns_before_their_members_do() -> None:
    s = sched(max_queue=50)
    jobs = [("a0", "ann", "g1"), ("a1", "ann", "g1"), ("b0", "bob", "g1"), ("c0", "cat", "g2"), ("d0", "dan", None)]
    jobs += [("c1", "cat", "g2"), ("a2", "ann", "g2")]  # ann in a second group: there it is g2's turn
    for j, u, g in jobs:
        add(s, j, u, group=g)
    # Rounds over g1, g2 and the None group; in each, its least recently served member.
    expected = ["a0", "c0", "d0", "b0", "a2", "a1", "c1"]
    assert s.order() == expected
    assert drain_picks(s) == expected


def test_plan_matches_what_pick_does_with_two_slots_and_running_limits() -> None:
    s = sched(slots=2, max_per_user_running=1)
    for j, u in [("a0", "a"), ("a1", "a"), ("a2", "a"), ("b0", "b"), ("c0", "c")]:
        add(s, j, u)
    planned = s.order()
    # picks as slots free up, every job the same length
    started = []
    running: list[str] = []
    while True:
        while len(running) < 2 and (j := s.pick()) is not None:
            started.append(j)
            running.append(j)
        if not running:
            break
        s.finish(running.pop(0))
    assert planned == started
    assert started == ["a0", "b0", "c0", "a1", "a2"]


def test_user_at_running_limit_does_not_block_others() -> None:
    s = sched(slots=2, max_per_user_running=1)
    add(s, "a0", "a")
    add(s, "a1", "a")
    assert s.pick() == "a0"
    assert s.pick() is None  # a1 must wait for a0 even though a slot is free
    add(s, "b0", "b")
    assert s.pick() == "b0"


def test_per_user_queued_limit_refuses_with_reason() -> None:
    s = sched(max_per_user_queued=2)
    add(s, "a0", "a")
    add(s, "a1", "a")
    with pytest.raises(UserLimitReached, match="limit is 2"):
        add(s, "a2", "a")
    add(s, "b0", "b")  # others unaffected
    assert s.queued_count == 3
    s.remove("a0")
    add(s, "a2", "a")  # room again


def test_running_jobs_do_not_count_as_queued() -> None:
    s = sched(max_per_user_queued=1)
    add(s, "a0", "a")
    assert s.pick() == "a0"
    add(s, "a1", "a")
    with pytest.raises(UserLimitReached):
        add(s, "a2", "a")


def test_bounded_queue_refuses_with_reason() -> None:
    s = sched(max_queue=3)
    add(s, "a0", "a")
    assert s.pick() == "a0"
    for j, u in [("b0", "b"), ("c0", "c"), ("d0", "d")]:
        add(s, j, u)
    with pytest.raises(QueueFull, match=r"queue is full \(3 jobs waiting\)") as exc:
        add(s, "e0", "e")
    assert "slot should free up" in str(exc.value)


def test_remove_and_duplicates() -> None:
    s = sched()
    add(s, "a0", "a")
    with pytest.raises(ValueError):
        add(s, "a0", "a")
    assert s.remove("a0")
    assert not s.remove("a0")
    assert s.pick() is None


def test_requeue_front_goes_first_and_ignores_bounds() -> None:
    s = sched(max_queue=2)
    add(s, "a0", "a")
    assert s.pick() == "a0"
    add(s, "b0", "b")
    add(s, "c0", "c")
    s.requeue_front("a0")  # queue was full, the retried job still gets in, first
    assert s.queued_count == 3
    assert s.order()[0] == "a0"
    assert s.pick() == "a0"


def test_drain_returns_start_order_and_empties() -> None:
    s = sched()
    for j, u in [("a0", "a"), ("a1", "a"), ("b0", "b")]:
        add(s, j, u)
    assert s.drain() == ["a0", "b0", "a1"]
    assert s.queued_count == 0
    assert s.pick() is None


def test_etas_accumulate_over_slots() -> None:
    s = sched(slots=1)
    for j, u in [("a0", "a"), ("b0", "b"), ("c0", "c")]:
        add(s, j, u, pixels=1_000_000, steps=10)  # prior: 1 s/step/Mpx -> 10 s each
    plan = s.plan({})
    assert [p.position for p in plan] == [1, 2, 3]
    assert [p.eta for p in plan] == pytest.approx([10, 20, 30])
    assert s.pick() == "a0"
    plan = s.plan({"a0": 4.0})  # a0 is running with 4 s left
    assert [(p.job_id, p.start_in, p.eta) for p in plan] == [("b0", 4.0, 14.0), ("c0", 14.0, 24.0)]


def test_two_slots_halve_the_wait() -> None:
    s = sched(slots=2)
    for j, u in [("a0", "a"), ("b0", "b"), ("c0", "c"), ("d0", "d")]:
        add(s, j, u, pixels=1_000_000, steps=10)
    assert [p.eta for p in s.plan({})] == pytest.approx([10, 10, 20, 20])


def test_a_queue_of_same_size_jobs_is_planned_in_stacks() -> None:
    s = sched(slots=1)
    for i in range(5):
        add(s, f"j{i}", f"u{i}", pixels=1_000_000, steps=10)  # 10 s each
    assert [p.eta for p in s.plan({})] == pytest.approx([10, 20, 30, 40, 50])  # one at a time
    stacks = Batching(lambda jid: "512px", max_batch=4, window=4)
    plan = s.plan({}, batching=stacks)
    assert [p.position for p in plan] == [1, 2, 3, 4, 5]
    assert [(p.start_in, p.eta) for p in plan] == [(0, 10)] * 4 + [(10, 20)]
    # A job that never batches, or another size, forms no stack.
    alone = Batching(lambda jid: None if jid == "j0" else "512px", max_batch=4, window=4)
    assert [p.start_in for p in s.plan({}, batching=alone)] == [0, 10, 10, 10, 10]


def test_a_running_stack_frees_its_slot_when_its_last_job_ends() -> None:
    s = sched(slots=1)
    for j, u in [("a0", "a"), ("b0", "b"), ("c0", "c")]:
        add(s, j, u, pixels=1_000_000, steps=10)
    assert s.pick() == "a0" and s.pick_more(lambda jid: True, 1, 1) == ["b0"]
    plan = s.plan({"a0": 4.0, "b0": 6.0}, running_groups=[["a0", "b0"]])
    assert [(p.job_id, p.start_in, p.eta) for p in plan] == [("c0", 6.0, 16.0)]


def test_the_plan_foresees_the_stacks_pick_and_pick_more_form() -> None:
    s = sched(slots=1, max_per_user_running=1)
    jobs = [
        ("a0", "a", "S"),
        ("a1", "a", "S"),
        ("b0", "b", "L"),
        ("c0", "c", "S"),
        ("b1", "b", "S"),
        ("d0", "d", "S"),
        ("c1", "c", "L"),
        ("e0", "e", "S"),
        ("d1", "d", "S"),
        ("f0", "f", "L"),
    ]
    keys = {j: k for j, _, k in jobs}
    for j, u, k in jobs:
        add(s, j, u, pixels=250_000 if k == "S" else 1_000_000, steps=10)
    batching = Batching(keys.__getitem__, max_batch=3, window=4)
    planned: dict[float, list[str]] = {}
    for p in s.plan({}, batching=batching):
        planned.setdefault(p.start_in, []).append(p.job_id)
    actual = []
    while (head := s.pick()) is not None:  # one slot: each stack runs to its end before the next
        stack = [head, *s.pick_more(lambda jid, k=keys[head]: keys[jid] == k, 2, 4)]
        actual.append(stack)
        for j in stack:
            s.finish(j)
    assert list(planned.values()) == actual
    assert any(len(stack) > 1 for stack in actual) and len(actual) < len(jobs)


@pytest.mark.parametrize("seed", range(5))
def test_the_plan_foresees_the_stacks_over_groups_too(seed: int) -> None:
    rng = random.Random(seed)
    s = sched(slots=1, max_queue=100, max_per_user_queued=100, max_per_user_running=rng.choice([1, 2]))
    keys = {}
    for i in range(30):
        job_id, key = f"j{i}", rng.choice("SL")
        keys[job_id] = key
        group = rng.choice(["g1", "g1", "g1", "g2", None])
        add(s, job_id, rng.choice(["u1", "u2", "u3"]), pixels=250_000 if key == "S" else 1_000_000, group=group)
    batching = Batching(keys.__getitem__, max_batch=3, window=4)
    planned: dict[float, list[str]] = {}
    for p in s.plan({}, batching=batching):
        planned.setdefault(p.start_in, []).append(p.job_id)
    actual = []
    while (head := s.pick()) is not None:
        stack = [head, *s.pick_more(lambda jid, k=keys[head]: keys[jid] == k, 2, 4)]
        actual.append(stack)
        for j in stack:
            s.finish(j)
    assert list(planned.values()) == actual
    assert sum(len(stack) for stack in actual) == 30


def test_step_time_model_learns_and_scales() -> None:
    m = StepTimeModel(prior_per_mpx=2.0, smoothing=0.5)
    assert m.seconds_per_step(500_000) == pytest.approx(1.0)  # prior
    m.observe(4096, 0.01)
    assert m.seconds_per_step(4096) == pytest.approx(0.01)
    m.observe(4096, 0.03)
    assert m.seconds_per_step(4096) == pytest.approx(0.02)  # smoothed
    # an unmeasured size scales linearly from the nearest measured bucket
    assert m.seconds_per_step(4 * 4096) == pytest.approx(0.08)
    m.observe(100, float("nan"))  # ignored
    assert m.job_seconds(4096, 10) == pytest.approx(0.2)


def test_finish_feeds_the_model() -> None:
    s = sched()
    add(s, "a0", "a", pixels=4096, steps=10)
    assert s.pick() == "a0"
    s.finish("a0", seconds=2.0, steps=10)
    assert s.model.seconds_per_step(4096) == pytest.approx(0.2)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FairScheduler(slots=0)
