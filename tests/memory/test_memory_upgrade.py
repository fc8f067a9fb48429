"""Databases made at every landed shape of the memory schema upgrade to today's, losing no row.

The fixtures (tests/memory/old_databases/*.db.gz) were made by running the migrations exactly as
they were at each commit that changed copa/memory/schema.py (old_databases/make.py rebuilds them
from git). memory_004 was edited after it landed, so both of its shapes are here."""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path

import pytest

from copa.db import open_database
from copa.memory import MemoryStore, schema

FIXTURES = sorted((Path(__file__).parent / "old_databases").glob("memory-*.db.gz"))
MEMORY_OBJECTS = "(name LIKE 'memor%')"


def _unpack(fixture: Path, tmp_path: Path) -> Path:
    path = tmp_path / "copa.db"
    path.write_bytes(gzip.decompress(fixture.read_bytes()))
    return path


def _rows(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {"memories": conn.execute("SELECT * FROM memories ORDER BY pk").fetchall(),
                "sessions": conn.execute("SELECT * FROM memory_sessions ORDER BY id").fetchall(),
                "vectors": conn.execute("SELECT pk, model, vec FROM memory_vectors ORDER BY pk").fetchall()
                if "memory_vectors" in tables else []}
    finally:
        conn.close()


def _shape(path: Path) -> dict[str, object]:
    """Tables with their columns, indexes and triggers of the memory part (names and definitions
    that matter, not the CREATE text, which SQLite rewrites on a rename)."""
    conn = sqlite3.connect(path)
    try:
        objects = conn.execute(f"SELECT type, name, tbl_name FROM sqlite_master WHERE {MEMORY_OBJECTS} "
                               "AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()
        shape: dict[str, object] = {"objects": objects}
        for kind, name, _ in objects:
            if kind == "table":
                shape[name] = conn.execute(f"PRAGMA table_info({name})").fetchall()
        return shape
    finally:
        conn.close()


@pytest.fixture(scope="module")
def today(tmp_path_factory) -> dict[str, object]:
    path = tmp_path_factory.mktemp("fresh") / "copa.db"
    open_database(path).conn.close()
    return _shape(path)


def test_a_fixture_for_every_landed_shape():
    assert [f.name.removesuffix(".db.gz") for f in FIXTURES] == [
        "memory-001", "memory-002", "memory-003", "memory-004-edited", "memory-004-first"]


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.name.removesuffix(".db.gz"))
def test_old_database_upgrades_to_todays_shape_and_keeps_every_row(fixture, tmp_path, today):
    path = _unpack(fixture, tmp_path)
    before = _rows(path)
    assert len(before["memories"]) == 6 and len(before["sessions"]) == 1
    open_database(path).conn.close()  # what any copa command does first
    after = _rows(path)
    assert after["memories"] == before["memories"]
    assert after["sessions"] == before["sessions"]
    assert after["vectors"] == before["vectors"]  # a 004 database keeps its vectors, pk for pk
    assert _shape(path) == today
    conn = sqlite3.connect(path)
    applied = {r[0] for r in conn.execute("SELECT name FROM _migrations")}
    conn.close()
    assert set(schema.NAMES) <= applied
    conn = sqlite3.connect(path)  # memory_007 indexed the session the old database already held
    docs = conn.execute("SELECT d.session_id, f.user, f.other FROM memory_sessions_fts f "
                        "JOIN memory_session_docs d ON d.doc = f.rowid").fetchall()
    conn.close()
    assert docs == [("s1", "hello there", "General Kenobi")]
    with MemoryStore(path) as store:  # and the upgraded store works: search, forget (triggers), write
        assert [h.id for h in store.search("where do I live? Lisbon", limit=1)] == ["m1"]
        store.forget("m1")
        store.add("I moved to Porto", kind="fact", subject="user.home_city")
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT pk FROM memory_vectors WHERE pk = 1").fetchall() == []
        removed = conn.execute("SELECT removed FROM memory_vectors_state").fetchone()[0]
        assert removed == (1 if before["vectors"] else 0)
        assert conn.execute("SELECT count(*) FROM memories").fetchone()[0] == 6  # 6 - m1 + Porto
    finally:
        conn.close()


def test_memory_005_leaves_a_database_of_todays_shape_alone(tmp_path, today):
    path = tmp_path / "copa.db"
    with MemoryStore(path) as store:
        store.add("I live in Lisbon", kind="fact", subject="user.home_city")
        store.conn.execute("INSERT INTO memory_vectors (pk, model, vec) VALUES (1, 'm', x'00')")
    before = _rows(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        seq = conn.execute("SELECT seq FROM memory_vectors").fetchall()
        schema._m005_vectors_shape(type("DB", (), {"conn": conn})())  # run again on purpose
        assert conn.execute("SELECT seq FROM memory_vectors").fetchall() == seq
    finally:
        conn.close()
    assert _rows(path) == before
