"""The bot process starts without torch: the engine runs only in worker processes.

Each check runs in a fresh interpreter, since the test process itself has torch loaded.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

BOT_MODULES = ("bot.bot", "bot.__main__", "bot.cogs.stylize.commands", "bot.cogs.admin")


def test_the_core_imports_no_extension_module() -> None:
    """discord.py drops an extension's modules from sys.modules when it unloads it, so a reload makes
    them new objects; the core holding the old ones would mix two generations of the same classes."""
    code = "import sys, bot.bot\nprint(sorted(m for m in sys.modules if m.startswith('bot.cogs.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def _torch_after(*modules: str) -> bool:
    """Whether importing `modules` in a fresh interpreter loads torch."""
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.strip().endswith("True")


def _blocker() -> str | None:
    """A module outside bot/ that still loads torch on import, if any (the test then must fail)."""
    if _torch_after("stylecore.options"):
        return "stylecore/__init__.py imports the engine eagerly, so any stylecore import loads torch"
    if _torch_after("stylecore.imageio"):
        return "stylecore.imageio imports torch (tensor conversion belongs on the engine side)"
    return None


_BLOCKED = _blocker()


@pytest.mark.xfail(_BLOCKED is not None, reason=f"blocked outside bot/: {_BLOCKED}", strict=True)
def test_importing_the_bot_leaves_torch_out() -> None:
    code = (
        "import sys\n"
        f"for m in {BOT_MODULES!r}: __import__(m)\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))[:5])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", f"the bot imported torch: {out.stdout.strip()}"
