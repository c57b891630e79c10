"""The bot's memory across restarts: server settings, every job, and the inputs behind them.

SQLite through aiosqlite so the event loop never blocks on disk. Every job gets a row
before it is queued and its inputs are stored with it, which is what lets a restarted
bot re-queue unfinished work and lets the result buttons start new runs later. Inputs
expire after a TTL (`purge_expired`) because they are strangers' images.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import aiosqlite

from bot.guild_settings import SETTINGS, GuildSettings

ACTIVE_STATES: tuple[str, ...] = ("queued", "running")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS guild_settings (
    guild_id   INTEGER PRIMARY KEY,
    data       TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id         TEXT PRIMARY KEY,
    guild_id       INTEGER,
    channel_id     INTEGER NOT NULL,
    message_id     INTEGER,
    owner_id       INTEGER NOT NULL,
    state          TEXT NOT NULL,
    source         TEXT NOT NULL,
    options        TEXT NOT NULL,
    filesize_limit INTEGER NOT NULL,
    created_at     REAL NOT NULL,
    started_at     REAL,
    finished_at    REAL,
    seconds        REAL,
    error          TEXT,
    parent_id      TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs(guild_id, owner_id, created_at);
CREATE TABLE IF NOT EXISTS inputs (
    job_id     TEXT PRIMARY KEY,
    content    BLOB NOT NULL,
    style      BLOB NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS inputs_expiry ON inputs(expires_at);
"""


@dataclass
class JobRecord:
    """One row of `jobs`; `options` is the StyleOptions dict the job ran with."""

    job_id: str
    guild_id: int | None
    channel_id: int
    owner_id: int
    state: str
    source: str
    options: dict[str, Any]
    filesize_limit: int
    created_at: float
    message_id: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    seconds: float | None = None
    error: str | None = None
    parent_id: str | None = None

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> JobRecord:
        data = dict(row)
        data["options"] = json.loads(data["options"])
        return cls(**data)


_JOB_COLUMNS = tuple(f.name for f in fields(JobRecord))


class Database:
    """A single aiosqlite connection; aiosqlite serialises access on its own thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: aiosqlite.Connection | None = None

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("Database.open() has not been awaited")
        return self._conn

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = await aiosqlite.connect(self.path)
        self._conn.row_factory = aiosqlite.Row
        await self._conn.execute("PRAGMA journal_mode=WAL")
        await self._conn.execute("PRAGMA synchronous=NORMAL")
        await self._conn.executescript(_SCHEMA)
        await self._conn.commit()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    # -- guild settings -------------------------------------------------------------

    async def guild_overrides(self, guild_id: int) -> dict[str, Any]:
        async with self.conn.execute("SELECT data FROM guild_settings WHERE guild_id = ?", (guild_id,)) as cur:
            row = await cur.fetchone()
        return json.loads(row["data"]) if row else {}

    async def guild_settings(self, guild_id: int | None, base: GuildSettings) -> GuildSettings:
        if guild_id is None:
            return base
        return base.with_overrides(await self.guild_overrides(guild_id))

    async def save_guild_overrides(self, guild_id: int, overrides: dict[str, Any]) -> None:
        clean = {k: (list(v) if isinstance(v, tuple) else v) for k, v in overrides.items() if k in SETTINGS}
        if clean:
            await self.conn.execute(
                "INSERT INTO guild_settings (guild_id, data, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(guild_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                (guild_id, json.dumps(clean), time.time()),
            )
        else:
            await self.conn.execute("DELETE FROM guild_settings WHERE guild_id = ?", (guild_id,))
        await self.conn.commit()

    # -- jobs -----------------------------------------------------------------------

    async def add_job(self, record: JobRecord, content: bytes, style: bytes, *, ttl: float) -> None:
        """Insert the job and its inputs in one transaction so neither exists without the other."""
        values = [getattr(record, c) for c in _JOB_COLUMNS]
        values[_JOB_COLUMNS.index("options")] = json.dumps(record.options)
        await self.conn.execute(
            f"INSERT INTO jobs ({', '.join(_JOB_COLUMNS)}) VALUES ({', '.join('?' * len(_JOB_COLUMNS))})",
            values,
        )
        await self.conn.execute(
            "INSERT OR REPLACE INTO inputs (job_id, content, style, expires_at) VALUES (?, ?, ?, ?)",
            (record.job_id, content, style, record.created_at + ttl),
        )
        await self.conn.commit()

    async def update_job(self, job_id: str, **changes: Any) -> None:
        bad = set(changes) - set(_JOB_COLUMNS)
        if bad:
            raise ValueError(f"unknown job columns {sorted(bad)}")
        if "options" in changes:
            changes["options"] = json.dumps(changes["options"])
        sets = ", ".join(f"{k} = ?" for k in changes)
        await self.conn.execute(f"UPDATE jobs SET {sets} WHERE job_id = ?", (*changes.values(), job_id))
        await self.conn.commit()

    async def delete_job(self, job_id: str) -> None:
        await self.conn.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
        await self.conn.execute("DELETE FROM inputs WHERE job_id = ?", (job_id,))
        await self.conn.commit()

    async def get_job(self, job_id: str) -> JobRecord | None:
        async with self.conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)) as cur:
            row = await cur.fetchone()
        return JobRecord.from_row(row) if row else None

    async def jobs_in(
        self, states: Iterable[str], *, guild_id: int | None = None, owner_id: int | None = None
    ) -> list[JobRecord]:
        states = tuple(states)
        sql = f"SELECT * FROM jobs WHERE state IN ({', '.join('?' * len(states))})"
        args: list[Any] = list(states)
        if guild_id is not None:
            sql += " AND guild_id = ?"
            args.append(guild_id)
        if owner_id is not None:
            sql += " AND owner_id = ?"
            args.append(owner_id)
        async with self.conn.execute(sql + " ORDER BY created_at", args) as cur:
            return [JobRecord.from_row(r) for r in await cur.fetchall()]

    async def last_job_time(self, guild_id: int | None, owner_id: int) -> float | None:
        async with self.conn.execute(
            "SELECT MAX(created_at) AS t FROM jobs WHERE guild_id IS ? AND owner_id = ?", (guild_id, owner_id)
        ) as cur:
            row = await cur.fetchone()
        return row["t"] if row else None

    async def count_states(self) -> dict[str, int]:
        async with self.conn.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state") as cur:
            return {r["state"]: r["n"] for r in await cur.fetchall()}

    # -- inputs ---------------------------------------------------------------------

    async def get_inputs(
        self, job_id: str, *, now: float | None = None, include_expired: bool = False
    ) -> tuple[bytes, bytes] | None:
        """The stored (content, style); expired ones only for recovery of unfinished jobs."""
        now = float("-inf") if include_expired else (time.time() if now is None else now)
        async with self.conn.execute(
            "SELECT content, style FROM inputs WHERE job_id = ? AND expires_at > ?", (job_id, now)
        ) as cur:
            row = await cur.fetchone()
        return (bytes(row["content"]), bytes(row["style"])) if row else None

    async def purge_expired(self, *, now: float | None = None) -> int:
        """Drop inputs past their TTL, except those of jobs that still have to run."""
        now = time.time() if now is None else now
        cur = await self.conn.execute(
            "DELETE FROM inputs WHERE expires_at <= ? AND job_id NOT IN "
            "(SELECT job_id FROM jobs WHERE state IN ('queued', 'running'))",
            (now,),
        )
        await self.conn.commit()
        return cur.rowcount
