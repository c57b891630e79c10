"""Engine benchmark: stylecore against the seed notebook (seedref.py), same run, same pixels.

(a) step throughput of the `seed` preset against seedref, same steps;
(b) time for the default settings to reach seedref's 2000-step seed loss (scored by judge.py)
    with judge `content` no worse, against seedref's time for its 2000 steps.

Needs ../shared/bench (seedref.py, judge.py) beside the repo, or --bench-dir. Not a test:
it prints a markdown table and writes JSON; figures vary with the machine and its load,
so only the ratios measured here, in one run, mean anything.

  python benchmarks/engine_bench.py --max-size 256 --budgets 100,130,160,200,250,300
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _import_bench(bench_dir: Path):
    if not (bench_dir / "seedref.py").exists():
        sys.exit(f"seedref.py not found in {bench_dir}; pass --bench-dir")
    sys.path.insert(0, str(bench_dir))
    import judge
    import seedref

    return seedref, judge


def run_seedref(bench_dir: Path, content: str, style: str, steps: int, max_size: int, out: Path) -> dict:
    log = out.with_suffix(".json")
    cmd = [
        sys.executable,
        str(bench_dir / "seedref.py"),
        content,
        style,
        "--steps",
        str(steps),
        "--max-size",
        str(max_size),
        "--log-every",
        "10",
        "--out",
        str(out),
        "--json",
        str(log),
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    data = json.loads(log.read_text())
    return {row["step"]: row["seconds"] for row in data["log"]}


def seconds_per_step(times: dict[int, float], first: int, last: int) -> float:
    return (times[last] - times[first]) / (last - first)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench-dir", type=Path, default=ROOT.parent / "shared" / "bench")
    ap.add_argument("--content", default=str(ROOT.parent / "shared" / "images" / "tubingen.jpg"))
    ap.add_argument("--style", default=str(ROOT.parent / "shared" / "images" / "starry_night.jpg"))
    ap.add_argument("--max-size", type=int, default=256, help="the notebook's Resize(N): short side")
    ap.add_argument("--seed-steps", type=int, default=2000)
    ap.add_argument("--throughput-steps", type=int, default=100)
    ap.add_argument("--budgets", default="100,130,160,200,250,300", help="default-preset step budgets to try")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "engine_bench.json")
    ap.add_argument("--skip-fp32", action="store_true", help="skip the plain-fp32 seed preset run")
    ap.add_argument(
        "--reuse-seedref",
        type=Path,
        help="folder of an earlier run's seedref.png/seedref.json (same machine, images, size) "
        "instead of 40 more minutes of seedref; the output says so",
    )
    ap.add_argument("--skip-a", action="store_true", help="only (b)")
    args = ap.parse_args()
    seedref, judge = _import_bench(args.bench_dir)
    from stylecore import StyleOptions, preset, stylize
    from stylecore.devices import cpu_has_fast_bf16

    tmp = Path(tempfile.mkdtemp(prefix="stylebench-"))
    vgg_judge = seedref.caffe_vgg19_features()
    ct = seedref.load_image(args.content, args.max_size)
    st = seedref.load_image(args.style, shape=ct.shape[-2:])
    h, w = ct.shape[-2:]
    content_img, style_img = seedref.to_pil(ct), seedref.to_pil(st)  # the very pixels seedref optimises
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
        f"{w}x{h} px, cpu bf16 units: {cpu_has_fast_bf16()}",
        flush=True,
    )

    # seedref, 2000 steps: the quality target and both time baselines
    if args.reuse_seedref:
        ref_out = args.reuse_seedref / "seedref.png"
        log = json.loads((args.reuse_seedref / "seedref.json").read_text())["log"]
        t_ref = {row["step"]: row["seconds"] for row in log}
        print(f"seedref: REUSED from {args.reuse_seedref} (an earlier run on this machine)", flush=True)
    else:
        ref_out = tmp / "seedref.png"
        t_ref = run_seedref(args.bench_dir, args.content, args.style, args.seed_steps, args.max_size, ref_out)
    ref_score = judge.score(args.content, args.style, str(ref_out), args.max_size, vgg=vgg_judge)
    ref_total = t_ref[args.seed_steps]
    n = args.throughput_steps
    ref_sps = seconds_per_step(t_ref, 10, n)
    print(
        f"seedref: {args.seed_steps} steps in {ref_total:.1f}s, {ref_sps:.3f} s/step; judge {json.dumps(ref_score)}",
        flush=True,
    )

    # (a) seed preset, same pixels, same steps
    rows_a = []
    for fast in [] if args.skip_a else ([True] if args.skip_fp32 else [True, False]):
        times: dict[int, float] = {}
        opts = preset("seed", size=min(w, h), steps=n, device="cpu", fast=fast)
        stylize(content_img, style_img, opts, on_progress=lambda e, t=times: t.__setitem__(e.step, e.elapsed))
        sps = seconds_per_step(times, 10, n)
        rows_a.append({"path": "fast" if fast else "fp32", "s_per_step": sps, "ratio": ref_sps / sps})
        print(f"seed preset ({rows_a[-1]['path']}): {sps:.3f} s/step, {ref_sps / sps:.2f}x", flush=True)

    # (b) default settings: the smallest budget that matches seedref's 2000-step quality
    rows_b = []
    for budget in [int(b) for b in args.budgets.split(",")]:
        opts = StyleOptions(size=max(w, h), steps=budget, device="cpu")
        res = stylize(args.content, args.style, opts)
        out = tmp / f"default_{budget}.png"
        res.image.save(out)
        sc = judge.score(args.content, args.style, str(out), args.max_size, vgg=vgg_judge)
        ok = sc["seed_loss"] <= ref_score["seed_loss"] and sc["content"] <= ref_score["content"]
        rows_b.append(
            {
                "steps": budget,
                "seconds": res.stats.seconds,
                "judge": sc,
                "reaches": ok,
                "ratio": ref_total / res.stats.seconds,
            }
        )
        print(
            f"default {budget} steps: {res.stats.seconds:.1f}s judge {json.dumps(sc)} {'REACHES' if ok else 'not yet'}",
            flush=True,
        )
        if ok:
            break

    print("\n| measure | seedref | stylecore | ratio |\n|---|---|---|---|")
    for r in rows_a:
        print(
            f"| (a) seed preset s/step ({r['path']} path), {w}x{h} | {ref_sps:.3f} | {r['s_per_step']:.3f} "
            f"| {r['ratio']:.2f}x |"
        )
    hit = next((r for r in rows_b if r["reaches"]), None)
    if hit:
        print(
            f"| (b) time to seedref's {args.seed_steps}-step seed loss (default, {hit['steps']} steps) "
            f"| {ref_total:.1f}s | {hit['seconds']:.1f}s | {hit['ratio']:.1f}x |"
        )
    else:
        print(
            f"| (b) time to seedref's {args.seed_steps}-step seed loss | {ref_total:.1f}s | not reached "
            f"within {rows_b[-1]['steps']} steps | - |"
        )
    args.json.write_text(
        json.dumps(
            {
                "size": [w, h],
                "seedref": {"seconds": ref_total, "s_per_step": ref_sps, "judge": ref_score},
                "a": rows_a,
                "b": rows_b,
                "machine": platform.platform(),
                "cpus": os.cpu_count(),
                "torch": torch.__version__,
                "when": time.strftime("%Y-%m-%d %H:%M"),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
