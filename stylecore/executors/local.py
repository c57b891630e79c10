"""The default backend: a pool of spawned worker processes on this machine.

One process per visible GPU (pinned with CUDA_VISIBLE_DEVICES) or N on CPU with the cores
split between them. Each loads the network once and then serves jobs over a pipe. A
reader thread per worker turns pipe messages into event-loop callbacks, so the loop never
blocks on a worker; the same thread notices when a worker dies (the pipe closes).
Cancellation is a small shared array the worker polls every step, one cell per job of
the run in flight (a stack holds several): a cell names the job to stop by its sequence
number, so a late cancel can never hit the next job.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from stylecore.executors.base import ExecutorError, Job, JobEvent
from stylecore.executors.dispatcher import Backend, ExecutorConfig, WorkerLost
from stylecore.executors.worker import WorkerSettings

log = logging.getLogger(__name__)

_NO_CANCEL = -1


def _worker_main(conn: Connection, cancel: Any, gpu: int | None, settings: WorkerSettings) -> None:
    """Entry point of a worker process: warm up, then run jobs until told to stop."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    if settings.threads:
        os.environ["OMP_NUM_THREADS"] = str(settings.threads)
    # Ctrl-C in a terminal reaches the whole process group; the bot shuts workers down
    # in order, so a worker must not die of it first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from stylecore.executors.worker import run_batch, run_job, warm, worker_identity

    try:
        device = warm(settings)
    except Exception as e:  # reported, then the parent decides about respawning
        conn.send(("fatal", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", worker_identity(settings, device)))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the bot went away
        if msg[0] == "stop":
            return
        kind, seq, payload = msg

        def emit(ev: JobEvent, _seq: int = seq) -> None:
            conn.send(("event", _seq, ev))

        if kind == "run":
            terminal: Any = run_job(payload, emit, lambda _seq=seq: cancel[0] == _seq, settings)
        else:  # "batch": [(job_seq, job), ...]; job i is stopped by cancel[i] == its job_seq
            cells = {job.job_id: (i, jseq) for i, (jseq, job) in enumerate(payload)}

            def wants_stop(job_id: str, _cells: dict[str, tuple[int, int]] = cells) -> bool:
                i, jseq = _cells[job_id]
                return cancel[i] == jseq

            terminal = run_batch([job for _, job in payload], emit, wants_stop, settings)
        conn.send(("end", seq, terminal))


_ENV_LOCK = threading.Lock()


def _start_with_env(proc: Any, env: dict[str, str]) -> None:
    """Start a spawned process with extra environment variables.

    The child must see CUDA_VISIBLE_DEVICES and OMP_NUM_THREADS before torch starts (CUDA
    reads the former once, at driver init), and a spawned child copies the parent's
    environment at start, so they are set around `start()` and restored at once.
    """
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            proc.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@dataclass
class _Run:
    """The run in flight on a worker: one job, or a stack of them."""

    seq: int
    cells: dict[str, tuple[int, int]]  # job_id -> (cancel cell, the value that stops it)
    emit: Callable[[JobEvent], None]
    fut: asyncio.Future[Any]  # a terminal JobEvent ("run") or {job_id: terminal} ("batch")


@dataclass
class _Worker:
    slot: int
    proc: Any
    conn: Connection
    cancel: Any
    pid: int | None = None
    ready: bool = False
    current: _Run | None = None
    failures: int = 0
    info: dict[str, Any] = field(default_factory=dict)


class LocalBackend(Backend):
    def __init__(self, config: ExecutorConfig) -> None:
        self.config = config
        self._ctx = mp.get_context("spawn")
        self._gpus = self._pick_gpus(config)
        if self._gpus:
            self.slots = config.workers or len(self._gpus)
        else:
            self.slots = config.workers or 1
        # A stack pays on a GPU (it fills the card); on CPU the cores are busy with one job.
        self.max_batch = config.max_batch or (4 if self._gpus else 1)
        threads = config.threads_per_worker
        if threads is None and not self._gpus:
            threads = max(1, (os.cpu_count() or 1) // self.slots)
        self._settings = WorkerSettings(
            device=config.device,
            weights=config.weights,
            oom_retry_scale=config.oom_retry_scale,
            progress_interval=config.progress_interval,
            threads=threads,
            memory_limit=config.memory_limit,
        )
        self._workers: dict[int, _Worker] = {}
        self._seq = itertools.count(1)
        self._cancel_wanted: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_ready: Callable[[int], None] = lambda slot: None
        self._on_lost: Callable[[int], None] = lambda slot: None
        self._first_ready: dict[int, asyncio.Future[None]] = {}
        self.closing = False

    @staticmethod
    def _pick_gpus(config: ExecutorConfig) -> list[int]:
        if config.device == "cpu":
            return []
        if config.gpus is not None:
            return list(config.gpus)
        try:
            import torch

            return list(range(torch.cuda.device_count()))
        except Exception:
            return []

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, on_ready: Callable[[int], None], on_lost: Callable[[int], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_ready, self._on_lost = on_ready, on_lost
        for slot in range(self.slots):
            self._first_ready[slot] = self._loop.create_future()
            await self._spawn(slot)
        done, pending = await asyncio.wait(self._first_ready.values(), timeout=self.config.start_timeout)
        errors = [f.exception() for f in done if f.exception()]
        if pending or len(errors) == self.slots:
            await self.close()
            why = str(errors[0]) if errors else f"not ready after {self.config.start_timeout:g} s"
            raise ExecutorError(f"the style workers could not start: {why}")

    async def _spawn(self, slot: int) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        cancel = self._ctx.Array("q", [_NO_CANCEL] * self.max_batch, lock=False)
        gpu = self._gpus[slot % len(self._gpus)] if self._gpus else None
        proc = self._ctx.Process(
            target=_worker_main,
            args=(child, cancel, gpu, self._settings),
            name=f"stylebot-worker-{slot}",
            daemon=True,
        )
        env = {"OMP_NUM_THREADS": str(self._settings.threads)} if self._settings.threads else {}
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        await asyncio.to_thread(_start_with_env, proc, env)
        child.close()
        old = self._workers.get(slot)
        w = _Worker(slot, proc, parent, cancel, pid=proc.pid, failures=old.failures if old else 0)
        self._workers[slot] = w
        threading.Thread(target=self._reader, args=(w,), name=f"stylebot-reader-{slot}", daemon=True).start()

    def _reader(self, w: _Worker) -> None:
        """Blocking reads live here, off the loop; each message hops onto the loop."""
        assert self._loop is not None
        try:
            while True:
                msg = w.conn.recv()
                self._loop.call_soon_threadsafe(self._on_message, w, msg)
        except (EOFError, OSError):
            pass
        except Exception:  # an unpicklable message: treat the worker as broken
            log.exception("bad message from worker %s", w.pid)
            with contextlib.suppress(Exception):
                w.proc.kill()
        w.proc.join(timeout=30)
        with contextlib.suppress(RuntimeError):  # loop already closed at interpreter exit
            self._loop.call_soon_threadsafe(self._on_exit, w)

    def _on_message(self, w: _Worker, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "ready":
            w.ready, w.info, w.failures = True, msg[1], 0
            fut = self._first_ready.get(w.slot)
            if fut is not None and not fut.done():
                fut.set_result(None)
            if self._workers.get(w.slot) is w and not self.closing:
                self._on_ready(w.slot)
        elif kind == "fatal":
            log.error("worker %s could not start: %s", w.pid, msg[1])
            w.info["fatal"] = msg[1]
        elif kind in ("event", "end") and w.current is not None and w.current.seq == msg[1]:
            run = w.current
            if kind == "event":
                run.emit(msg[2])
            else:
                w.current = None
                if not run.fut.done():
                    run.fut.set_result(msg[2])

    def _on_exit(self, w: _Worker) -> None:
        was_ready = w.ready
        w.ready = False
        w.conn.close()
        if self._workers.get(w.slot) is w:
            self._on_lost(w.slot)
        if w.current is not None:
            fut = w.current.fut
            w.current = None
            if not fut.done():
                code = w.proc.exitcode
                how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
                fut.set_exception(WorkerLost(f"worker {w.pid} died ({how})"))
        if not was_ready:
            w.failures += 1
            fut0 = self._first_ready.get(w.slot)
            if fut0 is not None and not fut0.done():
                fut0.set_exception(ExecutorError(w.info.get("fatal") or f"worker exited ({w.proc.exitcode})"))
        if self.closing or self._workers.get(w.slot) is not w:
            return
        delay = min(30.0, 0.5 * 2 ** max(0, w.failures - 1)) if w.failures else 0.0
        log.warning("worker %s on slot %s exited; starting a new one", w.pid, w.slot)
        assert self._loop is not None
        self._loop.call_later(delay, lambda: asyncio.ensure_future(self._respawn(w.slot, w)))

    async def _respawn(self, slot: int, old: _Worker) -> None:
        if self.closing or self._workers.get(slot) is not old:
            return
        try:
            await self._spawn(slot)
        except Exception:
            log.exception("could not respawn worker on slot %s", slot)

    async def close(self) -> None:
        self.closing = True
        workers = list(self._workers.values())
        for w in workers:
            with contextlib.suppress(Exception):
                if w.current is None:
                    w.conn.send(("stop",))
                else:
                    w.proc.kill()

        def join_all() -> None:
            for w in workers:
                w.proc.join(timeout=5)
                if w.proc.is_alive():
                    w.proc.kill()
                    w.proc.join(timeout=5)

        await asyncio.to_thread(join_all)
        for w in workers:
            w.ready = False

    # -- jobs -----------------------------------------------------------------------------

    async def run(self, slot: int, job: Job, emit: Callable[[JobEvent], None]) -> JobEvent:
        seq = next(self._seq)
        result: JobEvent = await self._send(slot, ("run", seq, job), seq, {job.job_id: (0, seq)}, emit)
        return result

    async def run_batch(self, slot: int, jobs: list[Job], emit: Callable[[JobEvent], None]) -> dict[str, JobEvent]:
        if len(jobs) > self.max_batch:
            raise ValueError(f"a stack of {len(jobs)} jobs is more than max_batch={self.max_batch}")
        seq = next(self._seq)
        payload = [(next(self._seq), job) for job in jobs]
        cells = {job.job_id: (i, jseq) for i, (jseq, job) in enumerate(payload)}
        result: dict[str, JobEvent] = await self._send(slot, ("batch", seq, payload), seq, cells, emit)
        return result

    async def _send(
        self,
        slot: int,
        msg: tuple[Any, ...],
        seq: int,
        cells: dict[str, tuple[int, int]],
        emit: Callable[[JobEvent], None],
    ) -> Any:
        w = self._workers.get(slot)
        if w is None or not w.ready or w.current is not None:
            raise WorkerLost(f"no warm worker on slot {slot}")
        assert self._loop is not None
        fut: asyncio.Future[Any] = self._loop.create_future()
        w.current = _Run(seq, cells, emit, fut)
        for job_id, (cell, value) in cells.items():
            if job_id in self._cancel_wanted:
                w.cancel[cell] = value
        try:
            # A job can be megabytes; sending off-loop keeps the loop free while the pipe drains.
            await asyncio.to_thread(w.conn.send, msg)
        except (OSError, ValueError) as e:
            if not fut.done():
                fut.set_exception(WorkerLost(f"could not send the job to worker {w.pid}: {e}"))
        try:
            return await fut
        finally:
            self._cancel_wanted.difference_update(cells)

    def request_cancel(self, slot: int, job_id: str) -> None:
        w = self._workers.get(slot)
        if w is not None and w.current is not None and job_id in w.current.cells:
            cell, value = w.current.cells[job_id]
            w.cancel[cell] = value
        else:
            self._cancel_wanted.add(job_id)  # not sent yet; run() applies it

    async def kill(self, slot: int) -> None:
        w = self._workers.get(slot)
        if w is not None and w.proc.is_alive():
            w.proc.kill()

    def worker_pids(self) -> list[int]:
        return [w.pid for w in self._workers.values() if w.pid is not None and w.ready]

    def slot_pid(self, slot: int) -> int | None:
        w = self._workers.get(slot)
        return w.pid if w is not None and w.ready else None

    def worker_info(self) -> list[dict[str, Any]]:
        return [dict(w.info, slot=w.slot, ready=w.ready) for w in self._workers.values()]
