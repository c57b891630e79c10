"""What members read about using the bot and about their data: /stylebot help (and a mention without
images), deleting a result, and /stylebot forget. Re-exported by `bot.messages`."""

from __future__ import annotations

from collections.abc import Sequence

from bot.messages.admin import channels
from bot.messages.styles import fit

INPUTS_DELETED = "The images behind this result were deleted by the person who made it, so it can't be run again."
NOT_YOUR_RESULT = "Only the person who made this picture, or someone with Manage Messages here, can delete it."
RESULT_DELETED = "Deleted the picture and the images it was made from."


# -- /stylebot help -------------------------------------------------------------------------


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:g} hours" if hours < 72 else f"{hours / 24:g} days"


def guide(
    *,
    in_dm: bool,
    replies: bool,
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
    a job (`replies`: whether replying to another message works, see the Message Content intent),
    this server's limits (in DMs the bot-wide ones), and what is kept for how long and why."""
    where = "in DMs with me" if in_dm else "here"
    # Without Discord's Message Content intent a bot cannot see the images of a message it is not
    # mentioned in, so the reply way is only offered when the bot has it.
    reply_way = ", or reply to a message with an image, mention me and attach the style" if replies else ""
    cooldown = f"a {cooldown_seconds:g} s wait between jobs" if cooldown_seconds > 0 else "no wait between jobs"
    places = "" if in_dm or not channel_ids else f"\n-# Jobs only in {channels(channel_ids)}."
    kept_per_member = f" (up to {inputs_per_member_bytes / 2**20:.0f} MB of yours)" if inputs_per_member_bytes else ""
    return fit(
        "**StyleBot** repaints a picture in the style of another.\n"
        "**Start a job** — three ways:\n"
        "1. `/stylize content:` your picture, and `style:` an image or `painting:` a painting or one of this "
        "server's styles (see `/styles`). Blend up to three with `style2:`/`painting2:`, `style3:`/`painting3:` "
        "and `blend:` (e.g. `2,1`).\n"
        "2. On a message with an image: **Apps → Stylize this image**, then pick a style.\n"
        f"3. Mention me with two images (your picture first, then the style){reply_way}.\n"
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


__all__ = [
    "INPUTS_DELETED",
    "NOT_YOUR_RESULT",
    "RESULT_DELETED",
    "forgotten",
    "guide",
]
