"""What "the same result" means for a job run alone and the same job run in a stack.

Why results may differ at all: a stack of B images goes through the same convolution and
batched-matmul calls with a batch of B instead of 1, and the kernels may block or order
their per-image reductions differently for another batch size, so a float can differ in
its last bits. Nothing else is shared: every job has its own targets, weights, optimiser
and generator, and the loss is the sum of per-job rows, so each image gets exactly its own
gradient. Adam then amplifies last-bit differences where a pixel's gradient is at rounding
level: its update is bounded by the learning rate and on the first step is exactly
lr·sign(g) (Kingma & Ba 2015, §2.1), so a sign that flips between kernels moves that pixel
by up to 2·lr. Some CPUs' fp32 kernels (AVX512 oneDNN) do that for a few percent of the
pixels of a noise-initialised job, others never do. So "the same result" is judged as what
no cross-talk between jobs can produce: nearly every pixel within 2/255, a mean difference
under one 8-bit level, and the same loss to 1%. A job that got another job's gradient,
targets or optimiser state differs everywhere, by tens of levels.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

PIXEL_TOL = 2  # of 255
CLOSE_FRACTION = 0.97  # of the pixels within PIXEL_TOL
MEAN_TOL = 1.0  # mean absolute difference, of 255
LOSS_REL = 1e-2


def pixels(img: Image.Image | bytes) -> np.ndarray:
    if isinstance(img, bytes):
        img = Image.open(io.BytesIO(img)).convert("RGB")
    return np.asarray(img).astype(np.int16)


def assert_same_image(a: Image.Image | bytes, b: Image.Image | bytes) -> None:
    pa, pb = pixels(a), pixels(b)
    assert pa.shape == pb.shape
    diff = np.abs(pa - pb)
    close = float((diff <= PIXEL_TOL).mean())
    assert close >= CLOSE_FRACTION and diff.mean() <= MEAN_TOL, (close, float(diff.mean()), int(diff.max()))
