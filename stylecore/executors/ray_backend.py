"""The Ray backend: one warm actor per GPU across a cluster, fed by the caller's dispatcher.

The queue stays in the bot's process (the shared Dispatcher) and each actor gets one run
at a time (one job, or on a GPU a stack of same-size jobs), so a dead actor never takes
queued jobs with it; only its running jobs are affected, and each is retried once.
Progress comes back as a Ray streaming generator, awaited from asyncio. Ray is imported
lazily so the local pool never needs it installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from stylecore.executors.base import ExecutorError, Job, JobEvent
from stylecore.executors.dispatcher import Backend, ExecutorConfig, WorkerLost
from stylecore.executors.worker import WorkerSettings

log = logging.getLogger(__name__)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ExecutorError(
            "the Ray backend needs the 'ray' extra: pip install 'stylebot[ray]' (or '.[ray]' from a checkout)"
        ) from e
    return ray


class StyleActor:
    """Runs inside a Ray worker process: warm network, one run (a job or a stack) at a time,
    each job cancellable on its own.

    Threaded (max_concurrency > 1) so that `cancel` can land while `run` is busy; the jobs
    themselves run in a helper thread that feeds the streaming generator through a queue.
    """

    def __init__(self, settings: WorkerSettings) -> None:
        from stylecore.executors.worker import warm

        self.settings = settings
        self.device = warm(settings)
        self._cancelled: deque[str] = deque(maxlen=256)
        self._lock = threading.Lock()

    def ping(self) -> dict[str, Any]:
        from stylecore.executors.worker import worker_identity

        return worker_identity(self.settings, self.device)

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancelled.append(job_id)

    def _should_cancel(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._cancelled

    def run(self, job: Job) -> Iterator[JobEvent]:
        from stylecore.executors.worker import run_job

        def work(emit: Callable[[JobEvent], None]) -> None:
            emit(run_job(job, emit, lambda: self._should_cancel(job.job_id), self.settings))

        yield from self._stream([job.job_id], work)  # (a generator itself: Ray streams it)

    def run_batch(self, jobs: list[Job]) -> Iterator[JobEvent]:
        """A stack of jobs: every job's events, its terminal too, the moment it happens."""
        from stylecore.executors.worker import run_batch

        def work(emit: Callable[[JobEvent], None]) -> None:
            run_batch(jobs, emit, self._should_cancel, self.settings)

        yield from self._stream([job.job_id for job in jobs], work)

    def _stream(self, job_ids: list[str], work: Callable[[Callable[[JobEvent], None]], None]) -> Iterator[JobEvent]:
        """Run `work(emit)` in a helper thread and yield what it emits until it returns.

        Never leaves the stream open: a job that has no terminal when `work` returns (or
        raises) gets a failed one.
        """
        events: queue.Queue[Any] = queue.Queue()
        end = object()
        crash: list[BaseException] = []

        def target() -> None:
            try:
                work(events.put)
            except BaseException as e:  # the worker code should not raise
                crash.append(e)
            finally:
                events.put(end)

        threading.Thread(target=target, name=f"jobs-{job_ids[0] if job_ids else ''}", daemon=True).start()
        pending = list(job_ids)
        while True:
            ev = events.get()
            if ev is end:
                break
            if ev.terminal:
                if ev.job_id not in pending:
                    continue  # a job ends once
                pending.remove(ev.job_id)
            yield ev
        why = f"internal error: {crash[0]}" if crash else "internal error: the worker returned no result"
        for jid in pending:
            yield JobEvent("failed", jid, error=why, reason="internal")


