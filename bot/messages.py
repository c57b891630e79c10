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
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

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


def fmt_gib(n_bytes: object) -> str:
    """A byte count as GiB for people ("1.5 GiB", "140 GiB"); "?" when unknown."""
    if not isinstance(n_bytes, int):
        return "?"
    gib = n_bytes / 2**30
    return f"{gib:.1f} GiB" if gib < 10 else f"{gib:.0f} GiB"


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


# -- suggestions for numbers (size, steps) --------------------------------------------------


def typed_value(value: str) -> str:
    return value


def server_default_value(value: str) -> str:
    return f"{value} (this server's default)"


def named_value(name: str, value: str) -> str:
    return f"{name} — {value}"


def largest_value(value: str) -> str:
    return f"{value} (the most allowed here)"


def server_style_choice(name: str) -> str:
    """How one of the server's own styles reads in the painting suggestions."""
    return f"{name} (this server's style)"[:100]


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


def _weight(value: float) -> str:
    return f"{value:g}"


def styles_phrase(info: Mapping[str, Any] | None) -> str | None:
    """The style a job used, or what it blended and how much of each; None when not recorded."""
    styles = list((info or {}).get("styles") or [])
    if not styles:
        return None
    if len(styles) == 1:
        return str(styles[0]["name"])
    return " + ".join(f"{s['name']} ×{_weight(float(s['weight']))}" for s in styles)


def alt_text(info: Mapping[str, Any] | None, options: Mapping[str, Any]) -> str:
    """A result's alt text (the attachment's description, which screen readers read out): the content,
    the style or blend, the settings. Discord allows 1,024 characters."""
    info = info or {}
    content = info.get("content") or "an image"
    styles = list(info.get("styles") or [])
    if len(styles) > 1:
        style = "a blend of " + ", ".join(f"{s['name']} ({_weight(float(s['weight']))} parts)" for s in styles)
    else:
        style = styles[0]["name"] if styles else "another image"
    return f"{content} repainted in the style of {style}; {settings_line(options)}"[:1024]


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
) -> str:
    who = f" for <@{owner_id}>" if owner_id else ""
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


def executor_note(note: str | None) -> str | None:
    """The executor's word on a run (ran smaller, retried...) as one line for the job's message."""
    return _one_line(note)


def failed_privately(job_id: str, message: str) -> str:
    return f"Job `{job_id}`: {message}"


