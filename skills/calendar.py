"""Calendar: upcoming events from an .ics file or a calendar URL (iCalendar, RFC 5545).

Repeating events (RRULE, RDATE, EXDATE) are expanded; moved occurrences (RECURRENCE-ID) replace the
ones they move. Parsing is done by the `icalendar` library.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path

from copa.skills import skill

MAX_BYTES = 10 * 1024 * 1024


def _load(source: str) -> bytes:
    if re.match(r"^(https?|webcal)://", source, re.I):
        import httpx

        url = re.sub(r"^webcal://", "https://", source, flags=re.I)
        with httpx.Client(follow_redirects=True, timeout=20.0) as c, c.stream("GET", url) as r:
            r.raise_for_status()
            data = bytearray()
            for chunk in r.iter_bytes():
                data += chunk
                if len(data) > MAX_BYTES:
                    raise ValueError(f"{source} is larger than {MAX_BYTES // 2**20} MB")
            return bytes(data)
    p = Path(os.path.expanduser(source))
    if not p.is_absolute():
        p = Path(os.environ.get("COPA_CWD", os.getcwd())) / p
    if p.stat().st_size > MAX_BYTES:
        raise ValueError(f"{source} is larger than {MAX_BYTES // 2**20} MB")
    return p.read_bytes()


def _aware(value: date | datetime, zone: tzinfo) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    return datetime.combine(value, time(0), zone)


def _dates(prop) -> list:
    if prop is None:
        return []
    items = prop if isinstance(prop, list) else [prop]
    return [d.dt for item in items for d in getattr(item, "dts", [])]


def _occurrences(ev, start: datetime, zone: tzinfo, window_start: datetime, window_end: datetime) -> list[datetime]:
    from dateutil.rrule import rruleset, rrulestr

    rrule = ev.get("rrule")
    extra = [_aware(d, zone) for d in _dates(ev.get("rdate"))]
    if rrule is None and not extra:
        return [start]
    rs = rruleset()
    if rrule is not None:
        text = rrule.to_ical().decode()
        if start.tzinfo is not None and "UNTIL=" in text and not re.search(r"UNTIL=\d{8}T\d{6}Z", text):
            text = re.sub(r"UNTIL=(\d{8})(T\d{6})?", lambda m: f"UNTIL={m.group(1)}T235959Z", text)
        rs.rrule(rrulestr(text, dtstart=start))
    rs.rdate(start)
    for d in extra:
        rs.rdate(d)
    for d in _dates(ev.get("exdate")):
        rs.exdate(_aware(d, zone))
    return list(rs.between(window_start, window_end, inc=True))[:1000]


@skill(permissions=["net", "fs.read:~", "fs.read:."])
def upcoming_events(source: str, days: int = 7, limit: int = 50, timezone: str | None = None) -> list[dict]:
    """Upcoming events of a calendar, soonest first (including ones happening now).

    Args:
        source: path of an .ics file, or an http(s)/webcal URL of a calendar.
        days: how many days ahead to look.
        limit: most events to return.
        timezone: IANA zone to show times in and for floating times; empty = local.
    """
    from zoneinfo import ZoneInfo

    from icalendar import Calendar

    zone = ZoneInfo(timezone) if timezone else datetime.now().astimezone().tzinfo
    cal = Calendar.from_ical(_load(source))
    now = datetime.now(zone)
    horizon = now + timedelta(days=days)
    moved = {(str(ev.get("uid")), _aware(ev.get("recurrence-id").dt, zone))
             for ev in cal.walk("VEVENT") if ev.get("recurrence-id") is not None}
    out = []
    for ev in cal.walk("VEVENT"):
        if ev.get("dtstart") is None or str(ev.get("status", "")).upper() == "CANCELLED":
            continue
        raw_start = ev.get("dtstart").dt
        all_day = not isinstance(raw_start, datetime)
        start = _aware(raw_start, zone)
        if ev.get("dtend") is not None:
            length = _aware(ev.get("dtend").dt, zone) - start
        elif ev.get("duration") is not None:
            length = ev.get("duration").dt
        else:
            length = timedelta(days=1) if all_day else timedelta(0)
        uid = str(ev.get("uid", ""))
        is_override = ev.get("recurrence-id") is not None
        for occ in _occurrences(ev, start, zone, now - length, horizon):
            end = occ + length
            if end < now and not (length == timedelta(0) and occ >= now) or occ > horizon:
                continue
            if not is_override and (uid, occ) in moved and ev.get("rrule") is not None:
                continue
            out.append({
                "summary": str(ev.get("summary", "")), "start": occ.date().isoformat() if all_day
                else occ.astimezone(zone).isoformat(timespec="minutes"),
                "end": end.date().isoformat() if all_day else end.astimezone(zone).isoformat(timespec="minutes"),
                "all_day": all_day, "location": str(ev.get("location", "")) or None,
                "description": (str(ev.get("description", ""))[:500] or None), "uid": uid or None,
                "_sort": occ.timestamp(),
            })
    out.sort(key=lambda e: e["_sort"])
    for e in out:
        del e["_sort"]
    return out[: max(limit, 0)]