class RayBackend(Backend):
    def __init__(self, config: ExecutorConfig) -> None:
        self.ray = _import_ray()
        self.config = config
        self._settings = WorkerSettings(
            device=config.device,
            weights=config.weights,
            oom_retry_scale=config.oom_retry_scale,
            progress_interval=config.progress_interval,
            threads=None,  # Ray sets OMP_NUM_THREADS from the actor's num_cpus
            memory_limit=config.memory_limit,
        )
        self._actor_cls: Any = None
        self.slots = config.workers or 1  # until start() has counted the cluster's GPUs
        self.max_batch = config.max_batch or 1  # until start() has asked the actors for their device
        self._actors: dict[int, Any] = {}
        self._info: dict[int, dict[str, Any]] = {}
        self._on_ready: Callable[[int], None] = lambda slot: None
        self._on_lost: Callable[[int], None] = lambda slot: None
        self._watch: dict[int, asyncio.Task[None]] = {}
        self.closing = False

    def _ensure_ray(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        address = self.config.ray_address or os.environ.get("RAY_ADDRESS")
        kwargs = {"namespace": self.config.ray_namespace, "log_to_driver": False, **self.config.ray_init}
        if address:
            ray.init(address=address, **kwargs)
        else:
            kwargs.setdefault("include_dashboard", False)
            ray.init(**kwargs)

    def _gpu_slots(self) -> int:
        per = self.config.ray_num_gpus_per_actor
        if per <= 0:
            raise ExecutorError("with ray_num_gpus_per_actor=0, set workers to the number of CPU actors")
        gpus = self.ray.cluster_resources().get("GPU", 0)
        n = int(gpus // per)
        if n < 1:
            raise ExecutorError(
                "the Ray cluster has no GPUs; start GPU workers (ray start --address=... --num-gpus=N) "
                "or set workers=N and ray_num_gpus_per_actor=0 to run on CPUs"
            )
        return n

    def _new_actor(self, slot: int) -> Any:
        if self._actor_cls is None:
            self._actor_cls = self.ray.remote(StyleActor)
        return self._actor_cls.options(
            name=None,
            num_gpus=self.config.ray_num_gpus_per_actor,
            num_cpus=self.config.ray_num_cpus_per_actor,
            resources=dict(self.config.ray_resources) or None,
            max_restarts=-1,  # Ray restarts a dead actor (and __init__ warms it again)
            max_task_retries=0,  # the dispatcher decides about retries, not Ray
            max_concurrency=4,
        ).remote(self._settings)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, on_ready: Callable[[int], None], on_lost: Callable[[int], None]) -> None:
        self._on_ready, self._on_lost = on_ready, on_lost
        # ray.init and the cluster query block for seconds: keep them off the loop.
        await asyncio.to_thread(self._ensure_ray)
        self.slots = self.config.workers or await asyncio.to_thread(self._gpu_slots)
        for slot in range(self.slots):
            self._actors[slot] = self._new_actor(slot)
        pings = [self._ping(slot) for slot in range(self.slots)]
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*pings, return_exceptions=True), timeout=self.config.start_timeout
            )
        except asyncio.TimeoutError:
            await self.close()
            raise ExecutorError(
                f"the Ray style actors were not ready after {self.config.start_timeout:g} s "
                "(are there enough GPUs/CPUs free in the cluster?)"
            ) from None
        errors = [r for r in results if isinstance(r, BaseException)]
        if len(errors) == self.slots:
            await self.close()
            raise ExecutorError(f"the Ray style actors could not start: {errors[0]}")
        if self.config.max_batch is None:
            # A stack pays on a GPU (it fills the card); on CPU the cores are busy with one job.
            devices = [str(r.get("device")) for r in results if not isinstance(r, BaseException)]
            self.max_batch = 4 if all(d.startswith("cuda") for d in devices) else 1
        for slot, r in enumerate(results):
            if isinstance(r, BaseException):
                self._watch_slot(slot)
            else:
                on_ready(slot)

    async def _ping(self, slot: int) -> dict[str, Any]:
        info = await self._actors[slot].ping.remote()
        self._info[slot] = info
        return info

    def _watch_slot(self, slot: int) -> None:
        """Wait (in the background) for a restarted actor to be warm again, then report it."""
        if slot in self._watch and not self._watch[slot].done():
            return
        self._watch[slot] = asyncio.ensure_future(self._wait_ready(slot))

    async def _wait_ready(self, slot: int) -> None:
        ray = self.ray
        delay = 0.2
        while not self.closing:
            try:
                await asyncio.wait_for(self._ping(slot), timeout=self.config.start_timeout)
            except ray.exceptions.ActorDiedError:
                # Out of restarts (or its node is gone for good): a fresh actor in its place.
                log.warning("Ray actor for slot %s is gone; creating a new one", slot)
                self._actors[slot] = self._new_actor(slot)
            except (ray.exceptions.RayError, asyncio.TimeoutError) as e:
                log.info("Ray actor for slot %s not ready yet: %s", slot, e)
            else:
                if not self.closing:
                    self._on_ready(slot)
                return
            await asyncio.sleep(delay)
            delay = min(10.0, delay * 2)

    async def close(self) -> None:
        self.closing = True
        for task in self._watch.values():
            task.cancel()
        for actor in self._actors.values():
            with contextlib.suppress(Exception):
                self.ray.kill(actor, no_restart=True)
        self._actors.clear()
        self._info.clear()

    # -- jobs -----------------------------------------------------------------------------

    async def run(self, slot: int, job: Job, emit: Callable[[JobEvent], None]) -> JobEvent:
        ends = await self._consume(slot, "run", job, [job.job_id], emit, emit_terminals=False)
        return ends[job.job_id]

    async def run_batch(self, slot: int, jobs: list[Job], emit: Callable[[JobEvent], None]) -> dict[str, JobEvent]:
        if len(jobs) > self.max_batch:
            raise ValueError(f"a stack of {len(jobs)} jobs is more than max_batch={self.max_batch}")
        return await self._consume(slot, "run_batch", jobs, [job.job_id for job in jobs], emit, emit_terminals=True)

    async def _consume(
        self,
        slot: int,
        method: str,
        arg: Any,
        job_ids: list[str],
        emit: Callable[[JobEvent], None],
        *,
        emit_terminals: bool,
    ) -> dict[str, JobEvent]:
        """Call the actor's streaming `method` and pass its events on until every job has ended."""
        ray = self.ray
        actor = self._actors.get(slot)
        if actor is None:
            raise WorkerLost(f"no actor on slot {slot}")
        ends: dict[str, JobEvent] = {}
        try:
            stream = getattr(actor, method).remote(arg)
            async for ref in stream:
                ev: JobEvent = await ref
                if ev.terminal:
                    if ev.job_id not in job_ids or ev.job_id in ends:
                        continue
                    ends[ev.job_id] = ev
                    if emit_terminals:
                        emit(ev)
                    if len(ends) == len(job_ids):
                        return ends
                else:
                    emit(ev)
        except ray.exceptions.RayTaskError:
            raise  # an error inside the actor's code, not a death: the dispatcher fails the job(s)
        except ray.exceptions.RayError as e:  # actor died, node lost, Ray's OOM killer...
            self._on_lost(slot)
            self._info.pop(slot, None)
            self._watch_slot(slot)
            raise WorkerLost(f"the Ray actor on slot {slot} died: {type(e).__name__}") from e
        raise WorkerLost(f"the Ray actor on slot {slot} ended the stream without a result")

    def request_cancel(self, slot: int, job_id: str) -> None:
        actor = self._actors.get(slot)
        if actor is not None:
            actor.cancel.remote(job_id)  # fire and forget; the actor checks it every step

    async def kill(self, slot: int) -> None:
        actor = self._actors.get(slot)
        if actor is not None:
            # Ray restarts it (max_restarts=-1); the running stream fails with an actor error.
            self.ray.kill(actor, no_restart=False)

    def worker_pids(self) -> list[int]:
        return [int(info["pid"]) for _, info in sorted(self._info.items())]

    def slot_pid(self, slot: int) -> int | None:
        info = self._info.get(slot)
        return int(info["pid"]) if info else None

    def worker_info(self) -> list[dict[str, Any]]:
        return [dict(info, slot=slot, ready=True) for slot, info in sorted(self._info.items())]
