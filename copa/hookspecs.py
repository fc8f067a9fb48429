"""The plugin surface: every way another package (and each of copa's own parts) extends copa.

A plugin is a module with functions named after these specs, marked ``@copa.hookimpl``, listed
under the ``copa`` entry-point group of its package::

    [project.entry-points.copa]
    weather = "copa_weather"

Each hook returns what the plugin adds; copa collects the answers of every plugin (its own parts
first, then installed packages in name order). See docs/architecture.md for an example of each.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("copa")


@hookspec
def copa_config_keys() -> dict[str, Any]:
    """Config keys this plugin owns: ``{"section.key": Key(...)}``, and named tables as
    ``{"prefix.NAME": {"field": Key(...)}}``. A key may be declared by one plugin only."""


@hookspec
def copa_migrations() -> list[tuple[str, Any]]:
    """Numbered migrations of the tables this plugin owns, in order: ``[(name, fn(db)), ...]``.
    Names are global (prefix them with the plugin's name); a landed one is never edited."""


@hookspec
def copa_doctor_checks() -> list[Any]:
    """Check functions for `copa doctor` and the {{health}} report section. Their parameters name
    the parts they use (config, paths, secrets, db, memory, models, skills, devices)."""


@hookspec
def copa_model_providers() -> dict[str, Any]:
    """Wire protocols: ``{"name": ProviderClass}`` (a ``copa.providers.base.Provider`` subclass, or
    "module:Class" to import it only when used), usable as ``provider = "name"`` in [models.NAME]."""


@hookspec
def copa_skill_sources(config: Any, paths: Any, cwd: str) -> list[tuple[str, Any]]:
    """Folders of skills: ``[(location, Path), ...]``; location is one of builtin, extra, user, project
    (precedence, lowest first: a user's skill overrides a plugin's builtin one of the same name).
    ``config`` and ``paths`` are None for a registry built without them (tests)."""


@hookspec
def copa_delivery_channels() -> dict[str, Any]:
    """Where reports and job output can go: ``{"kind": send(ctx, target, title, body, meta) -> str}``,
    usable as ``kind = "..."`` in [delivery.NAME]; ``ctx`` gives ``config`` and ``secrets``."""


@hookspec
def copa_report_sections() -> dict[str, Any]:
    """Report template placeholders: ``{"name": fn(ctx, **args) -> str}`` for ``{{name args}}``."""


@hookspec
def copa_commands() -> dict[str, tuple[str, str]]:
    """CLI command groups: ``{"name": ("module.with.typer_app", "one-line help")}``; the module is
    imported only when its group is used. A name copa already has is refused."""
