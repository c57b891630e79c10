"""The bot's memory across restarts: server settings, every job, and the inputs behind them.

SQLite through aiosqlite so the event loop never blocks on disk. Every job gets a row before it is
queued and its inputs are stored with it, which is what lets a restarted bot re-queue unfinished
work and lets the result buttons start new runs later.

One connection serves every coroutine, and aiosqlite runs its calls one at a time in order, but
an operation of several statements awaits between them: another coroutine's COMMIT could then
commit half of it. So every operation holds `_lock` for its whole transaction (`transaction()`),
and reads take it too, so nobody sees another operation half done.

Inputs are strangers' images, so they are kept no longer than needed: for the TTL at most, never
for jobs that can't be re-run (failed, cancelled), and within two storage caps, the oldest going
first, except those of jobs that still have to run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import aiosqlite

from bot.db.migrations import drop_expired_backups, migrate
from bot.db.private import database_files, private_dir, private_file
from bot.guild_settings import SETTINGS, Ceilings, GuildSettings

log = logging.getLogger(__name__)

# Jobs not over yet: they hold their member's place and keep their inputs. "delivering": the result
# is being posted; a bot that stops then checks Discord for it when it starts again.
ACTIVE_STATES: tuple[str, ...] = ("queued", "running", "delivering")
# Jobs that ended without result buttons: nothing can ever re-run them from their inputs.
# "removed": taken down by the operator (its result message deleted).
NO_RERUN_STATES: tuple[str, ...] = ("failed", "cancelled", "removed")
# Past this the write-ahead log is truncated after a checkpoint, instead of staying as large as the
# biggest transaction ever written (one job's inputs can be 40 MB).
WAL_SIZE_LIMIT = 64 * 2**20
# Deleted images are overwritten (secure_delete), which writes every freed page to the write-ahead
# log: the purge deletes this many jobs' inputs per transaction so the log stays small.
PURGE_BATCH = 8


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
    # What its images were, for people: {"content": file name, "styles": [{"name", "kind", "weight"}]}
    inputs_info: dict[str, Any] | None = None
    deleted_at: float | None = None  # when its owner deleted the result and its images

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> JobRecord:
        data = dict(row)
        for column in _JSON_COLUMNS:
            data[column] = None if data[column] is None else json.loads(data[column])
        return cls(**data)


def pack_images(images: Sequence[bytes]) -> bytes:
    """Several images in one BLOB: each one's length (8 bytes, big-endian), then its bytes."""
    return b"".join(len(image).to_bytes(8, "big") + image for image in images)


def unpack_images(blob: bytes) -> tuple[bytes, ...]:
    out, at = [], 0
    while at < len(blob):
        size = int.from_bytes(blob[at : at + 8], "big")
        out.append(bytes(blob[at + 8 : at + 8 + size]))
        at += 8 + size
    return tuple(out)


@dataclass(frozen=True)
class Block:
    """One row of `blocks`: a member ("user") or a server ("guild") the operator refuses."""

    kind: str
    target_id: int
    reason: str | None
    blocked_by: int
    created_at: float


_JOB_COLUMNS = tuple(f.name for f in fields(JobRecord))
_JSON_COLUMNS = ("options", "inputs_info")
_INPUT_BYTES = "length(i.content) + length(i.style) + length(i.more_styles)"
_ACTIVE_SQL = ", ".join(f"'{s}'" for s in ACTIVE_STATES)
_NO_RERUN_SQL = ", ".join(f"'{s}'" for s in NO_RERUN_STATES)


def _eviction_sql(bucket: str, where: str = "") -> str:
    """Delete the oldest inputs of finished jobs while a bucket (one member, or everyone) is over `:cap`.

    Every stored input counts towards its bucket's total, but only those of finished jobs can go;
    a row goes if, after everything older that can go has gone, the bucket is still over the cap.
    The statement starts with DELETE (the WITH is inside its subquery): Python's sqlite3 reports
    `rowcount` only for statements that begin with INSERT, UPDATE, DELETE or REPLACE, and the purge
    counts deleted rows to know when it is done.
    """
    return f"""
        DELETE FROM inputs WHERE job_id IN (
            WITH stored AS (
                SELECT i.job_id, {bucket} AS bucket, j.created_at, j.state IN ({_ACTIVE_SQL}) AS active,
                       {_INPUT_BYTES} AS nbytes
                FROM inputs AS i JOIN jobs AS j ON j.job_id = i.job_id {where}
            ), ranked AS (
                SELECT job_id, created_at, active, nbytes, SUM(nbytes) OVER (PARTITION BY bucket) AS total,
                       SUM(CASE WHEN active THEN 0 ELSE nbytes END) OVER (
                           PARTITION BY bucket ORDER BY created_at, job_id ROWS UNBOUNDED PRECEDING
                       ) AS freed_through
                FROM stored
            )
            SELECT job_id FROM ranked WHERE NOT active AND total - (freed_through - nbytes) > :cap
            ORDER BY created_at LIMIT :limit
        )
    """


