"""Deleting what the bot keeps about one member, or about one server, in one transaction each.

A member may ask for their data to go (`/stylebot forget`), and a server's data has no reason to
stay once the bot has left it. Jobs still queued or running are the caller's to stop first (they
live in the executor too); what is stored is then deleted here all at once, so a half-forgotten
member or server never exists. Server styles belong to their server: forgetting the member who
added one keeps the style but drops their name from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.db.database import Database


@dataclass(frozen=True)
class Forgotten:
    """How much went: job rows, jobs' stored images, server settings, server styles deleted, and
    server styles that no longer say who added them."""

    jobs: int = 0
    inputs: int = 0
    settings: int = 0
    styles: int = 0
    styles_unnamed: int = 0


async def forget_member(db: Database, member_id: int) -> Forgotten:
    """Every job row and stored image of `member_id`, in every server and in DMs."""
    async with db.transaction() as conn:
        inputs = await conn.execute(
            "DELETE FROM inputs WHERE job_id IN (SELECT job_id FROM jobs WHERE owner_id = ?)", (member_id,)
        )
        jobs = await conn.execute("DELETE FROM jobs WHERE owner_id = ?", (member_id,))
        unnamed = await conn.execute("UPDATE server_styles SET added_by = NULL WHERE added_by = ?", (member_id,))
    return Forgotten(jobs=jobs.rowcount, inputs=inputs.rowcount, styles_unnamed=unnamed.rowcount)


async def forget_server(db: Database, guild_id: int) -> Forgotten:
    """Everything stored for `guild_id`: its settings, its styles, its jobs and their images."""
    async with db.transaction() as conn:
        inputs = await conn.execute(
            "DELETE FROM inputs WHERE job_id IN (SELECT job_id FROM jobs WHERE guild_id = ?)", (guild_id,)
        )
        jobs = await conn.execute("DELETE FROM jobs WHERE guild_id = ?", (guild_id,))
        settings = await conn.execute("DELETE FROM guild_settings WHERE guild_id = ?", (guild_id,))
        styles = await conn.execute("DELETE FROM server_styles WHERE guild_id = ?", (guild_id,))
    return Forgotten(jobs=jobs.rowcount, inputs=inputs.rowcount, settings=settings.rowcount, styles=styles.rowcount)
