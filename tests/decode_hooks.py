"""Misbehaving decoding children for tests of `stylecore.imageio.isolated`.

Each function here is an entry point the isolated decoder can run in its child instead of
the real one (`IsolatedDecoder(entry="decode_hooks:<name>")`, with this directory on
PYTHONPATH). They read the request as the real child does, so the parent's side of the
exchange is the real one; then they fail in one specific way.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from stylecore.imageio import ImageLimits, _child


def _read_request() -> tuple[dict, bytes]:
    stdin = sys.stdin.buffer
    request = json.loads(stdin.readline())
    return request, stdin.read()


def exits() -> None:
    _read_request()
    os._exit(3)


def killed() -> None:
    _read_request()
    os.kill(os.getpid(), signal.SIGKILL)


def segfaults() -> None:
    _read_request()
    ctypes.string_at(0)  # reads address 0: SIGSEGV inside C code, as a decoder bug would


def hangs() -> None:
    _read_request()
    threading.Event().wait()  # blocks forever without using CPU


def spins() -> None:
    _read_request()
    while True:  # uses CPU forever: the CPU-time limit must end it even without the parent
        pass


def garbles() -> None:
    _read_request()
    sys.stdout.write("this is not the protocol\n")


def lies() -> None:
    _read_request()
    sys.stdout.write(json.dumps({"ok": True, "info": {"format": "EPS", "width": 1, "height": 1}}) + "\n")


def hogs_memory() -> None:
    """Applies the real child's limits, then allocates far past them in C (a decoder gone wild)."""
    request, _ = _read_request()
    _child.limit_resources(int(request["memory_limit"]), int(request["cpu_seconds"]))
    try:
        hoard = [bytearray(64 * 1024 * 1024) for _ in range(1024)]  # 64 GiB
    except MemoryError:
        sys.stdout.write(json.dumps({"ok": False, "kind": "ImageTooLarge", "detail": "ceiling", "user_message": "m"}))
        sys.stdout.write("\n")
        return
    sys.stdout.write(json.dumps({"ok": False, "kind": "ImageError", "detail": f"allocated {len(hoard)}"}) + "\n")


def report_torch() -> None:
    """Prints whether torch is loaded once the real child's modules are imported (no protocol)."""
    import stylecore.imageio._child  # noqa: F401

    print("torch" in sys.modules)


def gated() -> None:
    """The real child, held at a gate: records that it started, waits for `release`, then decodes.

    The gate directory is TMPDIR (one of the few variables a child inherits). Each child
    writes `<pid>.start` and counts the children that started and have not finished, so a
    test can check the concurrency bound.
    """
    gate = Path(os.environ["TMPDIR"])
    request, data = _read_request()
    me = gate / f"{os.getpid()}.start"
    me.write_text("")
    live = sum(1 for p in gate.glob("*.start") if not p.with_suffix(".end").exists())
    (gate / f"{os.getpid()}.live").write_text(str(live))
    while not (gate / "release").exists():
        time.sleep(0.01)
    reply = _child.answer(data, ImageLimits(**request["limits"]))
    me.with_suffix(".end").write_text("")
    sys.stdout.write(json.dumps(reply) + "\n")


CRASH_MARKER = b"stylebot-test: crash the decoder"


def segfaults_on_marker() -> None:
    """The real child, except that a file containing `CRASH_MARKER` crashes it inside C code, as a
    decoder bug triggered by one hostile upload would; every other file is decoded for real."""
    request, data = _read_request()
    if CRASH_MARKER in data:
        ctypes.string_at(0)
    _child.limit_resources(int(request["memory_limit"]), int(request["cpu_seconds"]))
    sys.stdout.write(json.dumps(_child.answer(data, ImageLimits(**request["limits"]))) + "\n")


def reports_environment() -> None:
    """Answers with the names of its environment variables, as an error the test can read."""
    _read_request()
    names = json.dumps(sorted(os.environ))
    sys.stdout.write(json.dumps({"ok": False, "kind": "ImageError", "detail": names, "user_message": "env"}) + "\n")
