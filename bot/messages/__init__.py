"""Every sentence the bot says to people, as pure functions of plain values.

Progress and result messages, the queue listing, the status text, refusals and error texts
all live here, so a change of wording is an edit of this module (and of the tests that read
it), never a hunt through the code. Kept free of Discord objects so texts can be tested
directly and so "nothing changed" is a string comparison in the progress editor. Markdown
is Discord's subset (https://support.discord.com/hc/en-us/articles/210298617): `-#` makes
a line small and grey, `<@id>` mentions a user, `<#id>` a channel.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from bot.messages.styles import styles_phrase
from stylecore.notes import Note
from stylecore.option_specs import OPTION_SPECS
from stylecore.options import StyleOptions

# -- building blocks ------------------------------------------------------------------------


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


def fmt_when(seconds_from_now: float | None, now: float | None = None) -> str | None:
    """A time that far from now as a Discord timestamp, `<t:unix:R>`, which every reader's client shows
    in their own language and counts down ("in 3 minutes"; Discord's developer docs, "Message
    Formatting"); None when unknown. Rounded (5 s within a minute, then 15 s, then a minute), so an
    estimate that moves by a second leaves the text alone and costs no message edit."""
    if seconds_from_now is None or seconds_from_now != seconds_from_now or seconds_from_now < 0:
        return None
    step = 5 if seconds_from_now < 60 else 15 if seconds_from_now < 600 else 60
    at = (time.time() if now is None else now) + seconds_from_now
    return f"<t:{int(math.ceil(at / step) * step)}:R>"


def _names(perms: Iterable[str]) -> str:
    """Permission flags as Discord's client names them ("manage_guild" -> "Manage Server")."""
    return ", ".join(p.replace("_", " ").replace("guild", "server").title() for p in perms)


def _one_line(note: str | None) -> str | None:
    """A note from the executor as one line with its first letter up (it may be None)."""
    if not note:
        return None
    line = " ".join(note.split())
    return line[:1].upper() + line[1:]


# How each option reads in a job's footer; options not listed read "name value".
_SETTING_WORDS: dict[str, str] = {
    "size": "size {}",
    "steps": "{} steps",
    "strength": "strength {}",
    "preserve_colors": "colors {}",
    "seed": "seed {}",
}
_ALWAYS_SHOWN = ("size", "steps", "strength", "seed")


def settings_line(options: Mapping[str, Any]) -> str:
    """A job's settings in one line: size, steps, strength and seed always, and every other declared
    option that differs from the engine's default, so a newly offered option shows up by itself."""
    defaults = _engine_defaults()
    parts = []
    for name, spec in OPTION_SPECS.items():
        if name not in options:
            continue
        value = options[name]
        if value is None or (name not in _ALWAYS_SHOWN and value == defaults.get(name)):
            continue
        parts.append(_SETTING_WORDS.get(name, name.replace("_", " ") + " {}").format(spec.fmt(value)))
    return " · ".join(parts)


@functools.cache
def _engine_defaults() -> dict[str, Any]:
    return StyleOptions().to_dict()


def _footer(job_id: str, options: Mapping[str, Any]) -> str:
    return f"-# {settings_line(options)} · job `{job_id}`"


def _note_line(note: str | None) -> str:
    return f"-# ⚠️ {note}\n" if note else ""


# -- a job's message, from queued to its end ------------------------------------------------

RESUMED_AFTER_RESTART = "🔄 The bot restarted; your job is back in the queue."


def queued(
    job_id: str,
    options: Mapping[str, Any],
    position: int | None,
    eta: float | None,
    *,
    note: str | None = None,
    now: float | None = None,
) -> str:
    where = f"position {position}" if position else "waiting"
    when = fmt_when(eta, now)  # eta: its wait and its run
    eta_part = f" · done {when}" if when else ""
    head = f"{note}\n" if note else ""
    return f"{head}⏳ **Queued** — {where}{eta_part}\n{_footer(job_id, options)}"


def starting(job_id: str, options: Mapping[str, Any], *, note: str | None = None) -> str:
    return f"🎨 **Starting…**\n{_note_line(note)}{_footer(job_id, options)}"


def running(
    job_id: str,
    options: Mapping[str, Any],
    step: int,
    total: int,
    eta: float | None,
    loss: float | None,
    *,
    note: str | None = None,
    now: float | None = None,
) -> str:
    pct = int(100 * step / total) if total else 0
    bar_len = 12
    filled = round(bar_len * step / total) if total else 0
    bar = "█" * filled + "░" * (bar_len - filled)
    bits = [f"step {step}/{total} ({pct}%)"]
    when = fmt_when(eta, now)
    if when:
        bits.append(f"done {when}")
    if loss is not None:
        bits.append(f"loss {loss:.3g}")
    return f"🎨 **Stylizing** `{bar}` " + " · ".join(bits) + f"\n{_note_line(note)}{_footer(job_id, options)}"


def sent_as(fmt: str, limit_bytes: int) -> str:
    return f"Sent as {fmt.upper()} to fit the upload limit ({limit_bytes // 1024} KB)"


SENT_SMALLER = "Sent as a smaller JPEG: the full-size picture could not be uploaded"


RESULT_UNDELIVERED = (
    "your picture was made, but Discord wouldn't take the upload, even as a smaller JPEG. Please run it again."
)


def done(
    job_id: str,
    options: Mapping[str, Any],
    *,
    seconds: float,
    width: int,
    height: int,
    device: str,
    fmt: str,
    owner_id: int | None = None,
    notes: Sequence[str | None] = (),
    styles: Mapping[str, Any] | None = None,
    converged_at: int | None = None,
) -> str:
    """`converged_at`: the step a run stopped at because its image had stopped changing (its
    steps option is a cap), so the footer's "N steps" is not read as what it ran."""
    who = f" for <@{owner_id}>" if owner_id else ""
    if converged_at is not None:
        notes = [f"Converged at step {converged_at} of {options.get('steps')}", *notes]
    lines = [f"-# {n}" for n in dict.fromkeys(filter(None, map(_one_line, notes)))]
    extra = "".join(f"\n{line}" for line in lines)
    used = styles_phrase(styles)
    style_line = f"\n🖌️ {'Blend: ' if len((styles or {}).get('styles') or []) > 1 else ''}{used}" if used else ""
    return (
        f"✅ **Done**{who} in {fmt_duration(seconds)} · {width}×{height} {fmt.upper()} on {device}{style_line}{extra}\n"
        f"{_footer(job_id, options)}"
    )


def failed(job_id: str, options: Mapping[str, Any], message: str) -> str:
    return f"⚠️ **Failed** — {message}\n{_footer(job_id, options)}"


def cancelled(job_id: str, options: Mapping[str, Any], by: int | None) -> str:
    who = f" by <@{by}>" if by else ""
    return f"🛑 **Cancelled**{who}.\n{_footer(job_id, options)}"


def paused(job_id: str, options: Mapping[str, Any]) -> str:
    return (
        "⏸️ **Paused** — the bot is restarting. This job is saved and will continue when it's back.\n"
        f"{_footer(job_id, options)}"
    )


_MEMORY = {"gpu": "GPU memory", "ram": "memory"}
# How each of the executor's notes (stylecore.notes) reads; a code not listed here (an executor newer
# than this bot) reads as the note's own English.
_NOTES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "ran_smaller": lambda p: (
        f"Ran at {p['size']} px instead of {p['asked']} px: not enough {_MEMORY.get(p['memory'], 'memory')}"
    ),
    "oom_retry": lambda p: f"Ran out of memory at {p['size']} px; retrying at {p['smaller']} px",
    "alone_after_oom": lambda p: f"The batch of {p['jobs']} jobs ran out of memory; retrying this job on its own",
    "worker_lost_retry": lambda p: "The worker running this job was lost; retrying",
}


