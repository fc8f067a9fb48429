"""Reports: a Markdown template with ``{{placeholders}}`` (or a Python skill) rendered into a
Markdown document, stored three ways: a row in ``sched_reports``, a file under
``<data dir>/reports/NAME/``, and a memory of kind ``report`` so it can be recalled and searched.

Placeholders: ``{{date}}``, ``{{now}}``, ``{{summary}}`` and the sections of ``sections.py``
(``{{tasks}}``, ``{{calendar days=7}}``, ``{{learned}}``, ``{{telemetry hours=24}}``, ``{{health}}``,
``{{runs days=7}}``, ``{{skills}}``), plus ``{{skill:NAME k=v ...}}`` for one skill's result.
"""

from __future__ import annotations

import logging
import re
import secrets as _random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from copa.errors import NotFoundError, UsageError
from copa.scheduler import sections
from copa.scheduler.store import iso, parse_iso

if TYPE_CHECKING:
    from copa.scheduler.parts import Parts

log = logging.getLogger("copa.scheduler")
_PLACEHOLDER = re.compile(r"\{\{\s*([a-zA-Z_][\w-]*)(?::([\w.-]+))?((?:\s+[^}]*)?)\s*\}\}")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

BUILTIN: dict[str, str] = {
    "daily-briefing": """# Daily briefing, {{date}}

{{summary}}

## Tasks

{{tasks}}

## Calendar

{{calendar days=1}}

## Learned since the last briefing

{{learned days=1}}

## Devices

{{telemetry hours=24}}

## System

{{health}}

{{skills}}
""",
    "weekly-review": """# Weekly review, {{date}}

{{summary}}

## Open tasks

{{tasks}}

## The week ahead

{{calendar days=7}}

## Learned this week

{{learned days=7}}

## Devices, last 7 days

{{telemetry hours=168}}

## Scheduled jobs, last 7 days

{{runs days=7}}

## System

{{health}}

{{skills}}
""",
}


@dataclass
class Report:
    id: str
    name: str
    title: str
    created_at: datetime
    body: str
    path: str | None = None
    memory_id: str | None = None
    run_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "title": self.title, "created_at": iso(self.created_at),
                "path": self.path, "memory_id": self.memory_id, "run_id": self.run_id, "body": self.body}


def templates_dir(ws: Parts) -> Path:
    return ws.paths.config_dir / "reports"


def templates(ws: Parts) -> list[dict[str, str]]:
    """Built-in templates, then the user's ``<config dir>/reports/*.md`` (which may override them)."""
    found = {name: {"name": name, "source": "built-in"} for name in BUILTIN}
    d = templates_dir(ws)
    if d.is_dir():
        for f in sorted(d.glob("*.md")):
            found[f.stem] = {"name": f.stem, "source": str(f)}
    return sorted(found.values(), key=lambda t: t["name"])


def check_name(ws: Parts, name: str) -> str:
    """A report that exists: a template name or ``skill:NAME``."""
    if name.startswith("skill:") and len(name) > 6:
        from copa.scheduler.jobs import _check_skill

        _check_skill(ws, name[6:])
        return name
    if not _NAME_RE.match(name) or name not in {t["name"] for t in templates(ws)}:
        names = ", ".join(t["name"] for t in templates(ws))
        raise NotFoundError(f"no report template named {name!r}",
                            hint=f"templates: {names}; add one as {templates_dir(ws)}/NAME.md, "
                                 "or use skill:NAME for a skill that writes the report")
    return name


def _template_text(ws: Parts, name: str) -> str:
    path = templates_dir(ws) / f"{name}.md"
    if path.is_file():
        return path.read_text(encoding="utf-8")
    return BUILTIN[name]


def zone(ws: Parts) -> Any:
    """The user's zone (scheduler.timezone, general.timezone, the system's) as a ZoneInfo."""
    from zoneinfo import ZoneInfo

    from copa.scheduler.triggers import default_zone

    return ZoneInfo(default_zone(ws.config))


