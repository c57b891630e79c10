"""The default backend: a pool of spawned worker processes on this machine.

One process per visible GPU (pinned with CUDA_VISIBLE_DEVICES) or, without GPUs, N processes
with the cores split between them (`ExecutorConfig.local_pool`). Each loads the network once
and then serves runs over a pipe. A reader thread per worker turns pipe messages into
event-loop callbacks, so the loop never blocks on a worker; the same thread notices when a
worker dies (the pipe closes). Cancellation is a small shared array the worker polls every
step, one cell per job of the run in flight: a cell names the job to stop by its sequence
number, so a late cancel can never hit the next job.

Every (re)start has `start_timeout` to report ready or it is killed; failed starts are
retried with a doubling delay. Workers start without the caller's secrets (`secret_env`) in
their environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from stylecore.executors.backend import Backend, Emit, SlotListener, WorkerLost
from stylecore.executors.base import ExecutorError, Job, JobEvent
from stylecore.executors.config import ExecutorConfig, WorkerSettings
from stylecore.executors.redaction import child_environ

log = logging.getLogger(__name__)

_NO_CANCEL = -1


def _worker_main(conn: Connection, cancel: Any, settings: WorkerSettings) -> None:
    """Entry point of a worker process: warm up, then run stacks of jobs until told to stop.

    Messages: in ("run", seq, [(job_seq, job), ...]) and ("stop",); out ("ready", identity),
    ("fatal", why), ("event", seq, JobEvent) and ("end", seq, fault). Job i of a run is
    stopped by cancel[i] == its job_seq.
    """
    # Ctrl-C in a terminal reaches the whole process group; the caller shuts workers down
    # in order, so a worker must not die of it first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s worker %(process)d %(message)s")
    from stylecore.executors.worker import run_jobs, start_worker, worker_identity

    try:
        device = start_worker(settings)
    except BaseException as e:  # reported, then the parent decides about restarting
        conn.send(("fatal", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", worker_identity(settings, device)))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the parent went away
        if msg[0] == "stop":
            return
        _, seq, payload = msg
        cells = {job.job_id: (i, job_seq) for i, (job_seq, job) in enumerate(payload)}

        def emit(ev: JobEvent, _seq: int = seq) -> None:
            conn.send(("event", _seq, ev))

        def wants_stop(job_id: str, _cells: dict[str, tuple[int, int]] = cells) -> bool:
            i, job_seq = _cells[job_id]
            return cancel[i] == job_seq

        outcome = run_jobs([job for _, job in payload], emit, wants_stop, settings)
        conn.send(("end", seq, outcome.fault))
        if outcome.fault is not None:
            return  # this process's device is unusable; the parent starts a new one


def _start_without_secrets(proc: Any, env: dict[str, str], secrets: Iterable[str]) -> None:
    """Start a worker process with `env` set and `secrets` absent from its environment.

    It must see CUDA_VISIBLE_DEVICES and OMP_NUM_THREADS before torch starts (CUDA reads the
    former once, at driver init), and never see the secrets at all.
    """
    with child_environ(env, secrets):
        proc.start()


def count_gpus(config: ExecutorConfig) -> list[int]:
    """The GPUs to put workers on, counted without importing torch into this process.

    The caller's process must stay free of torch (and of an initialised CUDA driver, which a
    forked or long-lived process should not carry), so a short-lived interpreter counts them.
    """
    if config.device == "cpu":
        return []
    if config.gpus is not None:
        return list(config.gpus)
    probe = [sys.executable, "-c", "import torch; print(torch.cuda.device_count())"]
    env = {k: v for k, v in os.environ.items() if k not in config.secret_env}
    try:
        out = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=120, check=True)
        return list(range(int(out.stdout.strip().splitlines()[-1])))
    except Exception as e:
        log.warning("could not count GPUs (%s); using the CPU", e)
        return []


@dataclass
class _InFlight:
    """The run a worker is busy with: one job, or a stack of them."""

    seq: int
    cells: dict[str, tuple[int, int]]  # job_id -> (cancel cell, the value that stops it)
    emit: Emit
    fut: asyncio.Future[str | None]  # resolves to the worker's fault (None: it can go on)


@dataclass
class _WorkerProcess:
    """One worker process and what the parent knows of it."""

    slot: int
    proc: Any
    conn: Connection
    cancel: Any
    pid: int | None = None
    warm: bool = False  # it reported ready once
    ready: bool = False  # it takes runs now
    current: _InFlight | None = None
    error: str | None = None  # why it could not start, when it could not
    info: dict[str, Any] = field(default_factory=dict)
    deadline: asyncio.TimerHandle | None = None


class LocalBackend(Backend):
    lost_retries = 0  # a local worker dies of the job it runs (OOM-killer, a crash): no retry

    def __init__(self, config: ExecutorConfig) -> None:
        self.config = config
        self._ctx = mp.get_context("spawn")
        self._gpus: list[int] = []  # counted in start()
        self.slots = config.workers or 1
        self.max_batch = config.max_batch_on(False)
        self._settings = config.worker_settings()
        self._workers: dict[int, _WorkerProcess] = {}
        self._failures: dict[int, int] = {}  # slot -> failed starts in a row
        self._last_error: dict[int, str] = {}  # slot -> why its last start failed (until one succeeds)
        self._seq = itertools.count(1)
        self._cancel_wanted: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: SlotListener | None = None
        self._first: dict[int, asyncio.Future[None]] = {}  # slot -> ready (or failed) the first time
        self.closing = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, listener: SlotListener) -> None:
        self._loop = asyncio.get_running_loop()
        self._listener = listener
        self._gpus = await asyncio.to_thread(count_gpus, self.config)
        self.slots, threads = self.config.local_pool(len(self._gpus), os.cpu_count() or 1)
        self.max_batch = self.config.max_batch_on(bool(self._gpus))
        self._settings = self.config.worker_settings(threads)
        for slot in range(self.slots):
            self._first[slot] = self._loop.create_future()
            await self._start_process(slot)
        await asyncio.wait(self._first.values())
        errors = [f.exception() for f in self._first.values() if f.exception() is not None]
        if len(errors) == self.slots:
            await self.close()
            raise ExecutorError(f"the style workers could not start: {errors[0]}")

    async def _start_process(self, slot: int) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        cancel = self._ctx.Array("q", [_NO_CANCEL] * self.max_batch, lock=False)
        gpu = self._gpus[slot % len(self._gpus)] if self._gpus else None
        proc = self._ctx.Process(
            target=_worker_main, args=(child, cancel, self._settings), name=f"style-worker-{slot}", daemon=True
        )
        env = {"OMP_NUM_THREADS": str(self._settings.threads)} if self._settings.threads else {}
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        await asyncio.to_thread(_start_without_secrets, proc, env, self._settings.secret_env)
        child.close()
        w = _WorkerProcess(slot, proc, parent, cancel, pid=proc.pid)
        self._workers[slot] = w
        assert self._loop is not None
        w.deadline = self._loop.call_later(self.config.start_timeout, self._start_overdue, w)
        threading.Thread(target=self._reader, args=(w,), name=f"style-reader-{slot}", daemon=True).start()

    def _start_overdue(self, w: _WorkerProcess) -> None:
        if w.warm or not w.proc.is_alive():
            return
        w.error = f"not ready after {self.config.start_timeout:g} s"
        log.error("worker %s on slot %s: %s; killing it", w.pid, w.slot, w.error)
        with contextlib.suppress(Exception):
            w.proc.kill()

    def _reader(self, w: _WorkerProcess) -> None:
        """Blocking reads live here, off the loop; each message hops onto the loop."""
        assert self._loop is not None
        try:
            while True:
                msg = w.conn.recv()
                self._loop.call_soon_threadsafe(self._on_message, w, msg)
                del msg  # (a result may be megabytes: not kept while waiting for the next message)
        except (EOFError, OSError):
            pass
        except Exception:  # an unpicklable message: treat the worker as broken
            log.exception("bad message from worker %s", w.pid)
            with contextlib.suppress(Exception):
                w.proc.kill()
        w.proc.join(timeout=30)
        with contextlib.suppress(RuntimeError):  # loop already closed at interpreter exit
            self._loop.call_soon_threadsafe(self._on_exit, w)

    def _on_message(self, w: _WorkerProcess, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "ready":
            if w.deadline is not None:
                w.deadline.cancel()
            w.warm, w.ready, w.info = True, True, msg[1]
            self._failures[w.slot] = 0
            self._last_error.pop(w.slot, None)
            first = self._first.get(w.slot)
            if first is not None and not first.done():
                first.set_result(None)
            if self._workers.get(w.slot) is w and not self.closing and self._listener is not None:
                self._listener.slot_ready(w.slot)
        elif kind == "fatal":
            log.error("worker %s could not start: %s", w.pid, msg[1])
            w.error = msg[1]
        elif kind in ("event", "end") and w.current is not None and w.current.seq == msg[1]:
            run = w.current
            if kind == "event":
                run.emit(msg[2])
                return
            w.current = None
            fault = msg[2]
            if fault is not None:  # stop giving it work before anyone sees the run end
                log.error("worker %s on slot %s hit a device fault (%s); replacing it", w.pid, w.slot, fault)
                self._retire(w)
                with contextlib.suppress(Exception):
                    w.proc.kill()
            if not run.fut.done():
                run.fut.set_result(fault)

    def _retire(self, w: _WorkerProcess) -> None:
        """The worker takes no more runs; its slot has none until a replacement is ready."""
        was_ready, w.ready = w.ready, False
        if was_ready and self._workers.get(w.slot) is w and self._listener is not None:
            self._listener.slot_lost(w.slot)

    def _on_exit(self, w: _WorkerProcess) -> None:
        if w.deadline is not None:
            w.deadline.cancel()
        self._retire(w)
        w.conn.close()
        code = w.proc.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        if w.current is not None:
            fut = w.current.fut
            w.current = None
            if not fut.done():
                fut.set_exception(WorkerLost(f"worker {w.pid} died ({how})"))
        current = self._workers.get(w.slot) is w
        if not w.warm:  # a failed start
            why = w.error or f"the worker exited while starting ({how})"
            w.error = why
            first = self._first.get(w.slot)
            if first is not None and not first.done():
                first.set_exception(ExecutorError(why))
            if current and not self.closing:
                self._failed_start(w.slot, why)
        if self.closing or not current:
            return
        delay = self.config.restart_delay_after(self._failures.get(w.slot, 0))
        log.warning("worker %s on slot %s exited (%s); starting a new one in %.1f s", w.pid, w.slot, how, delay)
        assert self._loop is not None
        self._loop.call_later(delay, lambda: asyncio.ensure_future(self._restart(w.slot, w)))

    def _failed_start(self, slot: int, why: str) -> None:
        self._failures[slot] = self._failures.get(slot, 0) + 1
        self._last_error[slot] = why
        if self._listener is not None:
            self._listener.slot_failed(slot, why)

    async def _restart(self, slot: int, old: _WorkerProcess) -> None:
        if self.closing or self._workers.get(slot) is not old:
            return
        try:
            await self._start_process(slot)
        except Exception as e:
            log.exception("could not start a worker on slot %s", slot)
            self._failed_start(slot, f"{type(e).__name__}: {e}")
            assert self._loop is not None
            delay = self.config.restart_delay_after(self._failures[slot])
            self._loop.call_later(delay, lambda: asyncio.ensure_future(self._restart(slot, old)))

    async def close(self) -> None:
        self.closing = True
        workers = list(self._workers.values())
        for w in workers:
            if w.deadline is not None:
                w.deadline.cancel()
            with contextlib.suppress(Exception):
                if w.current is None and w.warm:
                    w.conn.send(("stop",))
                else:
                    w.proc.kill()

        try:
            # Polled rather than joined in a thread: a caller that stops waiting (a shutdown with a
            # budget) cancels this cleanly, and no thread is left for asyncio.run to wait on.
            await _wait_exited(workers, 5.0)
            for w in workers:
                if w.proc.is_alive():
                    w.proc.kill()
            await _wait_exited(workers, 5.0)
        finally:
            for w in workers:
                w.ready = False
                if w.proc.is_alive():
                    w.proc.kill()

    # -- jobs -----------------------------------------------------------------------------

    async def run(self, slot: int, jobs: list[Job], emit: Emit) -> None:
        if len(jobs) > self.max_batch:
            raise ValueError(f"a stack of {len(jobs)} jobs is more than max_batch={self.max_batch}")
        w = self._workers.get(slot)
        if w is None or not w.ready or w.current is not None:
            raise WorkerLost(f"no warm worker on slot {slot}")
        assert self._loop is not None
        seq = next(self._seq)
        payload = [(next(self._seq), job) for job in jobs]
        cells = {job.job_id: (i, job_seq) for i, (job_seq, job) in enumerate(payload)}
        fut: asyncio.Future[str | None] = self._loop.create_future()
        w.current = _InFlight(seq, cells, emit, fut)
        for job_id, (cell, value) in cells.items():
            if job_id in self._cancel_wanted:
                w.cancel[cell] = value
        try:
            # A job can be megabytes; sending off-loop keeps the loop free while the pipe drains.
            await asyncio.to_thread(w.conn.send, ("run", seq, payload))
        except (OSError, ValueError) as e:
            if not fut.done():
                fut.set_exception(WorkerLost(f"could not send the job to worker {w.pid}: {e}"))
        del payload, jobs  # the worker has them; an ended job's inputs must be free to go
        try:
            await fut
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

    def worker_info(self) -> list[dict[str, Any]]:
        out = []
        for slot in range(self.slots):
            w = self._workers.get(slot)
            if w is None:
                continue
            state = "ready" if w.ready else "failed" if slot in self._last_error else "starting"
            info = dict(w.info, slot=slot, ready=w.ready, state=state, pid=w.pid)
            if slot in self._last_error:
                info["error"] = self._last_error[slot]
            out.append(info)
        return out


async def _wait_exited(workers: list[_WorkerProcess], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(w.proc.is_alive() for w in workers) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
