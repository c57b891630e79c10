"""The optimisation: Gatys et al. on a VGG19, one small core for every caller.

`stylize` is deliberately synchronous and self-contained: executors run it in worker
processes, the CLI runs it directly, and everything a caller may want to watch or stop
goes through two callbacks instead of threads or globals.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from stylecore.color import luminance_transfer
from stylecore.convergence import Convergence, expected_steps, stops_early
from stylecore.devices import DevicePlan, plan_for, resolve_device
from stylecore.events import (
    CancelFn,
    Cancelled,
    ImageSource,
    JobOutcome,
    ProgressEvent,
    ProgressFn,
    RunStats,
    StyleResult,
)
from stylecore.imageio import load_image, resize_to
from stylecore.network import VGGFeatures, get_model
from stylecore.objective import Objective, Targets, make_targets, stack
from stylecore.options import StyleOptions
from stylecore.sizes import output_size, scale_sizes, split_steps
from stylecore.tensors import image_to_tensor, tensor_to_image
from stylecore.timelapse import TimelapseRecorder

# ImageNet std: with lr_space="normalized" Adam runs on (x - mean) / std as torchvision-style
# reference code does, so its lr in [0,1] units is lr*std.
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _as_image(src: ImageSource) -> Image.Image:
    if isinstance(src, Image.Image):
        return src if src.mode == "RGB" else src.convert("RGB")
    return load_image(src)


def _init_image(opts: StyleOptions, targets: Targets, style: Image.Image, gen: torch.Generator) -> torch.Tensor:
    c = targets.content_image.float()
    if opts.init == "content":
        return c.clone()
    if opts.init == "style":
        s = image_to_tensor(style.resize((c.shape[-1], c.shape[-2]), Image.Resampling.LANCZOS))
        return s.to(c.device)
    noise = torch.rand(c.shape, generator=gen).to(c.device)
    return noise


class Run:
    """One run's state across its scales, stepped by `run_stack` alone or beside others.

    Everything that makes a run *this* run (its images, options, generator, targets, optimiser,
    EMA, stop rule, progress and cancel callbacks) lives here, so a job gives the same pixels and
    stops at the same step whether it is stepped on its own or stacked with other jobs.
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
        self.done_work = 0.0
        self.recorder = TimelapseRecorder(fmt=opts.timelapse) if opts.timelapse != "none" else None
        self.on_progress, self.should_cancel = on_progress, should_cancel
        self.step_global = 0
        self.scale_idx = -1
        self.left = 0  # steps still to run at this scale (its share of the cap)
        self.converged = False
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
        self.targets = make_targets(model, self.content_img, self.style_imgs, self.blend, size, opts, plan)
        if self.image is None:
            x0 = _init_image(opts, self.targets, self.style_imgs[0], self.gen)
        else:  # warm start: the coarse result, upsampled
            x0 = F.interpolate(self.image, size=(size[1], size[0]), mode="bicubic", align_corners=False)
            x0 = x0.clamp(0, 1)
        self.objective = Objective(model, [(self.targets, opts)], plan)
        scale = torch.tensor(_IMAGENET_STD if opts.lr_space == "normalized" else (1.0, 1.0, 1.0), device=self.device)
        self.lr_scale = scale.view(1, 3, 1, 1)
        self.lo, self.hi = torch.zeros_like(self.lr_scale), 1 / self.lr_scale
        self.u = (x0 / self.lr_scale).detach().requires_grad_(True)
        self.optim = _make_optimizer(opts, self.u, plan)
        self.ema_img: torch.Tensor | None = None
        self.ema_weight = 0.0
        self.scale_step = 0
        self.watch = Convergence(opts.stop_tol, opts.min_steps) if stops_early(opts) else None

    def wants_cancel(self) -> bool:
        return self.should_cancel is not None and bool(self.should_cancel())

    def cancelled(self) -> Cancelled:
        partial = _finish(self.u.detach() * self.lr_scale, self.opts, self.targets.content_image)
        return Cancelled(
            StyleResult(partial, _stats(self.step_global, self.t0, self.terms, self.final, self.plan, cancelled=True))
        )

    def after_step(self, terms: tuple[torch.Tensor, ...]) -> None:
        """Everything after the optimiser's update: clamp, EMA, counters, stop rule, progress, previews.

        The only host syncs are the loss float and the preview pixels, and only when due: the
        loss is read every `report_every` steps (for the stop rule even when nobody listens)
        and the stop rule is asked only then, so it adds no reads of its own.
        """
        opts, u = self.opts, self.u
        self.terms = terms
        with torch.no_grad():
            # L-BFGS keeps curvature pairs of the steps it took; clamping behind its back would
            # falsify them, so its image is clamped only at the end.
            if opts.clamp and opts.optimizer == "adam":
                u.data.clamp_(min=self.lo, max=self.hi)
            if opts.ema:
                self.ema_weight = opts.ema * self.ema_weight + (1 - opts.ema)
                cur = u.detach() * self.lr_scale
                self.ema_img = cur.clone() if self.ema_img is None else opts.ema * self.ema_img + (1 - opts.ema) * cur
        self.left -= 1
        self.step_global += 1
        self.scale_step += 1
        step = self.step_global
        self.done_work += self.work[self.scale_idx] / self.steps[self.scale_idx]
        due_report = step % opts.report_every == 0
        final_scale = self.scale_idx == len(self.sizes) - 1
        loss: float | None = None
        if self.watch is not None and due_report:
            loss = float(terms[0])
            if self.watch.update(self.scale_step, loss) and self.left:
                self.left = 0  # this scale is done; at the finest one, the run is
                self.converged = final_scale
        last = self.left == 0 and final_scale
        due_preview = opts.preview_every and (step % opts.preview_every == 0 or last)
        preview = None
        if due_preview and (self.on_progress is not None or self.recorder is not None):
            img = _current(u, self.lr_scale, self.ema_img, self.ema_weight)
            preview = resize_to(tensor_to_image(img), opts.preview_size)
            if self.recorder is not None:
                self.recorder.add(preview)
        if self.on_progress is not None and (due_report or last or due_preview):
            elapsed = time.perf_counter() - self.t0
            self.on_progress(
                ProgressEvent(
                    step=step,
                    total=opts.steps,
                    scale=self.scale_idx + 1,
                    scales=len(self.sizes),
                    loss=loss if loss is not None else float(terms[0]),
                    elapsed=elapsed,
                    eta=0.0 if last else self._eta(elapsed),
                    preview=preview,
                    converged=self.converged,
                )
            )

    def _eta(self, elapsed: float) -> float | None:
        """Seconds left if the run takes its expected steps (its cap when it cannot stop early);
        a run already past them is expected to need at least one more window."""
        if not self.done_work:
            return None
        shares = split_steps(expected_steps(self.opts, self.step_global), self.sizes)
        work = sum(n * w * h for n, (w, h) in zip(shares, self.sizes, strict=True))
        return max(0.0, elapsed * (work - self.done_work) / self.done_work)

    def result(self) -> StyleResult:
        """The final image with its losses measured on it (one more forward, as a B = 1 stack)."""
        image = self.image
        assert image is not None
        with torch.no_grad():
            terms = tuple(t.sum() for t in self.objective(image))
        out = _finish(image, self.opts, self.targets.content_image)
        stats = _stats(self.step_global, self.t0, terms, self.final, self.plan, converged=self.converged)
        timelapse = None
        if self.recorder is not None:
            self.recorder.add(out)
            timelapse = self.recorder.to_bytes()
        return StyleResult(out, stats, timelapse)


