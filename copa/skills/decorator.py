"""The ``@skill`` decorator: marks a function as a tool and records what it may do.

It only attaches metadata; nothing is registered globally, so importing a skill file has no side
effects beyond its own code. Schemas are built from the function later (see ``schema.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])

ATTR = "__copa_skill__"


@dataclass(frozen=True)
class SkillMeta:
    name: str
    permissions: tuple[str, ...] = ()
    dangerous: bool = False
    timeout: float | None = None  # seconds; None = the configured default (skills.timeout)
    secrets: tuple[str, ...] = ()
    description: str | None = None  # overrides the docstring's first paragraph
    processes: int | None = None  # most processes+threads of its worker; None = skills.max_processes
    extra: dict[str, Any] = field(default_factory=dict)


@overload
def skill(func: F) -> F: ...
@overload
def skill(
    func: None = None, *, name: str | None = None, permissions: list[str] | tuple[str, ...] = (),
    dangerous: bool = False, timeout: float | None = None, secrets: list[str] | tuple[str, ...] = (),
    description: str | None = None, processes: int | None = None,
) -> Callable[[F], F]: ...


def skill(func=None, *, name=None, permissions=(), dangerous=False, timeout=None, secrets=(), description=None,
          processes=None):
    """Turn a function into a copa skill (a tool the agent can call).

    Use it bare (``@skill``) or with options::

        @skill(permissions=["net:api.example.org", "fs.read:~/Documents"], dangerous=False,
               timeout=30, secrets=["EXAMPLE_API_KEY"], processes=8)
        def lookup(city: str, days: int = 3) -> dict:
            '''Weather forecast for a city.

            Args:
                city: the city name, e.g. "Lisbon".
                days: how many days ahead (1-7).
            '''
    """

    def wrap(f: F) -> F:
        if isinstance(permissions, str) or isinstance(secrets, str):
            raise TypeError("@skill: permissions and secrets are lists of strings")
        meta = SkillMeta(
            name=name or f.__name__,
            permissions=tuple(permissions),
            dangerous=bool(dangerous),
            timeout=None if timeout is None else float(timeout),
            secrets=tuple(secrets),
            description=description,
            processes=None if processes is None else int(processes),
        )
        setattr(f, ATTR, meta)
        return f

    if func is not None:
        return wrap(func)
    return wrap


def meta_of(obj: Any) -> SkillMeta | None:
    return getattr(obj, ATTR, None) if callable(obj) else None
