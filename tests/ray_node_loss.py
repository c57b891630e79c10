"""A Ray node lost mid-job, on a real multi-node cluster on this machine: run by
test_executor_ray_cluster.py in a process of its own (a Ray driver can join one cluster only,
and the other tests' cluster may be up), writing what it saw as JSON to the file named by its
argument.

The cluster is Ray's own test harness (`ray.cluster_utils.Cluster`): a head without CPUs and
two worker nodes with one "style" slot each, so the one actor runs on one of them and, when
that node is removed, Ray has the other to restart it on. Every node is a process on this
machine; Ray advertises the machine's own address for them (not loopback), which the report
records so the test can check that no other host took part.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

FAST_HEALTH_CHECKS = {  # notice a dead node in about a second instead of the default ~30 s
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 300,
    "health_check_failure_threshold": 3,
}


async def scenario(cluster: Any, nodes: list[Any]) -> dict[str, Any]:
    import ray
    from executor_helpers import make_job

    from stylecore.executors import make_executor

    ex = make_executor(
        "ray",
        workers=1,
        device="cpu",
        ray_num_gpus_per_actor=0,
        ray_num_cpus_per_actor=1,
        ray_resources={"style": 1},
        start_timeout=150.0,
        kill_grace=20.0,
    )
    await ex.start()
    timeline: list[str] = []  # what happened, in order, on the caller's loop
    slot_ready = ex.slot_ready

    def ready_logged(slot: int) -> None:
        timeline.append("slot_ready")
        slot_ready(slot)

    ex.slot_ready = ready_logged  # type: ignore[method-assign]
    try:
        node_before = ex.workers()[0]["node_id"]
        victim = await ex.submit(make_job("ann", 5000))
        victim_events: list[dict[str, Any]] = []
        progressed = asyncio.Event()
        retried_progress = asyncio.Event()

        async def follow() -> None:
            async for ev in victim.events():
                note = str(ev.note) if ev.note is not None else None  # (printed as JSON)
                victim_events.append({"kind": ev.kind, "note": note, "position": ev.position})
                timeline.append(f"victim:{ev.kind}")
                if ev.kind == "progress":
                    progressed.set()
                    if any(e["kind"] == "queued" and e["note"] for e in victim_events):
                        retried_progress.set()

        follower = asyncio.ensure_future(follow())
        await asyncio.wait_for(progressed.wait(), 120)
        queued = await ex.submit(make_job("bob", 4))
        queued_state_before = queued.state
        timeline.append("remove_node")
        removed = time.monotonic()
        cluster.remove_node(next(n for n in nodes if n.node_id == node_before), allow_graceful=False)
        await asyncio.wait_for(retried_progress.wait(), 150)
        recovered_s = time.monotonic() - removed
        node_after = ex.workers()[0]["node_id"]
        await victim.cancel()
        await follower
        queued_events = [e async for e in queued.events()]
        return {
            "cluster_address": cluster.address,
            "own_address": ray.util.get_node_ip_address(),
            "node_addresses": sorted({n["NodeManagerAddress"] for n in ray.nodes()}),
            "node_before": node_before,
            "node_after": node_after,
            "victim": victim_events,
            "timeline": timeline,
            "queued_state_before": queued_state_before,
            "queued_kinds": [e.kind for e in queued_events],
            "queued_steps": queued_events[-1].step,
            "recovered_s": round(recovered_s, 1),
        }
    finally:
        await ex.shutdown(grace=0)


def main() -> None:
    import ray
    from ray.cluster_utils import Cluster

    started = time.monotonic()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False, "_system_config": FAST_HEALTH_CHECKS},
    )
    try:
        nodes = [cluster.add_node(num_cpus=1, resources={"style": 1}) for _ in range(2)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, namespace="stylebot-node-loss", log_to_driver=False)
        report = asyncio.run(scenario(cluster, nodes))
        report["total_s"] = round(time.monotonic() - started, 1)
        with open(sys.argv[1], "w") as out:
            json.dump(report, out)
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
