"""`stylize CONTENT STYLE -o OUT`: the engine from a terminal.

Every declared option (stylecore.option_specs) is a flag with the engine's own default, its
bounds and its help, so the CLI never drifts from the library; `--demo` runs the bundled
sample pair offline with no arguments.
"""

from __future__ import annotations

import argparse
import importlib.resources
import sys
from pathlib import Path
from typing import Any

from stylecore.engine import stylize
from stylecore.events import Cancelled, ProgressEvent
from stylecore.imageio import ImageError, encode_image
from stylecore.option_specs import OPTION_SPECS
from stylecore.options import PRESET_NAMES, OptionsError, StyleOptions, preset, report_every_for
from stylecore.weights import WeightsError


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
        help="starting settings; 'seed' = the reference settings (short side 400, 2000 Adam steps)",
    )
    defaults = StyleOptions()
    for spec in OPTION_SPECS.values():
        bounds = "" if spec.choices or spec.kind is str else f"; {spec.bounds()}"
        ap.add_argument(
            "--" + spec.name.replace("_", "-"),
            type=spec.kind,
            choices=list(spec.choices) if spec.choices else None,
            default=None,
            help=f"{spec.help} (default: {spec.fmt(getattr(defaults, spec.name))}{bounds})",
        )
    ap.add_argument("--style-blend", type=float, nargs="+", help="weights of several style images")
    ap.add_argument("--no-fast", action="store_true", help="plain fp32 path even where a faster one exists")
    ap.add_argument("--timelapse", help="also write an animated GIF or WebP of the run here")
    ap.add_argument("--max-bytes", type=int, help="fit the output file under this many bytes")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return ap


def options_from_args(args: argparse.Namespace) -> StyleOptions:
    overrides: dict[str, Any] = {k: getattr(args, k) for k in OPTION_SPECS if getattr(args, k) is not None}
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
