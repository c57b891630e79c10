"""Running jobs inside a worker: the part every backend's worker shares.

Everything here executes in the worker (a spawned process or a Ray actor), never in the
caller's event loop. `start_worker` does what a worker does once; `run_jobs` turns a stack of
`Job`s (bytes + options; often a stack of one) into a stream of `JobEvent`s with one terminal
event per job, doing the expensive encodings (previews, the PNG) where the pixels already
are so that only small byte strings cross the process boundary. It sizes each job to its
memory budget first (the free GPU memory, capped by the operator's `memory_limit`), and runs
every stack through `stylecore.batch.stylize_batch`: a single job is a stack of one.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stylecore.executors.base import Job, JobEvent, JobResult
from stylecore.executors.config import WorkerSettings
from stylecore.executors.device_memory import memory_budget, memory_used, reset_memory_peak
from stylecore.executors.redaction import install_log_redaction, scrub_environ
from stylecore.notes import Note
from stylecore.options import StyleOptions

if TYPE_CHECKING:
    from PIL import Image

    from stylecore.devices import DevicePlan
    from stylecore.events import ProgressEvent, StyleResult

log = logging.getLogger(__name__)

Emit = Callable[[JobEvent], None]


# -- once per worker -----------------------------------------------------------------------


def start_worker(settings: WorkerSettings) -> str:
    """Everything a worker does before its first job; returns the device it runs on.

    Credentials leave first (before any code of the setup hook or the engine runs), then the
    setup hook, then the network loads so that it stays resident for every later job.
    """
    secrets = scrub_environ(settings.secret_env)
    install_log_redaction(secrets.values())
    if settings.setup_hook:
        module, _, name = settings.setup_hook.partition(":")
        getattr(importlib.import_module(module), name)()
    import torch

    if settings.threads:
        torch.set_num_threads(settings.threads)
    from stylecore.network import get_model

    device = device_name(settings.device)
    get_model(weights=settings.weights, device=device)
    return device


def device_name(device: str | None) -> str:
    """The concrete device a job asking for `device` ("auto", None, "cpu", "cuda"...) runs on."""
    from stylecore.devices import resolve_device

    return str(resolve_device(device or "auto"))


def worker_identity(settings: WorkerSettings | None = None, device: str | None = None) -> dict[str, object]:
    """What a worker reports about itself once warm: pid (fault tests, ops), and for operators
    its device, memory and the largest job it can take.

    `max_side` is the longest side (px, 4:3 image, one job) whose estimate fits the worker's
    memory budget now, with the network loaded: what operators compare their size limits
    with. None where nothing caps memory (CPU without a limit).
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


# -- failures --------------------------------------------------------------------------------


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


_DEVICE_FAULT_MARKERS = ("CUDA error", "cudaError", "CUBLAS_STATUS", "CUDNN_STATUS", "device-side assert")


def device_fault(exc: BaseException) -> str | None:
    """Why `exc` leaves this worker's GPU unusable, or None when the worker can go on.

    CUDA errors other than out-of-memory (an illegal memory access, a device-side assert)
    are "sticky": the CUDA Runtime API documentation says the process is left in an
    inconsistent state and every later CUDA call fails the same way, so the only cure is a
    new process. Out-of-memory is not one of them: the next, smaller job runs fine.
    """
    if is_oom(exc):
        return None
    import torch

    accelerator_error = getattr(torch, "AcceleratorError", None)
    text = str(exc)
    if (accelerator_error is not None and isinstance(exc, accelerator_error)) or any(
        marker in text for marker in _DEVICE_FAULT_MARKERS
    ):
        first_line = text.strip().splitlines()[0] if text.strip() else ""
        return f"{type(exc).__name__}: {first_line}"
    return None


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _failed(jid: str, step: int, reason: str, message: str) -> JobEvent:
    return JobEvent("failed", jid, step=step, error=message, reason=reason)  # type: ignore[arg-type]


# -- memory ----------------------------------------------------------------------------------


def plan_of(options: StyleOptions) -> DevicePlan:
    """The device plan the engine will choose for these options."""
    import torch

    from stylecore.devices import plan_for

    return plan_for(torch.device(device_name(options.device)), options.fast)


def _precision(options: StyleOptions) -> tuple[int, bool]:
    """(activation bytes, channels_last) of the plan the engine will choose for these options."""
    plan = plan_of(options)
    return plan.activation_bytes, plan.channels_last


def _fit(options: StyleOptions, content_size: tuple[int, int], free: int | None) -> tuple[StyleOptions, Note | None]:
    """Options that fit the memory budget, and the note saying what changed (or None)."""
    if free is None:
        return options, None
    from stylecore.memory import fit_options

    plan = plan_of(options)
    return fit_options(
        options,
        content_size,
        free,
        dtype_bytes=plan.activation_bytes,
        channels_last=plan.channels_last,
        memory="gpu" if plan.device.type == "cuda" else "ram",
    )