_EVICT_MEMBER = _eviction_sql("j.owner_id", "WHERE j.owner_id = :owner")
_EVICT_EVERY_MEMBER = _eviction_sql("j.owner_id")
_EVICT_TOTAL = _eviction_sql("0")
_DELETE_EXPIRED = f"""
    DELETE FROM inputs WHERE job_id IN (
        SELECT job_id FROM inputs WHERE expires_at <= :now
        AND job_id NOT IN (SELECT job_id FROM jobs WHERE state IN ({_ACTIVE_SQL})) LIMIT :limit
    )
"""
_DELETE_USELESS = f"""
    DELETE FROM inputs WHERE job_id IN (
        SELECT job_id FROM inputs
        WHERE job_id NOT IN (SELECT job_id FROM jobs WHERE state NOT IN ({_NO_RERUN_SQL}))
        LIMIT :limit
    )
"""
_DELETE_OLD_JOBS = f"""
    DELETE FROM jobs WHERE job_id IN (
        SELECT job_id FROM jobs WHERE state NOT IN ({_ACTIVE_SQL})
        AND COALESCE(finished_at, created_at) <= :before LIMIT :limit
    )
"""


class Database:
    """One aiosqlite connection; each public method is one transaction (see the module docstring).

    `inputs_max_bytes` caps all stored inputs together, `inputs_max_bytes_per_member` those of one
    member across servers; None means no cap. `job_history` is how long (seconds) the row of a
    finished job is kept: a row names a member, a channel and settings, so it is personal data and
    is not kept for ever (None keeps rows for ever).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        inputs_max_bytes: int | None = None,
        inputs_max_bytes_per_member: int | None = None,
        job_history: float | None = None,
    ) -> None:
        self.path = Path(path)
        self.job_history = job_history
        self.inputs_max_bytes = inputs_max_bytes
        self.inputs_max_bytes_per_member = inputs_max_bytes_per_member
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("Database.open() has not been awaited")
        return self._conn

    async def open(self) -> None:
        """Create or upgrade the database (backing it up first), private to this user."""
        private_dir(self.path.parent)
        private_file(self.path, create=True)  # before SQLite creates it, and its -wal/-shm after it
        backup = await asyncio.to_thread(migrate, self.path)
        if backup is not None:
            log.info("database upgraded; the previous version is kept in %s", backup)
        # isolation_level=None: no implicit transactions, only the explicit ones of `transaction()`
        self._conn = await aiosqlite.connect(self.path, isolation_level=None)
        self._conn.row_factory = aiosqlite.Row
        await self._conn.execute("PRAGMA journal_mode=WAL")
        await self._conn.execute("PRAGMA synchronous=NORMAL")
        await self._conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        await self._conn.execute("PRAGMA secure_delete=ON")  # not every SQLite build has it on by default
        for path in [*database_files(self.path), *self.path.parent.glob(f"{self.path.name}.v*.bak")]:
            private_file(path)  # files made by older versions, before they were private

    async def close(self) -> None:
        if self._conn is not None:
            async with self._lock:
                await self._conn.close()
                self._conn = None

    def abort(self) -> None:
        """Stop the connection's thread without waiting for anyone (a shutdown out of time): its
        thread would otherwise keep the process alive. SQLite's journal keeps the file consistent."""
        if self._conn is not None:
            self._conn.stop()
            self._conn = None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """Statements run on the yielded connection commit together, or not at all if anything raises."""
        async with self._lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                await self.conn.rollback()
                raise
            await self.conn.commit()

    async def fetch_all(self, sql: str, args: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        async with self._lock, self.conn.execute(sql, tuple(args)) as cur:
            return list(await cur.fetchall())

    async def fetch_one(self, sql: str, args: Iterable[Any] = ()) -> aiosqlite.Row | None:
        rows = await self.fetch_all(sql, args)
        return rows[0] if rows else None

    # -- guild settings -------------------------------------------------------------

    async def guild_overrides(self, guild_id: int) -> dict[str, Any]:
        row = await self.fetch_one("SELECT data FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return json.loads(row["data"]) if row else {}

    async def guild_settings(
        self, guild_id: int | None, base: GuildSettings, ceilings: Ceilings | None = None
    ) -> GuildSettings:
        """A server's stored overrides on `base` (within `ceilings`, when given); in DMs `base` itself."""
        if guild_id is None:
            return base
        overrides = await self.guild_overrides(guild_id)
        return ceilings.apply(base, overrides) if ceilings is not None else base.with_overrides(overrides)

    async def save_guild_overrides(self, guild_id: int, overrides: dict[str, Any]) -> None:
        clean = {k: (list(v) if isinstance(v, tuple) else v) for k, v in overrides.items() if k in SETTINGS}
        async with self.transaction() as db:
            if clean:
                await db.execute(
                    "INSERT INTO guild_settings (guild_id, data, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(guild_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
                    (guild_id, json.dumps(clean), time.time()),
                )
            else:
                await db.execute("DELETE FROM guild_settings WHERE guild_id = ?", (guild_id,))

    # -- jobs -----------------------------------------------------------------------

    async def add_job(self, record: JobRecord, content: bytes, style: bytes, *more: bytes, ttl: float) -> None:
        """The job, its inputs (the content and one or more styles) and the evictions that make room
        for them: all or nothing."""
        values = [getattr(record, c) for c in _JOB_COLUMNS]
        for column in _JSON_COLUMNS:
            value = values[_JOB_COLUMNS.index(column)]
            values[_JOB_COLUMNS.index(column)] = None if value is None else json.dumps(value)
        async with self.transaction() as db:
            await db.execute(
                f"INSERT INTO jobs ({', '.join(_JOB_COLUMNS)}) VALUES ({', '.join('?' * len(_JOB_COLUMNS))})",
                values,
            )
            await db.execute(
                "INSERT INTO inputs (job_id, content, style, more_styles, expires_at) VALUES (?, ?, ?, ?, ?)",
                (record.job_id, content, style, pack_images(more), record.created_at + ttl),
            )
            await self._evict(db, owner_id=record.owner_id)

    async def update_job(self, job_id: str, **changes: Any) -> None:
        """Change columns of a job; a job that failed or was cancelled loses its inputs in the same step."""
        bad = set(changes) - set(_JOB_COLUMNS)
        if bad:
            raise ValueError(f"unknown job columns {sorted(bad)}")
        for column in _JSON_COLUMNS:
            if changes.get(column) is not None:
                changes[column] = json.dumps(changes[column])
        sets = ", ".join(f"{k} = ?" for k in changes)
        async with self.transaction() as db:
            await db.execute(f"UPDATE jobs SET {sets} WHERE job_id = ?", (*changes.values(), job_id))
            if changes.get("state") in NO_RERUN_STATES:
                await db.execute("DELETE FROM inputs WHERE job_id = ?", (job_id,))

    async def delete_job(self, job_id: str) -> None:
        async with self.transaction() as db:
            await db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
            await db.execute("DELETE FROM inputs WHERE job_id = ?", (job_id,))

    async def get_job(self, job_id: str) -> JobRecord | None:
        row = await self.fetch_one("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
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
        return [JobRecord.from_row(r) for r in await self.fetch_all(sql + " ORDER BY created_at", args)]

    async def last_job_time(self, guild_id: int | None, owner_id: int) -> float | None:
        row = await self.fetch_one(
            "SELECT MAX(created_at) AS t FROM jobs WHERE guild_id IS ? AND owner_id = ?", (guild_id, owner_id)
        )
        return row["t"] if row else None

    # -- blocks (operator controls) -------------------------------------------------

    async def blocks(self) -> list[Block]:
        rows = await self.fetch_all("SELECT * FROM blocks ORDER BY created_at")
        return [Block(**dict(r)) for r in rows]

    async def add_block(self, block: Block) -> None:
        async with self.transaction() as db:
            await db.execute(
                "INSERT INTO blocks (kind, target_id, reason, blocked_by, created_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(kind, target_id) DO UPDATE SET reason = excluded.reason, "
                "blocked_by = excluded.blocked_by, created_at = excluded.created_at",
                (block.kind, block.target_id, block.reason, block.blocked_by, block.created_at),
            )

    async def remove_block(self, kind: str, target_id: int) -> bool:
        async with self.transaction() as db:
            cur = await db.execute("DELETE FROM blocks WHERE kind = ? AND target_id = ?", (kind, target_id))
            return cur.rowcount > 0

    # -- inputs ---------------------------------------------------------------------

    async def get_inputs(
        self, job_id: str, *, now: float | None = None, include_expired: bool = False
    ) -> tuple[bytes, ...] | None:
        """The stored (content, style, *more styles); expired ones only for recovery of unfinished jobs."""
        now = float("-inf") if include_expired else (time.time() if now is None else now)
        row = await self.fetch_one(
            "SELECT content, style, more_styles FROM inputs WHERE job_id = ? AND expires_at > ?", (job_id, now)
        )
        if row is None:
            return None
        return (bytes(row["content"]), bytes(row["style"]), *unpack_images(bytes(row["more_styles"])))

    async def delete_inputs(self, job_id: str) -> bool:
        """Its owner deleted a result: its images go now, and the row says when (so its buttons can
        tell "deleted" from "expired"). False if nothing was stored any more."""
        async with self.transaction() as db:
            deleted = (await db.execute("DELETE FROM inputs WHERE job_id = ?", (job_id,))).rowcount
            await db.execute("UPDATE jobs SET deleted_at = ? WHERE job_id = ?", (time.time(), job_id))
        return deleted > 0

    async def inputs_bytes(self, owner_id: int | None = None) -> int:
        """Bytes of stored inputs, of one member or of everyone: what the caps are checked against."""
        row = await self.fetch_one(
            f"SELECT COALESCE(SUM({_INPUT_BYTES}), 0) AS n FROM inputs AS i "
            "JOIN jobs AS j ON j.job_id = i.job_id WHERE ? IS NULL OR j.owner_id = ?",
            (owner_id, owner_id),
        )
        return int(row["n"]) if row else 0

    async def purge_expired(self, *, now: float | None = None) -> int:
        """Drop inputs past their TTL, except those of jobs that still have to run; returns how many.

        Also drops inputs nothing can use (of failed, cancelled or deleted jobs), enforces the caps
        for every member, so lowering a cap takes effect without waiting for new jobs, and deletes
        migration backups whose images have all expired. In small transactions (`PURGE_BATCH`), so
        other operations go on meanwhile and the write-ahead log stays small.
        """
        now = time.time() if now is None else now
        expired = await self._delete_in_batches(_DELETE_EXPIRED, {"now": now})
        if self.job_history is not None:
            old = await self._delete_in_batches(_DELETE_OLD_JOBS, {"before": now - self.job_history})
            if old:
                log.info("deleted %d finished job row(s) older than the job history", old)
        useless = await self._delete_in_batches(_DELETE_USELESS, {})
        if useless:
            log.info("deleted the stored inputs of %d failed, cancelled or deleted job(s)", useless)
        evicted = 0
        if self.inputs_max_bytes_per_member is not None:
            evicted += await self._delete_in_batches(_EVICT_EVERY_MEMBER, {"cap": self.inputs_max_bytes_per_member})
        if self.inputs_max_bytes is not None:
            evicted += await self._delete_in_batches(_EVICT_TOTAL, {"cap": self.inputs_max_bytes})
        if evicted:
            log.info("deleted the stored inputs of %d older finished job(s) to stay under the storage caps", evicted)
        for backup in await asyncio.to_thread(drop_expired_backups, self.path, now):
            log.info("deleted %s: every image in it had passed its TTL", backup)
        return expired

    async def _delete_in_batches(self, sql: str, params: dict[str, Any]) -> int:
        total = 0
        while True:
            async with self.transaction() as db:
                deleted = (await db.execute(sql, {**params, "limit": PURGE_BATCH})).rowcount
            total += deleted
            if deleted < PURGE_BATCH:
                return total

    async def _evict(self, db: aiosqlite.Connection, *, owner_id: int) -> None:
        """Make room for a new job of `owner_id`, inside the caller's transaction: that member's cap,
        then the total."""
        evicted = 0
        if self.inputs_max_bytes_per_member is not None:
            args = {"owner": owner_id, "cap": self.inputs_max_bytes_per_member, "limit": -1}
            evicted += (await db.execute(_EVICT_MEMBER, args)).rowcount
        if self.inputs_max_bytes is not None:
            evicted += (await db.execute(_EVICT_TOTAL, {"cap": self.inputs_max_bytes, "limit": -1})).rowcount
        if evicted:
            log.info("deleted the stored inputs of %d older finished job(s) to stay under the storage caps", evicted)
