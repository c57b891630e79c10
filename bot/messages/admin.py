"""What the bot says to server admins and to its operator: server settings, /stylebot status, the
health probes' reasons and the operator's controls. Re-exported by `bot.messages`, so callers write
`messages.settings_table(...)` wherever a sentence lives."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def fmt_gib(n_bytes: object) -> str:
    """A byte count as GiB for people ("1.5 GiB", "140 GiB"); "?" when unknown."""
    if not isinstance(n_bytes, int):
        return "?"
    gib = n_bytes / 2**30
    return f"{gib:.1f} GiB" if gib < 10 else f"{gib:.0f} GiB"


# -- server settings (admins) ---------------------------------------------------------------


def settings_table(rows: Iterable[tuple[str, str, str, bool]]) -> str:
    """`/stylebot config show`: (key, value, description, overridden) per setting."""
    lines = ["**StyleBot settings for this server**"]
    for key, value, description, overridden in rows:
        mark = "" if overridden else " *(default)*"
        lines.append(f"`{key}` = **{value}**{mark}\n-# {description}")
    return "\n".join(lines)


def setting_changed(key: str, value: str) -> str:
    return f"`{key}` is now **{value}**."


def setting_reset(key: str, value: str) -> str:
    return f"`{key}` is back to its default: **{value}**."


ALL_SETTINGS_RESET = "All settings are back to their defaults."


def cannot_set(key: str, problem: object) -> str:
    return f"Can't set `{key}`: {problem}"


def cannot_reset_alone(key: str, problem: object) -> str:
    return f"Can't reset `{key}` alone: {problem}. Reset the other one too."


def beyond_bound(value: str, bound: str, *, floor: bool) -> str:
    """A server setting past the bot-wide bound its operator set."""
    if floor:
        return f"{value} is below this bot's minimum of {bound}, set by its operator"
    return f"{value} is above this bot's ceiling of {bound}, set by its operator"


def default_above_max(default_key: str, default: str, max_key: str, maximum: str) -> str:
    return f"{default_key} ({default}) can't be above {max_key} ({maximum})"


def unknown_setting(key: str, known: Iterable[str]) -> str:
    return f"unknown setting {key!r}; choose one of: {', '.join(known)}"


def bad_channels(token: str) -> str:
    return f"expected channel mentions like #art or channel ids, or 'all'; got {token!r}"


def channels(channel_ids: Sequence[int]) -> str:
    return " ".join(f"<#{c}>" for c in channel_ids) if channel_ids else "all channels"


# -- health probes (operators) --------------------------------------------------------------

NOT_CONNECTED = "not connected to Discord"
SHUTTING_DOWN = "shutting down"
NOT_STARTED = "not taking jobs yet (starting)"


def no_worker_ready(errors: Sequence[str]) -> str:
    """Why /readyz fails when no worker can take a job; `errors` are the workers' last start failures."""
    return "no worker is ready" + (f" (last start failed: {'; '.join(errors)})" if errors else "")


# -- /stylebot operator (the bot's owner) ----------------------------------------------------

NOT_OPERATOR = "Only StyleBot's operator (the owner of its Discord application) can do that."
_TARGET = {"user": "<@{}>", "guild": "server `{}`"}


def _target(kind: str, target_id: int) -> str:
    return _TARGET[kind].format(target_id)


def bad_target(kind: str, text: str) -> str:
    what = "a member mention or id" if kind == "user" else "a server id"
    return f"`{text}` isn't {what}."


def now_blocked(kind: str, target_id: int, reason: str | None) -> str:
    why = f" ({reason})" if reason else ""
    return f"Blocked {_target(kind, target_id)}{why}. Their requests are refused before anything is downloaded."


def now_unblocked(kind: str, target_id: int) -> str:
    return f"Unblocked {_target(kind, target_id)}."


def not_blocked(kind: str, target_id: int) -> str:
    return f"{_target(kind, target_id)} isn't blocked here."


def blocked_by_configuration(kind: str, target_id: int) -> str:
    variable = "STYLEBOT_BLOCKED_USERS" if kind == "user" else "STYLEBOT_BLOCKED_GUILDS"
    return f"{_target(kind, target_id)} is blocked by the bot's configuration ({variable}); change it there."


def block_list(entries: Iterable[tuple[str, int, bool, str | None]]) -> str:
    """(kind, id, stored, reason) per blocked member or server."""
    lines = [
        f"{_target(kind, target_id)}" + (f" — {reason}" if reason else "") + ("" if stored else " *(configuration)*")
        for kind, target_id, stored, reason in entries
    ]
    return "\n".join(["**Blocked**", *lines]) if lines else "Nobody is blocked."


def taken_down(job_id: str, deleted: bool) -> str:
    gone = "its result message is deleted" if deleted else "its result message was already gone"
    return f"Job `{job_id}` is taken down: {gone} and its images are no longer stored."


# -- /stylebot status -----------------------------------------------------------------------


def worker_line(info: Mapping[str, Any]) -> str:
    """One worker as an operator needs it: where it runs, whether it is up, how large a job fits."""
    device = str(info.get("device") or "starting")
    if info.get("gpu"):
        device += f" ({info['gpu']}, {fmt_gib(info.get('memory_total'))})"
    state = "ready" if info.get("ready", True) else "down"
    max_side = info.get("max_side")
    if isinstance(max_side, int):
        fits = f"jobs up to {max_side} px fit in {fmt_gib(info.get('memory_budget'))}" if max_side else "no job fits"
    else:
        fits = "no memory cap"
    return f"`{info.get('slot', '?')}` {device} · {state} · {fits}"


def status(
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


__all__ = [
    "ALL_SETTINGS_RESET",
    "NOT_CONNECTED",
    "NOT_OPERATOR",
    "NOT_STARTED",
    "SHUTTING_DOWN",
    "bad_channels",
    "bad_target",
    "beyond_bound",
    "block_list",
    "blocked_by_configuration",
    "cannot_reset_alone",
    "cannot_set",
    "channels",
    "default_above_max",
    "fmt_gib",
    "no_worker_ready",
    "not_blocked",
    "now_blocked",
    "now_unblocked",
    "setting_changed",
    "setting_reset",
    "settings_table",
    "size_warning",
    "status",
    "taken_down",
    "unknown_setting",
    "worker_line",
]
