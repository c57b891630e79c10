"""The decoding child's side of `stylecore.imageio.isolated`: one image, one answer, exit.

Protocol: the parent writes one JSON line (limits, memory ceiling, CPU seconds, and optionally
`copy_side`) and then the raw file to stdin, and closes it; the child answers with one JSON line
on stdout, `{"ok": true, "info": {...}}` (with `"copy"`: a base64 JPEG of the decoded pixels, long
side at most `copy_side`, when asked) or `{"ok": false, "kind": ..., "detail": ..., "user_message": ...}`.
Anything else — no answer, a non-zero exit, a signal — the parent treats as a crash.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import sys

from stylecore.imageio.decode import decode_image
from stylecore.imageio.encode import encode_preview
from stylecore.imageio.limits import ImageError, ImageLimits, ImageTooLarge

_MEMORY_MESSAGE = "That image needs too much memory to read; try a smaller one."
COPY_QUALITY = 90  # a kept copy is a style image: fine strokes matter more than bytes


def _vm_size() -> int | None:
    """This process's current address-space size in bytes (Linux), or None where unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def limit_resources(memory_limit: int, cpu_seconds: int) -> None:
    """Cap what decoding may add to this process: address space and CPU time.

    The address-space ceiling is relative to the size after start-up, because the
    interpreter and its libraries already map a size that differs between machines.
    Exceeding it makes allocations fail (MemoryError), not the process die; exceeding the
    CPU time sends SIGXCPU, then SIGKILL a second later.
    """
    try:
        import resource
    except ImportError:  # not a POSIX system: the parent's timeout is the only net
        return
    if cpu_seconds > 0:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    size = _vm_size()
    if memory_limit > 0 and size is not None:
        ceiling = size + memory_limit
        resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))


def _error(exc: ImageError) -> dict[str, object]:
    return {"ok": False, "kind": type(exc).__name__, "detail": str(exc), "user_message": exc.user_message}


def answer(data: bytes, limits: ImageLimits, copy_side: int | None = None) -> dict[str, object]:
    """Decode and describe the outcome as the reply object (every failure is an answer too); with
    `copy_side`, also a JPEG re-encoded from the decoded pixels, never larger than the source."""
    try:
        image, info = decode_image(data, limits)
        copy = None if copy_side is None else encode_preview(image, copy_side, quality=COPY_QUALITY)
    except ImageError as exc:
        return _error(exc)
    except MemoryError:
        return _error(ImageTooLarge("decoding exceeded the memory ceiling", _MEMORY_MESSAGE))
    del image
    reply: dict[str, object] = {"ok": True, "info": dataclasses.asdict(info)}
    if copy is not None:
        reply["copy"] = base64.b64encode(copy).decode("ascii")
    return reply


def main() -> None:
    stdin = sys.stdin.buffer
    request = json.loads(stdin.readline())
    data = stdin.read()
    limit_resources(int(request["memory_limit"]), int(request["cpu_seconds"]))
    copy_side = request.get("copy_side")
    reply = answer(data, ImageLimits(**request["limits"]), None if copy_side is None else int(copy_side))
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
