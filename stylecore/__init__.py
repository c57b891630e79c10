"""stylecore: neural style transfer (Gatys et al. 2016) as a library, knowing nothing of Discord.

The names below load on first use (PEP 562), so `import stylecore.options` or
`stylecore.executors` in a process that only plans jobs does not pull in PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stylecore.batch import BatchItem, batch_key, stylize_batch
    from stylecore.engine import stylize
    from stylecore.events import Cancelled, ProgressEvent, RunStats, StyleResult
    from stylecore.imageio import ImageError, load_image
    from stylecore.network import get_model
    from stylecore.options import OptionsError, StyleOptions, preset

_EXPORTS: dict[str, str] = {
    "BatchItem": "stylecore.batch",
    "batch_key": "stylecore.batch",
    "stylize_batch": "stylecore.batch",
    "stylize": "stylecore.engine",
    "Cancelled": "stylecore.events",
    "ProgressEvent": "stylecore.events",
    "RunStats": "stylecore.events",
    "StyleResult": "stylecore.events",
    "ImageError": "stylecore.imageio",
    "load_image": "stylecore.imageio",
    "get_model": "stylecore.network",
    "OptionsError": "stylecore.options",
    "StyleOptions": "stylecore.options",
    "preset": "stylecore.options",
}

__all__ = [
    "BatchItem",
    "Cancelled",
    "ImageError",
    "OptionsError",
    "ProgressEvent",
    "RunStats",
    "StyleOptions",
    "StyleResult",
    "batch_key",
    "get_model",
    "load_image",
    "preset",
    "stylize",
    "stylize_batch",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'stylecore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
