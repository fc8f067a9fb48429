"""The memory tables, as numbered migrations (never edit a landed one; add the next).

``memories`` holds every kind of memory; ``memories_fts`` is an external-content FTS5 index over its
text and subject (porter stemming, diacritics folded), kept in step by triggers so that no write path
can forget it; ``memory_sessions`` summarises conversations so listing them stays cheap at any size.
"""

from __future__ import annotations

from typing import Any

_STATEMENTS_001 = [
    """CREATE TABLE memories (
        pk INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        text TEXT NOT NULL,
        kind TEXT NOT NULL,
        subject TEXT,
        source TEXT,
        occurred_at TEXT NOT NULL,
        created_at TEXT NOT NULL,
        valid_from TEXT NOT NULL,
        valid_to TEXT,
        superseded_by TEXT,
        status TEXT,
        due_at TEXT,
        session_id TEXT,
        role TEXT,
        importance REAL NOT NULL DEFAULT 0.5,
        metadata TEXT,
        corroborations INTEGER NOT NULL DEFAULT 0,
        norm TEXT
    )""",
    "CREATE INDEX memories_subject ON memories(subject, valid_from) WHERE subject IS NOT NULL",
    "CREATE INDEX memories_session ON memories(session_id, occurred_at) WHERE session_id IS NOT NULL",
    "CREATE INDEX memories_tasks ON memories(status, due_at) WHERE kind = 'task'",
    "CREATE INDEX memories_norm ON memories(norm) WHERE norm IS NOT NULL",
    "CREATE INDEX memories_kind ON memories(kind, occurred_at)",
    "CREATE INDEX memories_occurred ON memories(occurred_at)",
    "CREATE INDEX memories_created ON memories(created_at)",
    "CREATE INDEX memories_ended ON memories(valid_to) WHERE valid_to IS NOT NULL",
    """CREATE VIRTUAL TABLE memories_fts USING fts5(
        text, subject, content='memories', content_rowid='pk',
        tokenize='porter unicode61 remove_diacritics 2'
    )""",
    "CREATE VIRTUAL TABLE memories_vocab USING fts5vocab(memories_fts, 'row')",
    """CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
        INSERT INTO memories_fts(rowid, text, subject) VALUES (new.pk, new.text, new.subject);
    END""",
    """CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
        INSERT INTO memories_fts(memories_fts, rowid, text, subject) VALUES ('delete', old.pk, old.text, old.subject);
    END""",
    """CREATE TRIGGER memories_au AFTER UPDATE OF text, subject ON memories BEGIN
        INSERT INTO memories_fts(memories_fts, rowid, text, subject) VALUES ('delete', old.pk, old.text, old.subject);
        INSERT INTO memories_fts(rowid, text, subject) VALUES (new.pk, new.text, new.subject);
    END""",
    """CREATE TABLE memory_sessions (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL DEFAULT '',
        started_at TEXT NOT NULL,
        last_at TEXT NOT NULL,
        turns INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX memory_sessions_last ON memory_sessions(last_at)",
]


def _m001_init(db: Any) -> None:
    # Statement by statement: executescript() would COMMIT the migration transaction.
    for sql in _STATEMENTS_001:
        db.execute(sql)


MIGRATIONS = [
    ("memory_001_init", _m001_init),
]
NAMES = [name for name, _ in MIGRATIONS]
MODULE = "copa.memory.schema"
