"""The dense side of recall: one vector per memory in ``memory_vectors``, searched by cosine.

Vectors are stored as float16 BLOBs next to the memories (same file, same transactions, deleted by
trigger with their memory, so forgetting removes them too). Search is an exact scan with numpy over
a float32 copy held in memory and refreshed incrementally: at personal scale (1e4-1e5 memories) a
scan takes milliseconds, and it needs no SQLite extension. sqlite-vec would need
``enable_load_extension``, which this platform's Python sqlite3 is built without (docs/memory.md).
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from copa.memory import embeddings

if TYPE_CHECKING:
    import numpy as np

BATCH = 2_000  # memories a back-fill reads at a time (committed every embeddings.BATCH of them)
CATCH_UP = 256  # new memories a search embeds before it runs (the rest stay keyword-only until later)
DEFER_BELOW = 32  # new memories a search may leave for later when embedding them would load a tokenizer


class VectorIndex:
    def __init__(self, kind: str, cache_dir: Path | None = None):
        self.kind = kind
        self.cache_dir = cache_dir  # where the model may keep what it derives (embeddings.load)
        _open.add(self)
        self._lock = threading.Lock()
        self._seen: tuple[int, int] | None = None  # (data_version, total_changes) at the last refresh
        self._state: tuple[int, int] | None = None  # (largest seq, deletions) of the table at the last refresh
        self._n = 0  # rows in the copy; the buffers below grow by doubling, so appending is cheap
        self._pk_buf = None  # pks of the cached rows, ascending
        self._vec_buf = None  # their vectors (float32), row i belongs to pk i
        # Each row's conversation as a small integer (-1: not a conversation turn), so a session's mean
        # cosine is one numpy pass instead of a query for its turns (~12 ms a search at 100k memories).
        # Read with the vectors: a memory changes session or kind only through an edit, and an edit
        # removes its vector (trigger memory_vectors_au), which reloads this copy.
        self._session_buf = None
        self._session_code: dict[str, int] = {}
        self._removed_checked: int | None = None  # deletion count when catch_up last scanned for gaps

    @property
    def embedder(self) -> embeddings.Embedder:
        return embeddings.load(self.kind, self.cache_dir)  # not kept here: embeddings.unload must be able to free it

    @property
    def catch_up_limit(self) -> int:
        """At most this many new memories are embedded by one search (see embeddings.CATCH_UP)."""
        return embeddings.CATCH_UP.get(self.kind, CATCH_UP)

    @property
    def loaded(self) -> bool:
        """Whether this process has loaded the model (a one-shot command has not: it asks the daemon)."""
        return embeddings.is_loaded(self.kind)

    @property
    def model(self) -> str:
        return embeddings.model_name(self.kind)  # known without loading the model

    # ---- writing ----------------------------------------------------------------------------------
    # The model runs before the write transaction, never inside it: MiniLM embedded 9-14 texts a
    # second here (~48 since round 13), so a batch embedded under BEGIN IMMEDIATE held the database's
    # write lock for minutes and every other writer (`copa memory add`, a turn of `copa ask`) failed
    # after the 30 s busy timeout.

    def store_vectors(self, c: sqlite3.Connection, rows: list[tuple[int, str]], vecs: np.ndarray) -> int:
        """Store the vectors of (pk, text) rows embedded before this transaction began, only for
        memories that still hold that text and still lack a vector of this model: meanwhile another
        process may have edited, forgotten or embedded them. Returns how many were stored."""
        import json

        import numpy as np

        pks = json.dumps([pk for pk, _ in rows])
        now = dict(c.execute("SELECT pk, text FROM memories WHERE pk IN (SELECT value FROM json_each(?))", (pks,)))
        have = {pk for (pk,) in c.execute("SELECT pk FROM memory_vectors WHERE model = ? AND pk IN "
                                          "(SELECT value FROM json_each(?))", (self.model, pks))}
        fresh = [(pk, v) for (pk, text), v in zip(rows, vecs.astype(np.float16), strict=True)
                 if now.get(pk) == text and pk not in have]
        # a memory has one vector: another model's goes (explicitly: REPLACE would not fire the
        # deletion counter that tells every process's copy to reload)
        c.executemany("DELETE FROM memory_vectors WHERE pk = ? AND model <> ?", [(pk, self.model) for pk, _ in fresh])
        c.executemany("INSERT INTO memory_vectors(pk, model, vec) VALUES (?, ?, ?)",
                      [(pk, self.model, v.tobytes()) for pk, v in fresh])
        return len(fresh)

    def catch_up(self, store, limit: int = CATCH_UP, defer: bool = False) -> int:
        """Embed up to ``limit`` memories that lack a vector (one committed batch): what a dense
        search does first, so new memories join the dense side within a search or two while
        writing never loads the model. The newest are found with two index lookups; after a vector
        was removed (an edit, by any process, since this store opened) the whole table is checked
        once. Older gaps (memories stored with the retriever off) are ``copa memory embed``'s job.

        ``defer`` (a search): fewer than ``DEFER_BELOW`` new memories whose words the model has
        not cached are left for later rather than load its tokenizer for them (40-70 ms of a fresh
        process, which a question in known words does not otherwise pay: copa/memory/pieces.py).
        They stay found by keywords until a search that loads the tokenizer anyway, a larger
        backlog, the daemon or ``copa memory embed`` embeds them."""
        removed = store._read("SELECT removed FROM memory_vectors_state")[0][0]
        if self._removed_checked is None:
            self._removed_checked = removed
        rows = store._read("SELECT pk, text FROM memories WHERE pk > coalesce((SELECT pk FROM memory_vectors "
                           "WHERE model = ? ORDER BY pk DESC LIMIT 1), 0) ORDER BY pk LIMIT ?", (self.model, limit))
        if len(rows) < limit and removed != self._removed_checked:
            have = {pk for pk, _ in rows}
            more = [r for r in store._read("SELECT m.pk, m.text FROM memories m LEFT JOIN memory_vectors v ON "
                                           "v.pk = m.pk AND v.model = ? WHERE v.pk IS NULL ORDER BY m.pk LIMIT ?",
                                           (self.model, limit)) if r[0] not in have]
            rows += more[:limit - len(rows)]
            if len(more) + len(have) < limit:
                self._removed_checked = removed
        if not rows:
            return 0
        embedder = self.embedder
        if defer and len(rows) < DEFER_BELOW and hasattr(embedder, "embed_if_cached"):
            vecs = embedder.embed_if_cached([t for _, t in rows])
            if vecs is None:
                return 0
        else:
            vecs = embedder.embed([t for _, t in rows])
        with store._write() as c:
            return self.store_vectors(c, rows, vecs)

    # ---- reading --------------------------------------------------------------------------------
    def _refresh(self, c: sqlite3.Connection) -> None:
        """Bring the in-memory copy up to date: append new vectors, reload when any went away.

        Costs nothing when nothing changed (``data_version`` moves only when another connection
        commits, ``total_changes`` only when this one writes) and O(new rows) after inserts: the
        largest ``seq`` tells what is new, the deletion counter whether a reload is due (a forget,
        an edit, a re-embedding).
        """
        seen = (c.execute("PRAGMA data_version").fetchone()[0], c.total_changes)
        if seen == self._seen:
            return
        state = c.execute("SELECT (SELECT coalesce(max(seq), 0) FROM memory_vectors), removed "
                          "FROM memory_vectors_state").fetchone()
        if state != self._state:
            append = self._state is not None and state[1] == self._state[1]
            if not append:
                self._n, self._session_code = 0, {}
            rows = c.execute("SELECT v.pk, v.vec, CASE WHEN m.kind = 'episode' THEN m.session_id END "
                             "FROM memory_vectors v JOIN memories m ON m.pk = v.pk WHERE v.model = ? AND v.seq > ? "
                             "ORDER BY v.seq", (self.model, self._state[0] if append else 0)).fetchall()
            self._append(rows)
            self._state = state
        self._seen = seen

    def _append(self, rows: list[tuple[int, bytes, str | None]]) -> None:
        import numpy as np

        dim, n, new = embeddings.model_dim(self.kind), self._n, len(rows)
        if self._vec_buf is None or n + new > len(self._vec_buf):
            cap = max(2 * n, (n + new) * 9 // 8 + 1024)  # a full load keeps room for the next turns
            bufs = (np.empty(cap, np.int64), np.empty((cap, dim), np.float32), np.empty(cap, np.int32))
            if n:
                for buf, old in zip(bufs, (self._pk_buf, self._vec_buf, self._session_buf), strict=True):
                    buf[:n] = old[:n]
            self._pk_buf, self._vec_buf, self._session_buf = bufs
        if new:
            codes = self._session_code
            self._pk_buf[n:n + new] = np.fromiter((r[0] for r in rows), np.int64, new)
            self._vec_buf[n:n + new] = np.frombuffer(b"".join(r[1] for r in rows), np.float16).reshape(new, dim)
            self._session_buf[n:n + new] = np.fromiter(
                (-1 if r[2] is None else codes.setdefault(r[2], len(codes)) for r in rows), np.int32, new)
        self._n = n + new
        tail = self._pk_buf[max(n - 1, 0):self._n]
        if not (tail[1:] > tail[:-1]).all():  # a back-fill appends older memories: keep pks ascending
            order = np.argsort(self._pk_buf[:self._n], kind="stable")
            for buf in (self._pk_buf, self._vec_buf, self._session_buf):
                buf[:self._n] = buf[order]

    def release(self) -> None:
        """Drop the in-memory copy of the vectors (the next search reads them again): with
        ``embeddings.unload``, what an idle daemon gives back (51 MB at 100,000 memories)."""
        with self._lock:
            self._n, self._pk_buf, self._vec_buf, self._session_buf, self._session_code = 0, None, None, None, {}
            self._seen = self._state = None

    def similar(self, c: sqlite3.Connection, qv: np.ndarray, k: int) -> dict[int, float]:
        """pk -> cosine similarity of the ``k`` nearest memories."""
        import numpy as np

        with self._lock:
            self._refresh(c)
            if not self._n:
                return {}
            sims = self._vec_buf[:self._n] @ qv
            k = min(k, len(sims))
            top = np.argpartition(-sims, k - 1)[:k]
            return {int(self._pk_buf[i]): float(sims[i]) for i in top}

    def similarity_of(self, c: sqlite3.Connection, qv: np.ndarray, pks: list[int]) -> dict[int, float]:
        """pk -> cosine similarity for these memories (those without a vector are left out)."""
        import numpy as np

        with self._lock:
            self._refresh(c)
            if not self._n or not pks:
                return {}
            have = self._pk_buf[:self._n]
            want = np.asarray(pks, np.int64)
            idx = np.searchsorted(have, want)
            idx[idx >= self._n] = 0
            hit = have[idx] == want
            sims = self._vec_buf[idx[hit]] @ qv
            return {int(p): float(s) for p, s in zip(want[hit], sims, strict=True)}

    def session_means(self, c: sqlite3.Connection, qv: np.ndarray, sessions: list[str]) -> dict[str, float]:
        """session id -> the mean cosine of its turns (kind 'episode', those with a vector) to ``qv``."""
        import numpy as np

        with self._lock:
            self._refresh(c)
            wanted = {sid: self._session_code[sid] for sid in sessions if sid in self._session_code}
            if not self._n or not wanted:
                return {}
            codes = self._session_buf[:self._n]
            rows = np.flatnonzero(np.isin(codes, np.fromiter(wanted.values(), np.int32, len(wanted))))
            sims = self._vec_buf[rows] @ qv
            size = len(self._session_code)
            sums = np.bincount(codes[rows], weights=sims, minlength=size)
            counts = np.bincount(codes[rows], minlength=size)
            return {sid: float(sums[code] / counts[code]) for sid, code in wanted.items() if counts[code]}

    def query_vector(self, text: str) -> np.ndarray:
        return self.embedder.embed([text])[0]


_open: weakref.WeakSet[VectorIndex] = weakref.WeakSet()  # every index of this process, for release_idle


def release_idle(after: float) -> bool:
    """When no embedding model was used for ``after`` seconds, drop the models and every index's
    copy of the vectors (the next search loads both again). A long-running process calls this from
    time to time (the daemon: ``memory.keep_warm``); True when something was released."""
    idle = embeddings.idle_seconds()
    if after <= 0 or idle is None or idle < after:  # no model loaded: no copy of the vectors either
        return False
    for index in list(_open):
        index.release()
    return bool(embeddings.unload())


def backfill(store, index: VectorIndex, progress: Callable[[int, int], None] | None = None) -> int:
    """Embed every memory that has no vector of the current model yet, in committed batches (an
    interrupted back-fill keeps what it did and resumes where it stopped). Each batch is embedded
    with no transaction open (see ``VectorIndex.store_vectors``), so other processes write meanwhile."""
    done = 0
    todo = store._read("SELECT count(*) FROM memories m LEFT JOIN memory_vectors v ON v.pk = m.pk AND "
                       "v.model = ? WHERE v.pk IS NULL", (index.model,))[0][0]
    commit_every = embeddings.BATCH.get(index.kind, BATCH)
    after = 0  # memories are read in pk order: one edited meanwhile waits for the next back-fill
    while True:
        rows = store._read("SELECT m.pk, m.text FROM memories m LEFT JOIN memory_vectors v ON v.pk = m.pk "
                           "AND v.model = ? WHERE v.pk IS NULL AND m.pk > ? ORDER BY m.pk LIMIT ?",
                           (index.model, after, BATCH))
        if not rows:
            return done
        # Similar lengths together: a transformer pads each batch to its longest text (MiniLM embedded
        # 25 % fewer texts a second in batches of 64 taken in pk order than sorted over 2,000).
        by_length = sorted(rows, key=lambda r: len(r[1]))
        for i in range(0, len(by_length), commit_every):
            part = by_length[i:i + commit_every]
            vecs = index.embedder.embed([t for _, t in part])
            with store._write() as c:
                done += index.store_vectors(c, part, vecs)
            if progress:
                progress(done, max(todo, done))  # memories written meanwhile are embedded too
        after = rows[-1][0]  # the next read also finds memories written meanwhile; an empty one ends it
