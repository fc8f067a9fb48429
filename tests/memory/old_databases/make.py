"""Rebuild the fixture databases of tests/memory/test_memory_upgrade.py: one per landed shape of the
memory schema, made by running copa/memory/schema.py's migrations exactly as they were at that commit
(read from git), then writing rows the way the store of the time did.

    python tests/memory/old_databases/make.py      # from a full clone; writes memory-*.db.gz here
"""

from __future__ import annotations

import gzip
import sqlite3
import struct
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
# (fixture name, commit): every commit that changed copa/memory/schema.py until memory_005
LANDED = [
    ("memory-001", "87b0e34"),
    ("memory-002", "24614ce"),
    ("memory-003", "517ed6c"),
    ("memory-004-first", "5f87961"),  # memory_004 as it first landed
    ("memory-004-edited", "ab3de0c"),  # memory_004 after it was edited in place
]
ROWS = [  # (id, text, kind, subject, session_id, role)
    ("m1", "I live in Lisbon", "fact", "user.home_city", None, None),
    ("m2", "I prefer tea over coffee", "preference", "user.drink", None, None),
    ("m3", "Buy milk", "task", None, None, None),
    ("m4", "hello there", "episode", None, "s1", "user"),
    ("m5", "General Kenobi", "episode", None, "s1", "assistant"),
    ("m6", "Sensor a0 crossed 612", "event", None, None, None),
]


class _DB:
    def __init__(self, conn):
        self.conn = conn

    def execute(self, sql, params=()):
        return self.conn.execute(sql, params)


def build(commit: str, path: Path) -> None:
    source = subprocess.run(["git", "show", f"{commit}:copa/memory/schema.py"], capture_output=True, text=True,
                            check=True, cwd=HERE).stdout
    module: dict = {}
    exec(compile(source, f"schema@{commit}", "exec"), module)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA page_size = 1024")
    conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    conn.execute("BEGIN")
    for name, fn in module["MIGRATIONS"]:
        fn(_DB(conn))
        conn.execute("INSERT INTO _migrations VALUES (?, '2026-11-25T16:00:00+00:00')", (name,))
    t = "2026-11-25T16:00:00.000000+00:00"
    for i, (mid, text, kind, subject, session, role) in enumerate(ROWS):
        conn.execute("INSERT INTO memories (id, text, kind, subject, occurred_at, created_at, valid_from, status, "
                     "session_id, role, metadata, norm) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (mid, text, kind, subject, t, t, t, "open" if kind == "task" else None, session, role,
                      f'{{"n": {i}}}', text.lower()))
    if "memories_ai" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}:
        conn.execute("INSERT INTO memories_fts (rowid, text, subject) SELECT pk, text, subject FROM memories")
    conn.execute("INSERT INTO memory_sessions (id, title, started_at, last_at, turns) "
                 "VALUES ('s1', 'hello there', ?, ?, 2)", (t, t))
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "memory_vectors" in tables:
        for pk in (3, 1, 2):  # written out of pk order, as `copa memory embed` may
            conn.execute("INSERT INTO memory_vectors (pk, model, vec) VALUES (?, 'wordllama-l2-supercat-64', ?)",
                         (pk, struct.pack("<4e", pk, 0.5, -1.0, 0.25)))
    conn.execute("COMMIT")
    conn.execute("VACUUM")
    conn.close()


def main() -> None:
    for name, commit in LANDED:
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "copa.db"
            build(commit, db)
            (HERE / f"{name}.db.gz").write_bytes(gzip.compress(db.read_bytes(), mtime=0))
            print(name, commit, (HERE / f"{name}.db.gz").stat().st_size, "bytes")


if __name__ == "__main__":
    main()