_FAILURE_REASONS: dict[str, str] = {
    "bad_input": "I couldn't use one of the images: {error}",
    "worker_lost": "The worker running your job stopped unexpectedly. Please try again.",
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


def queue_listing(lines: Sequence[str], *, admin: bool, others: int) -> str:
    """/queue: your jobs (an admin: every job in the server), or why the list is empty."""
    if lines:
        title = "**All jobs in this server**" if admin else "**Your jobs**"
        return "\n".join([title, *lines])
    if admin:
        return "No jobs are queued or running here."
    text = NO_ACTIVE_JOBS
    return f"{text} ({others} job(s) from others are in the queue.)" if others else text


NO_ACTIVE_JOBS = "You have no jobs queued or running."


def cancelling(job_id: str) -> str:
    return f"Cancelling job `{job_id}`."


def job_choice(job_id: str, state: str) -> str:
    return f"{job_id} ({state})"


# -- refusals -------------------------------------------------------------------------------

RESTARTING = "I'm restarting and not taking new jobs; please try again in a minute."
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
NOT_YOUR_JOB = "Only the person who started this job, or someone with Manage Messages, can cancel it."


def unknown_job(job_id: str) -> str:
    return f"I don't know a job `{job_id}`."


def forgotten_job(job_id: str) -> str:
    return f"I no longer know job `{job_id}`."


def already_finished(job_id: str, state: str | None = None) -> str:
    return f"Job `{job_id}` has already finished ({state})." if state else f"Job `{job_id}` has already finished."


def inputs_expired(ttl_seconds: float) -> str:
    return (
        f"The images behind this result are no longer kept (they're deleted after "
        f"{ttl_seconds / 3600:g} h). Start a new one with /stylize."
    )


INPUTS_DELETED = "The images behind this result were deleted by the person who made it, so it can't be run again."
MODAL_PAINTING_HELP = "A gallery painting or this server's style; up to three blend equally"
NO_STYLE_GIVEN = "Give me a style: attach a style image, or pick a painting (see /styles for the gallery)."


def too_many_styles(count: int, most: int) -> str:
    return f"That's {count} styles; I can blend at most {most} at once."


def unknown_style(name: str) -> str:
    return f"I don't know a painting or server style called “{name}”. Pick one from the list, or see /styles."


def bad_blend(text: str, count: int) -> str:
    example = ",".join(["2", *["1"] * (count - 1)]) if count > 1 else "1"
    return (
        f"I couldn't read the blend “{text}”: give one weight per style ({count} here), "
        f"in the order of the options, e.g. {example}."
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


# -- the gallery and server styles ----------------------------------------------------------


def gallery_listing(credits: Sequence[str], own: Sequence[str]) -> str:
    """/styles: how to use what the picture shows, the paintings' attributions, this server's styles."""
    lines = [
        "**Styles you can pick** — use one with `/stylize painting:` (start typing a title or an artist), "
        "or blend up to three with `painting2:`/`style2:` and `blend:`.",
        "**Paintings** (public domain):",
        *(f"-# {credit}" for credit in credits),
    ]
    if own:
        lines.append("**This server's styles:** " + ", ".join(own))
    return _fit("\n".join(lines))


def server_styles_listing(styles: Sequence[tuple[str, int | None]], cap: int) -> str:
    rows = [f"• {name}" + (f" — added by <@{who}>" if who else "") for name, who in styles]
    return _fit("\n".join([f"**This server's styles** ({len(styles)} of {cap})", *rows]))


def no_server_styles(cap: int) -> str:
    if cap <= 0:
        return "This bot doesn't keep server styles."
    return f"This server has no styles of its own yet. Admins can add up to {cap} with `/stylebot style add`."


def sheet_alt_text(count: int) -> str:
    return f"A grid of {count} style images, each with its name underneath"


def bad_style_name(most: int) -> str:
    return f"A style's name needs a letter or digit and at most {most} characters."


def name_of_a_painting(label: str) -> str:
    return f"That's the name of a gallery painting ({label}); choose another name."


def style_name_taken(name: str) -> str:
    return f"This server already has a style called “{name}”. Remove it first, or choose another name."


def too_many_server_styles(cap: int) -> str:
    if cap <= 0:
        return "This bot doesn't keep server styles."
    return f"This server already has {cap} styles, the most it can keep. Remove one with `/stylebot style remove`."


def style_added(name: str) -> str:
    return f"Added the style “{name}”. Members can pick it in `/stylize painting:` here."


def no_server_style(name: str) -> str:
    return f"This server has no style called “{name}”."


def style_removed(name: str) -> str:
    return f"Removed the style “{name}”. Jobs that already used it keep their copy until their images expire."


def _fit(text: str, limit: int = 2000) -> str:
    """Discord's limit on a message's content; a cut listing ends with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


# -- /stylebot help -------------------------------------------------------------------------


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:g} hours" if hours < 72 else f"{hours / 24:g} days"


def guide(
    *,
    in_dm: bool,
    max_size: int,
    default_size: int,
    max_steps: int,
    default_steps: int,
    max_jobs: int,
    cooldown_seconds: float,
    channel_ids: Sequence[int],
    max_upload_bytes: int,
    inputs_ttl: float,
    inputs_per_member_bytes: int,
    job_history: float,
) -> str:
    """`/stylebot help`, and the answer to a mention without images: how to start, cancel and delete
    a job, this server's limits (in DMs the bot-wide ones), and what is kept for how long and why."""
    where = "in DMs with me" if in_dm else "here"
    cooldown = f"a {cooldown_seconds:g} s wait between jobs" if cooldown_seconds > 0 else "no wait between jobs"
    places = "" if in_dm or not channel_ids else f"\n-# Jobs only in {channels(channel_ids)}."
    kept_per_member = f" (up to {inputs_per_member_bytes / 2**20:.0f} MB of yours)" if inputs_per_member_bytes else ""
    return _fit(
        "**StyleBot** repaints a picture in the style of another.\n"
        "**Start a job** — three ways:\n"
        "1. `/stylize content:` your picture, and `style:` an image or `painting:` a painting or one of this "
        "server's styles (see `/styles`). Blend up to three with `style2:`/`painting2:`, `style3:`/`painting3:` "
        "and `blend:` (e.g. `2,1`).\n"
        "2. On a message with an image: **Apps → Stylize this image**, then pick a style.\n"
        "3. Mention me with two images (your picture first, then the style), or reply to a message with an "
        "image, mention me and attach the style.\n"
        f"**Limits {where}** — size up to {max_size} px (default {default_size}), up to {max_steps} steps "
        f"(default {default_steps}), {max_jobs} job(s) at a time, {cooldown}, images up to "
        f"{max_upload_bytes / 2**20:.0f} MB.{places}\n"
        "**Cancel** — the ✖️ Cancel button on a job's message, or `/cancel`.\n"
        "**Delete** — the 🗑️ button on a result deletes it and the images it was made from. "
        "`/stylebot forget` deletes everything I keep about you, at once.\n"
        f"**What I keep** — the images you send, for {_hours(inputs_ttl)}{kept_per_member}, so More style, "
        f"Less style and Re-run can use them again; then they are deleted. A job's settings and outcome "
        f"(no images) for {_hours(job_history)}, so `/queue` and the buttons work. A server's settings and "
        "styles until its admins remove them or I leave the server."
    )


# -- your data (/stylebot forget) -----------------------------------------------------------


def forgotten(*, stopped: int, jobs: int, inputs: int, styles_unnamed: int) -> str:
    """What `/stylebot forget` deleted, counted; pictures already posted are Discord messages, not
    the bot's records, so the member is told how to remove those too."""
    if not (stopped or jobs or inputs or styles_unnamed):
        return "I had nothing stored about you. Pictures I posted for you stay in their channels."
    parts = []
    if stopped:
        parts.append(f"stopped {stopped} job(s) that were queued or running")
    parts.append(f"deleted {jobs} job record(s)")
    parts.append(f"deleted the images of {inputs} job(s)")
    if styles_unnamed:
        parts.append(f"removed your name from {styles_unnamed} server style(s) you added (they belong to the server)")
    return (
        f"Done: I {', '.join(parts)}. Nothing else about you is kept.\n"
        "-# Pictures I already posted stay in their channels; delete them with their 🗑️ button before "
        "using forget, or ask a moderator."
    )
