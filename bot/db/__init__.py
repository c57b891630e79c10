"""The bot's SQLite database: `Database` (one transaction per operation), `JobRecord` (a job's row),
and the numbered schema migrations it applies on open (`bot.db.migrations`)."""

from bot.db.database import ACTIVE_STATES, NO_RERUN_STATES, Block, Database, JobRecord

__all__ = ["ACTIVE_STATES", "NO_RERUN_STATES", "Block", "Database", "JobRecord"]
