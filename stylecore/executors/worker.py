"""Running one job inside a worker: the part the process pool and the Ray actor share.

Everything here executes in the worker (a spawned process or a Ray actor), never in the
bot's event loop. It turns a `Job` (bytes + options) into a stream of `JobEvent`s and
one terminal event, doing the expensive encodings (previews, the PNG) where the pixels
already are so that only small byte strings cross the process boundary.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from stylecore.executors.base import Job, JobEvent, JobResult

log = logging.getLogger(__name__)

Emit = Callable[[JobEvent], None]


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker runs every job it is given (fixed per worker, not per job)."""

    device: str | None = None  # forced on every job; None keeps the job's own choice
    weights: str = "original"  # loaded once at start so the first job is not slow
    oom_retry_scale: float = 0.7  # long side multiplier for the one retry after OOM
    progress_interval: float = 0.0  # seconds between progress events (0 = every step)
    threads: int | None = None  # torch intra-op threads (CPU pools split the cores)


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def warm(settings: WorkerSettings) -> str:
    """Load the network once so that it stays resident for every later job; returns the device."""
    import torch

    if settings.threads:
        torch.set_num_threads(settings.threads)
    from stylecore.engine import get_model

    device = resolve_device(settings.device)
    get_model(weights=settings.weights, device=device)
    return device


def is_oom(exc: BaseException) -> bool:
    """CUDA OOM has its own type; CPU allocation failures only say so in the message."""
    import torch

    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_job(
    job: Job,
    emit: Emit,
    should_cancel: Callable[[], bool],
    settings: WorkerSettings | None = None,
) -> JobEvent:
    """Run `job` to the end in this process; non-terminal events go to `emit`, the terminal
    one is returned (so the caller decides how it travels: pipe message or last yield).

    Never raises for anything a job can cause: bad input, OOM, cancellation and engine
    errors all become terminal events, so a worker survives every job.
    """
    settings = settings or WorkerSettings()
    from stylecore import stylize
    from stylecore.events import Cancelled
    from stylecore.imageio import ImageError, encode_image, encode_preview, load_image
    from stylecore.options import OptionsError

    jid = job.job_id
    options = job.options
    if settings.device is not None:
        options = options.replace(device=settings.device)
    step = 0
    note: str | None = None
    notes: list[str] = []

    def failed(reason: str, message: str) -> JobEvent:
        return JobEvent("failed", jid, step=step, error=message, reason=reason)  # type: ignore[arg-type]

    try:
        content = load_image(job.content)
        styles = [load_image(b) for b in job.styles]
    except ImageError as e:
        emit(JobEvent("started", jid, step=0, total=options.steps))
        return failed("bad_input", e.user_message)
    if not styles:
        emit(JobEvent("started", jid, step=0, total=options.steps))
        return failed("bad_input", "a job needs at least one style image")
    style = styles[0] if len(styles) == 1 else styles

    for attempt in range(2):
        emit(JobEvent("started", jid, step=0, total=options.steps, note=note))
        step = 0
        last_sent = 0.0

        def on_progress(ev, _total=options.steps, _preview_size=options.preview_size) -> None:
            nonlocal step, last_sent
            step = ev.step
            now = time.monotonic()
            last = ev.step >= ev.total
            if settings.progress_interval <= 0 or last or now - last_sent >= settings.progress_interval:
                last_sent = now
                emit(JobEvent("progress", jid, step=ev.step, total=ev.total, loss=ev.loss,
                              elapsed=ev.elapsed, eta=ev.eta))
            if ev.preview is not None:
                emit(JobEvent("preview", jid, step=ev.step, total=ev.total, elapsed=ev.elapsed,
                              preview=encode_preview(ev.preview, max_side=_preview_size)))

        started = time.monotonic()
        try:
            result = stylize(content, style, options, on_progress=on_progress, should_cancel=should_cancel)
        except Cancelled:
            return JobEvent("cancelled", jid, step=step, total=options.steps,
                            elapsed=time.monotonic() - started)
        except (ImageError, OptionsError) as e:
            return failed("bad_input", getattr(e, "user_message", None) or str(e))
        except Exception as e:
            if not is_oom(e):
                log.error("job %s failed:\n%s", jid, traceback.format_exc())
                return failed("internal", f"the style transfer failed ({type(e).__name__}: {e})")
            _free_memory()
            smaller = max(16, int(options.size * settings.oom_retry_scale))
            if attempt > 0 or smaller >= options.size:
                return failed("oom", f"ran out of memory at {options.size} px, even after retrying smaller")
            note = f"ran out of memory at {options.size} px; retrying at {smaller} px"
            notes.append(note)
            options = options.replace(size=smaller)
            continue
        encoded = encode_image(result.image, "png")
        stats = result.stats
        res = JobResult(
            job_id=jid,
            png=encoded.data,
            width=encoded.width,
            height=encoded.height,
            steps=stats.steps,
            seconds=stats.seconds,
            losses={
                "content": float(stats.content_loss),
                "style": float(stats.style_loss),
                "tv": float(stats.tv_loss),
                "total": float(stats.total_loss),
            },
            device=str(stats.device),
            notes=tuple(notes) + tuple(stats.notes),
            timelapse=result.timelapse,
        )
        return JobEvent("done", jid, step=stats.steps, total=stats.steps, elapsed=stats.seconds, result=res)
    raise AssertionError("unreachable")  # pragma: no cover


def worker_identity() -> dict[str, object]:
    """What a worker reports about itself once warm (pid for fault tests, device for logs)."""
    return {"pid": os.getpid(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
