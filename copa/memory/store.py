"""MemoryStore: writes, reads, supersession, duplicates, tasks, sessions and forgetting.

Plain ``sqlite3`` through ``copa.db.connect`` (house pragmas: WAL, busy timeout, secure_delete);
every write is one ``BEGIN IMMEDIATE`` transaction, so concurrent writers queue on the busy timeout
instead of failing with "database is locked" on a read-to-write upgrade.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from copa.errors import NotFoundError, UsageError
from copa.memory import schema
from copa.memory.activity import ActivityMixin
from copa.memory.forgetting import ForgetMixin
from copa.memory.model import (
    DEFAULT_IMPORTANCE,
    SELECT_COLS,
    Hit,
    Memory,
    check_kind,
    check_status,
    iso,
    new_id,
    now_utc,
    row_to_memory,
    to_utc,
)
from copa.memory.text import norm_key

if TYPE_CHECKING:
    from copa.memory.sessions import SessionHit

# Kinds that legitimately repeat word for word (a chat turn, a sensor event): never folded as duplicates.
NO_DEDUP_KINDS = frozenset({"episode", "event"})
# Conversation turns are never chained by subject: a subject on a turn (a speaker, a topic) is kept
# as a searchable tag, and no turn supersedes another (a chat imported with the speaker as subject
# would otherwise keep one searchable turn per speaker). Facts about the user carry subjects.
UNCHAINED_KINDS = frozenset({"episode"})
_UPDATABLE = {"text", "kind", "subject", "source", "occurred_at", "status", "due_at", "importance", "metadata",
              "session_id", "role", "valid_to"}
_SUBJECT_RE = re.compile(r"[^\w.:/-]+")
_INSERT_COLS = ("id", "text", "kind", "subject", "source", "occurred_at", "created_at", "valid_from", "valid_to",
                "superseded_by", "status", "due_at", "session_id", "role", "importance", "metadata",
                "corroborations", "norm")  # the key order of _prepare()'s dicts
_INSERT_SQL = f"INSERT INTO memories ({', '.join(_INSERT_COLS)}) VALUES ({', '.join('?' * len(_INSERT_COLS))})"


def _time(value: Any, name: str) -> str | None:
    """The stored form of a time; canonical strings (as stored, as exported) pass straight through."""
    if value is None or value == "":
        return None
    if type(value) is datetime and value.tzinfo is UTC:  # the common case in bulk writes
        return value.isoformat(timespec="microseconds")
    if isinstance(value, str) and len(value) == 32 and value.endswith("+00:00") and value[10] == "T":
        try:
            datetime.fromisoformat(value)
            return value
        except ValueError:
            pass
    return iso(to_utc(value, field_name=name))


def _search_key(query: str, limit: int = 10, kinds: Iterable[str] | None = None, as_of: Any = None,
                include_superseded: bool = False, asked_at: Any = None, exclude_session: str | None = None) -> tuple:
    """A search's arguments as one comparable value (a search ahead answers only the same search)."""
    def when(v: Any) -> Any:
        return v.isoformat() if hasattr(v, "isoformat") else v

    return (query, int(limit), tuple(kinds) if kinds else None, when(as_of), bool(include_superseded),
            when(asked_at), exclude_session)


def searcher(kind: str, open_store: Callable[[], MemoryStore]) -> Callable[[tuple], list[Hit]]:
    """What a process forked to search ahead runs first (copa/memory/prefetch.py): it imports what
    the model ``kind`` needs now, while nobody waits (numpy: 85-140 ms on this project's VM), and
    returns the search to run on a request ``(query, arguments)``, which opens the store
    (``open_store``) only then: by that time the parent has opened it and applied any pending
    migration (a child migrating could hold the write lock past the parent's busy timeout)."""
    from copa.memory import embeddings, recall  # noqa: F401 - the search's own modules

    embeddings.preload(kind)

    def search(request: tuple) -> list[Hit]:
        store = open_store()
        if store._pid != os.getpid():  # the parent's store: its connection must not be used here
            raise RuntimeError("the search ahead was given a store opened before the fork")
        return store.search(request[0], **request[1])

    return search


def normalise_subject(subject: str | None) -> str | None:
    """'User Home City' and 'user.home_city ' name the same thing: lowercase, '_' for spaces."""
    if subject is None:
        return None
    s = _SUBJECT_RE.sub("_", str(subject).strip().lower()).strip("._")
    return s or None


