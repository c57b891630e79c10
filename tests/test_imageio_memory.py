"""Decoding at the 40-megapixel limit stays within a fixed memory budget, in every pixel mode.

Each sample is decoded in a fresh child process that measures its own resident-memory peak
around the decode (see decode_measure.py). The budget: at most 700 MB of growth, where the
RGB result alone is 120 MB of pixels (160 MB as Pillow stores it, four bytes per pixel). The
time per decode is reported by benchmarks/decode_bench.py, not checked here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from decode_measure import SAMPLES, run_measure

from stylecore.imageio import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from stylecore.imageio.isolated import DEFAULT_MEMORY_LIMIT

BUDGET = 700 * 1000 * 1000

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="measuring a peak needs Linux's /proc/self/clear_refs"
)


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("samples40mp")
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            data = SAMPLES[name][0]()
            assert len(data) <= DEFAULT_MAX_BYTES, f"{name} is {len(data)} bytes, over the upload limit"
            made[name] = folder / name
            made[name].write_bytes(data)
        return made[name]

    return get


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_a_40_megapixel_decode_stays_within_budget(name: str, sample_file) -> None:
    report = run_measure(sample_file(name))
    assert report["pixels"] == DEFAULT_MAX_PIXELS
    assert report["mode"] == SAMPLES[name][1]  # the sample really exercises that mode's path
    assert report["peak_growth"] <= BUDGET, f"{name}: peak grew by {report['peak_growth'] / 1e6:.0f} MB"
    # The isolated decoder's default ceiling must never refuse a legitimate upload.
    assert report["address_space_growth"] < DEFAULT_MEMORY_LIMIT


@pytest.mark.parametrize("name", ["png-rgba", "jpeg-cmyk", "webp-rgba-lossless", "tiff-float32", "gif-palette"])
def test_probing_a_40_megapixel_file_allocates_nothing_like_its_pixels(name: str, sample_file) -> None:
    report = run_measure(sample_file(name), "probe")
    assert report["pixels"] == DEFAULT_MAX_PIXELS
    assert report["peak_growth"] < 8 * 1024 * 1024, f"probing grew the peak by {report['peak_growth'] / 2**20:.1f} MiB"
