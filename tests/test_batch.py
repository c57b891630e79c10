"""Batched jobs give each job what it would have got alone, on tiny CPU images (see samepixels)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import _smooth_image, _stripes_image
from samepixels import LOSS_REL, assert_same_image, pixels

from stylecore import Cancelled, StyleOptions, stylize
from stylecore.batch import BatchItem, batch_key, stylize_batch
from stylecore.events import ProgressEvent

# Two scales, (32, 24) then (64, 48); jobs with different step counts reach the fine scale
# on different rounds, so some rounds stack two sizes side by side.
BASE = dict(size=64, scales=2, min_scale_size=32, device="cpu")


@pytest.fixture(scope="module")
def jobs(content_img, style_img):
    other_content = _smooth_image(64, 48, seed=7)
    other_style = _stripes_image(40, 60, seed=3)
    return [
        (content_img, style_img, StyleOptions(steps=10, **BASE)),
        (other_content, other_style, StyleOptions(steps=14, lr=0.05, strength=0.5, init="noise", seed=3, **BASE)),
        (
            _smooth_image(64, 48, seed=9),
            [style_img, other_style],
            StyleOptions(
                steps=6,
                lr=0.01,
                seed=5,
                ema=0.5,
                tv_weight=3.0,
                style_layer_weights=(0, 1, 1, 0, 1),
                preserve_colors="luminance",
                style_blend=(1.0, 2.0),
                **BASE,
            ),
        ),
    ]


@pytest.fixture(scope="module")
def solo(jobs, vgg):
    return [stylize(c, s, o, model=vgg) for c, s, o in jobs]


def test_batched_jobs_equal_their_solo_runs(jobs, solo, vgg):
    events: list[list[ProgressEvent]] = [[] for _ in jobs]
    items = [BatchItem(c, s, o, on_progress=events[i].append) for i, (c, s, o) in enumerate(jobs)]
    out = stylize_batch(items, model=vgg)
    for (_, _, opts), alone, together, evs in zip(jobs, solo, out, events, strict=True):
        assert not isinstance(together, Cancelled)
        assert_same_image(alone.image, together.image)
        assert together.stats.steps == alone.stats.steps == opts.steps
        assert together.stats.total_loss == pytest.approx(alone.stats.total_loss, rel=LOSS_REL)
        # each job's own progress stream, in order, over its own scale split
        assert [e.step for e in evs] == list(range(1, opts.steps + 1))
        assert all(e.total == opts.steps and e.scales == 2 for e in evs)
        half = opts.steps // 2
        assert [e.scale for e in evs] == [1] * half + [2] * (opts.steps - half)
    # the jobs really differ from each other (noise init with its own seed, other options)
    assert np.abs(pixels(out[0].image) - pixels(out[1].image)).max() > 10


def test_a_job_cancelled_mid_batch_ends_alone_and_the_others_are_unaffected(jobs, solo, vgg):
    seen: list[ProgressEvent] = []
    order: list[str] = []

    def cancel_b() -> bool:
        return len(seen) >= 3

    def progress_b(e: ProgressEvent) -> None:
        seen.append(e)

    items = [
        BatchItem(*jobs[0], on_finish=lambda r: order.append("a")),
        BatchItem(*jobs[1], on_progress=progress_b, should_cancel=cancel_b, on_finish=lambda r: order.append("b")),
        BatchItem(*jobs[2], on_finish=lambda r: order.append("c")),
    ]
    out = stylize_batch(items, model=vgg)
    assert isinstance(out[1], Cancelled)
    partial = out[1].partial
    assert partial is not None and partial.stats.cancelled and partial.stats.steps == 3
    assert [e.step for e in seen] == [1, 2, 3]  # asked before step 4, stopped before running it
    # the same cancel alone stops at the same image
    alone_seen: list[ProgressEvent] = []
    with pytest.raises(Cancelled) as err:
        stylize(*jobs[1], on_progress=alone_seen.append, should_cancel=lambda: len(alone_seen) >= 3, model=vgg)
    assert_same_image(err.value.partial.image, partial.image)
    for i in (0, 2):
        assert isinstance(out[i], type(solo[i]))
        assert_same_image(solo[i].image, out[i].image)
    # each job left the moment it ended: b after 3 steps, c (6 steps) before a (10)
    assert order == ["b", "c", "a"]


def test_batch_key_groups_what_can_stack_and_splits_the_rest():
    opts = StyleOptions(size=64, steps=10, scales=2, min_scale_size=32, device="cpu")
    key = batch_key((128, 96), opts)
    assert key is not None
    # per-job settings do not split a batch
    for change in (
        dict(steps=50),
        dict(lr=0.1),
        dict(strength=2.0),
        dict(seed=9),
        dict(init="noise"),
        dict(preserve_colors="luminance"),
        dict(style_layer_weights=(1, 0, 0, 0, 1)),
        dict(tv_weight=1.0),
        dict(ema=0.9),
        dict(preview_every=2),
        dict(style_scale=2.0),
    ):
        assert batch_key((128, 96), opts.replace(**change)) == key, change
    assert batch_key((64, 48), opts) == key  # another input, the same output size
    # what changes the stacked shapes, the network or its precision splits it
    for size, change in (
        ((96, 128), {}),
        ((128, 96), dict(size=96)),
        ((128, 96), dict(scales=1)),
        ((128, 96), dict(min_scale_size=16, scales=3)),
        ((128, 96), dict(device="auto")),
        ((128, 96), dict(fast=False)),
        ((128, 96), dict(weights="torchvision")),
    ):
        assert batch_key(size, opts.replace(**change)) != key, (size, change)
    assert batch_key((128, 96), opts.replace(optimizer="lbfgs")) is None  # never stacks


def test_jobs_that_cannot_stack_are_refused(content_img, style_img, vgg):
    a = BatchItem(content_img, style_img, StyleOptions(steps=2, **BASE))
    b = BatchItem(content_img, style_img, StyleOptions(steps=2, **{**BASE, "size": 48}))
    with pytest.raises(ValueError, match="batch_key"):
        stylize_batch([a, b], model=vgg)
    lbfgs = BatchItem(content_img, style_img, StyleOptions(steps=2, optimizer="lbfgs", lr=1.0, **BASE))
    with pytest.raises(ValueError, match="batch_key"):
        stylize_batch([a, lbfgs], model=vgg)
    # alone, anything stylize takes runs (here L-BFGS) and equals stylize
    (res,) = stylize_batch([lbfgs], model=vgg)
    assert_same_image(res.image, stylize(lbfgs.content, lbfgs.style, lbfgs.options, model=vgg).image)
    assert stylize_batch([], model=vgg) == []
