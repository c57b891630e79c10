"""Colour preservation, checked numerically against independently written formulas."""

from __future__ import annotations

import pytest
import torch

from stylecore.color import luminance_transfer, match_color, rgb_to_yiq, yiq_to_rgb


def yiq(x: torch.Tensor) -> torch.Tensor:
    """Textbook NTSC YIQ, written out here so the test does not trust the module's matrix."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    return torch.stack(
        [
            0.299 * r + 0.587 * g + 0.114 * b,
            0.595716 * r - 0.274453 * g - 0.321263 * b,
            0.211456 * r - 0.522591 * g + 0.311135 * b,
        ],
        dim=1,
    )


def mean_cov(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = x[0].reshape(3, -1).double()
    mu = p.mean(dim=1)
    c = p - mu[:, None]
    return mu, c @ c.T / p.shape[1]


def mid_range(seed: int, h: int = 12, w: int = 10) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.35 + 0.3 * torch.rand(1, 3, h, w, generator=g)


def test_yiq_round_trip() -> None:
    x = mid_range(0)
    assert torch.allclose(yiq_to_rgb(rgb_to_yiq(x)), x, atol=1e-6)
    assert torch.allclose(rgb_to_yiq(x), yiq(x), atol=1e-6)


def test_luminance_transfer_keeps_stylised_luma_and_content_chroma() -> None:
    stylized = mid_range(1)
    # Low-saturation content so the recombined colours stay inside [0, 1] (no clamping).
    grey = 0.4 + 0.2 * torch.rand(1, 1, 12, 10, generator=torch.Generator().manual_seed(2))
    content = (grey + 0.05 * (mid_range(3) - 0.5)).clamp(0, 1)
    out = luminance_transfer(stylized, content)
    assert out.shape == stylized.shape
    assert out.min() > 0 and out.max() < 1  # nothing was clipped, so the check is exact
    assert torch.allclose(yiq(out)[:, 0], yiq(stylized)[:, 0], atol=1e-5)
    assert torch.allclose(yiq(out)[:, 1:], yiq(content)[:, 1:], atol=1e-5)
    # And it really changed something: the stylised chroma is gone.
    assert not torch.allclose(yiq(out)[:, 1:], yiq(stylized)[:, 1:], atol=1e-3)


def test_luminance_transfer_resizes_content_and_clamps() -> None:
    stylized = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    content = torch.zeros(1, 3, 32, 32)
    content[:, 0] = 1.0  # saturated red: recombining will leave the gamut
    out = luminance_transfer(stylized, content)
    assert out.shape == (2, 3, 16, 16)
    assert out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError):
        luminance_transfer(stylized, torch.rand(3, 3, 16, 16))


def test_match_color_moves_mean_and_covariance_to_target() -> None:
    g = torch.Generator().manual_seed(5)
    # Source: wide, strongly correlated colours; target: a narrow, differently tinted palette.
    base = torch.rand(1, 1, 40, 30, generator=g)
    source = torch.cat(
        [base, 0.8 * base + 0.2 * torch.rand(1, 1, 40, 30, generator=g), torch.rand(1, 1, 40, 30, generator=g)], dim=1
    )
    spread = 0.06 * (torch.rand(1, 3, 20, 25, generator=g) - 0.5)
    target = torch.tensor([0.6, 0.4, 0.3]).view(1, 3, 1, 1) + spread
    target[:, 1] += 0.5 * (target[:, 0] - 0.6)  # give the target some covariance of its own
    out = match_color(source, target)
    assert out.shape == source.shape and out.dtype == source.dtype
    assert out.min() > 0 and out.max() < 1  # not clamped, so the statistics must match exactly
    mu_o, cov_o = mean_cov(out)
    mu_t, cov_t = mean_cov(target)
    _, cov_s = mean_cov(source)
    assert torch.allclose(mu_o, mu_t, atol=1e-5)
    assert torch.allclose(cov_o, cov_t, atol=2e-5)
    assert not torch.allclose(cov_s, cov_t, atol=1e-3)  # there was something to move


def test_match_color_on_flat_source_is_finite_and_takes_target_mean() -> None:
    source = torch.full((1, 3, 8, 8), 0.2)
    target = mid_range(6)
    out = match_color(source, target)
    assert torch.isfinite(out).all()
    assert torch.allclose(out[0, :, 0, 0], target.mean(dim=(0, 2, 3)), atol=1e-4)


def test_match_color_of_image_to_itself_is_identity() -> None:
    x = mid_range(7)
    assert torch.allclose(match_color(x, x), x, atol=1e-4)


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError):
        match_color(torch.rand(3, 8, 8), torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError):
        luminance_transfer(torch.rand(1, 4, 8, 8), torch.rand(1, 3, 8, 8))
