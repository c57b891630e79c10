"""Decode benchmark: time and peak memory per pixel mode at the 40-megapixel limit.

For each sample of tests/decode_measure.py (real files in every mode a decoder produces:
16-bit, float and int32 greyscale, RGBA, LA, palette with transparency, CMYK, EXIF-rotated,
ICC-tagged...), it measures in a fresh child process, as the isolated decoder runs them:

- `decode_image` (header checks, decode, conversion to RGB8): seconds and peak memory growth;
- Pillow's own `open().convert("RGB")` on the same file: the floor, with no checks at all;
- `IsolatedDecoder.validate` from this process: wall time including the child's start-up.

The issue's goals are <= 5 s and <= 700 MB per decode; the table gives each time as a ratio
to the 5 s goal and to Pillow's floor, and validate's wall time as a ratio to the decode
itself. Figures vary with the machine and its load; ratios from one run are what compare.

  python benchmarks/decode_bench.py [--samples png-rgba,tiff-float32] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from decode_measure import SAMPLES, run_measure  # noqa: E402

from stylecore.imageio import IsolatedDecoder  # noqa: E402

GOAL_SECONDS = 5.0
GOAL_BYTES = 700 * 1000 * 1000


def _cpu() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    extras = [f for f in ("avx512_bf16", "amx_bf16") if f" {f}" in flags]
    return f"{model}, {os.cpu_count()} CPUs" + (f" ({', '.join(extras)})" if extras else "")


async def _validate_seconds(data: bytes) -> float:
    async with IsolatedDecoder(workers=1) as decoder:
        start = time.perf_counter()
        await decoder.validate(data)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", default=",".join(SAMPLES), help="comma-separated sample names")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the fastest counts")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    names = [n for n in args.samples.split(",") if n]
    unknown = sorted(set(names) - set(SAMPLES))
    if unknown:
        sys.exit(f"unknown samples {unknown}; choose from {sorted(SAMPLES)}")

    rows = []
    print(f"machine: {_cpu()}; load average {os.getloadavg()[0]:.1f}\n")
    print("| sample | mode | file MB | decode s | vs 5 s goal | vs Pillow | peak MB | validate s | validate/decode |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            data = SAMPLES[name][0]()
            path = Path(tmp) / name
            path.write_bytes(data)
            decode = min((run_measure(path) for _ in range(args.repeat)), key=lambda r: r["seconds"])
            floor = min((run_measure(path, "pillow") for _ in range(args.repeat)), key=lambda r: r["seconds"])
            validate = min(asyncio.run(_validate_seconds(data)) for _ in range(args.repeat))
            row = {
                "sample": name,
                "mode": decode["mode"],
                "file_bytes": len(data),
                "decode_seconds": decode["seconds"],
                "pillow_seconds": floor["seconds"],
                "peak_bytes": decode["peak_growth"],
                "pillow_peak_bytes": floor["peak_growth"],
                "validate_seconds": validate,
            }
            rows.append(row)
            print(
                f"| {name} | {row['mode']} | {len(data) / 1e6:.2f} | {decode['seconds']:.2f} "
                f"| {decode['seconds'] / GOAL_SECONDS:.2f} | {decode['seconds'] / floor['seconds']:.2f} "
                f"| {decode['peak_growth'] / 1e6:.0f} | {validate:.2f} | {validate / decode['seconds']:.2f} |",
                flush=True,
            )
    worst_time = max(rows, key=lambda r: r["decode_seconds"])
    worst_peak = max(rows, key=lambda r: r["peak_bytes"])
    print(
        f"\nslowest: {worst_time['sample']} {worst_time['decode_seconds']:.2f} s "
        f"({'within' if worst_time['decode_seconds'] <= GOAL_SECONDS else 'OVER'} the 5 s goal); "
        f"largest peak: {worst_peak['sample']} {worst_peak['peak_bytes'] / 1e6:.0f} MB "
        f"({'within' if worst_peak['peak_bytes'] <= GOAL_BYTES else 'OVER'} the 700 MB goal)"
    )
    if args.json:
        args.json.write_text(json.dumps({"machine": _cpu(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
