"""stylecore's layers: planning jobs does not load PyTorch, and the package's names resolve."""

from __future__ import annotations

import subprocess
import sys

import pytest

import stylecore

# Modules a process that only plans, queues and sizes jobs imports (a bot, a scheduler).
TORCH_FREE = (
    "stylecore",
    "stylecore.options",
    "stylecore.events",
    "stylecore.sizes",
    "stylecore.vgg19",
    "stylecore.memory",
    "stylecore.batch",
    "stylecore.convergence",
    "stylecore.executors",
)


@pytest.mark.parametrize("module", TORCH_FREE)
def test_importing_a_planning_module_leaves_torch_unloaded(module):
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", f"importing {module} loaded torch"


def test_every_exported_name_resolves_lazily():
    for name in stylecore.__all__:
        assert getattr(stylecore, name) is not None
    assert set(stylecore.__all__) <= set(dir(stylecore))
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = stylecore.no_such_name