def executor_note(note: Note | None) -> str | None:
    """The executor's word on a run (ran smaller, retried...) as one line for the job's message."""
    if note is None:
        return None
    render = _NOTES.get(note.code)
    return render(note.args) if render is not None else _one_line(str(note))


def failed_privately(job_id: str, message: str) -> str:
    return f"Job `{job_id}`: {message}"


_FAILURE_REASONS: dict[str, str] = {
    "bad_input": "I couldn't use one of the images: {error}",
    "worker_lost": "The worker running your job stopped unexpectedly. Please try again.",
    "no_worker": "No worker could start to run your job, so it was stopped. Please try again in a few minutes.",
    "oom": "That ran out of memory; try a smaller size.",
    "timeout": "That took too long and was stopped; try fewer steps or a smaller size.",
    "shutdown": "The bot is restarting; your job will be picked up again when it's back.",
    "internal": "Something went wrong while stylizing: {error}",
}


def failure(error: str | None, reason: str | None) -> str:
    """Why a job failed, by the executor's failure reason."""
    template = _FAILURE_REASONS.get(reason or "internal", _FAILURE_REASONS["internal"])
    return template.format(error=(error or "unknown error").rstrip("."))


STOPPED_REPORTING = "the job stopped reporting"
INPUTS_LOST_IN_RESTART = "the bot restarted and this job's images were no longer stored. Please run it again."


