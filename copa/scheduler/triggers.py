"""When jobs fire: parsing and checking `--cron`, `--every` and `--at`, time zones, and building the
APScheduler 3.x trigger (imported only here, inside functions, so listing jobs never loads it).

Crontab weekdays follow crontab (0 or 7 = Sunday, 1 = Monday): APScheduler 3 numbers them from
Monday = 0, so numeric weekdays are translated to names before they reach it.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from copa.errors import UsageError

if TYPE_CHECKING:
    from copa.config import Config

KINDS = ("cron", "every", "at")
_EVERY_RE = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# the standard crontab macros (Vixie cron, cronie); @reboot has no meaning for a scheduler
MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
          "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_MONTH_DAYS = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}
_MONTH_NAMES = ["", "January", "February", "March", "April", "May", "June", "July", "August", "September",
                "October", "November", "December"]


def parse_every(text: str) -> int:
    """'30m' -> 1800; accepts w, d, h, m, s in that order ('1h30m', '2s')."""
    m = _EVERY_RE.match(text.strip().lower())
    if not text.strip() or not m or not any(m.groups()):
        raise UsageError(f"cannot read the interval {text!r}", hint="use e.g. 30s, 5m, 1h30m, 2d or 1w")
    w, d, h, mi, s = (int(g or 0) for g in m.groups())
    seconds = (((w * 7 + d) * 24 + h) * 60 + mi) * 60 + s
    if seconds < 1:
        raise UsageError("the interval must be at least 1 second", hint="use e.g. 30s or 5m")
    return seconds


def check_zone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"unknown time zone {name!r}", hint="use an IANA name such as Europe/Paris or UTC") from None
    return name


def system_zone() -> str:
    """The machine's IANA zone name (tzlocal, a dependency of APScheduler), or UTC."""
    try:
        import tzlocal

        name = tzlocal.get_localzone_name()
    except Exception:  # no /etc/localtime, odd TZ: UTC is a defined, documented fallback
        name = None
    return name or "UTC"


def default_zone(config: Config) -> str:
    """scheduler.timezone, then general.timezone, then the system's zone."""
    name = config.get("scheduler.timezone") or config.get("general.timezone") or system_zone()
    return check_zone(name)


def _crontab_dow(field: str) -> str:
    """Crontab weekday numbers (0/7 = Sunday) to APScheduler names; names pass through."""
    if field in ("*", "?") or re.search(r"[a-zA-Z]", field):
        return field
    days: set[int] = set()
    for part in field.split(","):
        base, _, step_txt = part.partition("/")
        step = int(step_txt) if step_txt else 1
        if base == "*":
            lo, hi = 0, 6
        elif "-" in base:
            a, _, b = base.partition("-")
            lo, hi = int(a), int(b)
        else:
            lo = int(base)
            hi = 7 if step_txt else lo
        if not (0 <= lo <= 7 and 0 <= hi <= 7 and lo <= hi and step >= 1):
            raise ValueError(f"bad weekday field {field!r}")
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


@functools.cache
def _cron_class() -> type:
    from apscheduler.triggers.cron import CronTrigger

    class WallClockCron(CronTrigger):
        """A fixed local time that occurs twice when clocks go back fires once, at its first occurrence,
        as in Vixie cron (jobs whose hour field has a '*' fire at both, like elapsed-time jobs). A local
        time skipped when clocks go forward fires at the same offset after the jump (02:30 -> 03:30)."""

        once_per_wall_time = True

        def get_next_fire_time(self, previous_fire_time, now):  # noqa: ANN001 - APScheduler's signature
            nxt = super().get_next_fire_time(previous_fire_time, now)
            for _ in range(4):
                if nxt is None or not self.once_per_wall_time or not _second_occurrence(nxt):
                    return nxt
                nxt = super().get_next_fire_time(nxt, nxt)
            return nxt

    return WallClockCron


def _second_occurrence(when: datetime) -> bool:
    """True for the later of two instants that share a local wall-clock time (clocks went back):
    the wall time read with fold=0 (its first occurrence) has another UTC offset."""
    wall = when.replace(tzinfo=None).replace(tzinfo=when.tzinfo, fold=0)
    return wall.utcoffset() != when.utcoffset()


def _cron_trigger(spec: str, tz: str) -> Any:
    fields = MACROS.get(spec.strip().lower(), spec).split()
    if len(fields) == 5:
        minute, hour, day, month, dow = fields
        second = "0"
    elif len(fields) == 6:  # a seconds field first, as in some cron dialects
        second, minute, hour, day, month, dow = fields
    else:
        raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
    trigger = _cron_class()(second=second, minute=minute, hour=hour, day=day, month=month,
                            day_of_week=_crontab_dow(dow), timezone=tz)
    trigger.once_per_wall_time = "*" not in hour
    return trigger


