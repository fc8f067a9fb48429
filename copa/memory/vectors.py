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
from collections.abc import Callable
from typing import TYPE_CHECKING

from copa.memory import embeddings

if TYPE_CHECKING:
    import numpy as np

BATCH = 2_000  # texts embedded per statement while back-filling


class VectorIndex:
    def __init__(self, kind: str):
        self.kind = kind
        self._embedder: embeddings.Embedder | None = None
        self._lock = threading.Lock()
        self._state: tuple[int, int] | None = None  # (count, max pk) of the rows in the cache
        self._pks = None
        self._mat = None

    @property
    def embedder(self) -> embeddings.Embedder:
        if self._embedder is None:
            self._embedder = embeddings.load(self.kind)
        return self._embedder

    @property
    def model(self) -> str:
        return self.embedder.name

    # ---- writing (inside the caller's transaction) ----------------------------------------------
    def add_rows(self, c: sqlite3.Connection, rows: list[tuple[int, str]]) -> int:
        """Embed (pk, text) rows and store their vectors; replaces older vectors of the same rows."""
        if not rows:
            return 0
        import numpy as np

        vecs = self.embedder.embed([t for _, t in rows]).astype(np.float16)
        c.executemany("INSERT OR REPLACE INTO memory_vectors(pk, model, vec) VALUES (?, ?, ?)",
                      [(pk, self.model, v.tobytes()) for (pk, _), v in zip(rows, vecs, strict=True)])
        return len(rows)

    def add_since(self, c: sqlite3.Connection, last_pk: int) -> int:
        """Embed the memories inserted after ``last_pk`` (the rows of the batch just written)."""
        rows = c.execute("SELECT pk, text FROM memories WHERE pk > ?", (last_pk,)).fetchall()
        return self.add_rows(c, rows)

    @staticmethod
    def missing(c: sqlite3.Connection, model: str, limit: int) -> list[tuple[int, str]]:
        return c.execute("SELECT m.pk, m.text FROM memories m LEFT JOIN memory_vectors v ON v.pk = m.pk "
                         "AND v.model = ? WHERE v.pk IS NULL ORDER BY m.pk LIMIT ?", (model, limit)).fetchall()

    # ---- reading --------------------------------------------------------------------------------
    def _refresh(self, c: sqlite3.Connection) -> None:
        """Bring the in-memory matrix up to date: append new rows, reload after deletes."""
        import numpy as np

        state = c.execute("SELECT count(*), coalesce(max(pk), 0) FROM memory_vectors WHERE model = ?",
                          (self.model,)).fetchone()
        if state == self._state:
            return
        dim = self.embedder.dim
        append = (self._state is not None and state[0] >= self._state[0] and
                  c.execute("SELECT count(*) FROM memory_vectors WHERE model = ? AND pk <= ?",
                            (self.model, self._state[1])).fetchone()[0] == self._state[0])
        since = self._state[1] if append else 0
        rows = c.execute("SELECT pk, vec FROM memory_vectors WHERE model = ? AND pk > ? ORDER BY pk",
                         (self.model, since)).fetchall()
        pks = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        mat = np.frombuffer(b"".join(r[1] for r in rows), np.float16).reshape(len(rows), dim).astype(np.float32)
        if append:
            pks, mat = np.concatenate((self._pks, pks)), np.concatenate((self._mat, mat))
        self._pks, self._mat, self._state = pks, mat, state

    def query_vector(self, text: str) -> np.ndarray:
        return self.embedder.embed([text])[0]

    def similar(self, c: sqlite3.Connection, qv: np.ndarray, k: int) -> dict[int, float]:
        """pk -> cosine similarity of the ``k`` nearest memories."""
        import numpy as np

        with self._lock:
            self._refresh(c)
            if self._mat is None or not len(self._pks):
                return {}
            sims = self._mat @ qv
            k = min(k, len(sims))
            top = np.argpartition(-sims, k - 1)[:k]
            return {int(self._pks[i]): float(sims[i]) for i in top}

    def similarity_of(self, c: sqlite3.Connection, qv: np.ndarray, pks: list[int]) -> dict[int, float]:
        """pk -> cosine similarity for these memories (those without a vector are left out)."""
        import numpy as np

        with self._lock:
            self._refresh(c)
            if self._mat is None or not len(self._pks) or not pks:
                return {}
            want = np.asarray(pks, np.int64)
            idx = np.searchsorted(self._pks, want)
            idx[idx >= len(self._pks)] = 0
            hit = self._pks[idx] == want
            sims = self._mat[idx[hit]] @ qv
            return {int(p): float(s) for p, s in zip(want[hit], sims, strict=True)}


def backfill(store, index: VectorIndex, progress: Callable[[int, int], None] | None = None) -> int:
    """Embed every memory that has no vector of the current model yet, in committed batches (an
    interrupted back-fill keeps what it did and resumes where it stopped)."""
    done = 0
    todo = store._read("SELECT count(*) FROM memories m LEFT JOIN memory_vectors v ON v.pk = m.pk AND "
                       "v.model = ? WHERE v.pk IS NULL", (index.model,))[0][0]
    while True:
        with store._write() as c:
            rows = index.missing(c, index.model, BATCH)
            index.add_rows(c, rows)
        done += len(rows)
        if progress:
            progress(done, todo)
        if len(rows) < BATCH:
            return done
