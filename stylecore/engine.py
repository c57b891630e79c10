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
from stylecore.imageio import load_image, resize_to
from stylecore.losses import content_loss, gram, rescale_gram, style_loss, tv_loss
from stylecore.network import VGGFeatures, get_model
from stylecore.options import CONTENT_LAYER, STYLE_LAYERS, StyleOptions, resized
from stylecore.tensors import image_to_tensor, tensor_to_image
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
    return resized(width, height, opts.size, opts.size_side)


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
    """Loss terms for a stack of images at one scale, one row per job: (total, content, style, tv),
    each of shape [B] and already weighted. Tensors, so callers choose when to sync.

    Each job brings its own targets and weights, and a row's loss depends only on its own image,
    so the gradient of `total.sum()` with respect to row i is exactly that job's solo gradient:
    the single-job engine is the B = 1 case of this and shares every line with the batched one.
    """

    def __init__(self, model: VGGFeatures, parts: Sequence[tuple[_Targets, StyleOptions]], plan: DevicePlan):
        self.model, self.plan = model, plan
        targets = [t for t, _ in parts]
        opts = [o for _, o in parts]
        self.content = _stack([t.content for t in targets])
        self.grams = {layer: _stack([t.grams[layer] for t in targets]) for layer in STYLE_LAYERS}
        dev = self.content.device

        def per_job(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=dev)

        self.alpha = per_job([o.content_weight for o in opts])
        self.beta = per_job([o.style_weight * o.strength for o in opts])
        tv = [o.tv_weight for o in opts]
        self.tv = per_job(tv) if any(tv) else None
        # A layer no job weighs is left out altogether (a float 0 tells style_loss to skip it);
        # a layer only some jobs weigh adds exact zeros to the others' rows.
        self.layer_weights: dict[str, float | torch.Tensor] = {}
        for i, layer in enumerate(STYLE_LAYERS):
            ws = [o.style_layer_weights[i] for o in opts]
            self.layer_weights[layer] = per_job(ws) if any(ws) else 0.0
        self.loss_scale: float | None = None

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = image.contiguous(memory_format=torch.channels_last) if self.plan.channels_last else image
        with autocast(self.plan):
            feats = self.model(x, _ALL_LAYERS)
        c = self.alpha * content_loss(feats[CONTENT_LAYER], self.content)
        s = self.beta * style_loss(feats, self.grams, self.layer_weights)
        t = self.tv * tv_loss(image.float()) if self.tv is not None else torch.zeros_like(c)
        return c + s + t, c, s, t


