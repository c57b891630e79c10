"""VGG19 features wrapped so callers only ever hand it RGB in [0, 1].

The wrapper owns the weights' input convention, stops after the deepest layer a run reads
(torchvision's `vgg19().features` has 37 modules; Gatys et al. 2016 read six ReLU outputs, the
last at conv5_1), and is cached per process so a warm worker pays the load once.
"""

from __future__ import annotations

import functools
import threading

import torch
from torch import nn

from stylecore.devices import plan_for
from stylecore.vgg19 import CONFIG, CONV_INDEX
from stylecore.weights import InputConvention, WeightsError, load_weights


class Normalize(nn.Module):
    """RGB [0,1] → the weights' own input space."""

    def __init__(self, conv: InputConvention) -> None:
        super().__init__()
        self.bgr = conv.bgr
        self.register_buffer("mean", torch.tensor(conv.mean).view(1, 3, 1, 1))
        self.register_buffer("inv_std", 1.0 / torch.tensor(conv.std).view(1, 3, 1, 1))
        self.scale = conv.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            x = x.flip(1)
        return (x * self.scale - self.mean) * self.inv_std


def vgg19_features_layout() -> nn.Sequential:
    """torchvision's `vgg19().features` module for module, built on the meta device.

    Building torchvision's whole vgg19 randomly initialises a 120M-parameter classifier we
    never use (seconds per worker start); the conv stack alone, without init, costs nothing,
    and the weights are assigned straight from the state dict.
    """
    layers: list[nn.Module] = []
    in_ch = 3
    with torch.device("meta"):
        for v in CONFIG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_ch, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                in_ch = int(v)
    return nn.Sequential(*layers)


class VGGFeatures(nn.Module):
    """Frozen, eval-mode VGG19 returning the named ReLU outputs a run asks for."""

    def __init__(self, weights: str = "original") -> None:
        super().__init__()
        loaded = load_weights(weights)
        features = vgg19_features_layout()
        wanted = set(features.state_dict())
        state = {k: v.float() for k, v in loaded.state_dict.items() if k in wanted}
        missing = wanted - set(state)
        if missing:
            raise WeightsError(f"weights from {loaded.source} lack {sorted(missing)[0]}")
        features.load_state_dict(state, assign=True)
        self.source = loaded.source
        self.convention = loaded.convention
        self.normalize = Normalize(loaded.convention)
        self.layers = features
        for m in self.layers:
            if isinstance(m, nn.ReLU):
                m.inplace = True
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        wanted = {CONV_INDEX[name] + 1: name for name in layers}  # +1: the ReLU after the conv
        last = max(wanted)
        out: dict[str, torch.Tensor] = {}
        h = self.normalize(x)
        for i, module in enumerate(self.layers):
            h = module(h)
            if i in wanted:
                out[wanted[i]] = h
                if i == last:
                    break
        return out


_lock = threading.Lock()


@functools.lru_cache(maxsize=4)
def _cached(weights: str, device: str, channels_last: bool) -> VGGFeatures:
    model = VGGFeatures(weights).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def get_model(
    weights: str = "original", device: str | torch.device = "cpu", channels_last: bool | None = None
) -> VGGFeatures:
    """The process-wide network for these weights on this device, loaded on first use.

    Its weights are stored channels-last where the device's fast path runs so (None: as
    `plan_for(device)` decides), so convolutions do not reorder them on every call.
    """
    dev = torch.device(device)
    if channels_last is None:
        channels_last = plan_for(dev).channels_last
    with _lock:
        return _cached(weights, str(dev), channels_last)
