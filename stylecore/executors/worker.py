"""Running jobs inside a worker: the part the process pool and the Ray actor share.

Everything here executes in the worker (a spawned process or a Ray actor), never in the
bot's event loop. It turns a `Job` (bytes + options), or a stack of jobs of one size, into
a stream of `JobEvent`s and one terminal event per job, doing the expensive encodings
(previews, the PNG) where the pixels already are so that only small byte strings cross
the process boundary. It also sizes each job to its memory budget first (the free GPU
memory, capped by the operator's `memory_limit`).
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stylecore.executors.base import Job, JobEvent, JobResult
from stylecore.options import StyleOptions

if TYPE_CHECKING:
    from PIL import Image

    from stylecore.devices import DevicePlan
    from stylecore.events import ProgressEvent, StyleResult

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
    memory_limit: int | None = None  # bytes this worker's jobs may use (RAM on CPU); see ExecutorConfig


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


def device_free_bytes(device: str) -> int | None:
    """Bytes a new job may still allocate on `device`; None where nobody counts (CPU).

    The caching allocator's reserved-but-unused blocks count as free: this process can reuse
    them, though the driver reports them as taken.
    """
    import torch

    dev = torch.device(resolve_device(device))
    if dev.type != "cuda" or not torch.cuda.is_available():
        return None  # (asking for CUDA without one fails in the engine, with its own message)
    free, _ = torch.cuda.mem_get_info(dev)
    return int(free + torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev))


def memory_budget(device: str, settings: WorkerSettings) -> int | None:
    """What a job on `device` may use: the free device memory, capped by the operator's limit.

    On CPU only the limit counts: the OS pages rather than fails, so the cap is what keeps one
    huge job from swapping the machine to a halt.
    """
    free = device_free_bytes(device)
    limit = settings.memory_limit
    return limit if free is None else free if limit is None else min(free, limit)


def plan_of(options: StyleOptions) -> DevicePlan:
    """The device plan the engine will choose for these options."""
    import torch

    from stylecore.devices import plan_for

    return plan_for(torch.device(resolve_device(options.device)), options.fast)


def _precision(options: StyleOptions) -> tuple[int, bool]:
    """(activation bytes, channels_last) of the plan the engine will choose for these options."""
    plan = plan_of(options)
    return plan.activation_bytes, plan.channels_last


def _memory_name(options: StyleOptions) -> str:
    return "GPU memory" if plan_of(options).device.type == "cuda" else "memory"


def _fit(
    options: StyleOptions, content_size: tuple[int, int], free: int | None, batch: int = 1
) -> tuple[StyleOptions, str | None]:
    """Options that fit the memory budget, and the note saying what changed (or None)."""
    if free is None:
        return options, None
    from stylecore.memory import fit_options

    dtype_bytes, channels_last = _precision(options)
    return fit_options(
        options,
        content_size,
        free,
        batch=batch,
        dtype_bytes=dtype_bytes,
        channels_last=channels_last,
        memory=_memory_name(options),
    )


class _Reporter:
    """One job's engine progress turned into its `progress` and `preview` events.

    Progress is throttled to `progress_interval` (the last step always goes out); previews are
    encoded here, in the worker, so only small JPEGs cross the process boundary.
    """

    def __init__(self, jid: str, preview_size: int, emit: Emit, settings: WorkerSettings) -> None:
        self.jid, self.preview_size, self.emit, self.settings = jid, preview_size, emit, settings
        self.step = 0
        self.last_sent = 0.0

    def __call__(self, ev: ProgressEvent) -> None:
        from stylecore.imageio import encode_preview

        self.step = ev.step
        now = time.monotonic()
        last = ev.step >= ev.total
        interval = self.settings.progress_interval
        if interval <= 0 or last or now - self.last_sent >= interval:
            self.last_sent = now
            self.emit(
                JobEvent(
                    "progress", self.jid, step=ev.step, total=ev.total, loss=ev.loss, elapsed=ev.elapsed, eta=ev.eta
                )
            )
        if ev.preview is not None:
            self.emit(
                JobEvent(
                    "preview",
                    self.jid,
                    step=ev.step,
                    total=ev.total,
                    elapsed=ev.elapsed,
                    preview=encode_preview(ev.preview, max_side=self.preview_size),
                )
            )


def _done_event(jid: str, result: StyleResult, notes: list[str]) -> JobEvent:
    from stylecore.imageio import encode_image

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


def _failed(jid: str, step: int, reason: str, message: str) -> JobEvent:
    return JobEvent("failed", jid, step=step, error=message, reason=reason)  # type: ignore[arg-type]


@dataclass
class _Prepared:
    """A job whose inputs decoded and whose size fits: ready for the engine."""

    job: Job
    options: StyleOptions  # after device forcing and memory fitting
    content: Image.Image
    style: Image.Image | list[Image.Image]
    notes: list[str]


def _prepare(job: Job, emit: Emit, settings: WorkerSettings, free: int | None) -> _Prepared | JobEvent:
    """Decode and size one job; a terminal event (after its `started`) when it cannot run."""
    from stylecore.imageio import ImageError, load_image

    jid = job.job_id
    options = job.options
    if settings.device is not None:
        options = options.replace(device=settings.device)
    try:
        content = load_image(job.content)
        styles = [load_image(b) for b in job.styles]
    except ImageError as e:
        emit(JobEvent("started", jid, step=0, total=options.steps))
        return _failed(jid, 0, "bad_input", e.user_message)
    if not styles:
        emit(JobEvent("started", jid, step=0, total=options.steps))
        return _failed(jid, 0, "bad_input", "a job needs at least one style image")
    try:
        options, note = _fit(options, content.size, free)
    except MemoryError as e:
        emit(JobEvent("started", jid, step=0, total=options.steps))
        return _failed(jid, 0, "oom", str(e))
    return _Prepared(job, options, content, styles[0] if len(styles) == 1 else styles, [note] if note else [])


def run_job(
    job: Job,
    emit: Emit,
    should_cancel: Callable[[], bool],
    settings: WorkerSettings | None = None,
    *,
    note: str | None = None,
) -> JobEvent:
    """Run `job` to the end in this process; non-terminal events go to `emit`, the terminal
    one is returned (so the caller decides how it travels: pipe message or last yield).

    Never raises for anything a job can cause: bad input, OOM, cancellation and engine
    errors all become terminal events, so a worker survives every job. On CUDA a job too
    large for the free memory runs at the largest size that fits, and says so; an OOM all
    the same is retried once smaller. `note` goes on the first `started` (a job that left a
    batch says why it starts again).
    """
    settings = settings or WorkerSettings()
    prepared = _prepare(job, emit, settings, memory_budget(_job_device(job, settings), settings))
    if isinstance(prepared, JobEvent):
        return prepared
    return _run_prepared(prepared, emit, should_cancel, settings, note)


def _job_device(job: Job, settings: WorkerSettings) -> str:
    return resolve_device(settings.device if settings.device is not None else job.options.device)


def _run_prepared(
    p: _Prepared, emit: Emit, should_cancel: Callable[[], bool], settings: WorkerSettings, note: str | None
) -> JobEvent:
    from stylecore import stylize
    from stylecore.events import Cancelled
    from stylecore.imageio import ImageError
    from stylecore.options import OptionsError

    jid = p.job.job_id
    options = p.options
    notes = list(p.notes)
    note = note or (notes[0] if notes else None)
    for attempt in range(2):
        emit(JobEvent("started", jid, step=0, total=options.steps, note=note))
        reporter = _Reporter(jid, options.preview_size, emit, settings)
        started = time.monotonic()
        try:
            result = stylize(p.content, p.style, options, on_progress=reporter, should_cancel=should_cancel)
        except Cancelled:
            return JobEvent(
                "cancelled", jid, step=reporter.step, total=options.steps, elapsed=time.monotonic() - started
            )
        except (ImageError, OptionsError) as e:
            return _failed(jid, reporter.step, "bad_input", getattr(e, "user_message", None) or str(e))
        except Exception as e:
            if not is_oom(e):
                log.error("job %s failed:\n%s", jid, traceback.format_exc())
                return _failed(jid, reporter.step, "internal", f"the style transfer failed ({type(e).__name__}: {e})")
            _free_memory()
            smaller = max(16, int(options.size * settings.oom_retry_scale))
            if attempt > 0 or smaller >= options.size:
                return _failed(
                    jid, reporter.step, "oom", f"ran out of memory at {options.size} px, even after retrying smaller"
                )
            note = f"ran out of memory at {options.size} px; retrying at {smaller} px"
            notes.append(note)
            options = options.replace(size=smaller)
            continue
        return _done_event(jid, result, notes)
    raise AssertionError("unreachable")  # pragma: no cover


def run_batch(
    jobs: list[Job],
    emit: Emit,
    should_cancel: Callable[[str], bool],
    settings: WorkerSettings | None = None,
) -> dict[str, JobEvent]:
    """Run several jobs, stacking those that can share the network's passes; one terminal each.

    Each job's terminal event goes to `emit` the moment the job ends (a short job does not
    wait for a long one) and all of them are returned too. `should_cancel(job_id)` stops one
    job without touching the others. Jobs that cannot share (another size after memory
    fitting, L-BFGS, more than fit in memory together) run in smaller stacks or alone, one
    after another. If a stack runs out of memory, every job in it that had not ended starts
    again on its own (with the usual OOM retry), so one job's size never fails another.
    """
    from stylecore.batch import batch_key

    settings = settings or WorkerSettings()
    terminals: dict[str, JobEvent] = {}

    def end(ev: JobEvent) -> None:
        if ev.job_id not in terminals:
            terminals[ev.job_id] = ev
            emit(ev)

    free = memory_budget(_job_device(jobs[0], settings), settings) if jobs else None
    groups: dict[object, list[_Prepared]] = {}
    for job in jobs:
        p = _prepare(job, emit, settings, free)
        if isinstance(p, JobEvent):
            end(p)
            continue
        key = batch_key(p.content.size, p.options)
        groups.setdefault(key if key is not None else ("alone", job.job_id), []).append(p)
    for group in groups.values():
        for chunk in _chunks(group, free):
            if len(chunk) == 1:
                p = chunk[0]
                end(_run_prepared(p, emit, lambda jid=p.job.job_id: should_cancel(jid), settings, None))
            else:
                _run_stack(chunk, emit, end, terminals, should_cancel, settings)
    return terminals


def _chunks(group: list[_Prepared], free: int | None) -> list[list[_Prepared]]:
    """Split a same-key group into stacks that fit the device memory together."""
    if free is None or len(group) == 1:
        return [group]
    from stylecore.engine import output_size
    from stylecore.memory import estimate_job_bytes

    first = group[0]
    w, h = output_size(*first.content.size, first.options)
    dtype_bytes, channels_last = _precision(first.options)
    scale = max(p.options.style_scale for p in group)
    n = len(group)
    while n > 1 and estimate_job_bytes(w, h, n, dtype_bytes, channels_last, style_scale=scale) > free:
        n -= 1
    return [group[i : i + n] for i in range(0, len(group), n)]


def _run_stack(
    chunk: list[_Prepared],
    emit: Emit,
    end: Emit,
    ended: dict[str, JobEvent],
    should_cancel: Callable[[str], bool],
    settings: WorkerSettings,
) -> None:
    from stylecore.batch import BatchItem, stylize_batch
    from stylecore.events import Cancelled

    items = []
    reporters: dict[str, _Reporter] = {}
    started = time.monotonic()
    for p in chunk:
        jid = p.job.job_id
        note = p.notes[0] if p.notes else None
        emit(JobEvent("started", jid, step=0, total=p.options.steps, note=note, batch_size=len(chunk)))
        reporters[jid] = rep = _Reporter(jid, p.options.preview_size, emit, settings)

        def finished(outcome, _p=p, _rep=rep) -> None:
            jid = _p.job.job_id
            if isinstance(outcome, Cancelled):
                end(
                    JobEvent(
                        "cancelled", jid, step=_rep.step, total=_p.options.steps, elapsed=time.monotonic() - started
                    )
                )
            else:
                end(_done_event(jid, outcome, _p.notes))

        items.append(
            BatchItem(
                p.content,
                p.style,
                p.options,
                on_progress=rep,
                should_cancel=lambda jid=jid: should_cancel(jid),
                on_finish=finished,
            )
        )
    try:
        stylize_batch(items)
    except Exception as e:
        oom = is_oom(e)
        if not oom:
            log.error("batch %s failed:\n%s", [p.job.job_id for p in chunk], traceback.format_exc())
        _free_memory()
        for p in chunk:
            jid = p.job.job_id
            if jid in ended:
                continue
            if oom:  # alone, each job gets its own size check and OOM retry
                note = f"the batch of {len(chunk)} jobs ran out of memory; retrying this job on its own"
                end(_run_prepared(p, emit, lambda jid=jid: should_cancel(jid), settings, note))
            else:
                end(
                    _failed(
                        jid, reporters[jid].step, "internal", f"the style transfer failed ({type(e).__name__}: {e})"
                    )
                )


def worker_identity(settings: WorkerSettings | None = None, device: str | None = None) -> dict[str, object]:
    """What a worker reports about itself once warm: pid (fault tests, ops), and for operators
    its device, memory and the largest job it can take.

    `max_side` is the longest side (px, 4:3 image, one job) whose estimate fits the worker's
    memory budget now, with the network loaded: what `/stylebot status` shows and admins
    compare their size limits with. None where nothing caps memory (CPU without a limit).
    """
    info: dict[str, object] = {"pid": os.getpid(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
    if device is None:
        return info
    import torch

    from stylecore.memory import max_side_for

    settings = settings or WorkerSettings()
    info["device"] = device
    dev = torch.device(device)
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        info["gpu"], info["memory_total"] = props.name, int(props.total_memory)
    budget = memory_budget(device, settings)
    dtype_bytes, channels_last = _precision(StyleOptions(device=device))
    info["memory_budget"] = budget
    info["max_side"] = None if budget is None else max_side_for(budget, 0.75, 1, dtype_bytes, channels_last)
    return info
