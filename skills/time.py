"""Time: the time now anywhere, time-zone conversion and date arithmetic."""

from __future__ import annotations

import calendar as _cal
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from copa.skills import skill


def _zone(name: str | None) -> tzinfo:
    if not name or name.lower() == "local":
        return datetime.now().astimezone().tzinfo  # type: ignore[return-value]
    if name.upper() == "UTC":
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Lisbon)") from None


def _parse(value: str, zone: tzinfo) -> datetime:
    low = value.strip().lower()
    now = datetime.now(zone)
    if low == "now":
        return now
    if low in ("today", "tomorrow", "yesterday"):
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return day + timedelta(days={"today": 0, "tomorrow": 1, "yesterday": -1}[low])
    raw = value.strip()
    try:
        dt = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
    except ValueError:
        raise ValueError(f"cannot read {value!r} as a time; use ISO 8601 like 2025-03-05 or 2025-03-05T14:30, "
                         "or now/today/tomorrow/yesterday") from None
    return dt.replace(tzinfo=zone) if dt.tzinfo is None else dt


def _describe(dt: datetime) -> dict:
    off = dt.utcoffset() or timedelta(0)
    sign = "-" if off < timedelta(0) else "+"
    mins = int(abs(off).total_seconds() // 60)
    return {"iso": dt.isoformat(timespec="seconds"), "date": dt.date().isoformat(),
            "time": dt.strftime("%H:%M:%S"), "weekday": dt.strftime("%A"), "zone": str(dt.tzinfo),
            "utc_offset": f"{sign}{mins // 60:02d}:{mins % 60:02d}", "unix": int(dt.timestamp()),
            "week": dt.isocalendar().week}


@skill
def current_time(timezone: str | None = None) -> dict:
    """The current date and time, in a time zone or the local one.

    Args:
        timezone: IANA time zone such as "America/New_York"; empty = local time.
    """
    return _describe(datetime.now(_zone(timezone)))


@skill
def convert_time(time: str, to_zone: str, from_zone: str | None = None) -> dict:
    """Convert a date and time from one time zone to another.

    Args:
        time: ISO 8601 date-time, e.g. "2025-03-05T14:30" (or "now").
        to_zone: IANA time zone to convert to, e.g. "Asia/Tokyo".
        from_zone: the zone of `time` when it has no offset; empty = local time.
    """
    dt = _parse(time, _zone(from_zone))
    return {"from": _describe(dt), "to": _describe(dt.astimezone(_zone(to_zone)))}


def _add_months(dt: datetime, months: int) -> datetime:
    total = dt.year * 12 + (dt.month - 1) + months
    year, month = divmod(total, 12)
    day = min(dt.day, _cal.monthrange(year, month + 1)[1])
    return dt.replace(year=year, month=month + 1, day=day)


@skill
def date_add(start: str = "now", years: int = 0, months: int = 0, weeks: int = 0, days: int = 0, hours: int = 0,
             minutes: int = 0, timezone: str | None = None) -> dict:
    """Add (or, with negative numbers, subtract) a period to a date or time.

    Months and years keep the day of the month where they can (Jan 31 + 1 month = Feb 28/29).

    Args:
        start: ISO 8601 date or date-time, or now/today/tomorrow/yesterday.
        years: years to add.
        months: months to add.
        weeks: weeks to add.
        days: days to add.
        hours: hours to add.
        minutes: minutes to add.
        timezone: IANA zone for `start` when it has no offset; empty = local.
    """
    dt = _parse(start, _zone(timezone))
    dt = _add_months(dt, years * 12 + months)
    dt = dt + timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes)
    return _describe(dt)


@skill
def date_diff(start: str, end: str, timezone: str | None = None) -> dict:
    """How long from one date or time to another (days, hours, weekdays in between).

    Args:
        start: ISO 8601 date or date-time, or now/today/tomorrow/yesterday.
        end: ISO 8601 date or date-time, or now/today/tomorrow/yesterday.
        timezone: IANA zone for values without an offset; empty = local.
    """
    zone = _zone(timezone)
    a, b = _parse(start, zone), _parse(end, zone)
    delta = b - a
    secs = delta.total_seconds()
    d0, d1 = sorted((a.date(), b.date()))
    weekdays = sum(1 for i in range((d1 - d0).days) if (d0 + timedelta(days=i)).weekday() < 5)
    whole = abs(delta)
    return {"seconds": secs, "minutes": round(secs / 60, 2), "hours": round(secs / 3600, 2),
            "days": round(secs / 86400, 4), "calendar_days": (b.date() - a.date()).days,
            "weekdays": weekdays if secs >= 0 else -weekdays,
            "text": ("-" if secs < 0 else "") + f"{whole.days} days, {whole.seconds // 3600} h, "
            f"{whole.seconds % 3600 // 60} min"}


