"""copa: a personal AI workstation for the terminal."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``from copa import hookimpl`` for plugins, without importing pluggy for `copa --version`."""
    if name == "hookimpl":
        from copa.plugins import hookimpl

        return hookimpl
    raise AttributeError(name)
