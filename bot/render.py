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
    eta_part = f" · starts in ~{fmt_duration(eta)}" if eta is not None else ""
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
