"""Steps are a cap: a run stops when its loss stops falling, alone or in a stack, and says so."""

from __future__ import annotations

import pytest
from samepixels import LOSS_REL, assert_same_image

from stylecore import StyleOptions, preset, stylize
from stylecore.batch import BatchItem, stylize_batch
from stylecore.convergence import WINDOW, Convergence, expected_steps, stops_early
from stylecore.events import ProgressEvent

TINY = dict(size=32, scales=1, device="cpu")
# Tiny images flatten out within a few dozen steps; a loose tolerance makes that visible early.
EARLY = dict(steps=120, min_steps=8, stop_tol=0.02, **TINY)


def _stop_step(losses: dict[int, float], tol: float, min_steps: int, every: int = 1) -> int | None:
    rule = Convergence(tol, min_steps)
    for step in range(every, max(losses) + 1, every):
        if rule.update(step, losses[step]):
            return step
    return None


def test_the_rule_stops_once_the_loss_falls_slower_than_the_tolerance():
    # loss(t) = 1 + 100 * 0.9**t: falls fast, then flattens towards 1
    losses = {t: 1 + 100 * 0.9**t for t in range(1, 301)}
    stop = _stop_step(losses, tol=0.01, min_steps=5)
    assert stop is not None and stop > 2 * WINDOW
    rate = lambda t: (losses[t - WINDOW] - losses[t]) / (losses[t] * WINDOW)  # noqa: E731
    # it stops once the loss has been falling slower than tol for a whole window of steps
    quiet = stop - WINDOW
    assert rate(quiet - 1) >= 0.01 and all(rate(t) < 0.01 for t in range(quiet, stop + 1))
    # the same curve read every 5 steps stops within one reading of it
    assert abs(_stop_step(losses, tol=0.01, min_steps=5, every=5) - stop) <= 5
    # never before min_steps, never with tol 0, never on a loss that still falls fast
    assert _stop_step(losses, tol=0.01, min_steps=200) == 200
    assert _stop_step(losses, tol=0.0, min_steps=5) is None
    assert _stop_step({t: 0.8**t for t in range(1, 101)}, tol=0.01, min_steps=5) is None
    nan = Convergence(0.01, 1)
    assert not any(nan.update(t, float("nan")) for t in range(1, 40))


def test_a_jump_in_the_loss_is_not_convergence():
    # a loss still falling faster than tol, with a 7% jump that recovers (Adam overshooting)
    losses = {t: 100 * (1 - 0.002 * t) * (1.07 if 100 <= t < 104 else 1.0) for t in range(1, 301)}
    assert _stop_step(losses, tol=0.001, min_steps=5) is None
    # once it does flatten, the jump is behind it and the run stops a window later
    flat = {t: v if t < 150 else losses[150] * (1 - 0.0001 * (t - 150)) for t, v in losses.items()}
    stop = _stop_step(flat, tol=0.001, min_steps=5)
    assert stop is not None and 150 + WINDOW <= stop <= 150 + 3 * WINDOW


def test_expected_steps_is_the_cap_unless_the_run_can_stop_early():
    seed = preset("seed")
    assert not stops_early(seed) and expected_steps(seed) == seed.steps == 2000
    default = StyleOptions()
    assert stops_early(default) and default.min_steps <= expected_steps(default) <= default.steps
    assert expected_steps(default.replace(steps=40)) == 40
    assert expected_steps(default.replace(stop_tol=0.0)) == default.steps
    # a run already past its expected steps is expected to need one more window, within its cap
    long = default.replace(steps=1000)
    assert expected_steps(long, done=500) == 500 + WINDOW
    assert expected_steps(long, done=995) == 1000
    assert expected_steps(seed, done=1500) == 2000


def test_a_run_that_converges_ends_early_and_says_so(vgg, content_img, style_img):
    events: list[ProgressEvent] = []
    res = stylize(content_img, style_img, StyleOptions(**EARLY), on_progress=events.append, model=vgg)
    n = res.stats.steps
    assert EARLY["min_steps"] <= n < EARLY["steps"] and res.stats.converged
    assert [e.step for e in events] == list(range(1, n + 1))
    assert all(e.total == EARLY["steps"] for e in events)
    assert events[-1].converged and not any(e.converged for e in events[:-1])
    assert events[-1].eta == 0.0 and all(e.eta is not None and e.eta > 0 for e in events[1:-1])
    # what it stopped on is a finished result: the loss fell, the image is whole
    assert res.stats.total_loss < events[0].loss and res.image.size == (32, 24)
    # the same options with stop_tol=0 run the whole cap
    capped = stylize(content_img, style_img, StyleOptions(**{**EARLY, "steps": n + 5, "stop_tol": 0.0}), model=vgg)
    assert capped.stats.steps == n + 5 and not capped.stats.converged


def test_sparse_reports_decide_at_the_reports(vgg, content_img, style_img):
    events: list[ProgressEvent] = []
    res = stylize(content_img, style_img, StyleOptions(**EARLY, report_every=4), on_progress=events.append, model=vgg)
    assert res.stats.converged and res.stats.steps % 4 == 0
    assert [e.step for e in events] == list(range(4, res.stats.steps + 1, 4))
    # nobody listening: the run still reads its loss at the same points and stops at the same step
    quiet = stylize(content_img, style_img, StyleOptions(**EARLY, report_every=4), model=vgg)
    assert quiet.stats.steps == res.stats.steps and quiet.image.tobytes() == res.image.tobytes()


def test_each_job_of_a_stack_stops_on_its_own(vgg, content_img, style_img):
    from conftest import _smooth_image, _stripes_image

    jobs = [
        (content_img, style_img, StyleOptions(**EARLY)),
        (_smooth_image(48, 36, 4), _stripes_image(40, 40, 6), StyleOptions(**{**EARLY, "stop_tol": 0.01})),
        (content_img, style_img, StyleOptions(**{**EARLY, "steps": 20, "stop_tol": 0.0})),
    ]
    solo = [stylize(c, s, o, model=vgg) for c, s, o in jobs]
    ends: list[int] = []
    items = [BatchItem(c, s, o, on_finish=lambda r: ends.append(r.stats.steps)) for c, s, o in jobs]
    out = stylize_batch(items, model=vgg)
    assert solo[0].stats.converged and solo[1].stats.converged and not solo[2].stats.converged
    assert solo[1].stats.steps > solo[0].stats.steps  # a tighter tolerance runs longer
    for alone, together in zip(solo, out, strict=True):
        assert together.stats.steps == alone.stats.steps and together.stats.converged == alone.stats.converged
        assert together.stats.total_loss == pytest.approx(alone.stats.total_loss, rel=LOSS_REL)
        assert_same_image(alone.image, together.image)
    assert ends == sorted(ends)  # each left the stack as it finished


def test_a_coarse_scale_that_converges_hands_over_to_the_next(vgg, content_img, style_img):
    events: list[ProgressEvent] = []
    opts = StyleOptions(**{**EARLY, "steps": 200, "size": 48, "scales": 2, "min_scale_size": 24})
    res = stylize(content_img, style_img, opts, on_progress=events.append, model=vgg)
    coarse = [e for e in events if e.scale == 1]
    assert len(coarse) < 100  # its share of the cap was 100 steps: it converged first
    assert not any(e.converged for e in coarse) and events[-1].scale == 2
    assert res.stats.steps == len(events) < 200 and res.stats.converged
