"""The executor library is the caller's side: importing it (and building an executor) must not
load torch, which only workers need, nor Ray, which only the Ray backend needs."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Loads `stylecore` as a bare namespace, bypassing stylecore/__init__.py, so that what is
# checked is the executor package's own imports.
_BARE_STYLECORE = """
import importlib.util, sys, types
spec = importlib.util.find_spec("stylecore")
package = types.ModuleType("stylecore")
package.__path__ = list(spec.submodule_search_locations)
sys.modules["stylecore"] = package
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_the_executor_package_and_its_backends_do_not_import_torch() -> None:
    proc = _run(
        _BARE_STYLECORE
        + """
import stylecore.executors
import stylecore.executors.local, stylecore.executors.ray_backend, stylecore.executors.dispatcher
ex = stylecore.executors.make_executor("local", device="cpu")
loaded = sorted(m for m in ("torch", "ray") if m in sys.modules)
assert not loaded, loaded
"""
    )
    assert proc.returncode == 0, proc.stderr


def test_importing_stylecore_executors_leaves_torch_out() -> None:
    proc = _run("import stylecore.executors, sys; assert 'torch' not in sys.modules")
    assert proc.returncode == 0, proc.stderr


def test_gpus_are_counted_without_importing_torch_here() -> None:
    import torch

    from stylecore.executors.config import ExecutorConfig
    from stylecore.executors.local import count_gpus

    assert count_gpus(ExecutorConfig(device="cpu")) == []
    assert count_gpus(ExecutorConfig(gpus=(1, 3))) == [1, 3]
    assert count_gpus(ExecutorConfig()) == list(range(torch.cuda.device_count()))  # the probe's answer
