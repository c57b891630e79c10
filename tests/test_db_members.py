"""What the database keeps for members' features: blends of several styles, deleted results, server
styles with their cap, forgetting a member or a server, and the upgrade that clamps strengths."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from bot.db import Database, JobRecord, migrations
from bot.db.forget import Forgotten, forget_member, forget_server
from bot.db.server_styles import ServerStyles, StyleNameTaken, TooManyStyles


def job(job_id: str, owner: int = 100, guild: int | None = 1, *, state: str = "done", **extra: object) -> JobRecord:
    return JobRecord(job_id, guild, 10, owner, state, "slash", {"size": 64}, 8_000_000, time.time(), **extra)  # type: ignore[arg-type]


@pytest.fixture
async def db(tmp_path: Path):
    database = Database(tmp_path / "stylebot.sqlite3")
    await database.open()
    yield database
    await database.close()


async def test_a_blend_keeps_every_style_and_each_counts_against_the_caps(tmp_path: Path) -> None:
    db = Database(tmp_path / "stylebot.sqlite3", inputs_max_bytes_per_member=100)
    await db.open()
    try:
        info = {"content": "cat.png", "styles": [{"name": "a.png", "kind": "upload", "weight": 2.0}]}
        await db.add_job(job("blend00000001", inputs_info=info), b"c" * 10, b"s1" * 5, b"s2" * 10, b"s3", ttl=60)
        assert await db.get_inputs("blend00000001") == (b"c" * 10, b"s1" * 5, b"s2" * 10, b"s3")
        assert await db.inputs_bytes(100) == 10 + 10 + (8 + 20) + (8 + 2)  # the extra styles with their lengths
        assert (await db.get_job("blend00000001")).inputs_info == info  # type: ignore[union-attr]
        await db.add_job(job("single0000001"), b"c", b"s", ttl=60)
        assert await db.get_inputs("single0000001") == (b"c", b"s")
        # a third job over the member's cap pushes out the oldest finished one, all its styles with it
        await db.add_job(job("big0000000001"), b"x" * 60, b"y", ttl=60)
        assert await db.get_inputs("blend00000001") is None
        assert await db.inputs_bytes(100) == 2 + 61
    finally:
        await db.close()


async def test_deleting_a_results_images_marks_the_row(db: Database) -> None:
    await db.add_job(job("gone000000001"), b"c", b"s", ttl=60)
    assert await db.delete_inputs("gone000000001") is True
    assert await db.get_inputs("gone000000001") is None
    record = await db.get_job("gone000000001")
    assert record is not None and record.deleted_at is not None and record.state == "done"
    assert await db.delete_inputs("gone000000001") is False


async def test_server_styles_are_per_server_named_once_and_capped(db: Database) -> None:
    styles = ServerStyles(db, cap=2)
    await styles.add(1, "Our  Logo", b"jpeg-1", added_by=100)
    with pytest.raises(StyleNameTaken):
        await styles.add(1, "our logo", b"jpeg-2", added_by=101)  # names compare folded
    await styles.add(2, "Our Logo", b"jpeg-3", added_by=101)  # another server's names are its own
    await styles.add(1, "Café", b"jpeg-4", added_by=100)
    with pytest.raises(TooManyStyles) as full:
        await styles.add(1, "Third", b"jpeg-5", added_by=100)
    assert full.value.cap == 2
    assert await styles.names(1) == ["Our Logo", "Café"]
    found = await styles.get(1, "CAFE")
    assert found is not None and found.image == b"jpeg-4" and found.added_by == 100
    assert await styles.remove(1, "our logo") is True and await styles.remove(1, "our logo") is False
    assert await styles.names(1) == ["Café"] and await styles.names(2) == ["Our Logo"]


async def test_two_admins_adding_at_once_cannot_pass_the_cap(db: Database) -> None:
    styles = ServerStyles(db, cap=3)
    results = await asyncio.gather(
        *(styles.add(1, f"style {n}", b"jpeg", added_by=n) for n in range(8)), return_exceptions=True
    )
    assert sum(not isinstance(r, Exception) for r in results) == 3
    assert all(isinstance(r, TooManyStyles) for r in results if isinstance(r, Exception))


async def test_forgetting_a_member_deletes_their_jobs_everywhere_and_unnames_their_styles(db: Database) -> None:
    await db.add_job(job("mine00000001", owner=100, guild=1), b"c", b"s", ttl=60)
    await db.add_job(job("mine00000002", owner=100, guild=None), b"c", b"s", b"s2", ttl=60)
    await db.add_job(job("mine00000003", owner=100, guild=2, state="failed"), b"c", b"s", ttl=60)
    await db.add_job(job("theirs000001", owner=200, guild=1), b"c", b"s", ttl=60)
    styles = ServerStyles(db, cap=5)
    await styles.add(1, "logo", b"jpeg", added_by=100)
    gone = await forget_member(db, 100)
    assert gone == Forgotten(jobs=3, inputs=3, styles_unnamed=1)
    assert [r.job_id for r in await db.jobs_in(("done", "failed"))] == ["theirs000001"]
    assert await db.get_inputs("theirs000001") == (b"c", b"s")
    kept = await styles.get(1, "logo")
    assert kept is not None and kept.added_by is None  # the server's style stays, without their name
    assert await forget_member(db, 100) == Forgotten()


async def test_forgetting_a_server_deletes_its_settings_styles_and_jobs(db: Database) -> None:
    await db.save_guild_overrides(1, {"max_size": 300})
    await db.save_guild_overrides(2, {"max_size": 200})
    styles = ServerStyles(db, cap=5)
    await styles.add(1, "logo", b"jpeg", added_by=100)
    await styles.add(2, "logo", b"jpeg", added_by=100)
    await db.add_job(job("here00000001", guild=1), b"c", b"s", ttl=60)
    await db.add_job(job("there0000001", guild=2), b"c", b"s", ttl=60)
    assert await forget_server(db, 1) == Forgotten(jobs=1, inputs=1, settings=1, styles=1)
    assert await db.guild_overrides(1) == {} and await db.guild_overrides(2) == {"max_size": 200}
    assert await styles.names(1) == [] and await styles.names(2) == ["logo"]
    assert await db.get_job("here00000001") is None and await db.get_inputs("there0000001") == (b"c", b"s")


async def test_the_upgrade_brings_stored_strengths_into_the_offered_range(tmp_path: Path) -> None:
    """A database of the release before (schema 2) whose server default and jobs used strengths the
    bot no longer offers: after the upgrade they sit at the nearest bound and every row is kept."""
    path = tmp_path / "stylebot.sqlite3"
    with closing(sqlite3.connect(path, isolation_level=None)) as old:
        for number in (1, 2):
            migrations.MIGRATIONS[number - 1](old)
        old.execute("PRAGMA user_version = 2")
        old.execute(
            "INSERT INTO guild_settings VALUES (1, ?, 0)", (json.dumps({"default_strength": 8.0, "max_size": 300}),)
        )
        old.execute("INSERT INTO guild_settings VALUES (2, ?, 0)", (json.dumps({"default_strength": 2.5}),))
        for job_id, strength in (("strong000001", 10.0), ("weak00000001", 0.0), ("fine00000001", 1.5)):
            old.execute(
                "INSERT INTO jobs (job_id, guild_id, channel_id, owner_id, state, source, options, filesize_limit, "
                "created_at) VALUES (?, 1, 10, 100, 'queued', 'slash', ?, 8000000, 1000.0)",
                (job_id, json.dumps({"size": 64, "strength": strength})),
            )
            old.execute("INSERT INTO inputs VALUES (?, ?, ?, ?)", (job_id, b"content", b"style", 1e12))
    db = Database(path)
    await db.open()
    try:
        assert await db.guild_overrides(1) == {"default_strength": 5.0, "max_size": 300}
        assert await db.guild_overrides(2) == {"default_strength": 2.5}
        strengths = {r.job_id: r.options["strength"] for r in await db.jobs_in(("queued",))}
        assert strengths == {"strong000001": 5.0, "weak00000001": 0.1, "fine00000001": 1.5}
        assert await db.get_inputs("strong000001") == (b"content", b"style")  # the old rows read as before
        record = await db.get_job("strong000001")
        assert record is not None and record.inputs_info is None and record.deleted_at is None
    finally:
        await db.close()
    assert migrations.backup_path(path, 2).is_file()
