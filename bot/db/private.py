"""Stored inputs are strangers' images, so the data directory and every database file belong to
the bot's user alone (0700 / 0600), whatever the process umask.

Modes are given explicitly when a path is created (`os.open`/`mkdir` with a mode) rather than by
changing the umask, which is process-wide and would race with threads creating other files.
SQLite's unix VFS creates a database's -wal, -shm and -journal files with the database file's own
permissions (os_unix.c, `findCreateFileMode`), so making the main file 0600 before SQLite opens it
covers them; existing files from older versions are tightened on every start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create `path` (and parents) as 0700, or tighten it when it is ours and not a shared directory."""
    if not path.exists():
        path.mkdir(mode=DIR_MODE, parents=True)
        os.chmod(path, DIR_MODE)  # mkdir's mode is also masked; be exact
        return
    st = path.stat()
    if stat.S_IMODE(st.st_mode) & 0o077 == 0:
        return
    if st.st_uid != os.getuid() or st.st_mode & stat.S_ISVTX:
        # e.g. STYLEBOT_DATA_DIR=/tmp: never change a directory others rely on
        log.warning("data directory %s is readable by other users; use a directory of its own", path)
        return
    os.chmod(path, DIR_MODE)
    log.info("made data directory %s private (mode 0700)", path)


def private_file(path: Path, *, create: bool = False) -> None:
    """Make an existing file 0600; with `create`, first create it empty with that mode if missing."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    with contextlib.suppress(FileNotFoundError):
        if stat.S_IMODE(path.stat().st_mode) != FILE_MODE:
            os.chmod(path, FILE_MODE)


def database_files(db_path: Path) -> list[Path]:
    """The database and the files SQLite keeps beside it (write-ahead log, shared memory, journal)."""
    return [db_path] + [db_path.with_name(db_path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]