def requeue_failed(error: object) -> str:
    return f"the bot restarted and couldn't re-queue this job ({error}). Please run it again."


# -- /queue and /cancel ---------------------------------------------------------------------


def queue_entry(
    job_id: str,
    state: str,
    *,
    position: int | None,
    eta: float | None,
    step: int | None = None,
    total: int | None = None,
    owner_id: int | None = None,
    now: float | None = None,
) -> str:
    """One line of /queue; `owner_id` is shown to admins, who see everyone's jobs."""
    owner = f" — <@{owner_id}>" if owner_id is not None else ""
    when = fmt_when(eta, now)
    left = f", done {when}" if when else ""
    if state == "running":
        where = (
            f"running, step {step}/{total} ({int(100 * step / total)}%)" if step is not None and total else "running"
        )
    else:
        where = f"queued, position {position}"
    return f"`{job_id}` {where}{left}{owner}"


MESSAGE_LIMIT = 2000  # characters in a message's content (Discord's Create Message docs)
QUEUE_PAGE_LINES = 15  # jobs per /queue page, however short their lines


def queue_pages(
    lines: Sequence[str], *, admin: bool, others: int, limit: int = MESSAGE_LIMIT, per_page: int = QUEUE_PAGE_LINES
) -> list[str]:
    """/queue as pages that each fit one message (a busy server's queue is far longer than 2,000
    characters): your jobs (an admin: every job in the server), or why the list is empty. A page
    names its number when there is more than one."""
    if not lines:
        if admin:
            return ["No jobs are queued or running here."]
        text = NO_ACTIVE_JOBS
        return [f"{text} ({others} job(s) from others are in the queue.)" if others else text]
    title = f"**All jobs in this server** ({len(lines)})" if admin else f"**Your jobs** ({len(lines)})"
    room = limit - len(title) - len(" · page 999/999") - 1
    chunks: list[list[str]] = [[]]
    used = 0
    for line in lines:
        line = line[:room]  # a single line never outgrows a page
        if chunks[-1] and (len(chunks[-1]) >= per_page or used + 1 + len(line) > room):
            chunks.append([])
            used = 0
        chunks[-1].append(line)
        used += 1 + len(line)
    if len(chunks) == 1:
        return ["\n".join([title, *chunks[0]])]
    return ["\n".join([f"{title} · page {i}/{len(chunks)}", *chunk]) for i, chunk in enumerate(chunks, 1)]


NOT_YOUR_LISTING = "Those buttons page through someone else's /queue; run /queue yourself."


NO_ACTIVE_JOBS = "You have no jobs queued or running."


def cancelling(job_id: str) -> str:
    return f"Cancelling job `{job_id}`."


def job_choice(job_id: str, state: str) -> str:
    return f"{job_id} ({state})"


# -- refusals -------------------------------------------------------------------------------

RESTARTING = "I'm restarting and not taking new jobs; please try again in a minute."
_WITHOUT_REPLIES = "mention me with two images (content, then style), or use /stylize or Apps → Stylize this image"
REPLIED_TO_UNREADABLE = f"I can't see images in messages you reply to (no Message Content access): {_WITHOUT_REPLIES}."
NO_IMAGE_IN_MESSAGE = "That message has no image attachment to stylize."
REPLIED_TO_HAS_NO_IMAGE = (
    "The message you replied to has no image attachment. Reply to a message with an "
    "image and attach the style image, or attach two images (content first)."
)
NEED_STYLE_IMAGE = (
    "Attach a style image when you reply to a message with an image, or attach two images "
    "(content first, then style) and mention me."
)


def too_many_jobs(
    job_ids: Sequence[str], limit: int, *, where: str = "server", waiting: bool = False, starting: int = 0
) -> str:
    """Every per-member job limit refuses with this text, from the facts of the executor's refusal:
    `where` is the limit's scope ("server" or "dm": this server's or DMs' own limit; "everywhere": the
    operator's cap across all servers), `waiting` whether it counts only jobs not yet started, and
    `starting` the member's requests still being downloaded and checked."""
    listed = [f"`{j}`" for j in job_ids] + ([f"{starting} starting"] if starting else [])
    what = "waiting to start" if waiting else "queued or running"
    scope = {"server": "in this server", "dm": "in DMs"}.get(where, "across all servers")
    then = "start" if waiting else "finish"
    return (
        f"You already have {len(job_ids) + starting} job(s) {what} {scope} ({', '.join(listed)}); "
        f"the limit is {limit}. Wait for one to {then} or use /cancel."
    )