FinishFn = Callable[[JobOutcome], None]


def run_stack(
    jobs: Sequence[Run], model: VGGFeatures, on_finish: Sequence[FinishFn | None] | None = None
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
    stacks: dict[tuple[tuple[int, int], ...], Objective] = {}
    while active:
        stepping = []
        for i in active:
            if jobs[i].wants_cancel():
                end(i, jobs[i].cancelled())
            else:
                stepping.append(i)
        groups: dict[object, list[int]] = {}
        for i in stepping:  # L-BFGS steps through a closure over its own loss: it always steps alone
            groups.setdefault(jobs[i].size if jobs[i].opts.optimizer == "adam" else ("alone", i), []).append(i)
        live: dict[tuple[tuple[int, int], ...], Objective] = {}
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
                    else Objective(model, [(j.targets, j.opts) for j in group], group[0].plan)
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
    job = Run(content, style, options, on_progress, should_cancel)
    model = model if model is not None else get_model(job.opts.weights, job.device, job.plan.channels_last)
    (outcome,) = run_stack([job], model)
    if isinstance(outcome, Cancelled):
        raise outcome
    return outcome


def _make_optimizer(opts: StyleOptions, param: torch.Tensor, plan: DevicePlan) -> torch.optim.Optimizer:
    if opts.optimizer == "lbfgs":
        # The run decides when to stop (its cap and stop rule), so no tolerance may end it early.
        # No line search: one loss evaluation per step, a fixed step `lr` along the quasi-Newton
        # direction. torch's strong-Wolfe search settled on t = 0 from the second step on, on
        # photographs at 64-341 px, and the run never moved again.
        return torch.optim.LBFGS(
            [param], lr=opts.lr, max_iter=1, history_size=20, tolerance_grad=0.0, tolerance_change=0.0
        )
    # On the CUDA fast path the fused kernel is one launch per step instead of several and keeps
    # its step count on the device; the fp32 reference path keeps torch's default implementation.
    fused = plan.device.type == "cuda" and plan.autocast_dtype is not None
    return torch.optim.Adam([param], lr=opts.lr, fused=fused or None)


def _adam_step(group: Sequence[Run], objective: Objective) -> list[tuple[torch.Tensor, ...]]:
    """One Adam step for every job in `group`, through one forward/backward of their stacked images.

    The loss is the sum of the rows, so each job's image gets exactly its solo gradient; each
    job keeps its own optimiser (own lr, own moments), so leaving the stack changes nothing for
    the others.
    """
    for j in group:
        j.optim.zero_grad(set_to_none=True)
        if j.opts.lr_half_life:
            # Adam's fixed step keeps the image oscillating once the loss is small (the loss
            # spikes, then recovers); halving the step every `lr_half_life` steps settles it.
            j.optim.param_groups[0]["lr"] = j.opts.lr * 0.5 ** (j.scale_step / j.opts.lr_half_life)
    x = stack([j.u * j.lr_scale for j in group])
    rows = objective(x)
    rows[0].sum().backward()
    for j in group:
        j.optim.step()
    rows = tuple(r.detach() for r in rows)
    return [tuple(r[k] for r in rows) for k in range(len(group))]


def _lbfgs_step(
    optim: torch.optim.Optimizer, objective: Objective, u: torch.Tensor, scale: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """One L-BFGS step; it evaluates its loss through a closure of its own, so it never shares a stack."""
    holder: list[tuple[torch.Tensor, ...]] = []

    def closure() -> torch.Tensor:
        optim.zero_grad(set_to_none=True)
        terms = tuple(t.sum() for t in objective(u * scale))
        holder.append(tuple(t.detach() for t in terms))
        # L-BFGS's first step and its curvature test (y·s > 1e-10) assume a gradient of order one;
        # in these units (squares of 0-255 features) losses are near 1e19. One divisor per scale,
        # fixed from the first gradient's norm, so every evaluation sees the same (rescaled) problem.
        if objective.loss_scale is None:
            terms[0].backward()
            norm = float(u.grad.double().norm()) or 1.0  # fp32 squares overflow at these scales
            u.grad.div_(norm)
            objective.loss_scale = norm
        else:
            (terms[0] / objective.loss_scale).backward()
        # a channels-last network hands back a channels-last gradient; L-BFGS flattens it with view()
        u.grad = u.grad.contiguous()
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
        img = luminance_transfer(img, content.float())
    return tensor_to_image(img.cpu())


def _stats(
    steps: int,
    t0: float,
    terms: tuple[torch.Tensor, ...],
    size: tuple[int, int],
    plan: DevicePlan,
    cancelled: bool = False,
    converged: bool = False,
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
        converged=converged,
    )


__all__ = ["Run", "get_model", "output_size", "run_stack", "scale_sizes", "split_steps", "stylize"]
