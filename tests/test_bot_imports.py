"""The bot process starts without torch: the engine runs only in worker processes.

Each check runs in a fresh interpreter, since the test process itself has torch loaded.
"""

from __future__ import annotations

import subprocess
import sys

BOT_MODULES = ("bot.bot", "bot.__main__", "bot.cogs.stylize.commands", "bot.cogs.admin")


def test_the_core_imports_no_extension_module() -> None:
    """discord.py drops an extension's modules from sys.modules when it unloads it, so a reload makes
    them new objects; the core holding the old ones would mix two generations of the same classes."""
    code = "import sys, bot.bot\nprint(sorted(m for m in sys.modules if m.startswith('bot.cogs.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_importing_the_bot_leaves_torch_out() -> None:
    code = (
        "import sys\n"
        f"for m in {BOT_MODULES!r}: __import__(m)\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))[:5])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", f"the bot imported torch: {out.stdout.strip()}"
