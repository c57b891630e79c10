"""/queue and /cancel: where your jobs stand, and stopping them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.checks import is_admin
from bot.db import ACTIVE_STATES
from bot.errors import JobNotFound
from bot.render import fmt_duration

if TYPE_CHECKING:
    from bot.bot import StyleBot
    from bot.jobs import LiveJob
    from stylecore.executors.base import QueueEntry


def describe_entry(entry: QueueEntry, live: LiveJob | None, *, show_owner: bool) -> str:
    owner = f" — <@{entry.meta.get('owner_id', entry.user_id)}>" if show_owner else ""
    if entry.state == "running":
        ev = live.last if live else None
        if ev is not None and ev.step is not None and ev.total:
            pct = int(100 * ev.step / ev.total)
            where = f"running, step {ev.step}/{ev.total} ({pct}%)"
        else:
            where = "running"
        eta = f", about {fmt_duration(entry.eta)} left" if entry.eta is not None else ""
    else:
        where = f"queued, position {entry.position}"
        eta = f", done in ~{fmt_duration(entry.eta)}" if entry.eta is not None else ""
    return f"`{entry.job_id}` {where}{eta}{owner}"


class Queue(commands.Cog):
    def __init__(self, bot: StyleBot) -> None:
        self.bot = bot

    @app_commands.command(name="queue", description="Show your jobs and where they are in the queue")
    async def queue(self, interaction: discord.Interaction[StyleBot]) -> None:
        admin = interaction.guild is not None and is_admin(interaction.permissions)
        entries = self.bot.jobs.queue(interaction.guild_id)
        total = len(entries)
        if not admin:
            entries = [(e, lj) for e, lj in entries if e.meta.get("owner_id") == interaction.user.id]
        if not entries:
            text = "You have no jobs queued or running." if not admin else "No jobs are queued or running here."
            if total and not admin:
                text += f" ({total} job(s) from others are in the queue.)"
        else:
            title = "**All jobs in this server**" if admin else "**Your jobs**"
            lines = [describe_entry(e, lj, show_owner=admin) for e, lj in entries]
            text = "\n".join([title, *lines])
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())

    @app_commands.command(name="cancel", description="Cancel one of your jobs (the latest if none is given)")
    @app_commands.describe(job="The job id shown on its message")
    async def cancel(self, interaction: discord.Interaction[StyleBot], job: str | None = None) -> None:
        if job is None:
            mine = await self.bot.db.jobs_in(ACTIVE_STATES, guild_id=interaction.guild_id, owner_id=interaction.user.id)
            if not mine:
                raise JobNotFound("You have no jobs queued or running.")
            job = mine[-1].job_id
        job = job.strip().strip("`")
        interaction.extras["job_id"] = job
        await self.bot.jobs.cancel_by(job, interaction.user.id, interaction.permissions, interaction.guild_id)
        await interaction.response.send_message(f"Cancelling job `{job}`.", ephemeral=True)

    @cancel.autocomplete("job")
    async def cancel_autocomplete(
        self, interaction: discord.Interaction[StyleBot], current: str
    ) -> list[app_commands.Choice[str]]:
        owner = None if is_admin(interaction.permissions) else interaction.user.id
        records = await self.bot.db.jobs_in(ACTIVE_STATES, guild_id=interaction.guild_id, owner_id=owner)
        return [
            app_commands.Choice(name=f"{r.job_id} ({r.state})", value=r.job_id)
            for r in reversed(records)
            if r.job_id.startswith(current.strip())
        ][:25]


async def setup(bot: StyleBot) -> None:
    await bot.add_cog(Queue(bot))
