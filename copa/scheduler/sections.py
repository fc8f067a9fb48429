"""The sections a report template can include, each a function returning Markdown.

A section never sinks the report: if its part of copa is missing (no memory, no skills, no devices)
it says so in one line, and if it crashes the report shows the error in place of that section.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from copa.scheduler.parts import Parts

log = logging.getLogger("copa.scheduler")
SPARK = "▁▂▃▄▅▆▇█"
NOISE_KINDS = {"episode", "report"}  # conversation turns and earlier reports are not "learned"


class Context:
    """What a section may use: the workstation, the report's time, the last report of this name."""

    def __init__(self, ws: Parts, name: str, now: datetime, last_report_at: datetime | None, tz: Any):
        self.ws, self.name, self.now, self.last_report_at, self.tz = ws, name, now, last_report_at, tz

    def local(self, dt: datetime | None) -> str:
        return dt.astimezone(self.tz).strftime("%a %d %b %H:%M") if dt else "?"


def tasks(ctx: Context, **_: str) -> str:
    items = ctx.ws.memory.tasks()
    if not items:
        return "No open tasks."
    end_of_day = ctx.now.astimezone(ctx.tz).replace(hour=23, minute=59, second=59)
    lines = []
    for t in items:
        due = t.due_at
        mark = ""
        if due is not None:
            mark = " **overdue**" if due < ctx.now else " (due today)" if due <= end_of_day else ""
            mark = f" — due {ctx.local(due)}{mark}"
        status = " [in progress]" if getattr(t, "status", "") == "in_progress" else ""
        lines.append(f"- {t.text}{status}{mark}")
    overdue = sum(1 for t in items if t.due_at and t.due_at < ctx.now)
    head = f"{len(items)} open" + (f", {overdue} overdue" if overdue else "") + ":"
    return head + "\n\n" + "\n".join(lines)


def _calendar_skill(skills: Any) -> str | None:
    names = [s.name for s in skills.list() if getattr(s, "status", "ok") == "ok"]
    for pref in ("upcoming_events", "calendar_upcoming", "calendar"):
        if pref in names:
            return pref
    return next((n for n in names if n.startswith("calendar")), None)


def calendar(ctx: Context, days: str = "7", **_: str) -> str:
    """Upcoming events of every calendar in ``reports.calendars``, through the calendar skill."""
    sources = ctx.ws.config.get("reports.calendars")
    if not sources:
        return "_No calendar configured (copa config set reports.calendars ~/cal.ics,https://...)._"
    skills = ctx.ws.skills
    name = _calendar_skill(skills)
    if name is None:
        return "_No calendar skill is available._"
    events, problems = [], []
    for src in sources:
        result = skills.call(name, {"source": src, "days": int(days), "timezone": str(ctx.tz)})
        if not result.ok:
            problems.append(f"_{src}: {result.error}_")
            continue
        content = result.content
        if isinstance(content, dict):
            content = content.get("events", [])
        events += [e for e in content or [] if isinstance(e, dict)]
    events.sort(key=lambda e: str(e.get("start", "")))
    rows = []
    for ev in events[:50]:
        when = str(ev.get("start", "")).replace("T", " ")
        what = ev.get("summary") or ev.get("title") or ""
        where = f" ({ev['location']})" if ev.get("location") else ""
        rows.append(f"- {when} {what}{where}".rstrip())
    if not rows and not problems:
        return f"No events in the next {days} day(s)."
    return "\n".join(rows + problems)


def learned(ctx: Context, days: str = "1", **_: str) -> str:
    mem = ctx.ws.memory
    since = ctx.last_report_at or ctx.now - timedelta(days=float(days))
    changes = [m for m in mem.changes_since(since) if m.kind not in NOISE_KINDS]
    new = [m for m in changes if m.created_at and m.created_at >= since and not m.superseded_by and not m.valid_to]
    ended = [m for m in changes if m.superseded_by or m.valid_to]
    if not new and not ended:
        return f"Nothing new since {ctx.local(since)}."
    out = []
    if new:
        out.append(f"New since {ctx.local(since)}:\n")
        out += [f"- {m.text}" + (f" _({m.kind})_" if m.kind not in ("note", "fact") else "") for m in new[:40]]
    if ended:
        out.append("\nNo longer true (superseded or ended):\n")
        out += [f"- ~~{m.text}~~" for m in ended[:40]]
    return "\n".join(out)


def _table_exists(ws: Parts, name: str) -> bool:
    return ws.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() \
        is not None