class _MigrationDB:
    """What a migration function needs (``.conn``, ``.execute``) without importing sqlite_utils."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)


class MemoryStore(ActivityMixin, ForgetMixin):
    """The memory of copa, in one SQLite file shared with the rest of the workstation."""

    def __init__(self, path: Path | str, embeddings: str | None = None, warm_dir: Path | str | None = None,
                 cache_dir: Path | str | None = None):
        """``embeddings``: the dense retriever, 'auto' (on when the copa[embeddings] extra is
        installed), 'static' (on, or an error) or 'off'/None (keyword recall only). ``warm_dir``:
        the state folder where the daemon may serve recall with its model loaded; a search asks
        it before loading the model here (copa/memory/warm.py). ``cache_dir``: where the model may
        keep data derived from it between processes (the static model's word table and piece cache)."""
        from copa.db import connect
        from copa.memory import embeddings as emb

        kind = emb.resolve(embeddings)  # checked before the file is touched
        self.path = Path(path)
        self._conn = connect(self.path)
        self._conn.execute("PRAGMA cache_size = -32000")  # 32 MB: index pages of a large store stay hot
        # Checkpoint every ~40 MB of WAL instead of 4 MB: bulk writes rewrite the same index pages,
        # and checkpointing them once instead of every batch doubled ingest at 300k rows (measured).
        self._conn.execute("PRAGMA wal_autocheckpoint = 10000")
        self._lock = threading.RLock()
        self._migrate()
        self.vectors = None
        self.warm_dir = Path(warm_dir) if warm_dir is not None else None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._ahead: Any = None  # a search running ahead in a child process (prefetch)
        self._pid = os.getpid()  # the process whose connection this is (a forked child opens its own)
        if kind is not None:
            from copa.memory.vectors import VectorIndex

            self.vectors = VectorIndex(kind, Path(cache_dir) if cache_dir is not None else None)

    # ---- plumbing -------------------------------------------------------------------------------
    def _migrate(self) -> None:
        try:
            done = {r[0] for r in self._conn.execute("SELECT name FROM _migrations")}
        except sqlite3.OperationalError:
            done = set()
        if set(schema.NAMES) - done:
            from copa.db import migrate

            migrate(_MigrationDB(self._conn), schema.MIGRATIONS)

    @property
    def conn(self) -> sqlite3.Connection:
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                yield c
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def close(self) -> None:
        self._discard_ahead()
        with self._lock:
            self._conn.close()

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writing --------------------------------------------------------------------------------
    def add(self, text: str, kind: str = "note", subject: str | None = None, source: str | None = None,
            occurred_at: datetime | str | None = None, metadata: dict[str, Any] | None = None, *,
            importance: float | None = None) -> str:
        """Store one memory and return its id (an existing id when this corroborates a duplicate)."""
        rec = {"text": text, "kind": kind, "subject": subject, "source": source, "occurred_at": occurred_at,
               "metadata": metadata, "importance": importance}
        return self.add_many([rec])[0]

    def add_many(self, records: Iterable[dict[str, Any]]) -> list[str]:
        """Store many memories in one transaction (all or nothing); returns their ids in order."""
        now = now_utc()
        now_s = iso(now)
        prepared = [self._prepare(r, now, now_s) for r in records]  # validate everything before writing
        with self._write() as c:
            return self._insert_batch(c, prepared)

    def _prepare(self, rec: dict[str, Any], now: datetime, now_s: str | None = None) -> dict[str, Any]:
        if not isinstance(rec, dict):
            raise UsageError(f"a memory record must be a mapping, not {type(rec).__name__}")
        g = rec.get
        text = g("text")
        text = text.strip() if isinstance(text, str) else str(text or "").strip()
        if not text:
            raise UsageError("a memory needs some text", hint="give the text to remember")
        kind = g("kind") or "note"
        if kind not in DEFAULT_IMPORTANCE:
            kind = check_kind(kind)
        now_s = now_s or iso(now)
        occurred = _time(g("occurred_at"), "occurred_at") or now_s
        metadata = g("metadata") or None
        if metadata is not None and not isinstance(metadata, dict):
            raise UsageError("metadata must be a JSON object (a dict)")
        imp = g("importance")
        importance = DEFAULT_IMPORTANCE.get(kind, 0.5) if imp is None else min(1.0, max(0.0, float(imp)))
        status = g("status")
        if kind == "task":
            status = check_status(status or "open")
        elif status is not None:
            status = str(status)
        subject = g("subject")
        created, valid_from, valid_to, due = g("created_at"), g("valid_from"), g("valid_to"), g("due_at") or g("due")
        return {
            "id": g("id") or None, "text": text, "kind": kind,
            "subject": None if subject is None else normalise_subject(subject),
            "source": g("source"), "occurred_at": occurred,
            "created_at": now_s if created is None else (_time(created, "created_at") or now_s),
            "valid_from": occurred if valid_from is None else (_time(valid_from, "valid_from") or occurred),
            "valid_to": None if valid_to is None else _time(valid_to, "valid_to"),
            "superseded_by": g("superseded_by"), "status": status,
            "due_at": None if due is None else _time(due, "due"),
            "session_id": g("session_id"), "role": g("role"), "importance": importance,
            "metadata": json.dumps(metadata, ensure_ascii=False, default=str) if metadata else None,
            "corroborations": int(g("corroborations") or 0),
            "norm": None if kind in NO_DEDUP_KINDS else norm_key(text),
        }

    def _insert_batch(self, c: sqlite3.Connection, prepared: list[dict[str, Any]]) -> list[str]:
        """Insert prepared records, then index the new rows in FTS with a single statement and bring
        the session summaries up to date. Duplicates are looked up for the whole batch at once and
        plain rows go in with one executemany: per-row round trips would cost more than the insert."""
        last = c.execute("SELECT coalesce(max(pk), 0) FROM memories").fetchone()[0]
        known: dict[tuple[str, str], Any] = dict(self._current_norms(
            c, [p["norm"] for p in prepared if p["norm"] is not None and p["subject"] is None]))
        out: list[Any] = []  # a record dict (its id may still change on a collision) or an existing id
        plain: list[dict[str, Any]] = []
        for p in prepared:
            if p["subject"] is None or p["kind"] in UNCHAINED_KINDS:
                key = (p["norm"], p["kind"])
                dup = known.get(key) if p["norm"] is not None else None
                if dup is None:
                    plain.append(p)
                    out.append(p)
                    if p["norm"] is not None:
                        known[key] = p
                    continue
            if plain:  # keep order: what follows may corroborate or supersede these rows
                self._insert_rows(c, plain)
                plain = []
            if p["subject"] is None or p["kind"] in UNCHAINED_KINDS:
                mid = dup if isinstance(dup, str) else dup["id"]
                self._corroborate(c, mid, p)
                out.append(mid)
            else:
                out.append(self._insert(c, p))
        if plain:
            self._insert_rows(c, plain)
        self._index_new(c, last)  # vectors come later, in batches (VectorIndex.catch_up): writing never loads a model
        self._touch_sessions(c, prepared)
        return [x if isinstance(x, str) else x["id"] for x in out]

    @staticmethod
    def _insert_rows(c: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
        """executemany with fresh ids; ids are time-ordered with 32 random bits, so a collision is
        possible (if rare) at tens of thousands of writes a second: retry the batch with new ids."""
        generated = [p for p in rows if not p["id"]]
        for p in generated:
            p["id"] = new_id()
        for attempt in range(5):
            c.execute("SAVEPOINT memory_rows")
            try:
                c.executemany(_INSERT_SQL, [tuple(p.values()) for p in rows])
                c.execute("RELEASE memory_rows")
                return
            except sqlite3.IntegrityError as e:
                c.execute("ROLLBACK TO memory_rows")
                c.execute("RELEASE memory_rows")
                if attempt == 4 or not generated:
                    raise UsageError(f"cannot store these memories: {e}",
                                     hint="an id given in the records is already used") from None
                for p in generated:
                    p["id"] = new_id()

    @staticmethod
    def _current_norms(c: sqlite3.Connection, norms: list[str]) -> dict[tuple[str, str], str]:
        """(norm, kind) -> id of current memories without a subject that say one of these things."""
        out: dict[tuple[str, str], str] = {}
        norms = list(set(norms))
        for i in range(0, len(norms), 500):
            chunk = norms[i:i + 500]
            for norm, kind, mid, status in c.execute(
                    f"SELECT norm, kind, id, status FROM memories WHERE norm IN ({','.join('?' * len(chunk))}) "
                    "AND subject IS NULL AND valid_to IS NULL AND superseded_by IS NULL", chunk):
                if kind != "task" or status in ("open", "in_progress"):
                    out.setdefault((norm, kind), mid)
        return out

    @staticmethod
    def _index_new(c: sqlite3.Connection, last_pk: int) -> None:
        c.execute("INSERT INTO memories_fts(rowid, text, subject) SELECT pk, text, subject FROM memories "
                  "WHERE pk > ?", (last_pk,))

    @staticmethod
    def _touch_sessions(c: sqlite3.Connection, prepared: list[dict[str, Any]]) -> None:
        agg: dict[str, list] = {}
        for p in prepared:
            sid = p["session_id"]
            if sid is None or p["kind"] != "episode":
                continue
            a = agg.get(sid)
            title = p["text"][:80].replace("\n", " ") if p["role"] == "user" else ""
            if a is None:
                agg[sid] = [title, p["occurred_at"], p["occurred_at"], 1]
            else:
                if title and (not a[0] or p["occurred_at"] < a[1]):
                    a[0] = title
                a[1], a[2], a[3] = min(a[1], p["occurred_at"]), max(a[2], p["occurred_at"]), a[3] + 1
        if agg:
            c.executemany(
                "INSERT INTO memory_sessions(id, title, started_at, last_at, turns) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET turns = turns + excluded.turns, "
                "title = CASE WHEN title = '' THEN excluded.title ELSE title END, "
                "started_at = min(started_at, excluded.started_at), last_at = max(last_at, excluded.last_at)",
                [(sid, *a) for sid, a in agg.items()])
            MemoryStore._index_sessions(c, agg)

    @staticmethod
    def _index_sessions(c: sqlite3.Connection, session_ids: Iterable[str]) -> None:
        """Rebuild the session-level FTS documents of these sessions (schema.SESSION_DOC_SQL): once
        per write transaction and touched session, as turns are indexed once per transaction."""
        for sid in session_ids:
            for sql in schema.SESSION_DOC_SQL:
                c.execute(sql, (sid,))

    def _insert(self, c: sqlite3.Connection, p: dict[str, Any]) -> str:
        if p["norm"] is not None:
            dup = self._find_duplicate(c, p)
            if dup is not None:
                self._corroborate(c, dup, p)
                return dup
        self._insert_rows(c, [p])
        if p["subject"] is not None:
            self._link(c, p["id"], p["subject"], p["valid_from"])
        return p["id"]

    def _find_duplicate(self, c: sqlite3.Connection, p: dict[str, Any]) -> str | None:
        """A current memory that says the same thing (same kind and subject, same words)."""
        sql = ("SELECT id FROM memories WHERE norm = ? AND +kind = ? AND valid_to IS NULL "
               "AND superseded_by IS NULL AND subject IS ?")
        if p["kind"] == "task":
            sql += " AND status IN ('open', 'in_progress')"
        row = c.execute(sql + " LIMIT 1", (p["norm"], p["kind"], p["subject"])).fetchone()
        return row[0] if row else None

    def _corroborate(self, c: sqlite3.Connection, mid: str, p: dict[str, Any]) -> None:
        row = c.execute("SELECT metadata, importance FROM memories WHERE id = ?", (mid,)).fetchone()
        meta = json.loads(row[0]) if row[0] else {}
        meta["last_corroborated_at"] = p["occurred_at"]
        if p["source"] and p["source"] not in meta.setdefault("corroborated_by", []):
            meta["corroborated_by"] = (meta["corroborated_by"] + [p["source"]])[-10:]
        c.execute("UPDATE memories SET corroborations = corroborations + 1, importance = ?, metadata = ? "
                  "WHERE id = ?", (min(1.0, row[1] + 0.05), json.dumps(meta, ensure_ascii=False), mid))

    def _link(self, c: sqlite3.Connection, mid: str, subject: str, valid_from: str) -> None:
        """Put ``mid`` into its subject's chain by validity start: the one before it ends where it
        begins and points to it; it ends where the next one begins (or stays current). Conversation
        turns are neither linked nor link (UNCHAINED_KINDS): their subject is a tag."""
        if c.execute("SELECT kind FROM memories WHERE id = ?", (mid,)).fetchone()[0] in UNCHAINED_KINDS:
            return
        pred = c.execute("SELECT id, valid_to FROM memories WHERE subject = ? AND id != ? AND valid_from <= ? "
                         "AND kind != 'episode' ORDER BY valid_from DESC, pk DESC LIMIT 1",
                         (subject, mid, valid_from)).fetchone()
        succ = c.execute("SELECT id, valid_from FROM memories WHERE subject = ? AND id != ? AND valid_from > ? "
                         "AND kind != 'episode' ORDER BY valid_from ASC, pk ASC LIMIT 1",
                         (subject, mid, valid_from)).fetchone()
        if succ:
            c.execute("UPDATE memories SET valid_to = ?, superseded_by = ? WHERE id = ?", (succ[1], succ[0], mid))
        if pred:
            end = valid_from if pred[1] is None else min(pred[1], valid_from)
            c.execute("UPDATE memories SET valid_to = ?, superseded_by = ? WHERE id = ?", (end, mid, pred[0]))

    def _unlink(self, c: sqlite3.Connection, mid: str) -> None:
        """Take ``mid`` out of its chain: its predecessor inherits its end and its successor."""
        row = c.execute("SELECT valid_to, superseded_by, subject FROM memories WHERE id = ?", (mid,)).fetchone()
        if row is None or row[2] is None:  # only memories with a subject are in a chain
            return
        c.execute("UPDATE memories SET valid_to = ?, superseded_by = ? WHERE subject = ? AND superseded_by = ?",
                  (row[0], row[1], row[2], mid))

    def update(self, id: str, **fields: Any) -> Memory:
        """Change fields of a memory in place (text, kind, subject, times, status, importance, metadata...)."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise UsageError(f"cannot update {', '.join(sorted(unknown))}", hint="updatable: " + ", ".join(
                sorted(_UPDATABLE)))
        with self._write() as c:
            old = self._get(c, id)
            merged = {**old.as_dict(), **fields}
            merged["metadata"] = fields.get("metadata", old.metadata)
            p = self._prepare(merged, now_utc())
            if "occurred_at" in fields and "valid_from" not in fields:
                p["valid_from"] = p["occurred_at"]
            if "valid_to" not in fields:
                p["valid_to"], p["superseded_by"] = iso(old.valid_to), old.superseded_by
            relink = p["subject"] != old.subject or p["valid_from"] != iso(old.valid_from)
            if relink:
                self._unlink(c, id)
                p["valid_to"], p["superseded_by"] = None, None
            keep = ("text", "kind", "subject", "source", "occurred_at", "valid_from", "valid_to", "superseded_by",
                    "status", "due_at", "session_id", "role", "importance", "metadata", "norm")
            c.execute(f"UPDATE memories SET {', '.join(k + ' = ?' for k in keep)} WHERE id = ?",
                      (*(p[k] for k in keep), id))
            if relink and p["subject"]:
                self._link(c, id, p["subject"], p["valid_from"])
            # An edited text loses its vector by trigger; `copa memory embed` (or the daemon) re-embeds it,
            # and keywords find it meanwhile.
            return self._get(c, id)

    # ---- reading --------------------------------------------------------------------------------
    def _get(self, c: sqlite3.Connection, id: str) -> Memory:
        row = c.execute(f"SELECT {SELECT_COLS} FROM memories m WHERE m.id = ?", (id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no memory with id {id!r}", hint="see 'copa memory list' or 'copa memory search'")
        return row_to_memory(row)

    def get(self, id: str) -> Memory | None:
        rows = self._read(f"SELECT {SELECT_COLS} FROM memories m WHERE m.id = ?", (id,))
        return row_to_memory(rows[0]) if rows else None

    def resolve(self, prefix: str) -> str:
        """A full id from a unique prefix or suffix of it (what a person types)."""
        prefix = prefix.strip().lower()
        if len(prefix) < 4 or not re.fullmatch(r"[0-9a-z_-]+", prefix):
            raise UsageError(f"{prefix!r} is not a memory id", hint="give at least 4 characters of the id")
        rows = self._read("SELECT id FROM memories WHERE id >= ? AND id < ? LIMIT 2", (prefix, prefix + "\uffff"))
        if not rows:  # ids start with their time, so the random tail is what people remember
            rows = self._read("SELECT id FROM memories WHERE id LIKE ? LIMIT 2", ("%" + prefix,))
        if not rows:
            raise NotFoundError(f"no memory with id {prefix!r}", hint="see 'copa memory list'")
        if len(rows) > 1:
            raise UsageError(f"id prefix {prefix!r} is ambiguous", hint="give more characters")
        return rows[0][0]

    def list(self, kinds: Iterable[str] | None = None, since: datetime | str | None = None,
             until: datetime | str | None = None, limit: int | None = 50,
             include_superseded: bool = False, subject: str | None = None) -> list[Memory]:
        """Newest first by occurred_at. ``subject`` is exact ("user.home_city") or, ending in "." or
        "*", a prefix ("user." is every subject about the user)."""
        where, params = self._filters(kinds=kinds, since=since, until=until, include_superseded=include_superseded,
                                      subject=subject)
        sql = f"SELECT {SELECT_COLS} FROM memories m {where} ORDER BY m.occurred_at DESC, m.pk DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [row_to_memory(r) for r in self._read(sql, params)]

    @staticmethod
    def _filters(*, kinds=None, since=None, until=None, subject=None, source=None, include_superseded=True,
                 ids=None) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if kinds:
            kinds = [check_kind(k) for k in kinds]
            clauses.append(f"m.kind IN ({','.join('?' * len(kinds))})")
            params += kinds
            if "episode" not in kinds:  # lets SQLite use the kind index, which leaves turns out
                clauses.append("m.kind != 'episode'")
        if since is not None:
            clauses.append("m.occurred_at >= ?")
            params.append(iso(to_utc(since, field_name="since")))
        if until is not None:
            clauses.append("m.occurred_at < ?")
            params.append(iso(to_utc(until, field_name="until")))
        if subject is not None and subject.endswith((".", "*")):  # a prefix, as a range the index can use
            prefix = subject.rstrip("*").strip().lower()
            clauses.append("m.subject >= ? AND m.subject < ?")
            params += [prefix, prefix + "\uffff"]
        elif subject is not None:
            clauses.append("m.subject = ?")
            params.append(normalise_subject(subject))
        if source is not None:
            clauses.append("m.source = ?")
            params.append(source)
        if ids is not None:
            clauses.append(f"m.id IN ({','.join('?' * len(ids))})")
            params += list(ids)
        if not include_superseded:
            clauses.append("m.valid_to IS NULL AND m.superseded_by IS NULL")
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), params

    def history(self, subject: str) -> list[Memory]:
        """Every value the subject has had, oldest first (the supersession chain)."""
        rows = self._read(f"SELECT {SELECT_COLS} FROM memories m WHERE m.subject = ? "
                          "ORDER BY m.valid_from, m.pk", (normalise_subject(subject),))
        return [row_to_memory(r) for r in rows]

    def embed_missing(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Give every memory without one a vector of the current model (after installing the extra on
        a store that already holds memories, or switching models); returns how many were embedded."""
        if self.vectors is None:
            raise UsageError("the dense retriever is off", hint="set memory.embeddings = \"auto\" and install "
                             "the extra: pip install 'copa[embeddings]'")
        from copa.memory.vectors import backfill

        return backfill(self, self.vectors, progress)

    def missing_vectors(self) -> int:
        """Memories the dense retriever has no vector for yet (found by keywords until they get one)."""
        if self.vectors is None:
            return 0
        return self._read("SELECT (SELECT count(*) FROM memories) - (SELECT count(*) FROM memory_vectors "
                          "WHERE model = ?)", (self.vectors.model,))[0][0]

    def search(self, query: str, limit: int = 10, kinds: Iterable[str] | None = None,
               as_of: datetime | str | None = None, include_superseded: bool = False,
               asked_at: datetime | str | None = None, exclude_session: str | None = None) -> list[Hit]:
        """Recall: the memories that best answer ``query``, best first (see copa/memory/recall.py).
        ``asked_at``: when the question is asked (relative dates in it count from then; default now).
        ``exclude_session``: leave out the turns of that conversation (the agent's own)."""
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            hits = ahead.take(_search_key(query, limit, kinds, as_of, include_superseded, asked_at, exclude_session))
            if hits is not None:
                return hits
        if self._daemon_may_answer():
            from copa.memory import warm

            hits = warm.ask(self.warm_dir, self, query, limit=limit, kinds=list(kinds) if kinds else None,
                            as_of=as_of, include_superseded=include_superseded, asked_at=asked_at,
                            exclude_session=exclude_session)
            if hits is not None:
                return hits
        from copa.memory.recall import search

        return search(self, query, limit=limit, kinds=kinds, as_of=as_of, include_superseded=include_superseded,
                      asked_at=asked_at, exclude_session=exclude_session)

    def prepare_search(self) -> bool:
        """Fork, now, the process that will make the next ``prefetch``'s search: it loads the model
        while this one goes on, and is handed the question by ``prefetch`` (copa/memory/prefetch.py).
        Only when this process has not loaded the model, no daemon serves recall and forking is
        safe. True when it started (or one is already waiting)."""
        from copa.memory import prefetch

        if self._ahead is not None and not self._ahead.asked:
            return True
        self._discard_ahead()
        if not self._may_search_ahead():
            return False
        kind, path, warm_dir, cache_dir = self.vectors.kind, self.path, self.warm_dir, self.cache_dir

        def prepare() -> Callable[[tuple], list[Hit]]:  # in the child
            return searcher(kind, lambda: MemoryStore(path, embeddings=kind, warm_dir=warm_dir, cache_dir=cache_dir))

        self._ahead = prefetch.start(prepare)
        return self._ahead is not None

    def adopt_search_ahead(self, ahead: Any) -> bool:
        """Keep ``ahead``, a search process forked before this store was opened (it opened its own
        from the same configuration: copa/agent/ahead.py), as the one the next ``prefetch`` hands
        its search. False when this store would not search ahead: the caller discards it."""
        if not self._may_search_ahead():
            return False
        self._discard_ahead()
        self._ahead = ahead
        return True

    def _may_search_ahead(self) -> bool:
        from copa.memory import prefetch, warm

        return self._daemon_may_answer() and not warm.announced(self.warm_dir) and prefetch.possible()

    def prefetch(self, query: str, limit: int = 10, kinds: Iterable[str] | None = None,
                 as_of: datetime | str | None = None, include_superseded: bool = False,
                 asked_at: datetime | str | None = None, exclude_session: str | None = None) -> bool:
        """Start ``search`` with these arguments now, in a forked process whose hits the search with
        the same arguments takes (copa/memory/prefetch.py): what a one-shot ``copa ask`` does so that
        loading the model overlaps its other work. The process ``prepare_search`` forked is handed
        the search; otherwise one is forked now. Only when this process has not loaded the model and
        no daemon serves recall. True when it started."""
        if not self.prepare_search():
            return False
        kinds = tuple(kinds) if kinds else None  # read once: the key and the child's search both use it
        args = {"limit": limit, "kinds": kinds, "as_of": as_of, "include_superseded": include_superseded,
                "asked_at": asked_at, "exclude_session": exclude_session}
        if not self._ahead.ask(_search_key(query, **args), (query, args)):
            self._discard_ahead()
            return False
        return True

    def _discard_ahead(self) -> None:
        """End the search ahead nobody took (its child is ended and reaped)."""
        if self._ahead is not None:
            self._ahead.discard()
            self._ahead = None

    def _daemon_may_answer(self) -> bool:
        """A dense search here would load the model first: the daemon, which has it loaded, is asked."""
        return self.warm_dir is not None and self.vectors is not None and not self.vectors.loaded

    def search_sessions(self, query: str, limit: int = 10, as_of: datetime | str | None = None,
                        asked_at: datetime | str | None = None,
                        exclude_session: str | None = None) -> list[SessionHit]:
        """The earlier conversations that best answer ``query``, best first, each with its best
        recalled turns (see copa/memory/sessions.py)."""
        if self._daemon_may_answer():
            from copa.memory import warm

            found = warm.ask_sessions(self.warm_dir, self, query, limit=limit, as_of=as_of, asked_at=asked_at,
                                      exclude_session=exclude_session)
            if found is not None:
                return found
        from copa.memory.sessions import search_sessions

        return search_sessions(self, query, limit=limit, as_of=as_of, asked_at=asked_at,
                               exclude_session=exclude_session)