# -- running jobs ----------------------------------------------------------------------------


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
        last = ev.step >= ev.total or ev.converged  # a run that stopped early reports its last step too
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


def _done_event(jid: str, result: StyleResult, notes: list[Note], device: str | None = None) -> JobEvent:
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
        converged=stats.converged,
        notes=tuple(notes) + tuple(stats.notes),
        timelapse=result.timelapse,
        memory_used=memory_used(device) if device is not None else None,
    )
    return JobEvent("done", jid, step=stats.steps, total=stats.steps, elapsed=stats.seconds, result=res)


@dataclass
class _Runnable:
    """A job whose inputs decoded and whose size fits its memory budget."""

    job_id: str
    options: StyleOptions  # after device forcing and memory fitting (and an OOM retry)
    content: Image.Image
    style: Image.Image | list[Image.Image]
    notes: list[Note] = field(default_factory=list)  # what the user should know, in order
    oom_retried: bool = False


@dataclass(frozen=True)
class RunOutcome:
    """What a run leaves behind: each job's terminal event, and whether this worker must go."""

    ends: dict[str, JobEvent]
    # Set when the run hit a device fault the process cannot recover from (see device_fault):
    # the backend replaces the worker instead of giving it the next job.
    fault: str | None = None


def _prepare(job: Job, emit: Emit, settings: WorkerSettings, budget: int | None) -> _Runnable | JobEvent:
    """Decode and size one job; a terminal event (after its `started`) when it cannot run."""
    from stylecore.imageio import ImageError, load_image

    jid = job.job_id
    options = job.options
    if settings.device is not None:
        options = options.replace(device=settings.device)

    def refuse(reason: str, message: str) -> JobEvent:
        emit(JobEvent("started", jid, step=0, total=options.steps))
        return _failed(jid, 0, reason, message)

    try:
        content = load_image(job.content)
        styles = [load_image(b) for b in job.styles]
    except ImageError as e:
        return refuse("bad_input", e.user_message)
    if not styles:
        return refuse("bad_input", "a job needs at least one style image")
    try:
        options, note = _fit(options, content.size, budget)
    except MemoryError as e:
        return refuse("oom", str(e))
    return _Runnable(jid, options, content, styles[0] if len(styles) == 1 else styles, [note] if note else [])


def run_jobs(
    jobs: list[Job], emit: Emit, should_cancel: Callable[[str], bool], settings: WorkerSettings | None = None
) -> RunOutcome:
    """Run `jobs` to their ends in this process, stacking those that can share the network's
    passes; every event goes to `emit`, each job's terminal event the moment the job ends (a
    short job does not wait for a long one).

    Never raises for anything a job can cause: bad input, OOM, cancellation and engine errors
    all become terminal events, so a worker survives every job (a device fault ends the jobs
    and sets `RunOutcome.fault`). `should_cancel(job_id)` stops one job without touching the
    others. Jobs that cannot share (another size after memory fitting, L-BFGS, more than fit
    in memory together) run in smaller stacks or alone, one after another. A job too large
    for its memory budget runs at the largest size that fits and says so; one that runs out
    of memory all the same is retried once smaller, and a stack that does re-runs each of its
    jobs alone, so one job's size never fails another.
    """
    from stylecore.batch import batch_key

    settings = settings or WorkerSettings()
    ends: dict[str, JobEvent] = {}

    def end(ev: JobEvent) -> None:
        if ev.job_id not in ends:
            ends[ev.job_id] = ev
            emit(ev)

    if not jobs:
        return RunOutcome(ends)
    try:
        budget = memory_budget(device_name(settings.device or jobs[0].options.device), settings)
    except RuntimeError as e:  # e.g. CUDA asked of a worker without one
        for job in jobs:
            emit(JobEvent("started", job.job_id, step=0, total=job.options.steps))
            end(_failed(job.job_id, 0, "internal", f"the style transfer failed ({type(e).__name__}: {e})"))
        return RunOutcome(ends)
    groups: dict[object, list[_Runnable]] = {}
    for job in jobs:
        r = _prepare(job, emit, settings, budget)
        if isinstance(r, JobEvent):
            end(r)
            continue
        key = batch_key(r.content.size, r.options)
        groups.setdefault(key if key is not None else ("alone", job.job_id), []).append(r)
    fault: str | None = None
    for group in groups.values():
        for stack in _stacks(group, budget):
            if fault is not None:  # this device is gone: nothing more can run here
                for r in stack:
                    emit(JobEvent("started", r.job_id, step=0, total=r.options.steps))
                    end(_failed(r.job_id, 0, "internal", f"the worker's device failed ({fault})"))
                continue
            fault = _run_stack(stack, emit, end, ends, should_cancel, settings)
    return RunOutcome(ends, fault)


