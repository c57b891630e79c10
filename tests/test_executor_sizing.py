"""Sizing a job at submit time, from its image header, in the caller's process."""

from __future__ import annotations

import io
import itertools

import pytest
from PIL import Image

from stylecore.executors import Job
from stylecore.executors.sizing import header_size, output_pixels, size_job, stack_key
from stylecore.options import StyleOptions


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 20, 30)).save(buf, "PNG")
    return buf.getvalue()


def test_output_pixels_follows_the_long_or_short_side() -> None:
    assert output_pixels(400, 200, 64, "long") == 64 * 32
    assert output_pixels(400, 200, 64, "short") == 128 * 64
    assert output_pixels(0, 0, 64) == 64 * 64


def test_a_job_is_sized_from_its_header_and_an_unreadable_one_stacks_with_nothing() -> None:
    opts = StyleOptions(size=64, steps=3)
    assert header_size(_png(400, 200)) == (400, 200)
    sized = size_job(Job(_png(400, 200), (_png(8, 8),), opts, user_id="u"))
    assert sized.pixels == 64 * 32 and sized.stack_key is not None
    junk = size_job(Job(b"not an image", (_png(8, 8),), opts, user_id="u"))
    assert junk.pixels == 64 * 64 and junk.stack_key is None
    lbfgs = size_job(Job(_png(400, 200), (_png(8, 8),), StyleOptions(size=64, optimizer="lbfgs"), user_id="u"))
    assert lbfgs.stack_key is None
    # the executor's forced device is part of the key, as the worker will see the options
    assert size_job(Job(_png(400, 200), (), opts, user_id="u"), device="cpu").stack_key != sized.stack_key


def test_jobs_the_dispatcher_stacks_are_jobs_the_engine_can_stack() -> None:
    """stack_key (torch-free, in the caller) must never join what stylecore.batch.batch_key keeps apart."""
    from stylecore.batch import batch_key

    sizes = [(400, 300), (300, 400), (401, 300), (64, 64), (1000, 10)]
    variants = [
        {},
        {"size": 48},
        {"size_side": "short"},
        {"scales": 2},
        {"scales": 3, "min_scale_size": 16},
        {"scales": 2, "min_scale_size": 16},
        {"device": "cpu"},
        {"fast": False},
        {"weights": "pytorch"},
        {"optimizer": "lbfgs"},
        {"lr": 0.5, "steps": 7, "seed": 3},  # per-job settings: may share
    ]
    cases = [(size, StyleOptions(**{"size": 64, **v})) for size in sizes for v in variants]
    for (size_a, a), (size_b, b) in itertools.combinations(cases, 2):
        ka, kb = stack_key(size_a, a), stack_key(size_b, b)
        if ka is not None and ka == kb:
            assert batch_key(size_a, a) == batch_key(size_b, b) is not None, (size_a, a, size_b, b)
    same = [(s, o) for s, o in cases if stack_key(s, o) == stack_key((400, 300), StyleOptions(size=64))]
    assert len(same) >= 2  # not vacuous: per-job settings do share a key


@pytest.mark.parametrize("size", [(40, 30), (30, 40)])
def test_stack_key_matches_the_output_size(size: tuple[int, int]) -> None:
    from stylecore.engine import output_size

    opts = StyleOptions(size=32)
    assert stack_key(size, opts)[0] == output_size(*size, opts)


async def _queued_etas(options: StyleOptions) -> list[float]:
    """ETAs two queued jobs are given on one (never ready) worker slot."""
    from bot_fixtures import idle_executor

    ex = idle_executor(workers=1, device="cpu", max_queue=10)
    await ex.start()
    try:
        handles = [await ex.submit(Job(_png(64, 48), (_png(64, 48),), options, user_id=f"u{i}")) for i in range(2)]
        etas = []
        for h in handles:
            async for ev in h.events():
                assert ev.kind == "queued" and ev.eta is not None
                etas.append(ev.eta)
                break
        return etas
    finally:
        await ex.shutdown(grace=0)


async def test_queue_etas_count_the_steps_a_run_is_expected_to_take_not_its_cap() -> None:
    from stylecore.convergence import expected_steps

    converging = StyleOptions(size=64, steps=1000)
    fixed = converging.replace(stop_tol=0.0)  # runs its whole cap, as the seed preset does
    assert expected_steps(fixed) == 1000 and expected_steps(converging) < 1000
    early, full = await _queued_etas(converging), await _queued_etas(fixed)
    # Same machine model in both: the ETAs scale with the steps charged to each job.
    for e, f in zip(early, full, strict=True):
        assert e / f == pytest.approx(expected_steps(converging) / 1000, rel=1e-6)