def last_report_at(ws: Parts, name: str) -> datetime | None:
    row = ws.conn.execute("SELECT MAX(created_at) FROM sched_reports WHERE name = ?", (name,)).fetchone()
    return parse_iso(row[0]) if row and row[0] else None


def render(ws: Parts, name: str, *, now: datetime | None = None) -> tuple[str, str]:
    """(title, markdown) of the report NAME, gathered now."""
    check_name(ws, name)
    now = now or datetime.now(UTC)
    tz = zone(ws)
    ctx = sections.Context(ws, name, now, last_report_at(ws, name), tz)
    if name.startswith("skill:"):
        body = sections.skill(ctx, name=name[6:], **_skill_args(ws, name[6:], ctx))
        if not body.lstrip().startswith("#"):
            body = f"# {name[6:]}, {now.astimezone(tz):%Y-%m-%d}\n\n{body}"
    else:
        body = _fill(ctx, _template_text(ws, name))
    body = _add_summary(ws, body)
    body = re.sub(r"\n{3,}", "\n\n", body).strip() + "\n"
    first = body.splitlines()[0] if body else name
    title = first.lstrip("#").strip() if first.startswith("#") else name
    return title, body


def _skill_args(ws: Parts, skill: str, ctx: sections.Context) -> dict[str, Any]:
    """What a report skill may receive, limited to the parameters it declares."""
    offered = {"since": iso(ctx.last_report_at) or "", "now": iso(ctx.now), "timezone": str(ctx.tz)}
    try:
        props = ws.skills.get(skill).parameters.get("properties", {})
    except Exception:  # unknown skill or no skills part: the call itself will say so
        return {}
    return {k: v for k, v in offered.items() if k in props}


def _fill(ctx: sections.Context, text: str) -> str:
    def replace(m: re.Match[str]) -> str:
        key, arg, rest = m.group(1), m.group(2), m.group(3) or ""
        if key == "summary":
            return m.group(0)  # filled last, from the finished report
        if key == "date":
            return f"{ctx.now.astimezone(ctx.tz):%A %d %B %Y}"
        if key == "now":
            return f"{ctx.now.astimezone(ctx.tz):%Y-%m-%d %H:%M %Z}"
        _, kwargs = sections.parse_call("x " + rest)
        if key == "skill" and arg:
            fn, kwargs = sections.skill, {**kwargs, "name": arg}
        elif key in _sections():
            fn = _sections()[key]
        else:
            return f"_(unknown placeholder {{{{{key}}}}}; known: {', '.join(sorted(_sections()))})_"
        try:
            return fn(ctx, **kwargs)
        except Exception as e:  # one broken section must not sink the report
            log.exception("report section %s failed", key)
            return f"_(the {key} section failed: {type(e).__name__}: {e})_"

    return _PLACEHOLDER.sub(replace, text)


SUMMARY_PROMPT = ("Write one short paragraph (at most four sentences) that tells the reader what matters most "
                  "in the report below. Use only facts from it; no preamble.\n\n")


def _add_summary(ws: Parts, body: str) -> str:
    """Fill ``{{summary}}`` with a paragraph from the configured fast model; drop it if none."""
    if "{{summary}}" not in body:
        return body
    paragraph = ""
    model = ws.config.get("reports.summary_model")
    if model:
        paragraph = _summarize(ws, body.replace("{{summary}}", ""), model)
    return body.replace("{{summary}}", f"> {paragraph}" if paragraph else "")


