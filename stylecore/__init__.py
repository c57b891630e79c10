"""stylecore: neural style transfer (Gatys et al.) as a library, knowing nothing of Discord."""

from stylecore.batch import BatchItem, batch_key, stylize_batch
from stylecore.engine import get_model, stylize
from stylecore.events import Cancelled, ProgressEvent, RunStats, StyleResult
from stylecore.imageio import ImageError, load_image
from stylecore.options import OptionsError, StyleOptions, preset

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
