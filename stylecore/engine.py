"""The optimisation: Gatys et al. on a VGG19, one small core for every caller.

`stylize` is deliberately synchronous and self-contained: executors run it in worker
processes, the CLI runs it directly, and everything a caller may want to watch or stop
goes through two callbacks instead of threads or globals.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image

from stylecore import color
from stylecore.devices import DevicePlan, autocast, plan_for, resolve_device
from stylecore.events import Cancelled, ProgressEvent, RunStats, StyleResult
from stylecore.imageio import image_to_tensor, load_image, resize_to, tensor_to_image
from stylecore.losses import content_loss, gram, rescale_gram, style_loss, tv_loss
from stylecore.network import VGGFeatures, get_model
from stylecore.options import CONTENT_LAYER, STYLE_LAYERS, StyleOptions
from stylecore.timelapse import TimelapseRecorder

ImageSource = Image.Image | bytes | str | os.PathLike[str]
ProgressFn = Callable[[ProgressEvent], None]
CancelFn = Callable[[], bool]

# ImageNet std: the notebook's Adam ran on (x - mean) / std, so its lr in [0,1] units is lr*std.
_SEED_STD = (0.229, 0.224, 0.225)
_ALL_LAYERS = (*STYLE_LAYERS, CONTENT_LAYER)


def _as_image(src: ImageSource) -> Image.Image:
    if isinstance(src, Image.Image):
        return src if src.mode == "RGB" else src.convert("RGB")
    return load_image(src)


def output_size(width: int, height: int, opts: StyleOptions) -> tuple[int, int]:
    """(w, h) with the chosen side at `opts.size`, aspect kept."""
    ref = max(width, height) if opts.size_side == "long" else min(width, height)
    k = opts.size / ref
    return max(1, round(width * k)), max(1, round(height * k))


def scale_sizes(final: tuple[int, int], opts: StyleOptions) -> list[tuple[int, int]]:
    """Coarse-to-fine sizes, halving the long side, never below `min_scale_size`."""
    w, h = final
    sizes = [final]
    for i in range(1, opts.scales):
        k = 0.5**i
        if max(w, h) * k < opts.min_scale_size:
            break
        sizes.append((max(1, round(w * k)), max(1, round(h * k))))
    return sizes[::-1]


def split_steps(total: int, sizes: Sequence[tuple[int, int]]) -> list[int]:
    """Equal steps per scale, remainder to the finest: coarse steps cost a quarter as much and
    settle the large-scale structure the fine steps would otherwise spend most of their time on."""
    n = len(sizes)
    base = total // n
    steps = [base] * n
    steps[-1] += total - base * n
    return steps


@dataclass
class _Targets:
    content: torch.Tensor
    grams: dict[str, torch.Tensor]
    content_image: torch.Tensor


def _resize(img: Image.Image, size: tuple[int, int], exact: bool) -> Image.Image:
    if img.size == size:
        return img
    # The notebook resized with torchvision's PIL bilinear; keep that for its preset.
    return img.resize(size, Image.Resampling.BILINEAR if exact else Image.Resampling.LANCZOS)


def _style_image_at(img: Image.Image, size: tuple[int, int], opts: StyleOptions) -> Image.Image:
    if opts.style_fit == "stretch":
        return _resize(img, (round(size[0] * opts.style_scale), round(size[1] * opts.style_scale)), True)
    area = size[0] * size[1] * opts.style_scale**2
    k = math.sqrt(area / (img.width * img.height))
    return _resize(img, (max(16, round(img.width * k)), max(16, round(img.height * k))), False)


def _to_device(t: torch.Tensor, plan: DevicePlan) -> torch.Tensor:
    t = t.to(plan.device)
    return t.contiguous(memory_format=torch.channels_last) if plan.channels_last else t


@torch.no_grad()
def _targets(
    model: VGGFeatures,
    content: Image.Image,
    styles: Sequence[Image.Image],
    blend: Sequence[float],
    size: tuple[int, int],
    opts: StyleOptions,
    plan: DevicePlan,
) -> _Targets:
    exact = opts.style_fit == "stretch"
    c = _to_device(image_to_tensor(_resize(content, size, exact)), plan)
    with autocast(plan):
        c_feats = model(c, _ALL_LAYERS)
    grams: dict[str, torch.Tensor] = {}
    for img, w in zip(styles, blend, strict=True):
        s = _to_device(image_to_tensor(_style_image_at(img, size, opts)), plan)
        if opts.preserve_colors == "histogram":
            s = color.match_color(s, c)
        with autocast(plan):
            s_feats = model(s, STYLE_LAYERS)
        for layer in STYLE_LAYERS:
            sf, cf = s_feats[layer], c_feats[layer]
            g = rescale_gram(gram(sf), sf.shape[-2] * sf.shape[-1], cf.shape[-2] * cf.shape[-1]) * w
            grams[layer] = grams[layer] + g if layer in grams else g
    return _Targets(c_feats[CONTENT_LAYER].float(), grams, c)


def _init_image(opts: StyleOptions, targets: _Targets, style: Image.Image, gen: torch.Generator) -> torch.Tensor:
    c = targets.content_image.float()
    if opts.init == "content":
        return c.clone()
    if opts.init == "style":
        s = image_to_tensor(style.resize((c.shape[-1], c.shape[-2]), Image.Resampling.LANCZOS))
        return s.to(c.device)
    noise = torch.rand(c.shape, generator=gen).to(c.device)
    return noise


class _Objective:
    """Loss terms for one scale, each already weighted (total = content + style + tv); tensors, so
    callers choose when to sync."""

    def __init__(self, model: VGGFeatures, targets: _Targets, opts: StyleOptions, plan: DevicePlan):
        self.model, self.targets, self.plan = model, targets, plan
        self.alpha = opts.content_weight
        self.beta = opts.style_weight * opts.strength
        self.tv = opts.tv_weight
        self.layer_weights = dict(zip(STYLE_LAYERS, opts.style_layer_weights, strict=True))
        self.loss_scale: float | None = None

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = image.contiguous(memory_format=torch.channels_last) if self.plan.channels_last else image
        with autocast(self.plan):
            feats = self.model(x, _ALL_LAYERS)
        c = self.alpha * content_loss(feats[CONTENT_LAYER], self.targets.content)
        s = self.beta * style_loss(feats, self.targets.grams, self.layer_weights)
        t = self.tv * tv_loss(image.float()) if self.tv else torch.zeros_like(c)
        total = c + s + t
        return total.sum(), c.sum(), s.sum(), t.sum()


def stylize(
    content: ImageSource,
    style: ImageSource | Sequence[ImageSource],
    options: StyleOptions | None = None,
    *,
    on_progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
    model: VGGFeatures | None = None,
) -> StyleResult:
    """Paint `content` in the manner of `style`.

    `on_progress` gets an event every `report_every` steps (and the last); `should_cancel`
    is asked before every step, so a cancel lands within one step and raises `Cancelled`
    with the image so far.
    """
    opts = (options or StyleOptions()).validate()
    t0 = time.perf_counter()
    content_img = _as_image(content)
    style_srcs = list(style) if isinstance(style, (list, tuple)) else [style]
    style_imgs = [_as_image(s) for s in style_srcs]
    blend = list(opts.style_blend) or [1.0] * len(style_imgs)
    if len(blend) != len(style_imgs):
        raise ValueError(f"style_blend has {len(blend)} weights for {len(style_imgs)} style images")
    blend = [b / sum(blend) for b in blend]

    device = resolve_device(opts.device)
    plan = plan_for(device, opts.fast)
    model = model if model is not None else get_model(opts.weights, device)
    gen = torch.Generator().manual_seed(opts.seed if opts.seed is not None else int(time.time_ns() % 2**31))

    final = output_size(*content_img.size, opts)
    sizes = scale_sizes(final, opts)
    steps = split_steps(opts.steps, sizes)
    work = [n * w * h for n, (w, h) in zip(steps, sizes, strict=True)]
    total_work, done_work = sum(work), 0.0
    recorder = TimelapseRecorder(fmt=opts.timelapse) if opts.timelapse != "none" else None
    step_global = 0
    image: torch.Tensor | None = None
    terms: tuple[torch.Tensor, ...] = ()

    for scale_idx, (size, n_steps) in enumerate(zip(sizes, steps, strict=True)):
        targets = _targets(model, content_img, style_imgs, blend, size, opts, plan)
        if image is None:
            x0 = _init_image(opts, targets, style_imgs[0], gen)
        else:  # warm start: the coarse result, upsampled
            x0 = F.interpolate(image, size=(size[1], size[0]), mode="bicubic", align_corners=False)
            x0 = x0.clamp(0, 1)
        objective = _Objective(model, targets, opts, plan)
        scale = torch.tensor(_SEED_STD if opts.lr_space == "normalized" else (1.0, 1.0, 1.0), device=device)
        scale = scale.view(1, 3, 1, 1)
        u = (x0 / scale).detach().requires_grad_(True)
        optim = _make_optimizer(opts, u)
        ema_img: torch.Tensor | None = None
        ema_weight = 0.0

        for _ in range(n_steps):
            if should_cancel is not None and should_cancel():
                partial = _finish(image=(u.detach() * scale), opts=opts, content=targets.content_image)
                stats = _stats(step_global, t0, terms, final, plan, cancelled=True)
                raise Cancelled(StyleResult(partial, stats))
            terms = _step(optim, objective, u, scale, opts)
            with torch.no_grad():
                # L-BFGS keeps curvature pairs of the points it visited; clamping behind its back
                # stalls its line search, so its image is clamped only at the end.
                if opts.clamp and opts.optimizer == "adam":
                    u.data = torch.minimum(torch.maximum(u.data, torch.zeros_like(scale)), 1 / scale)
                if opts.ema:
                    ema_weight = opts.ema * ema_weight + (1 - opts.ema)
                    cur = u.detach() * scale
                    ema_img = cur.clone() if ema_img is None else opts.ema * ema_img + (1 - opts.ema) * cur
            step_global += 1
            done_work += work[scale_idx] / n_steps
            last = step_global == opts.steps
            due_preview = opts.preview_every and (step_global % opts.preview_every == 0 or last)
            preview = None
            if due_preview and (on_progress is not None or recorder is not None):
                preview = resize_to(tensor_to_image(_current(u, scale, ema_img, ema_weight)), opts.preview_size)
                if recorder is not None:
                    recorder.add(preview)
            if on_progress is not None and (step_global % opts.report_every == 0 or last or due_preview):
                elapsed = time.perf_counter() - t0
                eta = elapsed * (total_work - done_work) / done_work if done_work else None
                on_progress(ProgressEvent(
                    step=step_global, total=opts.steps, scale=scale_idx + 1, scales=len(sizes),
                    loss=float(terms[0]), elapsed=elapsed, eta=eta, preview=preview,
                ))
        image = _current(u, scale, ema_img, ema_weight)

    assert image is not None
    with torch.no_grad():
        terms = objective(image)
    out = _finish(image, opts, targets.content_image)
    stats = _stats(step_global, t0, terms, final, plan)
    timelapse = None
    if recorder is not None:
        recorder.add(out)
        timelapse = recorder.to_bytes()
    return StyleResult(out, stats, timelapse)


def _make_optimizer(opts: StyleOptions, param: torch.Tensor) -> torch.optim.Optimizer:
    if opts.optimizer == "lbfgs":
        return torch.optim.LBFGS([param], lr=opts.lr, max_iter=1, history_size=20, line_search_fn="strong_wolfe")
    return torch.optim.Adam([param], lr=opts.lr)


def _step(optim: torch.optim.Optimizer, objective: _Objective, u: torch.Tensor, scale: torch.Tensor,
          opts: StyleOptions) -> tuple[torch.Tensor, ...]:
    holder: list[tuple[torch.Tensor, ...]] = []

    def closure() -> torch.Tensor:
        optim.zero_grad(set_to_none=True)
        terms = objective(u * scale)
        # L-BFGS's tolerances and first step assume losses near 1; the notebook's units reach 1e19.
        # (Adam is scale-free but for its eps, so it keeps the notebook's units exactly.)
        if objective.loss_scale is None:
            lbfgs = isinstance(optim, torch.optim.LBFGS)
            objective.loss_scale = (float(terms[0].detach()) or 1.0) if lbfgs else 1.0
        (terms[0] / objective.loss_scale).backward()
        holder.append(tuple(t.detach() for t in terms))
        return terms[0].detach() / objective.loss_scale

    if isinstance(optim, torch.optim.LBFGS):
        optim.step(closure)
    else:
        closure()
        optim.step()
    return holder[0]


def _current(u: torch.Tensor, scale: torch.Tensor, ema_img: torch.Tensor | None, ema_weight: float) -> torch.Tensor:
    if ema_img is not None and ema_weight > 0:
        return (ema_img / ema_weight).detach()
    return (u * scale).detach()


def _finish(image: torch.Tensor, opts: StyleOptions, content: torch.Tensor) -> Image.Image:
    img = image.float().clamp(0, 1)
    if opts.preserve_colors == "luminance":
        img = color.luminance_transfer(img, content.float())
    return tensor_to_image(img.cpu())


def _stats(steps: int, t0: float, terms: tuple[torch.Tensor, ...], size: tuple[int, int], plan: DevicePlan,
           cancelled: bool = False) -> RunStats:
    vals = [float(t) for t in terms] if terms else [math.nan] * 4
    return RunStats(
        steps=steps, seconds=time.perf_counter() - t0, total_loss=vals[0], content_loss=vals[1],
        style_loss=vals[2], tv_loss=vals[3], size=size, device=plan.label, cancelled=cancelled,
    )


__all__ = ["get_model", "output_size", "scale_sizes", "split_steps", "stylize"]
