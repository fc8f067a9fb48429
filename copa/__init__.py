"""copa: a personal AI workstation for the terminal."""

import sys

__version__ = "0.1.0"

# httpx imports its command-line client whenever click, rich and pygments are installed (typer brings
# them): ~30 ms of every command that talks HTTP, for a client copa never runs. A None entry in
# sys.modules makes that optional import fail at once, and httpx falls back to its stub ``main``.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


def __getattr__(name: str):
    """``from copa import hookimpl`` for plugins, without importing pluggy for `copa --version`."""
    if name == "hookimpl":
        from copa.plugins import hookimpl

        return hookimpl
    raise AttributeError(name)
