"""The objective's pure functions against sums worked out by hand."""

from __future__ import annotations

import pytest
import torch

from stylecore.losses import content_loss, gram, rescale_gram, style_layer_loss, style_loss, tv_loss


def test_gram_by_hand():
    # two channels, 2x2: f0 = [1,2,3,4], f1 = [0,1,0,1]
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])
    g = gram(f)
    assert g.shape == (1, 2, 2)
    assert g[0].tolist() == [[30.0, 6.0], [6.0, 2.0]]  # 1+4+9+16, 2+4, 1+1


def test_bf16_gram_accumulates_in_fp32_and_rounds_once():
    f = torch.rand(2, 8, 16, 16).to(torch.bfloat16)  # values exact in bf16, as autocast's features are
    exact = gram(f.double())
    g = gram(f)
    assert g.dtype == torch.bfloat16
    # 256-term sums accumulated in bf16 would drift by many ulps; in fp32 only the result is rounded
    assert torch.allclose(g.double(), exact, rtol=2**-8, atol=0)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_gram_gradient_equals_autograds_in_either_layout(layout):
    f = torch.rand(2, 5, 6, 7, dtype=torch.double).contiguous(memory_format=layout).requires_grad_(True)
    target = torch.rand(2, 5, 5, dtype=torch.double)

    def by_autograd(x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(2, 5, 42)
        return ((torch.bmm(flat, flat.transpose(1, 2)) - target) ** 2).sum()

    (ours,) = torch.autograd.grad(((gram(f) - target) ** 2).sum(), f)
    (ref,) = torch.autograd.grad(by_autograd(f), f)
    assert torch.allclose(gram(f), gram(f.contiguous()))
    assert torch.allclose(ours, ref)
    assert torch.autograd.gradcheck(gram, (f,))


def test_content_loss_is_mean_squared_difference():
    a = torch.zeros(1, 1, 2, 2)
    b = torch.tensor([[[[1.0, 2.0], [0.0, 1.0]]]])
    assert content_loss(a, b).item() == pytest.approx((1 + 4 + 0 + 1) / 4)


def test_style_layer_loss_by_hand():
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])
    target = torch.tensor([[[28.0, 6.0], [6.0, 0.0]]])
    # Gram diff = [[2,0],[0,2]] → mean of squares = (4+4)/4 = 2 ; / (d*h*w = 2*2*2 = 8)
    assert style_layer_loss(f, target).item() == pytest.approx(2 / 8)


def test_style_loss_weights_and_skips_zero_weights():
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])
    t = torch.tensor([[[28.0, 6.0], [6.0, 0.0]]])
    feats = {"a": f, "b": f}
    total = style_loss(feats, {"a": t, "b": t}, {"a": 2.0, "b": 0.0})
    assert total.item() == pytest.approx(2.0 * 2 / 8)
    assert style_loss(feats, {}, {"a": 0.0}).item() == 0.0


def test_losses_are_per_sample():
    f = torch.stack([torch.zeros(2, 2, 2), torch.ones(2, 2, 2)])
    tgt = gram(torch.zeros(1, 2, 2, 2)).expand(2, -1, -1)
    per = style_layer_loss(f, tgt)
    assert per.shape == (2,) and per[0].item() == 0.0 and per[1].item() > 0


def test_tv_loss_by_hand():
    img = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    # horizontal diffs: 1,1 → mean 1 ; vertical diffs: 0,0 → mean 0
    assert tv_loss(img).item() == pytest.approx(1.0)
    assert tv_loss(torch.full((1, 3, 4, 4), 0.3)).item() == 0.0


def test_rescale_gram_for_other_pixel_counts():
    f = torch.rand(1, 3, 4, 4)
    doubled = torch.cat([f, f], dim=3)  # same statistics, twice the pixels
    assert torch.allclose(rescale_gram(gram(doubled), 32, 16), gram(f), atol=1e-5)