def _numbers(field: str, lo: int, hi: int) -> set[int] | None:
    """The values of a plain numeric crontab field ('5', '1-3', '*/2', '1,15'), or None if it uses
    anything else (names, 'L', 'W', '#'), which the quick check then leaves to APScheduler."""
    out: set[int] = set()
    for part in field.split(","):
        base, _, step_txt = part.partition("/")
        if not re.fullmatch(r"\*|\d+(-\d+)?", base) or (step_txt and not step_txt.isdigit()):
            return None
        a, b = (lo, hi) if base == "*" else (int(base.split("-")[0]), int(base.split("-")[-1]))
        out.update(range(a, b + 1, int(step_txt or 1)))
    return out


def _never_fires(spec: str) -> str | None:
    """Why a crontab expression can never match a date (day 31 of February...), or None. The day of
    week only widens a cron match when both day fields are restricted, so it is ignored unless '*'."""
    fields = spec.split()
    if len(fields) == 6:
        fields = fields[1:]
    if len(fields) != 5:
        return None
    _, _, day, month, dow = fields
    if day == "*" or (dow not in ("*", "?")):
        return None
    days, months = _numbers(day, 1, 31), _numbers(month, 1, 12)
    if not days or not months:
        return None
    if min(days) > max(_MONTH_DAYS[m] for m in months if m in _MONTH_DAYS):
        names = ", ".join(_MONTH_NAMES[m] for m in sorted(months) if m in _MONTH_DAYS)
        return f"day {min(days)} never occurs in {names}"
    return None


def parse_at(text: str, tz: str) -> datetime:
    """An ISO date-time; without an offset it is read in the job's zone. Returned in UTC."""
    from zoneinfo import ZoneInfo

    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"cannot read the date-time {text!r}", hint="use ISO 8601, e.g. 2026-12-01T09:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(tz))
    return when.astimezone(UTC)


def validate(kind: str, spec: str, tz: str, *, now: datetime | None = None) -> str:
    """Check a trigger; returns its normalized spec. Imports APScheduler for cron expressions."""
    check_zone(tz)
    if kind == "every":
        parse_every(spec)
        return spec.strip().lower()
    if kind == "at":
        when = parse_at(spec, tz)
        if when <= (now or datetime.now(UTC)):
            raise UsageError(f"{spec} has already passed", hint="give a future date-time, or use --every/--cron")
        return when.isoformat()
    if kind == "cron":
        spec = " ".join(spec.split())
        if spec.startswith("@"):
            spec = spec.lower()
            if spec not in MACROS:
                raise UsageError(f"unknown cron macro {spec!r}", hint="use " + ", ".join(sorted(MACROS)) +
                                 " or five fields, e.g. '0 8 * * 1-5'")
        try:
            trigger = _cron_trigger(spec, tz)
        except ValueError as e:
            raise UsageError(f"bad cron expression {spec!r}: {e}", hint="five fields: minute hour "
                             "day-of-month month day-of-week, e.g. '0 8 * * 1-5'") from None
        why = _never_fires(MACROS.get(spec, spec))
        if why is None and trigger.get_next_fire_time(None, now or datetime.now(UTC)) is None:
            why = "no date matches it"
        if why:
            raise UsageError(f"the cron expression {spec!r} can never fire: {why}",
                             hint="check the day of month against the month (e.g. '0 8 28 2 *' or '0 8 L 2 *')")
        return spec
    raise UsageError(f"unknown trigger kind {kind!r}", hint="use --cron, --every or --at")


def build(kind: str, spec: str, tz: str, anchor: datetime | None = None) -> Any:
    """The APScheduler trigger. ``anchor`` (the job's creation time) keeps --every on a fixed grid
    across daemon restarts instead of restarting the interval each time."""
    if kind == "cron":
        return _cron_trigger(spec, tz)
    if kind == "every":
        from apscheduler.triggers.interval import IntervalTrigger

        seconds = parse_every(spec)
        start = (anchor or datetime.now(UTC)) + timedelta(seconds=seconds)
        return IntervalTrigger(seconds=seconds, start_date=start, timezone=tz)
    if kind == "at":
        from apscheduler.triggers.date import DateTrigger

        return DateTrigger(run_date=datetime.fromisoformat(spec), timezone=tz)
    raise UsageError(f"unknown trigger kind {kind!r}")


def next_fire(kind: str, spec: str, tz: str, *, after: datetime | None = None,
              anchor: datetime | None = None, previous: datetime | None = None) -> datetime | None:
    """The first fire time at or after ``after`` (UTC), or None when the trigger is exhausted."""
    now = (after or datetime.now(UTC)).astimezone(UTC)
    trigger = build(kind, spec, tz, anchor)
    when = trigger.get_next_fire_time(previous, now)
    return when.astimezone(UTC) if when else None


def describe(kind: str, spec: str) -> str:
    return {"cron": f"cron '{spec}'", "every": f"every {spec}", "at": f"at {spec}"}.get(kind, spec)
