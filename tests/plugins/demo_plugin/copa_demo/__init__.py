"""A plugin that answers every copa hook, as a third-party package would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from copa import hookimpl


@hookimpl
def copa_config_keys() -> dict[str, Any]:
    from copa.config import Key

    return {"demo.greeting": Key(str, "hello", "What the demo plugin says")}


def _create(db: Any) -> None:
    db.execute("CREATE TABLE demo_notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")
    db.execute("INSERT INTO demo_notes (text) VALUES ('made by demo_001')")


@hookimpl
def copa_migrations() -> list:
    return [("demo_001_notes", _create)]


def check_demo(config: Any):
    from copa.checks import OK, Check

    return Check("demo", OK, f"says {config.get('demo.greeting')!r}")


@hookimpl
def copa_doctor_checks() -> list:
    return [check_demo]


@hookimpl
def copa_model_providers() -> dict[str, Any]:
    return {"echo": "copa_demo.echo:EchoProvider"}


@hookimpl
def copa_skill_sources(config: Any, paths: Any, cwd: str) -> list:
    return [("builtin", Path(__file__).parent / "skills")]


def send_to_file(ctx: Any, target: Any, title: str, body: str, meta: dict) -> str:
    Path(target.to).write_text(f"{ctx.config.get('demo.greeting')}: {title}\n{body}", encoding="utf-8")
    return target.to


@hookimpl
def copa_delivery_channels() -> dict[str, Any]:
    return {"demofile": send_to_file}


@hookimpl
def copa_report_sections() -> dict[str, Any]:
    return {"demo": lambda ctx, **args: f"demo section for {ctx.name} ({args.get('mood', 'plain')})"}


@hookimpl
def copa_commands() -> dict[str, tuple[str, str]]:
    return {"demo": ("copa_demo.cli", "The demo plugin's own commands.")}
