"""A turn's memory search started ahead, in a forked process, for one-shot faces (copa/memory/prefetch.py).

Kept out of the loop's module: ``copa ask`` forks the child first thing (``fork_early``, before
typer is imported and its command line parsed: ~75 ms on this project's VM), then ``get_ready``
adopts it before the command reads the configuration, opens the store, imports the loop and builds
its agent (~40 ms), so that the child loads the model meanwhile (numpy alone: 70-140 ms; MiniLM
another 30-40); the turn then hands it the search (``Agent._search_ahead``). Callers that did not
fork early (the library API, tests) get their child from ``get_ready``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

_early: Any = None  # the child ``fork_early`` started, until ``get_ready`` adopts it


def fork_early(config: Callable[[], Any], memory: Callable[[], Any], state_dir: Path | None = None) -> None:
    """Fork the search child first thing, before the command line is parsed, for the next
    ``get_ready`` to adopt (``copa ask``: main() calls this when the command is ``ask``): typer and
    the CLI take ~75 ms to import, and with MiniLM the child (numpy, the model, the question's
    forward pass) is what a fresh ``copa ask`` waits for. ``config`` and ``memory`` build the
    child's own workstation parts, as for ``get_ready``. A command that never gets to its turn
    (a usage error) exits, which closes the child's request pipe: it ends without searching."""
    global _early
    _early = _fork(config, memory, state_dir)


def get_ready(config: Callable[[], Any], memory: Callable[[], Any], state_dir: Path | None = None) -> bool:
    """Fork, now, the process that will make the coming turn's memory search (or adopt the one
    ``fork_early`` started): it reads the configuration and imports the model's modules while this
    process reads it too, opens the store and builds its agent; the turn hands it the search
    (``search``), and it opens the store then. ``config`` and ``memory`` build the workstation's
    parts (each process builds its own: call this before the store is opened); ``state_dir``: where
    a daemon serving recall leaves its token (it answers sooner than a fork: nothing forks). True
    when the child waits for the search; otherwise it is ended and the turn searches as usual."""
    global _early
    ahead, _early = _early, None
    if ahead is None:
        ahead = _fork(config, memory, state_dir)
    if ahead is None:
        return False
    try:
        if config().get("memory.prefetch") and memory().adopt_search_ahead(ahead):
            return True
    except BaseException:  # a bad configuration: the same error as without the child, which is ended
        ahead.discard()
        raise
    ahead.discard()
    return False


def _fork(config: Callable[[], Any], memory: Callable[[], Any], state_dir: Path | None) -> Any:
    """The forked child (prefetch.Ahead), or None when nothing is worth loading ahead."""
    from copa.memory import embeddings, prefetch, warm

    if not prefetch.possible() or not any(map(embeddings.available, ("static", "minilm"))):
        return None  # no dense model installed: nothing to load ahead
    if warm.announced(state_dir):
        return None
    _not_dumpable()

    def prepare() -> Callable[[tuple], list[Any]] | None:  # in the child
        cfg = config()
        kind = embeddings.resolve(cfg.get("memory.embeddings"), quiet=True)
        if not cfg.get("memory.prefetch") or kind is None:
            return None  # keyword recall only: nothing to load, the child ends
        from copa.memory.store import searcher

        return searcher(kind, memory)  # the store is opened when the turn hands it the search

    return prefetch.start(prepare)


def search(memory: Any, query: str, args: dict[str, Any]) -> bool:
    """Start ``memory.search(query, **args)`` ahead: in the process ``get_ready`` forked, or a new one."""
    if not query.strip():
        return False
    _not_dumpable()
    return memory.prefetch(query, **args)


def _not_dumpable() -> None:
    from copa.skills.isolate import make_undumpable

    # The child keeps the flag: closed before the fork, as copa is before any skill runs, its /proc
    # files (environment, memory) stay root's.
    make_undumpable()
