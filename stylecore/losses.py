"""The objective as pure functions, in the notebook's units.

Kept free of modules and state so they can be checked against hand computations and
reused by the batched path (leading batch dimension everywhere).
"""

from __future__ import annotations

import torch


def gram(features: torch.Tensor) -> torch.Tensor:
    """Unnormalised Gram F Fᵀ per sample, in fp32 even under autocast (bf16 sums lose the style)."""
    b, c, h, w = features.shape
    f = features.reshape(b, c, h * w).float()
    return torch.bmm(f, f.transpose(1, 2))


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared feature difference per sample (shape [B])."""
    diff = features.float() - target.float()
    return diff.pow(2).flatten(1).mean(1)


def style_layer_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """The notebook's per-layer term: mean squared Gram difference over d*h*w (shape [B])."""
    _, c, h, w = features.shape
    g = gram(features)
    return (g - target_gram).pow(2).flatten(1).mean(1) / (c * h * w)


def style_loss(
    features: dict[str, torch.Tensor],
    target_grams: dict[str, torch.Tensor],
    layer_weights: dict[str, float | torch.Tensor],
) -> torch.Tensor:
    """Weighted sum of per-layer terms (shape [B]).

    A weight may be a [B] tensor, one per sample, so a batch of jobs with different layer
    weights shares one call; only a plain 0 skips a layer (testing a tensor for zero would
    cost a host sync every step).
    """
    total: torch.Tensor | None = None
    for layer, weight in layer_weights.items():
        if not isinstance(weight, torch.Tensor) and weight == 0:
            continue
        term = weight * style_layer_loss(features[layer], target_grams[layer])
        total = term if total is None else total + term
    if total is None:
        first = next(iter(features.values()))
        return first.new_zeros(first.shape[0], dtype=torch.float32)
    return total


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Mean squared neighbour difference per sample: damps the high-frequency noise Adam leaves."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.pow(2).flatten(1).mean(1) + dy.pow(2).flatten(1).mean(1)


def rescale_gram(g: torch.Tensor, from_pixels: int, to_pixels: int) -> torch.Tensor:
    """An unnormalised Gram grows with pixel count; rescale a style Gram computed at another size
    so the loss means the same when the style image is not the output's size."""
    return g * (to_pixels / from_pixels)
