"""Colour preservation for style transfer (Gatys et al., "Preserving color in neural artistic
style transfer", 2016).

Plain style transfer repaints the content in the style's palette, which people often do not
want ("make my photo look like a Van Gogh, but keep my blue sky"). The paper gives two
remedies, both here as pure tensor functions so the engine can apply them before or after a
run and tests can check them numerically:

* `luminance_transfer` (after the run): keep only the stylised brightness and put the
  content's own colours back;
* `match_color` (before the run): recolour the style image to the content's palette so the
  network never sees the foreign colours at all.

All tensors are N x 3 x H x W floats in [0, 1] (RGB).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# NTSC YIQ, as used in the paper. The inverse is computed rather than typed in so that a
# round trip RGB -> YIQ -> RGB is exact to float precision.
_RGB_TO_YIQ = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [0.595716, -0.274453, -0.321263],
        [0.211456, -0.522591, 0.311135],
    ],
    dtype=torch.float64,
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _check_image_batch(name: str, x: torch.Tensor) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must be N x 3 x H x W, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [0, 1], got {x.dtype}")


def _mix(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", matrix.to(device=x.device, dtype=x.dtype), x)


def rgb_to_yiq(x: torch.Tensor) -> torch.Tensor:
    """RGB to YIQ; channel 0 is luminance, 1-2 are chroma."""
    _check_image_batch("x", x)
    return _mix(_RGB_TO_YIQ, x)


def yiq_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """YIQ back to RGB, unclamped (out-of-gamut values are the caller's to handle)."""
    _check_image_batch("x", x)
    return _mix(_YIQ_TO_RGB, x)


def luminance_transfer(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Stylised luminance with the content's chroma, clamped to [0, 1].

    Brush strokes and texture live almost entirely in luminance, colour in chroma, so this
    keeps the style's marks while the picture keeps its own colours. The content is resized
    to the stylised image when the run changed the size (multi-scale runs, rounding), and a
    batch of one content image is shared across a batch of results.
    """
    _check_image_batch("stylized", stylized)
    _check_image_batch("content", content)
    if content.shape[0] not in (1, stylized.shape[0]):
        raise ValueError(f"content batch {content.shape[0]} does not match stylized batch {stylized.shape[0]}")
    content = content.to(device=stylized.device, dtype=stylized.dtype)
    if content.shape[-2:] != stylized.shape[-2:]:
        content = F.interpolate(
            content, size=tuple(stylized.shape[-2:]), mode="bilinear", align_corners=False, antialias=True
        )
    y = rgb_to_yiq(stylized)[:, :1]
    iq = rgb_to_yiq(content)[:, 1:].expand(stylized.shape[0], -1, -1, -1)
    return yiq_to_rgb(torch.cat([y, iq], dim=1)).clamp(0.0, 1.0)


def _sym_power(cov: torch.Tensor, power: float) -> torch.Tensor:
    """cov ** power for a symmetric positive-definite 3x3 matrix, via eigendecomposition."""
    evals, evecs = torch.linalg.eigh(cov)
    return evecs @ torch.diag(evals.clamp_min(torch.finfo(cov.dtype).tiny) ** power) @ evecs.T


def _mean_cov(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = pixels.mean(dim=1, keepdim=True)
    centred = pixels - mean
    return mean, centred @ centred.T / pixels.shape[1]


def match_color(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Affinely recolour `source` so its pixel mean and covariance equal `target`'s.

    x' = C_t^(1/2) C_s^(-1/2) (x - mu_s) + mu_t. The symmetric square root is used rather
    than a Cholesky factor because it is the transform that moves colours least, so hues are
    not rotated into strange places. `eps` on both diagonals keeps flat or greyscale images
    (singular covariance) finite. Works in float64 since covariances of [0, 1] data are small
    and their inverse square roots amplify rounding; the result is clamped to [0, 1].
    """
    _check_image_batch("source", source)
    _check_image_batch("target", target)
    if target.shape[0] not in (1, source.shape[0]):
        raise ValueError(f"target batch {target.shape[0]} does not match source batch {source.shape[0]}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    n, _, h, w = source.shape
    eye = torch.eye(3, dtype=torch.float64, device=source.device)
    out = []
    for i in range(n):
        src = source[i].reshape(3, -1).to(torch.float64)
        tgt = target[i if target.shape[0] > 1 else 0].reshape(3, -1)
        tgt = tgt.to(device=source.device, dtype=torch.float64)
        mu_s, cov_s = _mean_cov(src)
        mu_t, cov_t = _mean_cov(tgt)
        transform = _sym_power(cov_t + eps * eye, 0.5) @ _sym_power(cov_s + eps * eye, -0.5)
        out.append((transform @ (src - mu_s) + mu_t).reshape(3, h, w))
    return torch.stack(out).clamp(0.0, 1.0).to(source.dtype)


__all__ = ["luminance_transfer", "match_color", "rgb_to_yiq", "yiq_to_rgb"]
