"""A server's own styles: images its admins add, which its members then pick by name like a gallery
painting. Names are compared folded (case, accents and punctuation ignored, as the gallery compares
titles), so "Our Logo" and "our-logo" are one style. Each server has a cap, checked in the same
transaction as the insert, so two admins adding at once cannot pass it together.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiosqlite

from bot.db.database import Database
from stylecore.gallery import fold_name


class StyleNameTaken(ValueError):
    """This server already has a style of that name."""


class TooManyStyles(ValueError):
    """The server is at its cap."""

    def __init__(self, cap: int) -> None:
        super().__init__(f"at most {cap} styles per server")
        self.cap = cap


@dataclass(frozen=True)
class ServerStyle:
    """One style as stored; `image` is the bot's own JPEG copy of what the admin uploaded."""

    guild_id: int
    name: str
    image: bytes
    added_by: int | None
    created_at: float

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> ServerStyle:
        return cls(row["guild_id"], row["name"], bytes(row["image"]), row["added_by"], row["created_at"])


class ServerStyles:
    """The `server_styles` table of one database; `cap` styles per server at most."""

    def __init__(self, db: Database, *, cap: int) -> None:
        self.db = db
        self.cap = cap

    async def add(self, guild_id: int, name: str, image: bytes, added_by: int) -> ServerStyle:
        """Store a new style; StyleNameTaken or TooManyStyles when it cannot be added."""
        style = ServerStyle(guild_id, " ".join(name.split()), image, added_by, time.time())
        async with self.db.transaction() as db:
            cur = await db.execute("SELECT COUNT(*) FROM server_styles WHERE guild_id = ?", (guild_id,))
            (count,) = await cur.fetchone() or (0,)
            taken = await db.execute(
                "SELECT 1 FROM server_styles WHERE guild_id = ? AND name_key = ?", (guild_id, fold_name(name))
            )
            if await taken.fetchone() is not None:
                raise StyleNameTaken(name)
            if count >= self.cap:
                raise TooManyStyles(self.cap)
            await db.execute(
                "INSERT INTO server_styles (guild_id, name, name_key, image, added_by, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (guild_id, style.name, fold_name(name), image, added_by, style.created_at),
            )
        return style

    async def remove(self, guild_id: int, name: str) -> bool:
        async with self.db.transaction() as db:
            cur = await db.execute(
                "DELETE FROM server_styles WHERE guild_id = ? AND name_key = ?", (guild_id, fold_name(name))
            )
            return cur.rowcount > 0

    async def get(self, guild_id: int, name: str) -> ServerStyle | None:
        row = await self.db.fetch_one(
            "SELECT * FROM server_styles WHERE guild_id = ? AND name_key = ?", (guild_id, fold_name(name))
        )
        return ServerStyle.from_row(row) if row else None

    async def names(self, guild_id: int) -> list[str]:
        """The server's style names in the order they were added (what autocomplete offers)."""
        rows = await self.db.fetch_all(
            "SELECT name FROM server_styles WHERE guild_id = ? ORDER BY created_at, name_key", (guild_id,)
        )
        return [row["name"] for row in rows]

    async def all(self, guild_id: int) -> list[ServerStyle]:
        rows = await self.db.fetch_all(
            "SELECT * FROM server_styles WHERE guild_id = ? ORDER BY created_at, name_key", (guild_id,)
        )
        return [ServerStyle.from_row(row) for row in rows]
