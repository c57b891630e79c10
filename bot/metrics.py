"""What an operator graphs, in the Prometheus text format served at `/metrics`.

Jobs: how long they wait and run (histograms by device kind and size bucket), how they end,
failures by reason, results re-encoded to fit the upload limit. Requests refused, by reason.
Workers: how many are up, how many were lost, and each one's memory (read from the executor's
`workers()` at scrape time, so it is never stale). Discord: HTTP errors and 429s, counted by an
aiohttp trace on discord.py's own session (`Client(http_trace=...)`), which every REST call,
interaction webhook and CDN download goes through.

Every label has a small fixed set of values (no job, user or server ids), so a busy bot
does not grow the time series it exports. Each bot has its own registry so several bots in
one process (tests) don't clash.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any, get_args

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stylecore.executors.base import FailureReason

# Output sizes (long side, px) are bucketed: a job's time grows with its pixels, so a graph
# per bucket shows whether a slower queue is more work or slower workers.
SIZE_BUCKETS: tuple[int, ...] = (256, 512, 1024, 2048)
WAIT_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
DURATION_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
WORKER_STATES: tuple[str, ...] = ("ready", "starting", "failed")
RATE_LIMIT_SCOPES: tuple[str, ...] = ("user", "global", "shared")  # Discord's X-RateLimit-Scope
FAILURE_REASONS: tuple[str, ...] = (*get_args(FailureReason), "recovery")  # recovery: lost in a restart
JOB_ENDS: tuple[str, ...] = ("done", "failed", "cancelled")


def size_bucket(size: int | None) -> str:
    """`"<=512"` for a 400 px job; `">2048"` above the last bucket."""
    if size is None:
        return "unknown"
    for edge in SIZE_BUCKETS:
        if size <= edge:
            return f"<={edge}"
    return f">{SIZE_BUCKETS[-1]}"


def device_kind(device: str | None) -> str:
    """`"cuda"` for `"cuda:1"` (or a result's `"cpu+bfloat16"`: `"cpu"`): every local worker sees
    its own GPU as cuda:0, so the index says nothing; per-worker detail is in the worker metrics."""
    kind = re.match(r"[a-z]+", device or "")
    return kind.group(0) if kind else "unknown"


def _counter(registry: CollectorRegistry, name: str, help_text: str, label: str, values: tuple[str, ...]) -> Counter:
    """A counter by one label, every value exported at 0 from the start: a rate or an alert
    on a value has a series before its first event."""
    counter = Counter(name, help_text, [label], registry=registry)
    for value in values:
        counter.labels(value)
    return counter


def _run_histogram(registry: CollectorRegistry, name: str, help_text: str, buckets: tuple[float, ...]) -> Histogram:
    """Seconds per run, by device kind and output size bucket (see `size_bucket`)."""
    return Histogram(name, help_text, ["device", "size"], buckets=buckets, registry=registry)


def _observe_run(histogram: Histogram, seconds: float, device: str | None, size: int | None) -> None:
    histogram.labels(device=device_kind(device), size=size_bucket(size)).observe(max(0.0, seconds))


class _Workers(Collector):
    """Worker metrics read from the executor's `workers()` info at every scrape."""

    def __init__(self, workers: Callable[[], list[dict[str, Any]]]) -> None:
        self.workers = workers

    def collect(self) -> Iterator[Metric]:
        infos = self.workers()
        states = GaugeMetricFamily("stylebot_workers", "Worker slots by state", labels=["state"])
        for state in WORKER_STATES:
            states.add_metric([state], sum(1 for w in infos if w.get("state") == state))
        yield states
        yield CounterMetricFamily(
            "stylebot_workers_lost",
            "Ready workers that died or were replaced since the bot started",
            value=sum(int(w.get("lost") or 0) for w in infos),
        )
        memory = {
            "memory_used": "Memory in use on the worker's device: CUDA, the most it held during its last job; "
            "CPU, the worker process's resident memory after its last job",
            "memory_budget": "Memory the worker's jobs may use at once (the operator's limit, or the free GPU memory)",
            "memory_total": "The worker's GPU memory",
        }
        for key, help_text in memory.items():
            family = GaugeMetricFamily(f"stylebot_worker_{key}_bytes", help_text, labels=["slot", "device"])
            for w in infos:
                if w.get(key) is not None:
                    family.add_metric([str(w.get("slot")), str(w.get("device") or "unknown")], float(w[key]))
            yield family

    def describe(self) -> Iterator[Metric]:
        return iter(())  # collected at scrape time only: the executor may not exist yet


class Metrics:
    def __init__(
        self,
        counts: Callable[[], dict[str, int]],
        workers: Callable[[], list[dict[str, Any]]] = list,
        message_content: Callable[[], bool] | None = None,
    ) -> None:
        self.registry = r = CollectorRegistry()
        self._counts = counts
        self.queued = Gauge("stylebot_jobs_queued", "Jobs waiting to start", registry=r)
        self.queued.set_function(lambda: self._counts().get("queued", 0))
        self.running = Gauge("stylebot_jobs_running", "Jobs running now", registry=r)
        self.running.set_function(lambda: self._counts().get("running", 0))
        self.jobs = _counter(r, "stylebot_jobs_finished", "Jobs that ended, by outcome", "state", JOB_ENDS)
        self.failures = _counter(r, "stylebot_job_failures", "Failed jobs by reason", "reason", FAILURE_REASONS)
        self.refusals = Counter(
            "stylebot_refusals",
            "Requests refused with a message, by reason (the refusal's kind)",
            ["reason"],
            registry=r,
        )
        self.queue_wait = _run_histogram(
            r,
            "stylebot_queue_wait_seconds",
            "Seconds from queueing to the start of a run, by device kind and output size",
            WAIT_BUCKETS,
        )
        self.job_duration = _run_histogram(
            r,
            "stylebot_job_duration_seconds",
            "Seconds from the start of a run to its result posted in Discord, by device kind and output size",
            DURATION_BUCKETS,
        )
        self.step_seconds = Histogram(
            "stylebot_step_seconds",
            "Seconds per optimisation step",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.reencoded = _counter(
            r,
            "stylebot_results_reencoded",
            "Results sent as JPEG or WebP because the PNG was over the upload limit",
            "format",
            ("jpeg", "webp"),
        )
        self.http_errors = Counter(
            "stylebot_discord_http_errors",
            "Discord HTTP answers with an error status (429s excepted), and requests that got no answer",
            ["status"],
            registry=r,
        )
        self.rate_limited = _counter(
            r,
            "stylebot_discord_rate_limited",
            "Discord HTTP 429 answers, by X-RateLimit-Scope",
            "scope",
            RATE_LIMIT_SCOPES,
        )
        self.message_content = Gauge(
            "stylebot_message_content_intent",
            "1 while connected with the Message Content intent (the reply flow works), else 0",
            registry=r,
        )
        if message_content is not None:
            self.message_content.set_function(lambda: float(message_content()))
        r.register(_Workers(workers))
        self._last_step: dict[str, tuple[int, float]] = {}

    # -- jobs -------------------------------------------------------------------------------

    def finished(self, state: str, reason: str | None = None) -> None:
        self.jobs.labels(state=state).inc()
        if state == "failed":
            self.failures.labels(reason=reason if reason in FAILURE_REASONS else "internal").inc()

    def started(self, waited: float, device: str | None, size: int | None) -> None:
        """A run started after `waited` seconds in the queue."""
        _observe_run(self.queue_wait, waited, device, size)

    def done(self, seconds: float, device: str | None, size: int | None) -> None:
        """A run's result was posted `seconds` after it started."""
        _observe_run(self.job_duration, seconds, device, size)

    def step(self, job_id: str, step: int, elapsed: float | None) -> None:
        """Observe the mean step time since the last progress report of this job."""
        if elapsed is None:
            return
        prev_step, prev_elapsed = self._last_step.get(job_id, (0, 0.0))
        if step > prev_step and elapsed >= prev_elapsed:
            per = (elapsed - prev_elapsed) / (step - prev_step)
            self.step_seconds.observe(per)
        self._last_step[job_id] = (step, elapsed)
        if len(self._last_step) > 1000:
            self._last_step.pop(next(iter(self._last_step)))

    def refused(self, reason: str) -> None:
        self.refusals.labels(reason=reason).inc()

    def sent_reencoded(self, fmt: str) -> None:
        self.reencoded.labels(format=fmt).inc()

    # -- Discord's HTTP ---------------------------------------------------------------------

    def http_trace(self) -> aiohttp.TraceConfig:
        """For `discord.Client(http_trace=...)`: counts error answers and 429s as they arrive."""
        trace = aiohttp.TraceConfig()

        async def on_end(session: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any) -> None:
            status = params.response.status
            if status == 429:
                scope = params.response.headers.get("X-RateLimit-Scope", "")
                self.rate_limited.labels(scope=scope if scope in RATE_LIMIT_SCOPES else "unknown").inc()
            elif status >= 400:
                self.http_errors.labels(status=str(status)).inc()

        async def on_exception(session: aiohttp.ClientSession, ctx: SimpleNamespace, params: Any) -> None:
            if not isinstance(params.exception, asyncio.CancelledError):
                self.http_errors.labels(status="no_answer").inc()

        trace.on_request_end.append(on_end)
        trace.on_request_exception.append(on_exception)
        return trace

    def render(self) -> bytes:
        return generate_latest(self.registry)
