"""The Ray backend: one warm actor per GPU across a cluster, fed by the caller's dispatcher.

The queue stays in the caller's process (the shared Dispatcher) and each actor gets one run
at a time (one job, or on a GPU a stack of same-size jobs), so a dead actor never takes
queued jobs with it; only its running jobs are affected, and each is retried once. Ray
restarts a dead actor (on another node when its node is gone); the slot takes work again
only once the restarted actor has loaded the network and answered a ping. Progress comes
back as a Ray streaming generator, awaited from asyncio. Ray is imported lazily so the
local pool never needs it installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from stylecore.executors.backend import Backend, Emit, SlotListener, WorkerLost
from stylecore.executors.base import ExecutorError, Job, JobEvent
from stylecore.executors.config import ExecutorConfig, WorkerSettings
from stylecore.executors.redaction import child_environ

log = logging.getLogger(__name__)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ExecutorError(
            "the Ray backend needs the 'ray' extra: pip install 'stylebot[ray]' (or '.[ray]' from a checkout)"
        ) from e
    return ray


@dataclass(frozen=True)
class DeviceFault:
    """The last item of an actor's stream when its device failed (see worker.device_fault)."""

    why: str


class StyleActor:
    """Runs inside a Ray worker process: warm network, one run (a job or a stack) at a time,
    each job cancellable on its own.

    Threaded (max_concurrency > 1) so that `cancel` can land while `run` is busy; the jobs
    themselves run in a helper thread that feeds the streaming generator through a queue.
    """

    def __init__(self, settings: WorkerSettings) -> None:
        from stylecore.executors.worker import start_worker

        self.settings = settings
        self.device = start_worker(settings)
        self._cancelled: deque[str] = deque(maxlen=256)
        self._lock = threading.Lock()

    def ping(self) -> dict[str, Any]:
        import ray

        from stylecore.executors.worker import worker_identity

        return dict(worker_identity(self.settings, self.device), node_id=ray.get_runtime_context().get_node_id())

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancelled.append(job_id)

    def _should_cancel(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._cancelled

    def run(self, jobs: list[Job]) -> Iterator[JobEvent | DeviceFault]:
        """A stack of jobs (often of one): every job's events, its terminal too, the moment
        it happens; then a DeviceFault if this actor's device is no longer usable."""
        from stylecore.executors.worker import RunOutcome, run_jobs

        outcomes: list[RunOutcome] = []

        def work(emit: Callable[[JobEvent], None]) -> None:
            outcomes.append(run_jobs(jobs, emit, self._should_cancel, self.settings))

        yield from self._stream([job.job_id for job in jobs], work)  # (a generator itself: Ray streams it)
        if outcomes and outcomes[0].fault is not None:
            yield DeviceFault(outcomes[0].fault)

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


class _StartFailed(Exception):
    pass


def _root_cause(error: BaseException) -> str:
    """The line that says why, from Ray's multi-line error (its last "SomeError: ..." line,
    which is the actor constructor's own exception when that is what failed)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    causes = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception): ", line)]
    return causes[-1] if causes else lines[0] if lines else type(error).__name__


class RayBackend(Backend):
    lost_retries = 1  # an actor dies with its node, not of its job: run the job again, once

    def __init__(self, config: ExecutorConfig) -> None:
        self.ray = _import_ray()
        self.config = config
        self._settings = config.worker_settings(threads=None)  # Ray sets OMP_NUM_THREADS from num_cpus
        self._actor_cls: Any = None
        self.slots = config.workers or 1  # until start() has counted the cluster's GPUs
        self.max_batch = config.max_batch or 1  # until start() has asked the actors for their device
        self._actors: dict[int, Any] = {}
        self._state: dict[int, str] = {}  # slot -> "starting" | "ready" | "failed"
        self._info: dict[int, dict[str, Any]] = {}  # slot -> what its actor said when it got ready
        self._errors: dict[int, str] = {}  # slot -> why its last start failed (until one succeeds)
        self._retired: dict[int, tuple[Any, Any]] = {}  # slot -> (node, pid) of an actor killed for a restart
        self._bringing_up: dict[int, asyncio.Task[None]] = {}
        self._listener: SlotListener | None = None
        self.closing = False

    def _ensure_ray(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        address = self.config.ray_address or os.environ.get("RAY_ADDRESS")
        kwargs = {"namespace": self.config.ray_namespace, "log_to_driver": False, **self.config.ray_init}
        if address:
            ray.init(address=address, **kwargs)
            return
        kwargs.setdefault("include_dashboard", False)
        # The local cluster's processes (and so every actor) inherit this environment.
        with child_environ(remove=self.config.secret_env):
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

    def _runtime_env(self) -> dict[str, Any] | None:
        env = dict(self.config.ray_runtime_env)
        if "env_vars" in env:
            secrets = set(self.config.secret_env)
            env["env_vars"] = {k: v for k, v in env["env_vars"].items() if k not in secrets}
        return env or None

    def _new_actor(self) -> Any:
        if self._actor_cls is None:
            self._actor_cls = self.ray.remote(StyleActor)
        return self._actor_cls.options(
            name=None,
            runtime_env=self._runtime_env(),
            num_gpus=self.config.ray_num_gpus_per_actor,
            num_cpus=self.config.ray_num_cpus_per_actor,
            resources=dict(self.config.ray_resources) or None,
            max_restarts=-1,  # Ray restarts a dead actor (and __init__ warms it again)
            max_task_retries=0,  # the dispatcher decides about retries, not Ray
            max_concurrency=4,
        ).remote(self._settings)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, listener: SlotListener) -> None:
        self._listener = listener
        # ray.init and the cluster query block for seconds: keep them off the loop.
        await asyncio.to_thread(self._ensure_ray)
        self.slots = self.config.workers or await asyncio.to_thread(self._gpu_slots)
        for slot in range(self.slots):
            self._actors[slot] = self._new_actor()
            self._state[slot] = "starting"
        results = await asyncio.gather(*(self._warm_up(slot) for slot in range(self.slots)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if len(errors) == self.slots:
            await self.close()
            raise ExecutorError(f"the Ray style actors could not start: {errors[0]}")
        if self.config.max_batch is None:
            devices = [str(r.get("device")) for r in results if isinstance(r, dict)]
            self.max_batch = self.config.max_batch_on(all(d.startswith("cuda") for d in devices))
        for slot, r in enumerate(results):
            if isinstance(r, dict):
                self._now_ready(slot, r)
            else:
                self._start_failed(slot, str(r))
                self._bring_up(slot, failures=1)

    async def _warm_up(self, slot: int) -> dict[str, Any]:
        """Wait until the slot's actor answers a ping (it has loaded the network), within
        `start_timeout`; raises _StartFailed. An actor Ray is restarting answers with an
        error until it is back, and one killed for a restart may still answer as itself."""
        ray = self.ray
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.start_timeout
        delay = 0.1
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise _StartFailed(
                    f"not ready after {self.config.start_timeout:g} s (are there enough GPUs/CPUs free in the cluster?)"
                )
            try:
                info = await asyncio.wait_for(self._actors[slot].ping.remote(), timeout=left)
            except asyncio.TimeoutError:
                continue
            except ray.exceptions.ActorDiedError as e:  # its creation failed, or it is gone for good
                raise _StartFailed(_root_cause(e)) from None
            except ray.exceptions.RayError as e:  # restarting, or its node is going away
                log.info("Ray actor for slot %s not ready yet: %s", slot, type(e).__name__)
            else:
                if (info.get("node_id"), info.get("pid")) != self._retired.get(slot):
                    self._retired.pop(slot, None)
                    return info
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)

    def _bring_up(self, slot: int, failures: int = 0) -> None:
        """In the background: get the slot a warm actor again (Ray's restart of the old one, or
        after a failed start a new one, after the restart delay)."""
        task = self._bringing_up.get(slot)
        if task is not None and not task.done():
            return
        self._bringing_up[slot] = asyncio.ensure_future(self._bring_up_loop(slot, failures))

    async def _bring_up_loop(self, slot: int, failures: int) -> None:
        while not self.closing:
            if failures:
                await asyncio.sleep(self.config.restart_delay_after(failures))
                if self.closing:
                    return
                with contextlib.suppress(Exception):
                    self.ray.kill(self._actors[slot], no_restart=True)
                self._actors[slot] = self._new_actor()
            try:
                info = await self._warm_up(slot)
            except _StartFailed as e:
                failures += 1
                self._start_failed(slot, str(e))
                continue
            if not self.closing:
                self._now_ready(slot, info)
            return

    def _now_ready(self, slot: int, info: dict[str, Any]) -> None:
        self._state[slot], self._info[slot] = "ready", info
        self._errors.pop(slot, None)
        if self._listener is not None:
            self._listener.slot_ready(slot)

    def _start_failed(self, slot: int, why: str) -> None:
        log.error("Ray actor for slot %s could not start: %s", slot, why)
        self._state[slot], self._errors[slot] = "failed", why
        if self._listener is not None:
            self._listener.slot_failed(slot, why)

    def _lost(self, slot: int) -> None:
        """The slot's actor is gone (or going): no work for it until a warm one answers."""
        info = self._info.pop(slot, None)
        if info is not None:
            self._retired[slot] = (info.get("node_id"), info.get("pid"))
        if self._state.get(slot) == "ready":
            self._state[slot] = "starting"
            if self._listener is not None:
                self._listener.slot_lost(slot)
        if not self.closing:
            self._bring_up(slot)

    async def close(self) -> None:
        self.closing = True
        for task in self._bringing_up.values():
            task.cancel()
        for actor in self._actors.values():
            with contextlib.suppress(Exception):
                self.ray.kill(actor, no_restart=True)
        self._actors.clear()
        self._info.clear()
        self._state.clear()

    # -- jobs -----------------------------------------------------------------------------

    async def run(self, slot: int, jobs: list[Job], emit: Emit) -> None:
        """Pass the actor's stream on to `emit` until it ends (see Backend.run)."""
        if len(jobs) > self.max_batch:
            raise ValueError(f"a stack of {len(jobs)} jobs is more than max_batch={self.max_batch}")
        ray = self.ray
        actor = self._actors.get(slot)
        if actor is None or self._state.get(slot) != "ready":
            raise WorkerLost(f"no warm actor on slot {slot}")
        fault: str | None = None
        try:
            stream = actor.run.remote(jobs)
            del jobs  # Ray has them; an ended job's inputs must be free to go
            async for ref in stream:
                item = await ref
                if isinstance(item, DeviceFault):
                    fault = item.why
                else:
                    emit(item)
                del item, ref  # (a result may be megabytes: not kept while the stream goes on)
        except ray.exceptions.RayTaskError:
            raise  # an error inside the actor's code, not a death: the dispatcher fails the job(s)
        except ray.exceptions.RayError as e:  # actor died, node lost, Ray's OOM killer...
            self._lost(slot)
            raise WorkerLost(f"the Ray actor on slot {slot} died: {type(e).__name__}") from e
        if fault is not None:
            log.error("Ray actor on slot %s hit a device fault (%s); restarting it", slot, fault)
            self._lost(slot)
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=False)  # Ray starts it again in a fresh process

    def request_cancel(self, slot: int, job_id: str) -> None:
        actor = self._actors.get(slot)
        if actor is not None:
            actor.cancel.remote(job_id)  # fire and forget; the actor checks it every step

    async def kill(self, slot: int) -> None:
        actor = self._actors.get(slot)
        if actor is not None:
            info = self._info.get(slot)
            if info is not None:
                self._retired[slot] = (info.get("node_id"), info.get("pid"))
            # Ray restarts it (max_restarts=-1); the running stream fails with an actor error.
            self.ray.kill(actor, no_restart=False)

    def worker_info(self) -> list[dict[str, Any]]:
        out = []
        for slot in sorted(self._state):
            state = self._state[slot]
            info = dict(self._info.get(slot, {}), slot=slot, ready=state == "ready", state=state)
            if slot in self._errors:
                info["error"] = self._errors[slot]
            out.append(info)
        return out