def _stack(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(list(parts))


class _Job:
    """One run's state across its scales, stepped by `_run_jobs` alone or beside others.

    Everything that makes a run *this* run (its images, options, generator, targets, optimiser,
    EMA, progress and cancel callbacks) lives here, so a job gives the same pixels whether it
    is stepped on its own or stacked with other jobs.
    """

    def __init__(
        self,
        content: ImageSource,
        style: ImageSource | Sequence[ImageSource],
        options: StyleOptions | None,
        on_progress: ProgressFn | None,
        should_cancel: CancelFn | None,
    ):
        self.opts = opts = (options or StyleOptions()).validate()
        self.t0 = time.perf_counter()
        self.content_img = _as_image(content)
        style_srcs = list(style) if isinstance(style, (list, tuple)) else [style]
        self.style_imgs = [_as_image(s) for s in style_srcs]
        blend = list(opts.style_blend) or [1.0] * len(self.style_imgs)
        if len(blend) != len(self.style_imgs):
            raise ValueError(f"style_blend has {len(blend)} weights for {len(self.style_imgs)} style images")
        self.blend = [b / sum(blend) for b in blend]
        self.device = resolve_device(opts.device)
        self.plan = plan_for(self.device, opts.fast)
        self.gen = torch.Generator().manual_seed(opts.seed if opts.seed is not None else int(time.time_ns() % 2**31))
        self.final = output_size(*self.content_img.size, opts)
        self.sizes = scale_sizes(self.final, opts)
        self.steps = split_steps(opts.steps, self.sizes)
        self.work = [n * w * h for n, (w, h) in zip(self.steps, self.sizes, strict=True)]
        self.total_work, self.done_work = sum(self.work), 0.0
        self.recorder = TimelapseRecorder(fmt=opts.timelapse) if opts.timelapse != "none" else None
        self.on_progress, self.should_cancel = on_progress, should_cancel
        self.step_global = 0
        self.scale_idx = -1
        self.left = 0  # steps still to run at this scale
        self.image: torch.Tensor | None = None  # the last finished scale's result
        self.terms: tuple[torch.Tensor, ...] = ()

    @property
    def size(self) -> tuple[int, int]:
        return self.sizes[self.scale_idx]

    def advance(self, model: VGGFeatures) -> bool:
        """Close a finished scale and open the next one that has steps; False once all are done."""
        while self.left == 0:
            if self.scale_idx >= 0:
                self.image = _current(self.u, self.lr_scale, self.ema_img, self.ema_weight)
            if self.scale_idx + 1 == len(self.sizes):
                return False
            self._begin_scale(self.scale_idx + 1, model)
        return True

    def _begin_scale(self, idx: int, model: VGGFeatures) -> None:
        opts, plan = self.opts, self.plan
        self.scale_idx, self.left = idx, self.steps[idx]
        size = self.sizes[idx]
        self.targets = _targets(model, self.content_img, self.style_imgs, self.blend, size, opts, plan)
        if self.image is None:
            x0 = _init_image(opts, self.targets, self.style_imgs[0], self.gen)
        else:  # warm start: the coarse result, upsampled
            x0 = F.interpolate(self.image, size=(size[1], size[0]), mode="bicubic", align_corners=False)
            x0 = x0.clamp(0, 1)
        self.objective = _Objective(model, [(self.targets, opts)], plan)
        scale = torch.tensor(_SEED_STD if opts.lr_space == "normalized" else (1.0, 1.0, 1.0), device=self.device)
        self.lr_scale = scale.view(1, 3, 1, 1)
        self.lo, self.hi = torch.zeros_like(self.lr_scale), 1 / self.lr_scale
        self.u = (x0 / self.lr_scale).detach().requires_grad_(True)
        self.optim = _make_optimizer(opts, self.u, plan)
        self.ema_img: torch.Tensor | None = None
        self.ema_weight = 0.0

    def wants_cancel(self) -> bool:
        return self.should_cancel is not None and bool(self.should_cancel())

    def cancelled(self) -> Cancelled:
        partial = _finish(self.u.detach() * self.lr_scale, self.opts, self.targets.content_image)
        return Cancelled(
            StyleResult(partial, _stats(self.step_global, self.t0, self.terms, self.final, self.plan, cancelled=True))
        )

    def after_step(self, terms: tuple[torch.Tensor, ...]) -> None:
        """Everything after the optimiser's update: clamp, EMA, counters, progress and previews.

        The only host syncs are the loss float and the preview pixels, and only when due.
        """
        opts, u = self.opts, self.u
        self.terms = terms
        with torch.no_grad():
            # L-BFGS keeps curvature pairs of the points it visited; clamping behind its back
            # stalls its line search, so its image is clamped only at the end.
            if opts.clamp and opts.optimizer == "adam":
                u.data.clamp_(min=self.lo, max=self.hi)
            if opts.ema:
                self.ema_weight = opts.ema * self.ema_weight + (1 - opts.ema)
                cur = u.detach() * self.lr_scale
                self.ema_img = cur.clone() if self.ema_img is None else opts.ema * self.ema_img + (1 - opts.ema) * cur
        self.left -= 1
        self.step_global += 1
        step = self.step_global
        self.done_work += self.work[self.scale_idx] / self.steps[self.scale_idx]
        last = step == opts.steps
        due_preview = opts.preview_every and (step % opts.preview_every == 0 or last)
        preview = None
        if due_preview and (self.on_progress is not None or self.recorder is not None):
            img = _current(u, self.lr_scale, self.ema_img, self.ema_weight)
            preview = resize_to(tensor_to_image(img), opts.preview_size)
            if self.recorder is not None:
                self.recorder.add(preview)
        if self.on_progress is not None and (step % opts.report_every == 0 or last or due_preview):
            elapsed = time.perf_counter() - self.t0
            eta = elapsed * (self.total_work - self.done_work) / self.done_work if self.done_work else None
            self.on_progress(
                ProgressEvent(
                    step=step,
                    total=opts.steps,
                    scale=self.scale_idx + 1,
                    scales=len(self.sizes),
                    loss=float(terms[0]),
                    elapsed=elapsed,
                    eta=eta,
                    preview=preview,
                )
            )

    def result(self) -> StyleResult:
        """The final image with its losses measured on it (one more forward, as a B = 1 stack)."""
        image = self.image
        assert image is not None
        with torch.no_grad():
            terms = tuple(t.sum() for t in self.objective(image))
        out = _finish(image, self.opts, self.targets.content_image)
        stats = _stats(self.step_global, self.t0, terms, self.final, self.plan)
        timelapse = None
        if self.recorder is not None:
            self.recorder.add(out)
            timelapse = self.recorder.to_bytes()
        return StyleResult(out, stats, timelapse)


JobOutcome = StyleResult | Cancelled
FinishFn = Callable[[JobOutcome], None]


def _run_jobs(
    jobs: Sequence[_Job], model: VGGFeatures, on_finish: Sequence[FinishFn | None] | None = None
) -> list[JobOutcome]:
    """Step every job to its end: jobs at the same scale size share one forward/backward per step.

    A job leaves as soon as it has run its steps or its `should_cancel` says so; the rest go on.
    Jobs are stepped in lockstep (one step each per round), so a job with fewer steps finishes
    first and one at another scale size simply forms its own stack that round.
    """
    outcomes: dict[int, JobOutcome] = {}
    callbacks = list(on_finish) if on_finish is not None else [None] * len(jobs)

    def end(i: int, outcome: JobOutcome) -> None:
        outcomes[i] = outcome
        if callbacks[i] is not None:
            callbacks[i](outcome)

    active = [i for i, j in enumerate(jobs) if j.advance(model)]
    stacks: dict[tuple[tuple[int, int], ...], _Objective] = {}
    while active:
        stepping = []
        for i in active:
            if jobs[i].wants_cancel():
                end(i, jobs[i].cancelled())
            else:
                stepping.append(i)
        groups: dict[object, list[int]] = {}
        for i in stepping:  # L-BFGS runs its own line search: it always steps alone
            groups.setdefault(jobs[i].size if jobs[i].opts.optimizer == "adam" else ("alone", i), []).append(i)
        live: dict[tuple[tuple[int, int], ...], _Objective] = {}
        for members in groups.values():
            group = [jobs[i] for i in members]
            if group[0].opts.optimizer == "lbfgs":
                j = group[0]
                j.after_step(_lbfgs_step(j.optim, j.objective, j.u, j.lr_scale))
                continue
            key = tuple((i, jobs[i].scale_idx) for i in members)
            objective = stacks.get(key)
            if objective is None:
                objective = (
                    group[0].objective
                    if len(group) == 1
                    else _Objective(model, [(j.targets, j.opts) for j in group], group[0].plan)
                )
            live[key] = objective
            for j, terms in zip(group, _adam_step(group, objective), strict=True):
                j.after_step(terms)
        stacks = live
        active = []
        for i in stepping:
            if jobs[i].left == 0 and not jobs[i].advance(model):
                end(i, jobs[i].result())
            else:
                active.append(i)
    return [outcomes[i] for i in range(len(jobs))]


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
    job = _Job(content, style, options, on_progress, should_cancel)
    model = model if model is not None else get_model(job.opts.weights, job.device)
    (outcome,) = _run_jobs([job], model)
    if isinstance(outcome, Cancelled):
        raise outcome
    return outcome


def _make_optimizer(opts: StyleOptions, param: torch.Tensor, plan: DevicePlan) -> torch.optim.Optimizer:
    if opts.optimizer == "lbfgs":
        # The run decides when to stop (a step budget), so no tolerance may end it early.
        return torch.optim.LBFGS(
            [param],
            lr=opts.lr,
            max_iter=1,
            history_size=20,
            line_search_fn="strong_wolfe",
            tolerance_grad=0.0,
            tolerance_change=0.0,
        )
    # On the CUDA fast path the fused kernel is one launch per step instead of several and keeps
    # its step count on the device; the fp32 reference path keeps torch's default implementation.
    fused = plan.device.type == "cuda" and plan.autocast_dtype is not None
    return torch.optim.Adam([param], lr=opts.lr, fused=fused or None)


def _adam_step(group: Sequence[_Job], objective: _Objective) -> list[tuple[torch.Tensor, ...]]:
    """One Adam step for every job in `group`, through one forward/backward of their stacked images.

    The loss is the sum of the rows, so each job's image gets exactly its solo gradient; each
    job keeps its own optimiser (own lr, own moments), so leaving the stack changes nothing for
    the others.
    """
    for j in group:
        j.optim.zero_grad(set_to_none=True)
    x = _stack([j.u * j.lr_scale for j in group])
    rows = objective(x)
    rows[0].sum().backward()
    for j in group:
        j.optim.step()
    rows = tuple(r.detach() for r in rows)
    return [tuple(r[k] for r in rows) for k in range(len(group))]


def _lbfgs_step(
    optim: torch.optim.Optimizer, objective: _Objective, u: torch.Tensor, scale: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """L-BFGS evaluates the loss several times per step, so it never shares a stack."""
    holder: list[tuple[torch.Tensor, ...]] = []

    def closure() -> torch.Tensor:
        optim.zero_grad(set_to_none=True)
        terms = tuple(t.sum() for t in objective(u * scale))
        holder.append(tuple(t.detach() for t in terms))
        # L-BFGS's first step and its curvature test (y·s > 1e-10) assume a gradient of order one;
        # the notebook's units give losses near 1e19. One divisor per scale, fixed from the first
        # gradient's norm, so every evaluation sees the same (rescaled) problem.
        if objective.loss_scale is None:
            terms[0].backward()
            norm = float(u.grad.double().norm()) or 1.0  # fp32 squares overflow at these scales
            u.grad.div_(norm)
            objective.loss_scale = norm
        else:
            (terms[0] / objective.loss_scale).backward()
        return terms[0].detach() / objective.loss_scale

    optim.step(closure)
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


def _stats(
    steps: int,
    t0: float,
    terms: tuple[torch.Tensor, ...],
    size: tuple[int, int],
    plan: DevicePlan,
    cancelled: bool = False,
) -> RunStats:
    vals = [float(t) for t in terms] if terms else [math.nan] * 4
    return RunStats(
        steps=steps,
        seconds=time.perf_counter() - t0,
        total_loss=vals[0],
        content_loss=vals[1],
        style_loss=vals[2],
        tv_loss=vals[3],
        size=size,
        device=plan.label,
        cancelled=cancelled,
    )


__all__ = ["JobOutcome", "get_model", "output_size", "scale_sizes", "split_steps", "stylize"]
