"""The engine's tensor conversions, and the layering that keeps torch out of image I/O."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylecore.imageio.isolated import child_argv
from stylecore.tensors import image_to_tensor, tensor_to_image


def noise(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))


def test_tensor_round_trip_is_exact() -> None:
    img = noise(23, 17)
    t = image_to_tensor(img)
    assert t.shape == (1, 3, 17, 23) and t.dtype == torch.float32
    assert t.min() >= 0.0 and t.max() <= 1.0
    assert np.array_equal(np.asarray(tensor_to_image(t)), np.asarray(img))
    assert np.array_equal(np.asarray(tensor_to_image(t[0])), np.asarray(img))


def test_tensor_to_image_clamps_and_rounds() -> None:
    t = torch.tensor([1.5, -0.2, 0.5, float("nan"), 0.999, 0.002]).reshape(1, 3, 1, 2)
    out = tensor_to_image(t)
    assert out.getpixel((0, 0)) == (255, 128, 255)
    assert out.getpixel((1, 0)) == (0, 0, 1)
    with pytest.raises(ValueError):
        tensor_to_image(torch.zeros(2, 3, 4, 4))


def _imports_torch(argv: list[str]) -> bool:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip().splitlines()[-1] == "True"


def test_the_decoding_child_imports_no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    # Started exactly as the isolated decoder starts its children, with every module the
    # real child imports.
    tests = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]))
    assert _imports_torch(child_argv("decode_hooks:report_torch")) is False


def test_importing_stylecore_imageio_does_not_import_torch() -> None:
    assert _imports_torch([sys.executable, "-c", "import stylecore, sys; print('torch' in sys.modules)"]) is False
    assert (
        _imports_torch([sys.executable, "-c", "import stylecore.imageio, sys; print('torch' in sys.modules)"]) is False
    )
