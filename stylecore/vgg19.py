"""VGG19's layer layout as plain data (Simonyan & Zisserman 2015, configuration "E").

Torch-free on purpose: the network builds itself from it, the weight loaders map their
files onto it, and the memory estimate counts activations from it, so a process that only
plans jobs (a bot, a scheduler) can size them without loading PyTorch.
"""

from __future__ import annotations

# Output channels of each 3x3 convolution, "M" for a 2x2 max pool, in torchvision's
# `vgg19().features` order; each convolution is followed by a ReLU module.
CONFIG: tuple[int | str, ...] = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    512,
    "M",
)


def _conv_index() -> dict[str, int]:
    out: dict[str, int] = {}
    index, block, conv = 0, 1, 0
    for v in CONFIG:
        if v == "M":
            index, block, conv = index + 1, block + 1, 0
        else:
            conv += 1
            out[f"conv{block}_{conv}"] = index
            index += 2  # the convolution and its ReLU
    return out


# Layer names follow Gatys et al. 2016 ("conv4_2" is the 2nd convolution of block 4), mapped
# to the convolution's index in torchvision's `vgg19().features`. Style and content are read
# from the ReLU right after it (index + 1), as the paper's feature maps are.
CONV_INDEX: dict[str, int] = _conv_index()


__all__ = ["CONFIG", "CONV_INDEX"]
