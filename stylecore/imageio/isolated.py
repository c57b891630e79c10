"""Full decoding of untrusted images in disposable child processes.

Image decoders are large C libraries fed with data from strangers; the bot process must
survive whatever they do. `IsolatedDecoder.validate` decodes each upload in a fresh child
process that exits after that one image, so a crash (a segfault, the kernel's OOM killer), a
hang or a memory blow-up costs that child and nothing else, and no state carries over from
one user's file to the next. Each child runs under an address-space ceiling
(`RLIMIT_AS`, measured from its size after start-up) and a CPU-time limit; the caller adds a
wall-clock timeout, a bound on how many children run at once, and turns every outcome into
an `ImageInfo` or an `ImageError` with a message for the user.

The child starts without `stylecore/__init__.py` and without torch: it imports only this
package, Pillow and numpy, so it is small and starts in a fraction of a second. Its
environment is reduced to what Python needs, so secrets in the parent's environment (the
Discord token) never reach code that parses hostile data.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import math
import os
import signal
import sys
from pathlib import Path

from stylecore.imageio.limits import (
    ALLOWED_FORMATS,
    DecoderFailed,
    EmptyImage,
    ImageError,
    ImageLimits,
    ImageTooLarge,
    ImageTooSmall,
    MiB,
    NotAnImage,
    TruncatedImage,
)
from stylecore.imageio.probe import ImageInfo, probe_image

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 2
# Address space a child may add while decoding. The RGB result of a 40-megapixel image is
# 120 MB and the worst source modes peak near 400 MB of resident memory; the ceiling leaves
# room for the allocator and the libraries' own buffers.
DEFAULT_MEMORY_LIMIT = 1024 * MiB
# Wall-clock seconds per decode, child start-up included. A 40-megapixel decode takes a
# few seconds on a loaded CPU; anything far beyond that is a hostile or broken file.
DEFAULT_TIMEOUT = 30.0

ENTRY = "stylecore.imageio._child:main"
_STYLECORE_DIR = Path(__file__).resolve().parents[1]
# Registers `stylecore` as a bare package pointing at its directory, so the child imports
# `stylecore.imageio` without running `stylecore/__init__.py` (which may import the engine
# and torch), then calls the entry point named on its command line.
_BOOTSTRAP = (
    "import sys, types\n"
    "root, module, name = sys.argv[1:4]\n"
    "package = types.ModuleType('stylecore')\n"
    "package.__path__ = [root]\n"
    "sys.modules['stylecore'] = package\n"
    "getattr(__import__(module, fromlist=[name]), name)()\n"
)
# What the child needs from the parent's environment; everything else (tokens, keys) stays out.
_ENV_KEEP = (
    "PATH",
    "HOME",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONUSERBASE",
    "LD_LIBRARY_PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "TZ",
    "SYSTEMROOT",
)
_CHUNK = 1 * MiB
_MAX_REPLY = 64 * 1024
_MAX_COPY = 4 * MiB  # a JPEG of at most 4096 px a side at the copy's quality stays well under this
_MAX_STDERR = 16 * 1024
_MAX_USER_MESSAGE = 300
_ERRORS: dict[str, type[ImageError]] = {
    cls.__name__: cls
    for cls in (ImageError, NotAnImage, TruncatedImage, EmptyImage, ImageTooLarge, ImageTooSmall, DecoderFailed)
}
_TIMEOUT_MESSAGE = "That image took too long to read; try a smaller or simpler file."


def child_argv(entry: str = ENTRY, *args: str) -> list[str]:
    """The command line of one decoding child: `entry` is "module:function" to run in it,
    `args` follow in its `sys.argv[4:]`."""
    module, _, name = entry.partition(":")
    if not module or not name:
        raise ValueError(f"entry must be 'module:function', got {entry!r}")
    # -P (3.11+) keeps the working directory off sys.path.
    flags = ["-P"] if sys.version_info >= (3, 11) else []
    return [sys.executable, *flags, "-c", _BOOTSTRAP, str(_STYLECORE_DIR), module, name, *args]


def _child_env() -> dict[str, str]:
    env = {key: os.environ[key] for key in _ENV_KEEP if key in os.environ}
    # One image, one thread: numpy's BLAS would otherwise start a pool per core.
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


class IsolatedDecoder:
    """Validates uploads by decoding each in a disposable, resource-limited child process.

    Create one per process (e.g. in the bot's `setup_hook`) and `await close()` it on
    shutdown. `workers` bounds the children alive at once (further calls wait their turn);
    `memory_limit` is the address space in bytes each child may add while decoding;
    `timeout` is the wall-clock limit per image in seconds, start-up included. `entry`
    replaces the child's main function, for tests that need a child that misbehaves.
    """

    def __init__(
        self,
        *,
        workers: int = DEFAULT_WORKERS,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        timeout: float = DEFAULT_TIMEOUT,
        entry: str = ENTRY,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if memory_limit < 16 * MiB:
            raise ValueError(f"memory_limit must be at least 16 MiB, got {memory_limit}")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.workers = workers
        self.memory_limit = memory_limit
        self.timeout = timeout
        self._argv = child_argv(entry)
        self._slots = asyncio.Semaphore(workers)
        self._children: set[asyncio.subprocess.Process] = set()
        self._waiting = 0
        self._closed = False

    @property
    def running(self) -> int:
        """Children alive right now."""
        return len(self._children)

    @property
    def waiting(self) -> int:
        """Calls waiting for a free worker slot."""
        return self._waiting

    async def validate(self, data: bytes, limits: ImageLimits | None = None) -> ImageInfo:
        """Fully decode `data` in a child; return what it found or raise `ImageError`.

        The header is checked here first (`probe_image`, in a thread), so sizes, formats
        and obvious truncation are refused without starting a process. Every failure of
        the child — a bad image, its memory ceiling, a crash, a hang past `timeout` —
        arrives as an `ImageError` whose `user_message` can be shown as is. Cancelling the
        call kills the child.
        """
        return _info((await self._checked(data, limits, None)).get("info"))

    async def _checked(self, data: bytes, limits: ImageLimits | None, copy_side: int | None) -> dict[str, object]:
        """The child's successful reply for `data`; every failure raised as its ImageError."""
        if self._closed:
            raise RuntimeError("IsolatedDecoder is closed")
        limits = limits or ImageLimits()
        data = bytes(data)
        # Walking a 25 MB file's blocks can take tens of milliseconds: not on the event loop.
        await asyncio.to_thread(probe_image, data, limits)
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            if self._closed:
                raise RuntimeError("IsolatedDecoder is closed")
            return await self._decode_in_child(data, limits, copy_side)
        finally:
            self._slots.release()

    async def copy(self, data: bytes, limits: ImageLimits | None = None, *, max_side: int = 1024) -> bytes:
        """Validate `data` as `validate` does and return a JPEG re-encoded from its decoded pixels,
        long side at most `max_side` (never enlarged): a copy worth keeping for long (small, one
        known format, made by this package's own encoder), so nothing that reads it later has to
        trust the sender's file. Raises `ImageError` as `validate` does."""
        if not 16 <= max_side <= 4096:
            raise ValueError(f"max_side must be between 16 and 4096, got {max_side}")
        reply = await self._checked(data, limits, max_side)
        copy = reply.get("copy")
        try:
            encoded = base64.b64decode(str(copy), validate=True)
        except (binascii.Error, ValueError):
            raise DecoderFailed("the decoder sent no usable copy") from None
        probe_image(encoded, ImageLimits(max_bytes=_MAX_COPY, max_pixels=max_side * max_side))
        return encoded

    async def close(self) -> None:
        """Kill any children still decoding; later calls to `validate` raise RuntimeError."""
        self._closed = True
        for proc in list(self._children):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        for proc in list(self._children):
            await proc.wait()

    async def __aenter__(self) -> IsolatedDecoder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _decode_in_child(self, data: bytes, limits: ImageLimits, copy_side: int | None) -> dict[str, object]:
        request = {
            "limits": {"max_bytes": limits.max_bytes, "max_pixels": limits.max_pixels, "min_side": limits.min_side},
            "memory_limit": self.memory_limit,
            "cpu_seconds": math.ceil(self.timeout) + 1,
            "copy_side": copy_side,
        }
        proc = await asyncio.create_subprocess_exec(
            *self._argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_child_env(),
            cwd=str(_STYLECORE_DIR.parent),
        )
        self._children.add(proc)
        try:
            out, err = await asyncio.wait_for(
                self._exchange(
                    proc,
                    json.dumps(request).encode() + b"\n",
                    data,
                    _MAX_REPLY if copy_side is None else _MAX_REPLY + 2 * _MAX_COPY,
                ),
                self.timeout,
            )
        except asyncio.TimeoutError:
            log.warning("image decoder (pid %s) still running after %g s; killed", proc.pid, self.timeout)
            raise DecoderFailed(f"decoder did not finish within {self.timeout:g} s", _TIMEOUT_MESSAGE) from None
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            self._children.discard(proc)
        assert proc.returncode is not None
        return _result(proc.pid, proc.returncode, out, err)

    @staticmethod
    async def _exchange(
        proc: asyncio.subprocess.Process, request: bytes, data: bytes, max_reply: int
    ) -> tuple[bytes, bytes]:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None

        async def feed() -> None:
            stdin = proc.stdin
            assert stdin is not None
            try:
                stdin.write(request)
                view = memoryview(data)
                for start in range(0, len(view), _CHUNK):  # small writes keep the pipe buffer small
                    stdin.write(view[start : start + _CHUNK])
                    await stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the child died early; its exit status tells why
            finally:
                stdin.close()

        out, err, _ = await asyncio.gather(
            _read_capped(proc.stdout, max_reply), _read_capped(proc.stderr, _MAX_STDERR), feed()
        )
        await proc.wait()
        return out, err


async def _read_capped(stream: asyncio.StreamReader, cap: int) -> bytes:
    """Everything up to `cap` bytes; the rest is read and dropped so the child never blocks on a full pipe."""
    kept = bytearray()
    while chunk := await stream.read(65536):
        if len(kept) < cap:
            kept += chunk[: cap - len(kept)]
    return bytes(kept)


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


def _result(pid: int, returncode: int, out: bytes, err: bytes) -> dict[str, object]:
    """The child's successful reply (its `info` checked), or the ImageError it stands for."""
    reply: object = None
    with contextlib.suppress(ValueError):
        reply = json.loads(out.split(b"\n", 1)[0] or b"null")
    if returncode != 0 or not isinstance(reply, dict):
        tail = err.decode("utf-8", "replace")[-2000:]
        log.warning("image decoder (pid %s) failed with %s; stderr: %s", pid, _describe_exit(returncode), tail)
        if returncode == -getattr(signal, "SIGXCPU", 0):
            raise DecoderFailed("decoder ran out of CPU time", _TIMEOUT_MESSAGE)
        raise DecoderFailed(f"decoder failed with {_describe_exit(returncode)}")
    try:
        if reply.get("ok") is True:
            _info(reply["info"])
            return reply
        cls = _ERRORS[reply["kind"]]
        message = str(reply["user_message"])[:_MAX_USER_MESSAGE]
        detail = str(reply["detail"])[:2000]
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("image decoder (pid %s) sent a malformed reply: %r", pid, out[:500])
        raise DecoderFailed(f"malformed reply from the decoder: {exc!r}") from None
    raise cls(detail, message)


def _info(fields: object) -> ImageInfo:
    if not isinstance(fields, dict):
        raise TypeError("info is not an object")
    fmt, width, height, frames, mode = (fields[k] for k in ("format", "width", "height", "frames", "mode"))
    if fmt not in ALLOWED_FORMATS or not all(isinstance(v, int) and v > 0 for v in (width, height, frames)):
        raise ValueError(f"implausible info {fields!r}")
    if mode is not None and not isinstance(mode, str):
        raise ValueError(f"implausible mode {mode!r}")
    return ImageInfo(fmt, width, height, frames, mode)


__all__ = ["DEFAULT_MEMORY_LIMIT", "DEFAULT_TIMEOUT", "DEFAULT_WORKERS", "IsolatedDecoder", "child_argv"]
