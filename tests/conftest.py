"""Shared fixtures: one network per test session, and small deterministic images."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(max(1, torch.get_num_threads()))


@pytest.fixture(scope="session")
def vgg():
    """The bundled original VGG19, loaded once for the whole run (it is ~80 MB of weights)."""
    from stylecore.network import get_model

    return get_model("original", "cpu")


def _smooth_image(w: int, h: int, seed: int) -> Image.Image:
    """A photo-like image: smooth gradients plus a few shapes, so features are not just noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        fx, fy, ph = rng.uniform(0.5, 3, 3)
        img[..., c] = 0.5 + 0.35 * np.sin(fx * xx / w * 2 * np.pi + ph) * np.cos(fy * yy / h * 2 * np.pi)
    for _ in range(4):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(4, max(5, w / 4))
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 1, 3)
    return Image.fromarray((img.clip(0, 1) * 255).astype(np.uint8))


def _stripes_image(w: int, h: int, seed: int) -> Image.Image:
    """A 'painting': strong oriented strokes and saturated colours, very unlike the content."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = np.sin((xx + 0.7 * yy) / 2.5) > 0
    b = np.sin((xx - 1.3 * yy) / 4.0) > 0.3
    pal = rng.uniform(0, 1, (4, 3))
    idx = a.astype(int) + 2 * b.astype(int)
    return Image.fromarray((pal[idx] * 255).astype(np.uint8))


@pytest.fixture(scope="session")
def content_img() -> Image.Image:
    return _smooth_image(64, 48, seed=1)


@pytest.fixture(scope="session")
def style_img() -> Image.Image:
    return _stripes_image(56, 56, seed=2)


@pytest.fixture(scope="session")
def png_bytes():
    def encode(img: Image.Image) -> bytes:
        buf = io.BytesIO()
        img.save(buf, "PNG")
        return buf.getvalue()

    return encode
