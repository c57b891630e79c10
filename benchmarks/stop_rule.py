"""How many steps each benchmark pair needs, and where a stop rule would end it.

`run` optimises every pair of the benchmark set with some settings and no early stop, up to a
cap, and keeps the trajectory: the engine's own loss at every step, the work done (steps
weighted by pixels, so a coarse step costs what it costs), and the judge's scores of the image
every `--every` steps. `analyse` reads the trajectories against the reference's judged scores
(`reference_scores.json`) and prints, per pair, the first checkpoint at which the image is as
good as the reference's 2000 steps (seed loss and content no worse) and, for each stop rule of a
grid, the step it stops at and whether the image is good there. The rule is chosen on the pairs
named by `--tune` and reported on every pair, so the ones held out show how it does on pairs it
was not chosen on.

Trajectories are kept in benchmarks/trajectories/<label>.json as data: steps and scores do not
depend on the machine (only the seconds do, which is why work is counted in steps). Name the
options that matter in `--options` even where they equal today's defaults, so that a label still
says what it measured once the defaults move.

  python benchmarks/stop_rule.py run --label cw1p5 --options '{"content_weight": 1.5e12}'
  python benchmarks/stop_rule.py run --label scales2 --options '{"content_weight": 1e12, "scales": 2}'
  python benchmarks/stop_rule.py analyse --label cw1p5 --tune tubingen_starry,goldengate_wave
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
TRAJECTORIES = HERE / "trajectories"
sys.path.insert(0, str(HERE))

from engine_bench import SCORES, SHORT_SIDE, reached, read_pairs  # noqa: E402

TOLS = (0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008)
MIN_STEPS = (50,)


def run(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(args.bench_dir))
    import judge
    import seedref
    import torch

    from stylecore import StyleOptions, stylize
    from stylecore.network import get_model

    torch.set_num_threads(args.threads)
    overrides = json.loads(args.options)
    base = {"size": SHORT_SIDE, "size_side": "short", "device": "cpu", **overrides}
    opts = StyleOptions(
        **{**base, "steps": args.cap, "stop_tol": 0.0, "preview_every": args.every, "preview_size": 4096}
    ).validate()
    model = get_model(opts.weights, "cpu")
    vgg = seedref.caffe_vgg19_features()
    path = TRAJECTORIES / f"{args.label}.json"
    out = json.loads(path.read_text()) if path.exists() else {"options": overrides, "cap": args.cap}
    if (out["options"], out["cap"]) != (overrides, args.cap):
        sys.exit(f"{path} holds runs with options {out['options']} and cap {out['cap']}: use another --label")
    pairs = read_pairs()
    for name in args.pairs.split(",") if args.pairs else pairs:
        if name in out and not args.again:
            continue
        content, style = args.images / pairs[name]["content"], args.images / pairs[name]["style"]
        losses: list[float] = []
        scales: list[int] = []
        elapsed: list[float] = []
        shots = {}

        def on_progress(e, losses=losses, scales=scales, elapsed=elapsed, shots=shots) -> None:
            if e.step > len(losses):
                losses.append(e.loss)
                scales.append(e.scale)
                elapsed.append(e.elapsed)
            if e.preview is not None and e.scale == e.scales:
                shots[e.step] = e.preview

        res = stylize(content, style, opts, model=model, on_progress=on_progress)
        final_size = res.image.size
        judged = {}
        with tempfile.TemporaryDirectory() as tmp:
            for step, img in sorted(shots.items()):
                if img.size != final_size:
                    continue
                p = Path(tmp) / f"{step}.png"
                img.save(p)
                judged[str(step)] = judge.score(str(content), str(style), str(p), SHORT_SIDE, vgg=vgg)
        work = _work(opts, final_size, scales)
        out[name] = {
            "size": list(final_size),
            "loss": losses,
            "scale": scales,
            "work": work,
            "elapsed": elapsed,
            "judge": judged,
        }
        print(f"{name}: {len(losses)} steps, {res.stats.seconds:.0f} s, {len(judged)} checkpoints", flush=True)
        TRAJECTORIES.mkdir(exist_ok=True)
        path.write_text(json.dumps(out) + "\n")


def _work(opts, final: tuple[int, int], scales: list[int]) -> list[float]:
    """Cumulative work after each step in full-size steps (a step at half the width and height counts 1/4)."""
    from stylecore.sizes import scale_sizes

    sizes = scale_sizes(final, opts)
    full = final[0] * final[1]
    total, work = 0.0, []
    for s in scales:
        w, h = sizes[s - 1]
        total += w * h / full
        work.append(round(total, 4))
    return work


def stop_step(losses: list[float], tol: float, min_steps: int) -> int:
    """Where `stylecore.convergence.Convergence` stops a single-scale run with this loss curve."""
    from stylecore.convergence import Convergence

    watch = Convergence(tol, min_steps)
    for step, loss in enumerate(losses, 1):
        if watch.update(step, loss):
            return step
    return len(losses)


def nearest(judged: dict[str, dict], step: int) -> dict:
    """The judged checkpoint nearest `step` (the earlier of two as near)."""
    return judged[min(judged, key=lambda s: (abs(int(s) - step), int(s)))]


def analyse(args: argparse.Namespace) -> None:
    refs = json.loads(SCORES.read_text())
    data = json.loads((TRAJECTORIES / f"{args.label}.json").read_text())
    tune = set(args.tune.split(",")) if args.tune else set()
    names = [n for n in read_pairs() if n in data]
    judged = [n for n in names if n in refs]
    print(f"# {args.label}: options {json.dumps(data['options'])}, cap {data['cap']}")
    held_out = ", ".join(n for n in judged if n not in tune)
    print(f"# tuned on: {', '.join(sorted(tune)) or '(none)'}; held out: {held_out}; rules capped at {args.cap}")
    print(f"# no reference yet: {', '.join(n for n in names if n not in refs) or '(none)'}")
    print("\n| pair | first good checkpoint (work) | seed loss there (ref) | content there (ref) |")
    print("|---|---|---|---|")
    for n in judged:
        d, ref = data[n], refs[n]["judge"]
        first = next((int(s) for s in sorted(d["judge"], key=int) if reached(d["judge"][s], ref)), None)
        if first is None:
            last = max(d["judge"], key=int)
            j = d["judge"][last]
            print(
                f"| {n} | never by {last} | {j['seed_loss']:.3g} ({ref['seed_loss']:.3g}) "
                f"| {j['content']:.3f} ({ref['content']:.3f}) |"
            )
        else:
            j = d["judge"][str(first)]
            print(
                f"| {n} | {first} ({d['work'][first - 1]:.0f}) | {j['seed_loss']:.3g} ({ref['seed_loss']:.3g}) "
                f"| {j['content']:.3f} ({ref['content']:.3f}) |"
            )
    if not names or any(len(set(data[n]["scale"])) > 1 for n in names):
        return  # the replay below steps one scale; a coarse-to-fine run's scales stop on their own
    print(f"\nstop rules (stop step, at most the cap {args.cap}; + good there, - not, ? no reference yet):")
    print(
        "| tol | min | "
        + " | ".join(f"{n}{' (tune)' if n in tune else ''}" for n in names)
        + " | tune ok | median stop |"
    )
    print("|---|---|" + "---|" * (len(names) + 2))
    for tol in TOLS:
        for m in MIN_STEPS:
            cells, stops, tune_ok = [], [], True
            for n in names:
                d = data[n]
                s = min(stop_step(d["loss"], tol, m), args.cap)
                stops.append(s)
                if n not in refs:
                    cells.append(f"{s}?")
                    continue
                j = nearest(d["judge"], s)
                ok = reached(j, refs[n]["judge"])
                tune_ok &= ok or n not in tune
                cells.append(f"{s}{'+' if ok else '-'}")
            median = statistics.median(stops)
            print(f"| {tol} | {m} | " + " | ".join(cells) + f" | {'yes' if tune_ok else 'no'} | {median:g} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--label", required=True)
    r.add_argument("--options", default="{}", help="JSON overrides of the default StyleOptions")
    r.add_argument("--pairs", help="comma-separated pair names (default: the whole set)")
    r.add_argument("--cap", type=int, default=300)
    r.add_argument("--every", type=int, default=10, help="judge the image every this many steps")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--again", action="store_true", help="run pairs already in the file again")
    r.add_argument("--bench-dir", type=Path, default=ROOT.parent / "shared" / "bench")
    r.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "images")
    a = sub.add_parser("analyse")
    a.add_argument("--label", required=True)
    a.add_argument("--tune", help="comma-separated pairs the rule is chosen on")
    a.add_argument("--cap", type=int, default=200, help="the step cap the rule runs under (the default's steps)")
    args = ap.parse_args()
    run(args) if args.cmd == "run" else analyse(args)


if __name__ == "__main__":
    main()
