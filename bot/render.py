"""The words on the progress and result messages, as pure functions of the job's state.

Kept free of Discord objects so the texts can be tested directly and so "nothing
changed" is a simple string comparison in the progress editor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "unknown"
    s = round(seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def settings_line(options: Mapping[str, Any]) -> str:
    parts = [
        f"size {options.get('size')} px",
        f"{options.get('steps')} steps",
        f"strength {float(options.get('strength', 1.0)):g}",
    ]
    colors = options.get("preserve_colors", "none")
    if colors and colors != "none":
        parts.append(f"colors {colors}")
    if options.get("seed") is not None:
        parts.append(f"seed {options.get('seed')}")
    return " · ".join(parts)


def _footer(job_id: str, options: Mapping[str, Any]) -> str:
    return f"-# {settings_line(options)} · job `{job_id}`"


def queued_text(
    job_id: str,
    options: Mapping[str, Any],
    position: int | None,
    eta: float | None,
    *,
    note: str | None = None,
) -> str:
    where = f"position {position}" if position else "waiting"
    eta_part = f" · done in ~{fmt_duration(eta)}" if eta is not None else ""  # (eta: start + run)
    head = f"{note}\n" if note else ""
    return f"{head}⏳ **Queued** — {where}{eta_part}\n{_footer(job_id, options)}"


def _note_line(note: str | None) -> str:
    return f"-# ⚠️ {note}\n" if note else ""


def starting_text(job_id: str, options: Mapping[str, Any], *, note: str | None = None) -> str:
    return f"🎨 **Starting…**\n{_note_line(note)}{_footer(job_id, options)}"


def running_text(
    job_id: str,
    options: Mapping[str, Any],
    step: int,
    total: int,
    eta: float | None,
    loss: float | None,
    *,
    note: str | None = None,
) -> str:
    pct = int(100 * step / total) if total else 0
    bar_len = 12
    filled = round(bar_len * step / total) if total else 0
    bar = "█" * filled + "░" * (bar_len - filled)
    bits = [f"step {step}/{total} ({pct}%)"]
    if eta is not None:
        bits.append(f"ETA {fmt_duration(eta)}")
    if loss is not None:
        bits.append(f"loss {loss:.3g}")
    return f"🎨 **Stylizing** `{bar}` " + " · ".join(bits) + f"\n{_note_line(note)}{_footer(job_id, options)}"


def done_text(
    job_id: str,
    options: Mapping[str, Any],
    *,
    seconds: float,
    width: int,
    height: int,
    device: str,
    fmt: str,
    owner_id: int | None = None,
    note: str | None = None,
) -> str:
    who = f" for <@{owner_id}>" if owner_id else ""
    extra = f"\n{note}" if note else ""
    return (
        f"✅ **Done**{who} in {fmt_duration(seconds)} · {width}×{height} {fmt.upper()} on {device}{extra}\n"
        f"{_footer(job_id, options)}"
    )


def failed_text(job_id: str, options: Mapping[str, Any], message: str) -> str:
    return f"⚠️ **Failed** — {message}\n{_footer(job_id, options)}"


def cancelled_text(job_id: str, options: Mapping[str, Any], by: int | None) -> str:
    who = f" by <@{by}>" if by else ""
    return f"🛑 **Cancelled**{who}.\n{_footer(job_id, options)}"


def paused_text(job_id: str, options: Mapping[str, Any]) -> str:
    return (
        "⏸️ **Paused** — the bot is restarting. This job is saved and will continue when it's back.\n"
        f"{_footer(job_id, options)}"
    )


def _gib(n: object) -> str:
    if not isinstance(n, int):
        return "?"
    gib = n / 2**30
    return f"{gib:.1f} GiB" if gib < 10 else f"{gib:.0f} GiB"


def worker_line(info: Mapping[str, Any]) -> str:
    """One worker as an operator needs it: where it runs, whether it is up, how large a job fits."""
    device = str(info.get("device") or "starting")
    if info.get("gpu"):
        device += f" ({info['gpu']}, {_gib(info.get('memory_total'))})"
    state = "ready" if info.get("ready", True) else "down"
    max_side = info.get("max_side")
    if isinstance(max_side, int):
        fits = f"jobs up to {max_side} px fit in {_gib(info.get('memory_budget'))}" if max_side else "no job fits"
    else:
        fits = "no memory cap"
    return f"`{info.get('slot', '?')}` {device} · {state} · {fits}"


def status_text(
    kind: str, workers: list[Mapping[str, Any]], running: int, queued: int, *, max_size: int, default_size: int
) -> str:
    """The bot's state for admins, and whether this server's size limit fits the workers."""
    lines = [f"**StyleBot status** — {kind} executor, {len(workers)} worker(s)"]
    lines += [worker_line(w) for w in workers] or ["no worker is up yet"]
    lines.append(f"Jobs: {running} running, {queued} waiting")
    lines.append(f"This server: sizes up to {max_size} px (default {default_size} px)")
    warning = size_warning(max_size, workers)
    if warning:
        lines.append(warning)
    return "\n".join(lines)


def size_warning(max_size: int, workers: list[Mapping[str, Any]]) -> str | None:
    """A warning when members may ask for more pixels than the smallest worker's memory holds."""
    sides = [w["max_side"] for w in workers if isinstance(w.get("max_side"), int)]
    if not sides or max_size <= min(sides):
        return None
    return (
        f"-# ⚠️ `max_size` is above what fits in a worker's memory ({min(sides)} px): larger jobs run "
        "at the largest size that fits, and their message says so."
    )