def sparkline(values: list[float], width: int = 16) -> str:
    """Mean of each of ``width`` equal slices, scaled to eight block characters."""
    if not values:
        return ""
    n = min(width, len(values))
    buckets = [values[i * len(values) // n:(i + 1) * len(values) // n] for i in range(n)]
    means = [sum(b) / len(b) for b in buckets if b]
    lo, hi = min(means), max(means)
    if hi == lo:
        return SPARK[3] * len(means)
    return "".join(SPARK[min(7, int((v - lo) / (hi - lo) * 8))] for v in means)


def telemetry(ctx: Context, hours: str = "24", **_: str) -> str:
    if not _table_exists(ctx.ws, "device_readings") or \
            ctx.ws.conn.execute("SELECT 1 FROM device_readings LIMIT 1").fetchone() is None:
        return "No devices."
    since = (ctx.now - timedelta(hours=float(hours))).astimezone(UTC).isoformat()
    rows = ctx.ws.conn.execute(
        "SELECT device, channel, at, value FROM device_readings WHERE at >= ? AND value IS NOT NULL "
        "ORDER BY device, channel, at", (since,)).fetchall()
    if not rows:
        return f"No device readings in the last {hours} h."
    series: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for device, channel, at, value in rows:
        series.setdefault((device, channel), []).append((at, float(value)))
    lines = ["| device | sensor | min | max | mean | last | trend |", "|---|---|---|---|---|---|---|"]
    for (device, channel), pts in series.items():
        vals = [v for _, v in pts]
        lines.append(f"| {device} | {channel} | {_num(min(vals))} | {_num(max(vals))} | "
                     f"{_num(sum(vals) / len(vals))} | {_num(vals[-1])} | {sparkline(vals)} |")
    return f"Last {hours} h, {len(rows)} readings:\n\n" + "\n".join(lines)


def _num(v: float) -> str:
    return f"{v:.4g}"


def health(ctx: Context, **_: str) -> str:
    from copa.checks import run_checks  # infra: every part's checks through the hook, no face

    checks = run_checks(ctx.ws)
    bad = [c for c in checks if c.status in ("warn", "fail")]
    head = f"{len(checks)} checks, {len(bad)} need attention." if bad else f"All {len(checks)} checks pass."
    return head + ("\n\n" + "\n".join(f"- **{c.status}** {c.name}: {c.detail}" + (f" — {c.fix}" if c.fix else "")
                                      for c in bad) if bad else "")


def runs(ctx: Context, days: str = "7", **_: str) -> str:
    since = (ctx.now - timedelta(days=float(days))).astimezone(UTC).isoformat()
    rows = ctx.ws.conn.execute(
        "SELECT job_name, status, COUNT(*), MAX(started_at) FROM sched_runs WHERE started_at >= ? "
        "GROUP BY job_name, status ORDER BY job_name", (since,)).fetchall()
    if not rows:
        return f"No scheduled runs in the last {days} day(s)."
    return "\n".join(f"- {job}: {n} {status}" for job, status, n, _ in rows)


def skill(ctx: Context, name: str = "", **args: str) -> str:
    result = ctx.ws.skills.call(name, dict(args))
    if not result.ok:
        return f"_{name} failed: {result.error}_"
    content = result.content
    if isinstance(content, str):
        return content
    return "```json\n" + json.dumps(content, indent=2, ensure_ascii=False, default=str)[:4000] + "\n```"


def chosen_skills(ctx: Context, **_: str) -> str:
    chosen = ctx.ws.config.get("reports.skills")
    if not chosen:
        return ""
    parts = []
    for entry in chosen:
        name, args = parse_call(entry)
        parts.append(f"### {name}\n\n{skill(ctx, name=name, **args)}")
    return "\n\n".join(parts)


def parse_call(text: str) -> tuple[str, dict[str, Any]]:
    """'weather city=Paris days=2' -> ('weather', {'city': 'Paris', 'days': 2}); values that read as
    JSON (numbers, true/false) become those, the rest stay text."""
    import shlex

    words = shlex.split(text)
    if not words:
        return "", {}
    args = {}
    for w in words[1:]:
        k, sep, v = w.partition("=")
        if sep:
            args[k] = json_or_text(v)
    return words[0], args


def json_or_text(text: str) -> Any:
    """'3' -> 3, 'true' -> True, '"x"' -> 'x'; anything else stays the text it is."""
    try:
        return json.loads(text)
    except ValueError:
        return text


SECTIONS: dict[str, Callable[..., str]] = {
    "tasks": tasks, "calendar": calendar, "learned": learned, "telemetry": telemetry, "health": health,
    "runs": runs, "skills": chosen_skills,
}
