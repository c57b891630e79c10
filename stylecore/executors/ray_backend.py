"""The Ray backend: one warm actor per GPU across a cluster, fed by the caller's dispatcher.

The queue stays in the bot's process (the shared Dispatcher) and each actor gets one job
at a time, so a dead actor never takes queued jobs with it; only its running job is
affected, and that is retried once on another actor. Progress comes back as a Ray
streaming generator, awaited from asyncio. Ray is imported lazily so the local pool never
needs it installed.
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
    """Runs inside a Ray worker process: warm network, one job at a time, cancellable.

    Threaded (max_concurrency > 1) so that `cancel` can land while `run` is busy; the job
    itself runs in a helper thread that feeds the streaming generator through a queue.
    """

    def __init__(self, settings: WorkerSettings) -> None:
        from stylecore.executors.worker import warm

        self.settings = settings
        self.device = warm(settings)
        self._cancelled: deque[str] = deque(maxlen=256)
        self._lock = threading.Lock()

    def ping(self) -> dict[str, Any]:
        from stylecore.executors.worker import worker_identity

        return {**worker_identity(), "device": self.device}

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancelled.append(job_id)

    def run(self, job: Job) -> Iterator[JobEvent]:
        from stylecore.executors.worker import run_job

        events: queue.Queue[JobEvent] = queue.Queue()

        def should_cancel() -> bool:
            with self._lock:
                return job.job_id in self._cancelled

        def work() -> None:
            try:
                terminal = run_job(job, events.put, should_cancel, self.settings)
            except BaseException as e:  # run_job should not raise; never leave the stream open
                terminal = JobEvent("failed", job.job_id, error=f"internal error: {e}", reason="internal")
            events.put(terminal)

        threading.Thread(target=work, name=f"job-{job.job_id}", daemon=True).start()
        while True:
            ev = events.get()
            yield ev
            if ev.terminal:
                return


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
        )
        self._actor_cls: Any = None
        self.slots = config.workers or 1  # until start() has counted the cluster's GPUs
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
            results = await asyncio.wait_for(asyncio.gather(*pings, return_exceptions=True),
                                             timeout=self.config.start_timeout)
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
        ray = self.ray
        actor = self._actors.get(slot)
        if actor is None:
            raise WorkerLost(f"no actor on slot {slot}")
        try:
            stream = actor.run.remote(job)
            async for ref in stream:
                ev: JobEvent = await ref
                if ev.terminal:
                    return ev
                emit(ev)
        except ray.exceptions.RayTaskError:
            raise  # an error inside the actor's code, not a death: the dispatcher fails the job
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
        return [dict(info, slot=slot) for slot, info in sorted(self._info.items())]
