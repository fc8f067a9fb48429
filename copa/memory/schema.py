"""The memory tables, as numbered migrations (never edit a landed one; add the next).

``memories`` holds every kind of memory; ``memories_fts`` is an external-content FTS5 index over its
text and subject (porter stemming, diacritics folded): updates and deletes reach it through triggers,
inserts are indexed by the store once per transaction (see migration 002). ``memory_sessions``
summarises conversations so listing them stays cheap at any size. ``memory_sessions_fts`` (007) is a
second FTS5 index with one document per conversation session (its user turns and its other turns in
two columns), for BM25 over whole sessions at recall time.
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


def _m002_bulk_fts(db: Any) -> None:
    # A per-row trigger into FTS5 runs each insert as its own sub-statement, which flushes FTS5's
    # pending terms every row: ~3x slower ingest than indexing the batch with one INSERT ... SELECT
    # at the end of the transaction, which the store now does (MemoryStore._index_new).
    db.execute("DROP TRIGGER IF EXISTS memories_ai")


def _m003_lean_indexes(db: Any) -> None:
    # Conversation turns are most of the rows and are listed by session, not by kind or by creation
    # time: leaving them out of those two indexes made bulk ingest 1.3-1.6x faster at 300k rows.
    db.execute("DROP INDEX IF EXISTS memories_kind")
    db.execute("DROP INDEX IF EXISTS memories_created")
    db.execute("CREATE INDEX memories_kind_k ON memories(kind, occurred_at) WHERE kind != 'episode'")
    db.execute("CREATE INDEX memories_created_k ON memories(created_at) WHERE kind != 'episode'")


def _m004_vectors(db: Any) -> None:
    # The dense retriever's vectors (copa/memory/vectors.py): one per memory, float16, tagged with the
    # model that made it. Triggers keep them in step: a forgotten memory takes its vector with it, and
    # an edited text drops its stale vector (the store embeds the new text in the same transaction).
    # For the readers' in-memory copies: `seq` orders vectors as written (new ones are appended), and
    # `memory_vectors_state.removed` counts deletions, so "only appended since" is two O(1) reads.
    db.execute("CREATE TABLE memory_vectors (seq INTEGER PRIMARY KEY, pk INTEGER NOT NULL UNIQUE, "
               "model TEXT NOT NULL, vec BLOB NOT NULL)")
    db.execute("CREATE TABLE memory_vectors_state (id INTEGER PRIMARY KEY CHECK (id = 1), removed INTEGER NOT NULL)")
    db.execute("INSERT INTO memory_vectors_state VALUES (1, 0)")
    db.execute("CREATE TRIGGER memory_vectors_removed AFTER DELETE ON memory_vectors BEGIN "
               "UPDATE memory_vectors_state SET removed = removed + 1 WHERE id = 1; END")
    db.execute("CREATE TRIGGER memory_vectors_ad AFTER DELETE ON memories BEGIN "
               "DELETE FROM memory_vectors WHERE pk = old.pk; END")
    db.execute("CREATE TRIGGER memory_vectors_au AFTER UPDATE OF text ON memories BEGIN "
               "DELETE FROM memory_vectors WHERE pk = old.pk; END")


_VECTOR_TRIGGERS = {
    "memory_vectors_removed": "CREATE TRIGGER memory_vectors_removed AFTER DELETE ON memory_vectors BEGIN "
                              "UPDATE memory_vectors_state SET removed = removed + 1 WHERE id = 1; END",
    "memory_vectors_ad": "CREATE TRIGGER memory_vectors_ad AFTER DELETE ON memories BEGIN "
                         "DELETE FROM memory_vectors WHERE pk = old.pk; END",
    "memory_vectors_au": "CREATE TRIGGER memory_vectors_au AFTER UPDATE OF text ON memories BEGIN "
                         "DELETE FROM memory_vectors WHERE pk = old.pk; END",
}


def _m005_vectors_shape(db: Any) -> None:
    # memory_004 was edited after it landed (5f87961 -> ab3de0c): a database migrated in between has
    # memory_vectors(pk PRIMARY KEY, model, vec) and no memory_vectors_state, and was never upgraded.
    # This brings any database to today's shape and does nothing to one that has it already.
    conn = db.conn
    cols = [r[1] for r in conn.execute("PRAGMA table_info(memory_vectors)")]
    if cols and "seq" not in cols:
        # Rebuild (SQLite cannot add a new INTEGER PRIMARY KEY): the triggers that name the table go
        # first, or renaming the new table over it fails on their dangling reference.
        for name in _VECTOR_TRIGGERS:
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        conn.execute("CREATE TABLE memory_vectors_new (seq INTEGER PRIMARY KEY, pk INTEGER NOT NULL UNIQUE, "
                     "model TEXT NOT NULL, vec BLOB NOT NULL)")
        conn.execute("INSERT INTO memory_vectors_new (pk, model, vec) SELECT pk, model, vec FROM memory_vectors "
                     "ORDER BY pk")
        conn.execute("DROP TABLE memory_vectors")
        conn.execute("ALTER TABLE memory_vectors_new RENAME TO memory_vectors")
    elif not cols:  # memory_004 never ran here (cannot happen through migrate; kept total anyway)
        conn.execute("CREATE TABLE memory_vectors (seq INTEGER PRIMARY KEY, pk INTEGER NOT NULL UNIQUE, "
                     "model TEXT NOT NULL, vec BLOB NOT NULL)")
    conn.execute("CREATE TABLE IF NOT EXISTS memory_vectors_state "
                 "(id INTEGER PRIMARY KEY CHECK (id = 1), removed INTEGER NOT NULL)")
    conn.execute("INSERT OR IGNORE INTO memory_vectors_state VALUES (1, 0)")
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    for name, sql in _VECTOR_TRIGGERS.items():
        if name not in have:
            conn.execute(sql)


def _m006_unchain_episodes(db: Any) -> None:
    # Conversation turns are no longer chained by subject (store.UNCHAINED_KINDS): a chat imported with
    # the speaker as subject had each turn supersede that speaker's previous one. Make every turn
    # current again and rebuild each affected subject's chain from its other memories alone.
    subjects = [r[0] for r in db.execute(
        "SELECT DISTINCT subject FROM memories WHERE kind = 'episode' AND subject IS NOT NULL").fetchall()]
    db.execute("UPDATE memories SET valid_to = NULL, superseded_by = NULL WHERE kind = 'episode' "
               "AND (valid_to IS NOT NULL OR superseded_by IS NOT NULL)")
    for subject in subjects:
        rows = db.execute("SELECT id, valid_from, superseded_by FROM memories WHERE subject = ? AND kind != 'episode' "
                          "ORDER BY valid_from, pk", (subject,)).fetchall()
        for (mid, _, _), (nxt, nxt_from, _) in zip(rows, rows[1:], strict=False):
            db.execute("UPDATE memories SET valid_to = ?, superseded_by = ? WHERE id = ?", (nxt_from, nxt, mid))
        if rows and rows[-1][2] is not None:  # the last one was superseded by a turn: current again
            db.execute("UPDATE memories SET valid_to = NULL, superseded_by = NULL WHERE id = ?", (rows[-1][0],))


# One FTS5 document per conversation session: what the user said and what the others said, in two
# columns so recall can weigh them (bm25 column weights) without a second index. ``memory_session_docs``
# gives each session a stable integer rowid (memory_sessions has a TEXT key, whose implicit rowid a
# VACUUM may renumber). Rebuilt per touched session: by the store's write path for inserts (as turns
# are, once per transaction) and by triggers for deletes and edits.
_SESSION_DOC_DELETE = ("DELETE FROM memory_sessions_fts WHERE rowid = "
                       "(SELECT doc FROM memory_session_docs WHERE session_id = {sid})")
_SESSION_DOC_INSERT = (
    "INSERT INTO memory_sessions_fts(rowid, user, other) SELECT d.doc, "
    "coalesce((SELECT group_concat(text, char(10)) FROM memories WHERE session_id = d.session_id "
    "AND +kind = 'episode' AND role = 'user'), ''), "
    "coalesce((SELECT group_concat(text, char(10)) FROM memories WHERE session_id = d.session_id "
    "AND +kind = 'episode' AND role IS NOT 'user'), '') "
    "FROM memory_session_docs d WHERE d.session_id = {sid}")
SESSION_DOC_SQL = [
    "INSERT OR IGNORE INTO memory_session_docs(session_id) VALUES (?1)",
    _SESSION_DOC_DELETE.format(sid="?1"),
    _SESSION_DOC_INSERT.format(sid="?1"),
]


def _session_doc_trigger(name: str, event: str, when: str, sid: str) -> str:
    return (f"CREATE TRIGGER {name} AFTER {event} ON memories WHEN {when} BEGIN "
            f"INSERT OR IGNORE INTO memory_session_docs(session_id) VALUES ({sid}); "
            f"{_SESSION_DOC_DELETE.format(sid=sid)}; {_SESSION_DOC_INSERT.format(sid=sid)}; END")


def _m007_session_index(db: Any) -> None:
    db.execute("CREATE TABLE memory_session_docs (doc INTEGER PRIMARY KEY, session_id TEXT NOT NULL UNIQUE)")
    db.execute("CREATE VIRTUAL TABLE memory_sessions_fts USING fts5(user, other, "
               "tokenize='porter unicode61 remove_diacritics 2')")
    episode = "{0}.kind = 'episode' AND {0}.session_id IS NOT NULL"
    db.execute(_session_doc_trigger("memory_session_docs_ad", "DELETE", episode.format("old"), "old.session_id"))
    changed = "UPDATE OF text, kind, role, session_id"
    db.execute(_session_doc_trigger("memory_session_docs_au_old", changed, episode.format("old"), "old.session_id"))
    db.execute(_session_doc_trigger("memory_session_docs_au_new", changed, episode.format("new") +
                                    " AND NOT (old.kind = 'episode' AND old.session_id IS new.session_id)",
                                    "new.session_id"))
    db.execute("INSERT OR IGNORE INTO memory_session_docs(session_id) SELECT DISTINCT session_id FROM memories "
               "WHERE session_id IS NOT NULL AND +kind = 'episode'")
    db.execute(_SESSION_DOC_INSERT.format(sid="d.session_id").replace(" WHERE d.session_id = d.session_id", ""))


MIGRATIONS = [
    ("memory_001_init", _m001_init),
    ("memory_002_bulk_fts", _m002_bulk_fts),
    ("memory_003_lean_indexes", _m003_lean_indexes),
    ("memory_004_vectors", _m004_vectors),
    ("memory_005_vectors_shape", _m005_vectors_shape),
    ("memory_006_unchain_episodes", _m006_unchain_episodes),
    ("memory_007_session_index", _m007_session_index),
]
NAMES = [name for name, _ in MIGRATIONS]
