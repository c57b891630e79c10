"""`stylize CONTENT STYLE -o OUT`: the engine from a terminal.

Every engine option is a flag with the engine's own default, so the CLI never drifts
from the library; `--demo` runs the bundled sample pair offline with no arguments.
"""

from __future__ import annotations

import argparse
import importlib.resources
import sys
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from stylecore.engine import stylize
from stylecore.events import Cancelled, ProgressEvent
from stylecore.imageio import ImageError, encode_image
from stylecore.options import PRESET_NAMES, OptionsError, StyleOptions, preset, report_every_for
from stylecore.weights import WeightsError

_FLAGS: dict[str, str] = {
    "size": "output size in pixels (long side unless --size-side short)",
    "size_side": "which side --size sets",
    "steps": "most optimisation steps (split over the scales; a run stops sooner once converged)",
    "min_steps": "steps before a run may stop on convergence",
    "stop_tol": "stop once the loss falls by less than this fraction per step (0 = run every step)",
    "strength": "multiplies the style weight (1 = default)",
    "content_weight": "alpha",
    "style_weight": "beta",
    "tv_weight": "total-variation weight (smooths noise)",
    "optimizer": "adam or lbfgs",
    "lr": "learning rate (in [0,1] RGB units unless --lr-space normalized)",
    "lr_space": "units of --lr",
    "lr_half_life": "halve the lr every this many steps (0 = constant)",
    "init": "start from the content, noise or the style image",
    "scales": "coarse-to-fine scales (1 = single scale)",
    "min_scale_size": "smallest long side a coarse scale may have",
    "ema": "exponential moving average of the image (0 = off)",
    "preserve_colors": "keep the content's colours",
    "style_scale": "size of style features relative to the output",
    "seed": "random seed (noise init)",
    "weights": "original (bundled, offline), torchvision, or PATH.pth",
    "device": "auto, cpu or cuda",
}


def _demo_paths() -> tuple[Path, Path]:
    root = importlib.resources.files("stylecore") / "samples"
    return Path(str(root / "tubingen.jpg")), Path(str(root / "starry_night.jpg"))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="stylize", description="Neural style transfer (Gatys et al.) on VGG19.")
    ap.add_argument("content", nargs="?", help="content image (photo)")
    ap.add_argument("style", nargs="*", help="one or more style images (paintings)")
    ap.add_argument("-o", "--output", help="output file (.png, .jpg or .webp)")
    ap.add_argument("--demo", action="store_true", help="stylise the bundled sample images (offline)")
    ap.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        default="default",
        help="starting settings; 'seed' reproduces the original notebook",
    )
    defaults = StyleOptions()
    hints = get_type_hints(StyleOptions)
    for name, help_text in _FLAGS.items():
        default = getattr(defaults, name)
        choices = get_args(hints[name]) if get_origin(hints[name]) is Literal else None
        kind = type(default) if isinstance(default, (int, float)) else str
        ap.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            choices=choices,
            default=None,
            help=f"{help_text} (default: {default})",
        )
    ap.add_argument("--style-blend", type=float, nargs="+", help="weights of several style images")
    ap.add_argument("--no-fast", action="store_true", help="plain fp32 path even where a faster one exists")
    ap.add_argument("--timelapse", help="also write an animated GIF or WebP of the run here")
    ap.add_argument("--max-bytes", type=int, help="fit the output file under this many bytes")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return ap


def options_from_args(args: argparse.Namespace) -> StyleOptions:
    overrides: dict[str, Any] = {k: getattr(args, k) for k in _FLAGS if getattr(args, k) is not None}
    if args.style_blend:
        overrides["style_blend"] = tuple(args.style_blend)
    if args.no_fast:
        overrides["fast"] = False
    if args.timelapse:
        overrides["timelapse"] = "webp" if args.timelapse.lower().endswith(".webp") else "gif"
        overrides.setdefault("preview_every", max(1, (overrides.get("steps") or 300) // 48))
    return preset(args.preset, **overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.demo:
        content, style = _demo_paths()
        args.content, args.style = str(content), [str(style)]
        args.output = args.output or "stylized_demo.png"
        if args.size is None:
            args.size = 256
    if not args.content or not args.style or not args.output:
        build_parser().error("give CONTENT STYLE -o OUTPUT, or --demo")
    try:
        opts = options_from_args(args)
    except OptionsError as exc:
        print(f"stylize: {exc}", file=sys.stderr)
        return 2
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=opts.steps, unit="step", dynamic_ncols=True)

    def on_progress(ev: ProgressEvent) -> None:
        if bar is not None:
            if ev.converged:  # the run stops here, before its cap: the bar ends at this step
                bar.total = ev.step
            bar.update(ev.step - bar.n)
            bar.set_postfix(scale=f"{ev.scale}/{ev.scales}", loss=f"{ev.loss:.4g}")

    opts = opts.replace(report_every=max(opts.report_every, report_every_for(opts.steps)))
    try:
        result = stylize(
            args.content,
            args.style if len(args.style) > 1 else args.style[0],
            opts,
            on_progress=on_progress if bar is not None else None,
        )
    except ImageError as exc:
        print(f"stylize: {exc.user_message} ({exc})", file=sys.stderr)
        return 2
    except (WeightsError, RuntimeError, ValueError) as exc:
        print(f"stylize: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Cancelled):
        print("stylize: interrupted", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
    out = Path(args.output)
    fmt = {".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}.get(out.suffix.lower(), "png")
    encoded = encode_image(result.image, fmt, max_bytes=args.max_bytes)
    if encoded.fmt != fmt:
        out = out.with_suffix("." + encoded.extension)
    out.write_bytes(encoded.data)
    if args.timelapse and result.timelapse:
        Path(args.timelapse).write_bytes(result.timelapse)
    s = result.stats
    ended = f"converged at step {s.steps} of {opts.steps}" if s.converged else f"{s.steps} steps"
    print(f"wrote {out} ({s.size[0]}x{s.size[1]}) in {s.seconds:.1f}s, {ended} on {s.device}")
    print(f"loss: total {s.total_loss:.6g}  content {s.content_loss:.6g}  style {s.style_loss:.6g}  tv {s.tv_loss:.6g}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
