"""PIL images to and from the engine's tensors: 1x3xHxW float32 RGB in [0, 1].

This lives on the engine side, apart from `stylecore.imageio`, so that decoding and
checking uploads never needs torch: the bot process and the disposable decoder processes
stay small and start quickly. The [0, 1] RGB working range follows torchvision's
`ToTensor` convention.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from stylecore.imageio import to_rgb


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image to a 1x3xHxW float32 tensor in [0, 1] (the engine's working format)."""
    rgb = img if img.mode == "RGB" else to_rgb(img)
    arr = np.array(rgb, dtype=np.uint8)  # a writable copy: torch warns on read-only views
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous().float().div_(255.0)


def tensor_to_image(t: torch.Tensor) -> Image.Image:
    """A 1x3xHxW or 3xHxW tensor in [0, 1] back to an RGB image.

    Optimisation overshoots [0, 1] and can produce NaN; clamping (NaN -> 0) and rounding
    rather than truncating keeps a round trip through `image_to_tensor` exact.
    """
    x = t.detach()
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"expected a batch of one image, got shape {tuple(x.shape)}")
        x = x[0]
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"expected 3xHxW or 1x3xHxW, got shape {tuple(t.shape)}")
    x = torch.nan_to_num(x.to("cpu", torch.float32), nan=0.0).clamp_(0.0, 1.0)
    arr = x.mul_(255.0).round_().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(arr)


__all__ = ["image_to_tensor", "tensor_to_image"]