def _summarize(ws: Parts, body: str, model: str) -> str:
    try:
        if ws.agent.available_model() is None:
            return ""
    except Exception:
        return ""
    if model == "fast":  # the agent's fast model (agent.fast_model, else its default)
        try:
            model = ws.models.fast_name() or None
        except Exception:
            model = None
    for choice in dict.fromkeys((model, None)):  # the chosen model, else whatever the agent would use
        try:
            result = ws.agent.run_turn(SUMMARY_PROMPT + body, model=choice, use_memory=False,
                                       system="You summarize reports briefly and factually.",
                                       approve=lambda *_: False)
            text = " ".join((result.text or "").split())
            if text:
                return text
        except Exception as e:  # the report is complete without a summary
            log.warning("report summary with model %s failed: %s", choice, e)
    return ""


def create(ws: Parts, name: str, *, run_id: int | None = None, now: datetime | None = None) -> Report:
    """Render the report NAME and store it (row, Markdown file, memory of kind report)."""
    now = now or datetime.now(UTC)
    title, body = render(ws, name, now=now)
    rid = f"r{now:%Y%m%dT%H%M%S}-{_random.token_hex(2)}"
    safe = name.replace(":", "-")
    path = ws.paths.data_dir / "reports" / safe / f"{now.astimezone(zone(ws)):%Y-%m-%d_%H%M%S}-{rid[-4:]}.md"
    from copa.paths import atomic_write

    atomic_write(path, body.encode("utf-8"), mode=0o600)
    memory_id = None
    try:
        mem = ws.memory
    except AttributeError:
        mem = None
    if mem is not None:
        try:
            memory_id = mem.add(body, kind="report", subject=f"report:{name}", source=f"report:{rid}",
                                occurred_at=now, metadata={"report_id": rid, "path": str(path), "title": title})
        except Exception as e:  # the report exists on disk and in its table either way
            log.warning("could not store report %s as a memory: %s", rid, e)
    ws.conn.execute(
        "INSERT INTO sched_reports (id, name, title, created_at, path, body, memory_id, run_id)"
        " VALUES (?,?,?,?,?,?,?,?)", (rid, name, title, iso(now), str(path), body, memory_id, run_id))
    return Report(rid, name, title, now, body, str(path), memory_id, run_id)


def _row(r: Any) -> Report:
    return Report(r[0], r[1], r[2], parse_iso(r[3]), r[5], r[4], r[6], r[7])


def get(ws: Parts, report_id: str) -> Report:
    cols = "id, name, title, created_at, path, body, memory_id, run_id"
    r = ws.conn.execute(f"SELECT {cols} FROM sched_reports WHERE id = ?", (report_id,)).fetchone()
    if r is None and report_id == "last":
        r = ws.conn.execute(f"SELECT {cols} FROM sched_reports ORDER BY created_at DESC LIMIT 1").fetchone()
    if r is None:  # a unique prefix is enough
        rows = ws.conn.execute(f"SELECT {cols} FROM sched_reports WHERE id LIKE ? LIMIT 2",
                                  (report_id + "%",)).fetchall()
        if len(rows) == 1:
            r = rows[0]
    if r is None:
        raise NotFoundError(f"no report {report_id!r}", hint="see 'copa report list'")
    return _row(r)


def recent(ws: Parts, name: str | None = None, limit: int = 20) -> list[Report]:
    cols = "id, name, title, created_at, path, body, memory_id, run_id"
    if name:
        rows = ws.conn.execute(f"SELECT {cols} FROM sched_reports WHERE name = ? ORDER BY created_at DESC "
                                  "LIMIT ?", (name, limit)).fetchall()
    else:
        rows = ws.conn.execute(f"SELECT {cols} FROM sched_reports ORDER BY created_at DESC LIMIT ?",
                                  (limit,)).fetchall()
    return [_row(r) for r in rows]


def check_limit(limit: int) -> int:
    if limit < 1:
        raise UsageError("--limit must be at least 1")
    return limit


def _sections() -> dict[str, Any]:
    """Every report section, copa's own (``sections.SECTIONS``) and plugins', through ``copa_report_sections``."""
    from copa.plugins import merged

    return merged("copa_report_sections", "report section")
