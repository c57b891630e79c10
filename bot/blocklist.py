"""Who the bot refuses outright: the operator's lists from the environment (STYLEBOT_BLOCKED_USERS,
STYLEBOT_BLOCKED_GUILDS) plus the members and servers blocked with /stylebot operator block.

The stored blocks live in the database so they survive restarts, and are mirrored here in memory
so that every request is checked without a query, before anything is downloaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from bot.db import Block, Database

Kind = Literal["user", "guild"]
KINDS: tuple[Kind, ...] = ("user", "guild")


@dataclass(frozen=True)
class Entry:
    """One blocked member or server as operators see it; `stored` False: from the environment."""

    kind: Kind
    target_id: int
    stored: bool
    reason: str | None = None


class Blocklist:
    def __init__(self, users: Iterable[int] = (), guilds: Iterable[int] = ()) -> None:
        self._configured: dict[str, frozenset[int]] = {"user": frozenset(users), "guild": frozenset(guilds)}
        self._stored: dict[str, dict[int, Block]] = {kind: {} for kind in KINDS}

    async def load(self, db: Database) -> None:
        for block in await db.blocks():
            self._stored[block.kind][block.target_id] = block

    def blocked(self, kind: Kind, target_id: int | None) -> bool:
        return target_id is not None and (target_id in self._configured[kind] or target_id in self._stored[kind])

    def configured(self, kind: Kind, target_id: int) -> bool:
        """Blocked by the environment: only the operator's configuration can lift it."""
        return target_id in self._configured[kind]

    async def block(self, db: Database, block: Block) -> None:
        await db.add_block(block)
        self._stored[block.kind][block.target_id] = block

    async def unblock(self, db: Database, kind: Kind, target_id: int) -> bool:
        """Lift a stored block; False if there was none."""
        removed = await db.remove_block(kind, target_id)
        return self._stored[kind].pop(target_id, None) is not None or removed

    def entries(self) -> list[Entry]:
        out = [Entry(kind, i, False) for kind in KINDS for i in sorted(self._configured[kind])]
        out += [Entry(b.kind, b.target_id, True, b.reason) for kind in KINDS for b in self._stored[kind].values()]  # type: ignore[arg-type]
        return out
