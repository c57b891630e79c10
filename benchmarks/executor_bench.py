"""Throughput of the local pool and how much it disturbs the bot's event loop.

The bot must stay responsive (heartbeats, button clicks) while jobs run, so besides
jobs per hour this measures the event loop's lag: a ticker sleeps `--tick` ms over and
over and records how late it wakes up. Worker start-up (loading the network) is
excluded from throughput because it happens once per bot start, not per job.

Jobs per hour depend on whatever else the machine runs; the CPU time the workers spend per job
(Linux /proc, user + system) depends much less on it, so `cores * 3600 / cpu_s_per_job` bounds
what the same layout does on a quiet machine with every core to itself.

    python benchmarks/executor_bench.py --workers 1,2 --jobs 8 --size 64 --steps 20

Prints a table; not a test. Numbers depend on the machine and on whatever else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import time

import numpy as np
from PIL import Image

from stylecore.executors import Job, make_executor
from stylecore.options import StyleOptions


def _png(seed: int, w: int, h: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes `pids` have used so far (Linux /proc)."""
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


async def _lag_monitor(tick: float, lags: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        t0 = loop.time()
        await asyncio.sleep(tick)
        lags.append(max(0.0, loop.time() - t0 - tick))


async def bench(
    workers: int,
    jobs: int,
    size: int,
    steps: int,
    preview_every: int,
    tick: float,
    threads: int | None = None,
) -> dict:
    cores = os.cpu_count() or 1
    threads = threads or max(1, cores // workers)
    ex = make_executor(
        "local",
        workers=workers,
        device="cpu",
        threads_per_worker=threads,
        max_queue=jobs,
        max_per_user_queued=jobs,
        max_per_user_running=workers,
    )
    t0 = time.perf_counter()
    await ex.start()
    warm = time.perf_counter() - t0
    content, style = _png(1, size * 4 // 3, size), _png(2, size, size)
    opts = StyleOptions(size=size, steps=steps, scales=1, device="cpu", preview_every=preview_every)

    # Baseline: the same ticker with warm, idle workers, to separate what the machine's
    # scheduler costs from what running jobs cost the loop.
    idle: list[float] = []
    stop = asyncio.Event()
    monitor = asyncio.ensure_future(_lag_monitor(tick, idle, stop))
    await asyncio.sleep(3.0)
    stop.set()
    await monitor

    lags: list[float] = []
    stop = asyncio.Event()
    monitor = asyncio.ensure_future(_lag_monitor(tick, lags, stop))
    events = 0

    async def consume(h) -> str:
        nonlocal events
        last = None
        async for ev in h.events():  # a consumer per job, as the bot has
            events += 1
            last = ev
        return last.kind

    pids = ex.worker_pids()
    cpu0 = _cpu_seconds(pids)
    t0 = time.perf_counter()
    handles = [await ex.submit(Job(content, (style,), opts, user_id=f"user{i % 4}")) for i in range(jobs)]
    ends = await asyncio.gather(*(consume(h) for h in handles))
    wall = time.perf_counter() - t0
    cpu = _cpu_seconds(pids) - cpu0
    stop.set()
    await monitor
    await ex.shutdown(grace=0)
    assert all(k == "done" for k in ends), ends
    return {
        "workers": workers,
        "threads": threads,
        "warm_s": warm,
        "jobs": jobs,
        "wall_s": wall,
        "jobs_per_h": jobs / wall * 3600,
        "cpu_s_per_job": cpu / jobs,
        "load": os.getloadavg()[0],
        "events": events,
        "idle_p99_ms": _pct(idle, 0.99) * 1e3,
        "lag_p50_ms": _pct(lags, 0.5) * 1e3,
        "lag_p99_ms": _pct(lags, 0.99) * 1e3,
        "lag_max_ms": max(lags) * 1e3 if lags else float("nan"),
        "lag_mean_ms": statistics.fmean(lags) * 1e3 if lags else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", default="1,2", help="comma-separated pool sizes to compare")
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--preview-every", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads per worker (cores/workers)")
    ap.add_argument("--tick", type=float, default=10.0, help="lag monitor period in ms")
    args = ap.parse_args()

    rows = []
    for w in (int(x) for x in args.workers.split(",")):
        run = bench(w, args.jobs, args.size, args.steps, args.preview_every, args.tick / 1e3, args.threads)
        rows.append(asyncio.run(run))

    print(
        f"\nlocal pool on CPU ({os.cpu_count()} cores), {args.jobs} jobs of {args.size} px x {args.steps} "
        f"steps, preview every {args.preview_every}; loop ticker {args.tick:g} ms"
    )
    head = (
        f"{'workers':>7} {'threads':>7} {'warm s':>7} {'wall s':>7} {'jobs/h':>8} {'cpu s/job':>9} {'load':>5} "
        f"{'events':>7} {'lag p50':>8} {'lag p99':>8} {'lag max':>8} {'idle p99':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['workers']:>7} {r['threads']:>7} {r['warm_s']:>7.1f} {r['wall_s']:>7.1f} "
            f"{r['jobs_per_h']:>8.0f} {r['cpu_s_per_job']:>9.2f} {r['load']:>5.1f} {r['events']:>7} "
            f"{r['lag_p50_ms']:>6.2f}ms {r['lag_p99_ms']:>6.2f}ms {r['lag_max_ms']:>6.2f}ms {r['idle_p99_ms']:>6.2f}ms"
        )


if __name__ == "__main__":
    main()
