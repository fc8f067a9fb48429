"""The one database: house settings and numbered migrations applied exactly once, even in a race."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import pytest

from copa import db as copa_db


def make_module(name: str, log: list[str]) -> str:
    mod = types.ModuleType(name)

    def m1(database):
        log.append("001")
        database.conn.execute("CREATE TABLE widgets (id INTEGER PRIMARY KEY, name TEXT)")

    def m2(database):
        log.append("002")
        database.conn.execute("ALTER TABLE widgets ADD COLUMN colour TEXT")

    mod.MIGRATIONS = [("widgets_001_init", m1), ("widgets_002_colour", m2)]
    sys.modules[name] = mod
    return name


def test_migrations_apply_once_and_settings_hold(tmp_path):
    log: list[str] = []
    name = make_module("copa_test_widgets", log)
    path = tmp_path / "copa.db"
    db = copa_db.open_database(path, [name])
    assert log == ["001", "002"]
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
    assert db.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    db.conn.close()
    db = copa_db.open_database(path, [name])
    assert log == ["001", "002"]
    assert [r[0] for r in db.conn.execute("SELECT name FROM _migrations ORDER BY name")] == [
        "widgets_001_init", "widgets_002_colour"]
    assert copa_db.integrity(path) == "ok"


def test_a_failing_migration_leaves_nothing_half_done(tmp_path):
    mod = types.ModuleType("copa_test_failing")

    def good(database):
        database.conn.execute("CREATE TABLE a (x)")

    def bad(database):
        database.conn.execute("CREATE TABLE b (x)")
        raise RuntimeError("broken migration")

    mod.MIGRATIONS = [("f_001", good), ("f_002", bad)]
    sys.modules["copa_test_failing"] = mod
    path = tmp_path / "copa.db"
    with pytest.raises(RuntimeError, match="broken migration"):
        copa_db.open_database(path, ["copa_test_failing"])
    conn = copa_db.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "a" not in tables and "b" not in tables
    assert conn.execute("SELECT count(*) FROM _migrations").fetchone()[0] == 0


def test_two_processes_migrating_at_once(tmp_path):
    """Both start on an empty file; the migration runs exactly once and both end up usable."""
    script = textwrap.dedent(f"""
        import sys, types, time
        from copa import db
        mod = types.ModuleType("m")
        def slow(database):
            time.sleep(0.5)
            database.conn.execute("CREATE TABLE once (x)")
            database.conn.execute("INSERT INTO once VALUES (1)")
        mod.MIGRATIONS = [("race_001", slow)]
        sys.modules["m"] = mod
        d = db.open_database({str(tmp_path / 'race.db')!r}, ["m"])
        print(d.conn.execute("SELECT count(*) FROM once").fetchone()[0])
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4
    assert outs == ["1"] * 4
