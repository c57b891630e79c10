"""Numbered schema migrations, so an operator's database survives every upgrade of the bot.

`PRAGMA user_version` holds the number of the last migration applied (SQLite keeps it in the
database header for the application's own use). Migration N is `MIGRATIONS[N - 1]`: a function
run inside one transaction together with the version bump, so it applies entirely or not at all.
Before the first pending migration runs, the whole database is copied beside it with SQLite's
online backup API. A schema change is always a new migration appended here, never an edit of an
old one: databases in the field have already run the old ones.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from bot.db.private import private_file

log = logging.getLogger(__name__)

Migration = Callable[[sqlite3.Connection], None]


def _initial_schema(db: sqlite3.Connection) -> None:
    """The schema of the first release (which had no version number)."""
    for statement in (
        "CREATE TABLE guild_settings (guild_id INTEGER PRIMARY KEY, data TEXT NOT NULL, updated_at REAL NOT NULL)",
        """CREATE TABLE jobs (
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
        )""",
        "CREATE INDEX jobs_state ON jobs(state)",
        "CREATE INDEX jobs_owner ON jobs(guild_id, owner_id, created_at)",
        """CREATE TABLE inputs (
            job_id     TEXT PRIMARY KEY,
            content    BLOB NOT NULL,
            style      BLOB NOT NULL,
            expires_at REAL NOT NULL
        )""",
        "CREATE INDEX inputs_expiry ON inputs(expires_at)",
    ):
        db.execute(statement)


def _member_index(db: sqlite3.Connection) -> None:
    """The per-member storage cap sums one member's stored inputs across servers on every new job;
    the first schema indexed jobs by server first, so that meant scanning every job ever run.

    (The sizes themselves need no column: SQLite answers `length()` of a BLOB from the record
    header without reading the value.)
    """
    db.execute("CREATE INDEX jobs_member ON jobs(owner_id, created_at)")


def _blocks(db: sqlite3.Connection) -> None:
    """Members and servers the operator has blocked with /stylebot operator block (the environment's
    lists are not stored: they come with every start)."""
    db.execute(
        """CREATE TABLE blocks (
            kind       TEXT NOT NULL CHECK (kind IN ('user', 'guild')),
            target_id  INTEGER NOT NULL,
            reason     TEXT,
            blocked_by INTEGER NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (kind, target_id)
        )"""
    )


def _strength_range(db: sqlite3.Connection) -> None:
    """Strength is offered from 0.1 to 5 (it was 0 to 10). Stored server defaults and the options of
    stored jobs are brought into the new range, so an upgraded bot neither refuses a server's own
    default nor a job it had accepted, nor the More/Less/Re-run buttons of an older result.

    The bounds are written out rather than read from the option's declaration: a migration records
    what changed at one release and must do the same thing whatever later releases declare.
    """
    low, high = 0.1, 5.0

    def clamp(value: object) -> object:
        return min(high, max(low, float(value))) if isinstance(value, (int, float)) else value

    for guild_id, data in db.execute("SELECT guild_id, data FROM guild_settings").fetchall():
        settings = json.loads(data)
        if "default_strength" in settings and clamp(settings["default_strength"]) != settings["default_strength"]:
            settings["default_strength"] = clamp(settings["default_strength"])
            db.execute("UPDATE guild_settings SET data = ? WHERE guild_id = ?", (json.dumps(settings), guild_id))
    for job_id, options in db.execute("SELECT job_id, options FROM jobs").fetchall():
        opts = json.loads(options)
        if "strength" in opts and clamp(opts["strength"]) != opts["strength"]:
            opts["strength"] = clamp(opts["strength"])
            db.execute("UPDATE jobs SET options = ? WHERE job_id = ?", (json.dumps(opts), job_id))


def _server_styles(db: sqlite3.Connection) -> None:
    """A server's own styles, which its admins add and its members pick by name like a gallery
    painting. `name_key` is the name folded for lookup (case and accents ignored), unique per
    server; `image` is the bot's own JPEG copy of the upload, not the upload itself."""
    db.execute(
        """CREATE TABLE server_styles (
            guild_id   INTEGER NOT NULL,
            name       TEXT NOT NULL,
            name_key   TEXT NOT NULL,
            image      BLOB NOT NULL,
            added_by   INTEGER,
            created_at REAL NOT NULL,
            PRIMARY KEY (guild_id, name_key)
        )"""
    )


