"""The database: operations are atomic even when coroutines interleave, old databases are upgraded
(backed up first) without losing data, files are private, and stored inputs stay within their caps."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import time
from contextlib import closing
from pathlib import Path

import pytest

from bot.db import Database, JobRecord, migrations
from bot.db.database import PURGE_BATCH
from bot.guild_settings import GuildSettings

# The schema exactly as the first release created it (no version number), kept here verbatim so the
# upgrade path is tested against what operators really have on disk.
FIRST_RELEASE_SCHEMA = """
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


def job(job_id: str, owner: int = 100, *, state: str = "queued", created: float | None = None) -> JobRecord:
    return JobRecord(
        job_id, 1, 10, owner, state, "slash", {"size": 64}, 8_000_000, time.time() if created is None else created
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
async def db(tmp_path: Path):
    database = Database(tmp_path / "data" / "stylebot.sqlite3")
    await database.open()
    yield database
    await database.close()


async def test_jobs_inputs_and_ttl(db: Database) -> None:
    now = time.time()
    rec, done = job("aaaaaa000001", created=now - 100), job("aaaaaa000002", created=now - 100)
    await db.add_job(rec, b"content", b"style", ttl=50)
    await db.add_job(done, b"c2", b"s2", ttl=50)
    await db.update_job(done.job_id, state="done")
    await db.update_job(rec.job_id, message_id=555, state="running")
    got = await db.get_job(rec.job_id)
    assert got is not None and got.message_id == 555 and got.options == {"size": 64}
    assert [r.job_id for r in await db.jobs_in(["running"], guild_id=1, owner_id=100)] == [rec.job_id]
    assert await db.last_job_time(1, 100) == pytest.approx(now - 100)
    # Both inputs are past their TTL: the finished job's go, the unfinished job's stay for recovery.
    assert await db.get_inputs(done.job_id) is None
    assert await db.purge_expired() == 1
    assert await db.get_inputs(rec.job_id, include_expired=True) == (b"content", b"style")
    await db.save_guild_overrides(1, {"max_size": 300, "allowed_channels": (5,)})
    s = await db.guild_settings(1, GuildSettings())
    assert s.max_size == 300 and s.allowed_channels == (5,)
    assert (await db.guild_settings(2, GuildSettings())).max_size == GuildSettings().max_size
    await db.save_guild_overrides(1, {})
    assert await db.guild_overrides(1) == {}


async def test_the_purge_works_through_any_number_of_jobs_in_small_steps(db: Database) -> None:
    old = time.time() - 3600
    for n in range(3 * PURGE_BATCH + 1):
        await db.add_job(job(f"expire{n:06d}", created=old), b"c", b"s", ttl=60)
        await db.update_job(f"expire{n:06d}", state="done")
    await db.add_job(job("waiting00001", created=old), b"c", b"s", ttl=60)
    assert await db.purge_expired() == 3 * PURGE_BATCH + 1
    assert await db.inputs_bytes() == 2  # only the queued job's


async def test_finished_job_rows_are_kept_only_for_the_job_history(tmp_path: Path) -> None:
    day = 86400.0
    database = Database(tmp_path / "h.sqlite3", job_history=7 * day)
    await database.open()
    try:
        now = time.time()
        for job_id, state, age in (
            ("old000000001", "done", 8),
            ("old000000002", "failed", 9),
            ("new000000001", "done", 2),
            ("run000000001", "queued", 30),  # an accepted job is never forgotten, however old
        ):
            await database.add_job(job(job_id, created=now - age * day), b"c", b"s", ttl=60)
            if state != "queued":
                await database.update_job(job_id, state=state)
                await database.conn.execute(
                    "UPDATE jobs SET finished_at = ? WHERE job_id = ?", (now - age * day, job_id)
                )
        await database.conn.commit()
        await database.purge_expired(now=now)
        kept = {r.job_id for r in await database.jobs_in(["queued", "running", "done", "failed", "cancelled"])}
        assert kept == {"new000000001", "run000000001"}
        assert await database.get_inputs("old000000001", include_expired=True) is None
    finally:
        await database.close()


# -- transactions ---------------------------------------------------------------------------


async def fail_inserts_of(db: Database, job_id: str) -> None:
    """A fault between add_job's two INSERTs: the inputs INSERT of this one job aborts."""
    async with db.transaction() as conn:
        await conn.execute(
            f"CREATE TEMP TRIGGER fail_{job_id} BEFORE INSERT ON inputs WHEN NEW.job_id = '{job_id}' "
            "BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
        )


async def test_a_fault_between_the_two_inserts_leaves_neither_row(db: Database) -> None:
    await fail_inserts_of(db, "badbad000001")
    with pytest.raises(sqlite3.DatabaseError, match="injected fault"):
        await db.add_job(job("badbad000001"), b"c", b"s", ttl=60)
    assert await db.get_job("badbad000001") is None
    assert await db.get_inputs("badbad000001") is None
    assert await db.jobs_in(["queued"]) == []


async def test_interleaved_operations_keep_each_other_atomic(db: Database) -> None:
    """Many coroutines on the one connection: each failing add_job must vanish entirely, each other
    operation must land whole, however their statements were scheduled."""
    bad = [f"badbad{i:06d}" for i in range(12)]
    for job_id in bad:
        await fail_inserts_of(db, job_id)
    await db.add_job(job("update000001"), b"c", b"s", ttl=60)

    async def add_bad(job_id: str) -> None:
        with pytest.raises(sqlite3.DatabaseError, match="injected fault"):
            await db.add_job(job(job_id), b"c", b"s", ttl=60)

    ops = []
    for i, job_id in enumerate(bad):
        ops += [
            add_bad(job_id),
            db.add_job(job(f"good{i:08d}", owner=200 + i), b"content", b"style", ttl=60),
            db.update_job("update000001", message_id=i),
            db.jobs_in(["queued"]),
        ]
    await asyncio.gather(*ops)
    for job_id in bad:
        assert await db.get_job(job_id) is None and await db.get_inputs(job_id) is None
    for i in range(len(bad)):
        assert (await db.get_job(f"good{i:08d}")) is not None
        assert await db.get_inputs(f"good{i:08d}") == (b"content", b"style")


async def test_a_fault_while_deleting_keeps_the_job_whole(db: Database) -> None:
    await db.add_job(job("keepme000001"), b"c", b"s", ttl=60)
    async with db.transaction() as conn:
        await conn.execute(
            "CREATE TEMP TRIGGER keep BEFORE DELETE ON inputs BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
        )
    with pytest.raises(sqlite3.DatabaseError, match="injected fault"):
        await db.delete_job("keepme000001")
    assert await db.get_job("keepme000001") is not None
    assert await db.get_inputs("keepme000001") == (b"c", b"s")


async def test_failed_and_cancelled_jobs_drop_their_inputs_at_once(db: Database) -> None:
    for job_id in ("failed000001", "cancel000001", "done00000001"):
        await db.add_job(job(job_id), b"c", b"s", ttl=3600)
    await db.update_job("failed000001", state="failed", error="boom")
    await db.update_job("cancel000001", state="cancelled")
    await db.update_job("done00000001", state="done")
    assert await db.get_inputs("failed000001") is None and await db.get_inputs("cancel000001") is None
    assert await db.get_inputs("done00000001") == (b"c", b"s")  # its buttons can still re-run it
    assert (await db.get_job("failed000001")).error == "boom"  # type: ignore[union-attr]


# -- storage caps ---------------------------------------------------------------------------


async def test_caps_evict_the_oldest_finished_inputs_never_unfinished_ones(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite3", inputs_max_bytes=250, inputs_max_bytes_per_member=100)
    await db.open()
    try:
        t0 = time.time()
        content, style = b"c" * 20, b"s" * 10  # 30 bytes per job

        async def add(job_id: str, owner: int, at: float, *, finish: bool = True) -> None:
            await db.add_job(job(job_id, owner, created=t0 + at), content, style, ttl=3600)
            if finish:
                await db.update_job(job_id, state="done")

        async def kept(*job_ids: str) -> list[str]:
            return [j for j in job_ids if await db.get_inputs(j) is not None]

        for n in range(3):
            await add(f"alice{n:07d}", 1, n)
        await add("alice0000003", 1, 3, finish=False)  # 120 bytes > 100: alice's oldest finished one goes
        assert await kept("alice0000000", "alice0000001", "alice0000002", "alice0000003") == [
            "alice0000001",
            "alice0000002",
            "alice0000003",
        ]
        assert await db.inputs_bytes(1) == 90
        for n in range(4):  # 120 bytes, all still queued: needed to recover after a restart, so kept
            await add(f"bob{n:09d}", 2, 10 + n, finish=False)
        assert await db.inputs_bytes(2) == 120 and await db.inputs_bytes() == 210
        await add("carol0000000", 3, 20)
        await add("carol0000001", 3, 21)  # 270 bytes > 250: the oldest finished job of anyone goes
        assert await kept("alice0000001", "alice0000002", "carol0000000", "carol0000001") == [
            "alice0000002",
            "carol0000000",
            "carol0000001",
        ]
        assert await db.inputs_bytes() == 240
        # a lower cap applies at the next purge: every finished job's inputs go, unfinished ones stay
        db.inputs_max_bytes = 0
        assert await db.purge_expired() == 0  # none was past its TTL
        assert await db.inputs_bytes() == 150  # bob's four queued jobs and alice's queued one
        assert await kept("alice0000003", "bob000000000", "bob000000003") == [
            "alice0000003",
            "bob000000000",
            "bob000000003",
        ]
    finally:
        await db.close()


async def test_a_lowered_cap_evicts_any_number_of_finished_jobs_and_says_how_many(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(tmp_path / "db.sqlite3", inputs_max_bytes_per_member=10**6)
    await db.open()
    try:
        count = 3 * PURGE_BATCH + 1  # more than one purge step
        for n in range(count):
            await db.add_job(job(f"done{n:08d}", 1), b"c" * 20, b"s" * 10, ttl=3600)
            await db.update_job(f"done{n:08d}", state="done")
        assert "to stay under the storage caps" not in caplog.text  # nothing was evicted on the way
        db.inputs_max_bytes_per_member = 0
        with caplog.at_level("INFO", logger="bot.db.database"):
            await db.purge_expired()
        assert await db.inputs_bytes() == 0
        assert f"deleted the stored inputs of {count} older finished job(s) to stay under the storage caps" in (
            caplog.text
        )
    finally:
        await db.close()


# -- private files --------------------------------------------------------------------------


async def test_the_data_directory_and_database_files_are_private(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # the most permissive umask: the modes must not depend on it
    try:
        data = tmp_path / "data"
        db = Database(data / "stylebot.sqlite3")
        await db.open()
        try:
            await db.add_job(job("priv00000001"), b"c", b"s", ttl=60)  # the write-ahead log now exists
            files = [data / "stylebot.sqlite3", data / "stylebot.sqlite3-wal", data / "stylebot.sqlite3-shm"]
            assert mode(data) == 0o700
            assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
        finally:
            await db.close()
        # a database and directory an older version left world-readable are tightened on open
        os.chmod(data, 0o755)
        os.chmod(data / "stylebot.sqlite3", 0o644)
        db = Database(data / "stylebot.sqlite3")
        await db.open()
        await db.close()
        assert mode(data) == 0o700 and mode(data / "stylebot.sqlite3") == 0o600
    finally:
        os.umask(old_umask)


# -- migrations -----------------------------------------------------------------------------


def make_first_release_database(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path)) as old:
        old.executescript(FIRST_RELEASE_SCHEMA)
        old.execute("PRAGMA journal_mode=WAL")
        old.execute("INSERT INTO guild_settings VALUES (1, '{\"max_size\": 300}', 0)")
        rows = [
            ("old000000001", "done", b"done-content"),
            ("old000000002", "queued", b"queued-content"),
            ("old000000003", "failed", b"failed-content"),
        ]
        for n, (job_id, state, content) in enumerate(rows):
            old.execute(
                "INSERT INTO jobs (job_id, guild_id, channel_id, owner_id, state, source, options, filesize_limit, "
                "created_at) VALUES (?, 1, 10, 100, ?, 'slash', '{\"size\": 64}', 8000000, ?)",
                (job_id, state, 1000.0 + n),
            )
            old.execute("INSERT INTO inputs VALUES (?, ?, ?, ?)", (job_id, content, b"style", 1e12))
        old.commit()


def schema_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


async def test_a_first_release_database_is_upgraded_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "data" / "stylebot.sqlite3"
    make_first_release_database(path)
    assert schema_version(path) == 0
    db = Database(path)
    await db.open()
    try:
        assert schema_version(path) == migrations.latest()
        assert (await db.get_job("old000000001")).state == "done"  # type: ignore[union-attr]
        assert await db.get_inputs("old000000001") == (b"done-content", b"style")
        assert await db.get_inputs("old000000002", include_expired=True) == (b"queued-content", b"style")
        assert await db.guild_overrides(1) == {"max_size": 300}
        # the new schema works on the old rows: a new job, and the purge of useless inputs
        await db.add_job(job("new000000001"), b"c", b"s", ttl=60)
        await db.purge_expired()
        assert await db.get_inputs("old000000003") is None  # the failed job's inputs
    finally:
        await db.close()
    backup = migrations.backup_path(path, 1)
    assert backup.is_file() and mode(backup) == 0o600
    with closing(sqlite3.connect(backup)) as copy:  # the backup is the database as it was
        assert copy.execute("PRAGMA user_version").fetchone()[0] == 0
        assert copy.execute("SELECT COUNT(*) FROM inputs").fetchone()[0] == 3
        assert copy.execute("SELECT COUNT(*) FROM jobs WHERE job_id = 'new000000001'").fetchone()[0] == 0
    # the backup goes when every image in it has passed its TTL, as the images in the database do
    db = Database(path)
    await db.open()
    try:
        await db.purge_expired(now=1e12 - 1)
        assert backup.is_file()
        await db.purge_expired(now=1e12)
        assert not backup.exists()
    finally:
        await db.close()
    # a current database is opened as it is: no migration, no new backup
    db = Database(path)
    await db.open()
    await db.close()
    assert not backup.exists() and schema_version(path) == migrations.latest()


async def test_a_new_database_gets_the_latest_schema_without_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "stylebot.sqlite3"
    db = Database(path)
    await db.open()
    await db.close()
    assert schema_version(path) == migrations.latest()
    assert list(tmp_path.glob("*.bak")) == []


async def test_a_failing_migration_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "stylebot.sqlite3"
    make_first_release_database(path)

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x INTEGER)")
        conn.execute("DELETE FROM inputs")
        raise RuntimeError("migration bug")

    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, broken))
    with pytest.raises(RuntimeError, match="migration bug"):
        await Database(path).open()
    # the migrations before the broken one were applied and kept; the broken one left no trace
    assert schema_version(path) == len(migrations.MIGRATIONS) - 1
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'half_done'").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM inputs").fetchone()[0] == 3
    assert migrations.backup_path(path, 1).is_file()


async def test_a_database_from_a_newer_bot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "stylebot.sqlite3"
    db = Database(path)
    await db.open()
    await db.close()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {migrations.latest() + 1}")
    with pytest.raises(RuntimeError, match="newer than this bot"):
        await Database(path).open()
