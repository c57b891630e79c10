"""The bot as an operator runs it: `python -m bot` in its own process, configured by environment
variables, stopped with SIGTERM and started again on the same data directory.

`BotProcess` also watches it from outside, the way an operator's tools would: its resident memory
from /proc/<pid>/status, and its style workers, which are the bot's children started by
multiprocessing's spawn (the executor's `worker_pids()` lives inside the bot; from outside the
same processes are found by parent and command line). Each worker's CPU time tells whether it is
busy with a job right now.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

DATABASE = "stylebot.sqlite3"  # in STYLEBOT_DATA_DIR (BotConfig.db_path)
TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def status_kib(pid: int, key: str) -> int | None:
    """A "VmRSS"-style line of /proc/<pid>/status, in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    fields = _stat(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / TICKS


def is_alive(pid: int) -> bool:
    """Running or stopped, not exited (a zombie not yet reaped counts as gone)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def is_stopped(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] in ("T", "t")


def style_workers(parent: int) -> list[int]:
    """The parent's children started by multiprocessing's spawn: its style workers (the image
    checker's children and multiprocessing's resource tracker have other command lines)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is None or int(fields[1]) != parent:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


@dataclass
class Sample:
    at: float
    incarnation: int
    rss: int  # bytes
    hwm: int  # bytes: the process's peak so far


@dataclass
class BotProcess:
    """One bot process at a time on `data_dir`; `start` again after `terminate` for a restart."""

    env: dict[str, str]
    workdir: Path
    log_path: Path
    proc: asyncio.subprocess.Process | None = None
    incarnation: int = 0
    lines: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    ready_at: dict[int, float] = field(default_factory=dict)  # incarnation -> when it logged on_ready
    stop_at: dict[int, float] = field(default_factory=dict)  # incarnation -> when SIGTERM was sent
    exits: list[tuple[int, float]] = field(default_factory=list)  # (return code, seconds SIGTERM took)
    _cpu: dict[int, list[tuple[float, float]]] = field(default_factory=dict)  # worker pid -> (t, cpu s)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.returncode is None else None

    async def start(self) -> None:
        self.incarnation += 1
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            env=self.env,
            cwd=str(self.workdir),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._tasks = [
            asyncio.create_task(self._read(self.proc, self.incarnation), name="soak-bot-log"),
            asyncio.create_task(self._watch(self.proc, self.incarnation), name="soak-bot-memory"),
        ]

    async def _read(self, proc: asyncio.subprocess.Process, incarnation: int) -> None:
        assert proc.stdout is not None
        with self.log_path.open("a") as log:
            log.write(f"----- bot process {incarnation} (pid {proc.pid}) -----\n")
            async for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                self.lines.append(line)
                log.write(line + "\n")
                if "logged in as" in line and incarnation not in self.ready_at:
                    self.ready_at[incarnation] = time.monotonic()

    async def _watch(self, proc: asyncio.subprocess.Process, incarnation: int, every: float = 0.25) -> None:
        """Sample the bot's memory and its workers' CPU time until it exits (a measurement, not a wait)."""
        while proc.returncode is None:
            rss, hwm = status_kib(proc.pid, "VmRSS"), status_kib(proc.pid, "VmHWM")
            now = time.monotonic()
            if rss is not None and hwm is not None:
                self.samples.append(Sample(now, incarnation, rss * 1024, hwm * 1024))
            for pid in style_workers(proc.pid):
                cpu = cpu_seconds(pid)
                if cpu is not None:
                    history = self._cpu.setdefault(pid, [])
                    history.append((now, cpu))
                    del history[:-8]
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(proc.wait()), every)

    def log_has(self, text: str, *, incarnation: int | None = None) -> bool:
        marker = f"----- bot process {incarnation or self.incarnation} "
        if incarnation is None:
            return any(text in line for line in self.lines)
        inside = False
        for line in self.lines:
            if line.startswith("----- bot process "):
                inside = line.startswith(marker)
            elif inside and text in line:
                return True
        return False

    def job_states(self) -> dict[str, tuple[str, str]]:
        """(state, error) of every job the bot has accepted so far, by id: it writes a job's row
        before it queues the job, and its state as soon as the executor reports a change."""
        path = Path(self.env["STYLEBOT_DATA_DIR"]) / DATABASE
        if not path.exists():
            return {}
        with contextlib.closing(sqlite3.connect(path, timeout=10)) as db:
            return {
                job: (state, error or "") for job, state, error in db.execute("SELECT job_id, state, error FROM jobs")
            }

    def workers(self) -> list[int]:
        pid = self.pid
        return style_workers(pid) if pid is not None else []

    def busy_workers(self, window: float = 1.0) -> list[int]:
        """Workers that used CPU in the last `window` seconds (a worker waiting for a job uses none)."""
        now, busy = time.monotonic(), []
        for pid in self.workers():
            history = [(t, c) for t, c in self._cpu.get(pid, []) if now - t <= window + 0.5]
            if len(history) >= 2 and history[-1][1] - history[0][1] >= 0.05 and not is_stopped(pid):
                busy.append(pid)
        return busy

    async def terminate(self, timeout: float) -> int:
        """SIGTERM, then wait for the exit; the return code (killed after `timeout`: the test fails)."""
        proc = self.proc
        assert proc is not None and proc.returncode is None
        self.stop_at[self.incarnation] = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise AssertionError(f"the bot did not exit within {timeout:g} s of SIGTERM") from None
        finally:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        rc = proc.returncode
        assert rc is not None
        self.exits.append((rc, time.monotonic() - self.stop_at[self.incarnation]))
        return rc

    async def kill(self) -> None:
        """Cleanup after a failed run: the bot and (through its process group's death) nothing else
        is left; its workers are daemons that exit when their parent's pipe closes."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            stopped = [pid for pid in style_workers(proc.pid) if is_stopped(pid)]
            proc.kill()
            await proc.wait()
            for pid in stopped:  # a stopped worker cannot notice its parent is gone
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        await asyncio.gather(*self._tasks, return_exceptions=True)
