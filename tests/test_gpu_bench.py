"""benchmarks/gpu.py is meant for one device call; its --smoke mode runs the same code on CPU
at tiny sizes so that a broken script is found here, not on a leased GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_gpu_benchmark_smoke_runs_on_cpu_and_writes_every_section(tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu.py"),
            "--smoke",
            "--device",
            "cpu",
            "--seedref",
            str(tmp_path / "absent_seedref.py"),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["errors"] == []
    assert set(report) >= {"env", "config", "seedref", "memory", "throughput", "agreement", "batching", "markdown"}
    # without seedref the baseline is stylecore's own fp32 seed preset, and it says so
    assert report["seedref"]["used"] is False and "not found" in report["seedref"]["why_not"]
    rows = report["throughput"]
    assert [r["side"] for r in rows] == [48, 64]
    for r in rows:
        assert "no seedref" in r["baseline"]
        assert r["fast_steps_per_s"] > 0 and r["baseline_steps_per_s"] > 0 and r["conv_gflop_per_step"] > 0
        assert {
            "fast_tflops",
            "fast_fraction_of_bf16_peak",
            "ratio_fast_vs_baseline",
            "peak_bytes",
            "estimate_bytes_fast",
        } <= set(r)
    ag = report["agreement"]
    assert {"scores", "relative_difference", "within_tolerance", "default_job_wall_s"} <= set(ag)
    assert set(ag["scores"]) == {"fp32", "fast"} and all(v["style"] > 0 for v in ag["scores"].values())
    (batch,) = report["batching"]
    assert batch["jobs"] == 2 and batch["sequential_jobs_per_hour"] > 0 and batch["batched_jobs_per_hour"] > 0
    assert batch["batched_vs_sequential_pixels"]["max_abs"] <= 2  # the stack equals the sequential runs
    assert report["memory"]["max_side_bf16"] > 0
    assert "| px |" in report["markdown"] and "| batching |" in report["markdown"]