def _stacks(group: list[_Runnable], free: int | None) -> list[list[_Runnable]]:
    """Split a same-key group into stacks that fit the device memory together."""
    if free is None or len(group) == 1:
        return [group]
    from stylecore.engine import output_size
    from stylecore.memory import estimate_job_bytes

    first = group[0]
    w, h = output_size(*first.content.size, first.options)
    dtype_bytes, channels_last = _precision(first.options)
    scale = max(r.options.style_scale for r in group)
    n = len(group)
    while n > 1 and estimate_job_bytes(w, h, n, dtype_bytes, channels_last, style_scale=scale) > free:
        n -= 1
    return [group[i : i + n] for i in range(0, len(group), n)]


def _run_stack(
    stack: list[_Runnable],
    emit: Emit,
    end: Emit,
    ends: dict[str, JobEvent],
    should_cancel: Callable[[str], bool],
    settings: WorkerSettings,
    note: Note | None = None,
) -> str | None:
    """Run one stack through the engine; returns a device fault, if one ended it.

    `note` goes on each job's `started` event instead of its first own note (a job that left
    a stack, or is retried smaller, says why it starts again).
    """
    from stylecore import batch
    from stylecore.events import Cancelled
    from stylecore.imageio import ImageError
    from stylecore.options import OptionsError

    started = time.monotonic()
    reporters: dict[str, _Reporter] = {}
    items = []
    try:
        device: str | None = device_name(stack[0].options.device)  # one stack shares one device
    except RuntimeError:  # e.g. CUDA asked of a worker without one: the engine fails each job below
        device = None
    if device is not None:
        reset_memory_peak(device)
    for r in stack:
        first_note = note or (r.notes[0] if r.notes else None)
        size = len(stack) if len(stack) > 1 else None
        emit(
            JobEvent(
                "started", r.job_id, step=0, total=r.options.steps, note=first_note, batch_size=size, device=device
            )
        )
        reporters[r.job_id] = rep = _Reporter(r.job_id, r.options.preview_size, emit, settings)

        def finished(outcome: object, r: _Runnable = r, rep: _Reporter = rep) -> None:
            if isinstance(outcome, Cancelled):
                elapsed = time.monotonic() - started
                end(JobEvent("cancelled", r.job_id, step=rep.step, total=r.options.steps, elapsed=elapsed))
            else:
                end(_done_event(r.job_id, outcome, r.notes, device))  # type: ignore[arg-type]

        cancel = functools.partial(should_cancel, r.job_id)
        items.append(
            batch.BatchItem(r.content, r.style, r.options, on_progress=rep, should_cancel=cancel, on_finish=finished)
        )
    try:
        batch.stylize_batch(items)
        return None
    except Exception as e:
        error = e
    left = [r for r in stack if r.job_id not in ends]
    if is_oom(error):
        _free_memory()
        if len(stack) > 1:  # alone, each job gets its own size check and OOM retry
            alone = Note.of("alone_after_oom", jobs=len(stack))
            faults = [_run_stack([r], emit, end, ends, should_cancel, settings, alone) for r in left]
            return next((f for f in faults if f), None)
        for r in left:
            smaller = max(16, int(r.options.size * settings.oom_retry_scale))
            if r.oom_retried or smaller >= r.options.size:
                message = f"ran out of memory at {r.options.size} px, even after retrying smaller"
                end(_failed(r.job_id, reporters[r.job_id].step, "oom", message))
                return None
            retry = Note.of("oom_retry", size=r.options.size, smaller=smaller)
            r.notes.append(retry)
            r.options, r.oom_retried = r.options.replace(size=smaller), True
            return _run_stack([r], emit, end, ends, should_cancel, settings, retry)
        return None
    fault = device_fault(error)
    if isinstance(error, (ImageError, OptionsError)):
        reason, message = "bad_input", getattr(error, "user_message", None) or str(error)
    else:
        log.error("job(s) %s failed:\n%s", [r.job_id for r in stack], "".join(traceback.format_exception(error)))
        reason, message = "internal", f"the style transfer failed ({type(error).__name__}: {error})"
    for r in left:
        end(_failed(r.job_id, reporters[r.job_id].step, reason, message))
    return fault


__all__ = [
    "RunOutcome",
    "device_fault",
    "device_name",
    "is_oom",
    "plan_of",
    "run_jobs",
    "start_worker",
    "worker_identity",
]
