"""The objective of Gatys et al. 2016 for a stack of jobs: targets, then losses per job.

A job's targets (the content image's conv4_2 features and the style image's Gram matrices)
are computed once per scale; `Objective` then scores a stack of images, one row per job, so
one job alone and several jobs side by side share every line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from stylecore.color import match_color
from stylecore.devices import DevicePlan, autocast
from stylecore.losses import content_loss, gram, rescale_gram, style_loss, tv_loss
from stylecore.network import VGGFeatures
from stylecore.options import CONTENT_LAYER, STYLE_LAYERS, StyleOptions
from stylecore.tensors import image_to_tensor

ALL_LAYERS: tuple[str, ...] = (*STYLE_LAYERS, CONTENT_LAYER)


@dataclass
class Targets:
    """What one job's images are compared with at one scale."""

    content: torch.Tensor  # conv4_2 features of the content image, fp32
    grams: dict[str, torch.Tensor]  # per style layer, blended over the style images
    content_image: torch.Tensor  # the content image at this scale, [1, 3, H, W] in [0, 1]


def resize_image(img: Image.Image, size: tuple[int, int], opts: StyleOptions) -> Image.Image:
    """`img` at exactly `size` (w, h).

    With `style_fit="stretch"` it resamples as torchvision's `Resize` does on a PIL image
    (PIL's bilinear filter, which widens its support when shrinking), so the pixels equal
    those of `transforms.Resize` as Gatys-style reference code uses it; otherwise Lanczos.
    """
    if img.size == size:
        return img
    exact = opts.style_fit == "stretch"
    return img.resize(size, Image.Resampling.BILINEAR if exact else Image.Resampling.LANCZOS)


def style_image_at(img: Image.Image, size: tuple[int, int], opts: StyleOptions) -> Image.Image:
    """The style image for an output of `size`: stretched to its shape (times `style_scale`),
    or, with `style_fit="area"`, at its own aspect with the output's area."""
    if opts.style_fit == "stretch":
        return resize_image(img, (round(size[0] * opts.style_scale), round(size[1] * opts.style_scale)), opts)
    area = size[0] * size[1] * opts.style_scale**2
    k = math.sqrt(area / (img.width * img.height))
    return resize_image(img, (max(16, round(img.width * k)), max(16, round(img.height * k))), opts)


def to_device(t: torch.Tensor, plan: DevicePlan) -> torch.Tensor:
    t = t.to(plan.device)
    return t.contiguous(memory_format=torch.channels_last) if plan.channels_last else t


@torch.no_grad()
def make_targets(
    model: VGGFeatures,
    content: Image.Image,
    styles: Sequence[Image.Image],
    blend: Sequence[float],
    size: tuple[int, int],
    opts: StyleOptions,
    plan: DevicePlan,
) -> Targets:
    """Targets at one scale; style Grams are rescaled to the output's pixel count, so a style
    image of another size (`style_fit="area"`, `style_scale`) weighs as much as one of the same."""
    c = to_device(image_to_tensor(resize_image(content, size, opts)), plan)
    with autocast(plan):
        c_feats = model(c, ALL_LAYERS)
    grams: dict[str, torch.Tensor] = {}
    for img, w in zip(styles, blend, strict=True):
        s = to_device(image_to_tensor(style_image_at(img, size, opts)), plan)
        if opts.preserve_colors == "histogram":
            s = match_color(s, c)
        with autocast(plan):
            s_feats = model(s, STYLE_LAYERS)
        for layer in STYLE_LAYERS:
            sf, cf = s_feats[layer], c_feats[layer]
            g = rescale_gram(gram(sf.float()), sf.shape[-2] * sf.shape[-1], cf.shape[-2] * cf.shape[-1]) * w
            grams[layer] = grams[layer] + g if layer in grams else g
    return Targets(c_feats[CONTENT_LAYER].float(), grams, c)


def stack(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(list(parts))


class Objective:
    """Loss terms for a stack of images at one scale, one row per job: (total, content, style, tv),
    each of shape [B] and already weighted. Tensors, so callers choose when to sync.

    Each job brings its own targets and weights, and a row's loss depends only on its own image,
    so the gradient of `total.sum()` with respect to row i is exactly that job's solo gradient.
    """

    def __init__(self, model: VGGFeatures, parts: Sequence[tuple[Targets, StyleOptions]], plan: DevicePlan):
        self.model, self.plan = model, plan
        targets = [t for t, _ in parts]
        opts = [o for _, o in parts]
        self.content = stack([t.content for t in targets])
        self.grams = {layer: stack([t.grams[layer] for t in targets]) for layer in STYLE_LAYERS}
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
            feats = self.model(x, ALL_LAYERS)
        c = self.alpha * content_loss(feats[CONTENT_LAYER], self.content)
        s = self.beta * style_loss(feats, self.grams, self.layer_weights)
        t = self.tv * tv_loss(image.float()) if self.tv is not None else torch.zeros_like(c)
        return c + s + t, c, s, t


__all__ = ["ALL_LAYERS", "Objective", "Targets", "make_targets", "resize_image", "stack", "style_image_at"]