def cooldown(left: float, cooldown_seconds: float, now: float | None = None) -> str:
    # Rounded up to the second: a member who tries at the time shown is let in.
    at = math.ceil((time.time() if now is None else now) + left)
    return f"Please wait: you can start another job <t:{at}:R> (this server's cooldown is {cooldown_seconds:g} s)."


NO_WORKERS = "I can't run jobs right now: none of my workers could start. Please try again in a few minutes."


def queue_full(detail: object) -> str:
    return f"The queue is full right now ({detail}). Please try again in a few minutes."


def missing_attachment(what: str) -> str:
    return f"I need a {what}; attach one and try again."


def not_an_image(what: str, filename: str) -> str:
    return f"The {what} (`{filename}`) isn't an image. Use PNG, JPEG, WebP, GIF or BMP."


def attachment_too_large(what: str, size: int, limit: int) -> str:
    return f"The {what} is {size / 2**20:.1f} MB; the limit is {limit / 2**20:.0f} MB."


def attachment_gone(what: str) -> str:
    return f"The {what} was deleted before I could download it; attach it again."


def download_failed(what: str) -> str:
    return f"I couldn't download the {what} from Discord; please try again."


def unusable_image(what: str, problem: str) -> str:
    """An attachment that is not a usable image; `problem` is the image checker's own sentence."""
    return f"The {what} can't be used. {problem}"


def size_over_limit(size: int, limit: int) -> str:
    return f"Size {size} px is over this server's limit of {limit} px (max_size)."


def steps_over_limit(steps: int, limit: int) -> str:
    return f"{steps} steps is over this server's limit of {limit} steps (max_steps)."


def channel_not_allowed(channel_ids: Iterable[int]) -> str:
    where = " ".join(f"<#{c}>" for c in channel_ids)
    return f"I don't take jobs in this channel. Try {where}."


def bot_lacks(perms: Iterable[str]) -> str:
    return f"I can't post results here: I'm missing the {_names(perms)} permission in this channel."


NOT_ADMIN = "You need the Manage Server permission to change StyleBot's settings."
BLOCKED_MEMBER = "You can't use StyleBot: its operator has blocked your account."
BLOCKED_SERVER = "StyleBot isn't available in this server: its operator has blocked it."
NOT_YOUR_JOB = (
    "Only the person who started this job, or someone with Manage Messages in the channel where it runs, can cancel it."
)
JOB_ELSEWHERE = "That result belongs to another server (or to someone else's DMs), so its buttons don't work here."


def unknown_job(job_id: str) -> str:
    return f"I don't know a job `{job_id}`."


def forgotten_job(job_id: str) -> str:
    return f"I no longer know job `{job_id}`."


def already_finished(job_id: str, state: str | None = None) -> str:
    return f"Job `{job_id}` has already finished ({state})." if state else f"Job `{job_id}` has already finished."


def job_removed(job_id: str) -> str:
    return f"Job `{job_id}` was taken down by the bot's operator."


def inputs_expired(ttl_seconds: float) -> str:
    return (
        f"The images behind this result are no longer kept (they're deleted after "
        f"{ttl_seconds / 3600:g} h). Start a new one with /stylize."
    )


def bad_field(label: str, problem: str) -> str:
    """A value typed into a form field that cannot be used."""
    return f"{label} {problem}."


# -- describing errors ----------------------------------------------------------------------


def bad_options(detail: object) -> str:
    return f"Those settings don't work: {detail}"


JOB_CANCELLED = "That job was cancelled."
NO_DMS = "This only works in a server, not in DMs."
NOT_HERE = "You can't use this here."
CHANNEL_FORBIDDEN = (
    "I'm missing a permission in this channel (I need View Channel, Send Messages, "
    "Attach Files and Read Message History)."
)
FILE_TOO_LARGE = "That file is too large for Discord to accept."
UNEXPECTED = "Something went wrong on my side. It has been logged; please try again."


def user_missing(perms: Iterable[str]) -> str:
    return f"You need the {_names(perms)} permission to do that."


def bot_missing(perms: Iterable[str]) -> str:
    return f"I need the {_names(perms)} permission in this channel."


def slow_down(retry_after: float, now: float | None = None) -> str:
    at = math.ceil((time.time() if now is None else now) + retry_after)
    return f"Slow down a little; try again <t:{at}:R>."


# Server admins' and the operator's wording (settings, status, health, operator controls), the
# gallery's and styles', and what members read about help and their data.
from bot.messages.admin import *  # noqa: E402, F403
from bot.messages.members import *  # noqa: E402, F403
from bot.messages.styles import *  # noqa: E402, F403
