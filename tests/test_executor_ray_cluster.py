"""A Ray node lost mid-job (see ray_node_loss.py, run in a process of its own): the job is run
again on another node and its subscriber is told; queued jobs go on untouched; the actor Ray
restarts has loaded the network before it gets work; no host but this one takes part."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_node_lost_mid_job_is_retried_on_another_node(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    # Never an operator's cluster: no RAY_ADDRESS (or any other RAY_ setting) reaches the script.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE.parent), env.get("PYTHONPATH")) if p)
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, str(HERE / "ray_node_loss.py"), str(out)], env=env, capture_output=True, text=True, timeout=280
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    report = json.loads(out.read_text())

    # Only this machine: every node, and the cluster's address, are its own address.
    assert report["node_addresses"] == [report["own_address"]]
    assert report["cluster_address"].rsplit(":", 1)[0] == report["own_address"]
    # The actor moved to the spare node.
    assert report["node_after"] != report["node_before"]
    # The running job was not failed: it was queued again, first in line, and said why...
    victim = report["victim"]
    assert all(e["kind"] not in ("failed", "done") for e in victim[:-1]) and victim[-1]["kind"] == "cancelled"
    retry = next(e for e in victim if e["kind"] == "queued" and e["note"])
    assert "worker running this job was lost; retrying" in retry["note"] and retry["position"] == 1
    # ...and ran again on the restarted actor, which was warm (ready) before it got the job.
    timeline = report["timeline"]
    after = timeline[timeline.index("remove_node") :]  # (progress already on its way may still arrive)
    restarted = after.index("victim:started")
    assert after.index("slot_ready") < restarted and "victim:progress" in after[restarted:]
    # The queued job was unaffected: it waited, then ran to the end.
    assert report["queued_state_before"] == "queued"
    assert report["queued_kinds"][-1] == "done" and "failed" not in report["queued_kinds"]
    assert report["queued_steps"] == 4
    print(f"node lost: recovered in {report['recovered_s']} s; whole scenario {report['total_s']} s")
