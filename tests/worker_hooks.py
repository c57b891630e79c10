"""Faults the executor tests switch on inside real workers, through
`ExecutorConfig.worker_setup_hook = HOOK`.

The hook runs first thing in every worker process and Ray actor (after the secrets are gone).
Files in the folder named by $STYLEBOT_TEST_FAULTS decide what it does, so a test can change
what the *next* worker of a running pool does without restarting the pool:

- it always writes `environ-<pid>.json` (the variable names the worker sees);
- `log-secret`: it logs credential-shaped text to `worker-<pid>.log`;
- `crash`: it raises (a worker that fails at start);
- `hang`: it blocks while the file exists (a worker that never becomes ready);
- `hold`: jobs whose seed is HOLD_SEED wait at their first progress report while the file exists
  (a job that is certainly still running when the test acts, however fast the machine);
- and every worker's engine raises what CUDA raises after an illegal memory access for jobs
  whose seed is DEVICE_FAULT_SEED (a GPU that fails mid-job, on a CPU).

`LONG_RUNS` (`long_runs`) is the hook of the bot tests' workers: their runs never stop early, so
a job of many steps is still running whenever a test acts on it, however fast the machine.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

FAULTS_ENV = "STYLEBOT_TEST_FAULTS"
HOOK = "worker_hooks:inject"
LONG_RUNS = "worker_hooks:long_runs"
DEVICE_FAULT_SEED = 4242
HOLD_SEED = 4343
SECRET_NAME = "STYLEBOT_TEST_SECRET"
SECRET_VALUE = "sw0rdfish-in-the-environment"  # not credential-shaped: only its value gives it away
TOKEN_SHAPED = "MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"  # made up


def long_runs() -> None:
    import stylecore.convergence

    stylecore.convergence.Convergence.update = lambda self, step, loss: False  # type: ignore[method-assign]


def inject() -> None:
    long_runs()  # the jobs of these tests count steps: a long one must not stop early
    folder = os.environ.get(FAULTS_ENV)
    if not folder:
        return
    faults = Path(folder)
    pid = os.getpid()
    (faults / f"environ-{pid}.json").write_text(json.dumps(sorted(os.environ)))
    if (faults / "log-secret").exists():
        handler = logging.FileHandler(faults / f"worker-{pid}.log")
        root = logging.getLogger()
        root.addHandler(handler)
        logging.getLogger("worker-hooks").warning(
            "connecting with token=%s, %s and %s", "hunter2-hunter2", TOKEN_SHAPED, SECRET_VALUE
        )
        root.removeHandler(handler)
        handler.close()
    if (faults / "crash").exists():
        raise RuntimeError("injected start-up failure")
    while (faults / "hang").exists():
        time.sleep(0.05)
    _break_the_gpu_for(DEVICE_FAULT_SEED)
    _hold_while(faults / "hold", HOLD_SEED)


def _break_the_gpu_for(seed: int) -> None:
    import stylecore.batch

    real = stylecore.batch.stylize_batch

    def stylize_batch(items, **kw):  # type: ignore[no-untyped-def]
        if any(item.options.seed == seed for item in items):
            raise RuntimeError(
                "CUDA error: an illegal memory access was encountered\n"
                "CUDA kernel errors might be asynchronously reported at some other API call"
            )
        return real(items, **kw)

    stylecore.batch.stylize_batch = stylize_batch


def _hold_while(switch: Path, seed: int) -> None:
    """Jobs with this seed block in their progress callback while `switch` exists."""
    import dataclasses

    import stylecore.batch

    real = stylecore.batch.stylize_batch

    def held(on_progress):  # type: ignore[no-untyped-def]
        def report(event):  # type: ignore[no-untyped-def]
            while switch.exists():
                time.sleep(0.02)
            if on_progress is not None:
                on_progress(event)

        return report

    def stylize_batch(items, **kw):  # type: ignore[no-untyped-def]
        items = [
            dataclasses.replace(it, on_progress=held(it.on_progress)) if it.options.seed == seed else it for it in items
        ]
        return real(items, **kw)

    stylecore.batch.stylize_batch = stylize_batch