def _blends_and_deletions(db: sqlite3.Connection) -> None:
    """A job may blend up to three styles: the second and third are kept, packed, in `more_styles`
    beside the first. `inputs_info` describes a job's images for people (the content's file name,
    each style's name and weight) so its result can say what was blended and carry alt text;
    `deleted_at` is when its owner deleted the result and its images."""
    db.execute("ALTER TABLE inputs ADD COLUMN more_styles BLOB NOT NULL DEFAULT x''")
    db.execute("ALTER TABLE jobs ADD COLUMN inputs_info TEXT")
    db.execute("ALTER TABLE jobs ADD COLUMN deleted_at REAL")


MIGRATIONS: tuple[Migration, ...] = (
    _initial_schema,
    _member_index,
    _blocks,
    _strength_range,
    _server_styles,
    _blends_and_deletions,
)


def latest() -> int:
    return len(MIGRATIONS)


def current_version(db: sqlite3.Connection) -> int:
    """The schema version of an open database; the first release's unnumbered schema counts as 1."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == 0 and db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").fetchone():
        return 1
    return int(version)


def backup_path(db_path: Path, version: int) -> Path:
    return db_path.with_name(f"{db_path.name}.v{version}.bak")


def migrate(db_path: Path) -> Path | None:
    """Bring the database at `db_path` up to the latest schema; return the backup made first, if any.

    Blocking (sqlite3 and file copies): run it in a thread. A database from a newer bot is refused
    rather than written to, since this code cannot know what the newer schema expects.
    """
    with closing(sqlite3.connect(db_path, isolation_level=None)) as db:
        found = current_version(db)
        if found > latest():
            raise RuntimeError(
                f"{db_path} has schema version {found}, newer than this bot's {latest()}; "
                f"run the newer bot, or restore a backup ({db_path.name}.vN.bak)"
            )
        if found == latest():
            return None
        backup = _backup(db, backup_path(db_path, found)) if found > 0 else None
        for number in range(found + 1, latest() + 1):
            _apply(db, number)
        return backup


def _apply(db: sqlite3.Connection, number: int) -> None:
    log.info("migrating the database to schema version %d (%s)", number, MIGRATIONS[number - 1].__name__)
    db.execute("BEGIN IMMEDIATE")
    try:
        MIGRATIONS[number - 1](db)
        db.execute(f"PRAGMA user_version = {number}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _backup(db: sqlite3.Connection, target: Path) -> Path:
    """A consistent copy of the whole database (SQLite's online backup API), private like the original."""
    target.unlink(missing_ok=True)  # a backup left by an earlier, interrupted attempt at the same upgrade
    private_file(target, create=True)
    with closing(sqlite3.connect(target)) as copy:
        db.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, whatever the original used
    private_file(target)
    log.info("backed up the database to %s before migrating it", target)
    return target


def drop_expired_backups(db_path: Path, now: float) -> list[Path]:
    """Delete the backups whose stored inputs have all passed their TTL; return them.

    A backup holds strangers' images like the database does, so it must not keep them longer than
    the database would have. One without any inputs holds only what the database keeps anyway.
    """
    dropped = []
    for backup in sorted(db_path.parent.glob(f"{db_path.name}.v*.bak")):
        with closing(sqlite3.connect(f"{backup.resolve().as_uri()}?mode=ro", uri=True)) as copy:
            (last_expiry,) = copy.execute("SELECT MAX(expires_at) FROM inputs").fetchone()
        if last_expiry is not None and last_expiry <= now:
            backup.unlink()
            dropped.append(backup)
    return dropped
