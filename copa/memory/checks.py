"""`copa doctor` checks for the memory store."""

from __future__ import annotations

from typing import Any

from copa.checks import FAIL, OK, WARN, Check
from copa.memory.vectors import CATCH_UP  # a constant; vectors.py imports nothing heavy

DENSE_COMFORT = 300_000  # vectors: beyond this the dense scan costs more than the keyword search (measured)
SCAN_PER_MS = 13_000  # vectors the exact scan covers per millisecond (77 ms at 1M, docs/benchmarks.md)


def check_memory(paths: Any, memory: Any) -> Check:
    path = paths.db_file
    if not path.exists():
        return Check("memory", OK, "empty (nothing remembered yet)")
    try:
        stats = memory.stats()
        probe = memory.conn.execute(
            "SELECT count(*) FROM memories_fts WHERE memories_fts MATCH 'copa OR memory'").fetchone()
    except Exception as e:  # a broken or foreign file
        return Check("memory", FAIL, f"cannot read the memory store: {e}",
                     "run 'copa memory export' if possible, then restore with 'copa memory import'")
    del probe
    detail = (f"{stats['memories']} memories ({stats['superseded']} superseded), {stats['sessions']} sessions, "
              f"{stats['open_tasks']} open tasks")
    if stats["embeddings"]:
        detail += f"; dense retriever on ({stats['vectors']} vectors)"
        missing = stats["memories"] - stats["vectors"]
        share = memory.vectors.catch_up_limit if getattr(memory, "vectors", None) is not None else CATCH_UP
        if missing > share:  # more than the next search embeds: keywords alone find them for a while
            return Check("memory", WARN, detail + f", {missing} memories without one",
                         "run 'copa memory embed' (or leave the daemon running)")
        if missing:
            detail += f", {missing} memories without one (the next search embeds them)"
        detail += "; " + _recall_served(paths, memory)
        if stats["memories"] > DENSE_COMFORT:  # an exact scan: cost grows with every vector (docs/benchmarks.md)
            n = stats["memories"]  # every memory gets its vector at a search
            return Check("memory", WARN, detail + f"; each search scans all of them (~{n // SCAN_PER_MS} ms, "
                         f"~{n // 1000} MB in every process that searches)",
                         "set memory.embeddings = \"off\" for keyword recall alone, or forget old episodes")
    if stats["memories"] > 5_000_000:
        return Check("memory", WARN, detail + "; very large", "consider 'copa memory forget --kind episode ...'")
    return Check("memory", OK, detail)


def _recall_served(paths: Any, memory: Any) -> str:
    """Whether one-shot commands find the model warm: without the daemon each search that uses the
    dense side pays for numpy and the model first (docs/benchmarks.md, "memory_cost")."""
    from copa.memory import warm

    if getattr(memory, "vectors", None) is not None and warm.serving(paths.state_dir, memory):
        return "the daemon serves recall with the model loaded"
    return "no daemon serves recall: each one-shot search loads the model itself"
