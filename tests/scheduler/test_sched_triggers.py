"""Trigger parsing and fire times with real IANA zones, including both DST changes of 2026 in Paris
(the same trigger objects the daemon hands to APScheduler)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from copa.errors import UsageError
from copa.scheduler import triggers

PARIS = ZoneInfo("Europe/Paris")


def fires(spec: str, start: datetime, n: int, tz: str = "Europe/Paris") -> list[datetime]:
    """The next n fire times, chained as APScheduler chains them (previous fire -> next)."""
    trig = triggers.build("cron", spec, tz)
    out, prev, now = [], None, start
    for _ in range(n):
        nxt = trig.get_next_fire_time(prev, now)
        out.append(nxt.astimezone(UTC))
        prev = now = nxt
    return out


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("5m", 300), ("1h30m", 5400), ("2d", 172800),
                                          ("1w", 604800), ("1S", 1)])
def test_parse_every(text, seconds):
    assert triggers.parse_every(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "5", "m5", "1.5h", "30m1h", "soon"])
def test_parse_every_rejects(text):
    with pytest.raises(UsageError):
        triggers.parse_every(text)


def test_crontab_weekdays_follow_crontab_not_apscheduler():
    # APScheduler 3 counts Monday as 0; crontab counts Sunday as 0 (and 7)
    assert triggers._crontab_dow("1-5") == "mon,tue,wed,thu,fri"
    assert triggers._crontab_dow("0,6") == "sun,sat"
    assert triggers._crontab_dow("7") == "sun"
    assert triggers._crontab_dow("mon-fri") == "mon-fri"
    # Wednesday 2026-11-25 12:00 UTC -> the next "0 8 * * 1-5" is Thursday, then Friday, then Monday
    got = fires("0 8 * * 1-5", datetime(2026, 11, 25, 12, tzinfo=UTC), 3, tz="UTC")
    assert [d.strftime("%a %H:%M") for d in got] == ["Thu 08:00", "Fri 08:00", "Mon 08:00"]
    assert [d.strftime("%a") for d in fires("30 9 * * 0", datetime(2026, 11, 25, tzinfo=UTC), 2, "UTC")] == \
        ["Sun", "Sun"]


def test_cron_keeps_local_time_across_spring_forward():
    got = fires("0 8 * * *", datetime(2026, 3, 27, 12, tzinfo=UTC), 3)
    assert [d.astimezone(PARIS).hour for d in got] == [8, 8, 8]
    assert [d.hour for d in got] == [7, 6, 6]  # UTC moves: CET (+1) then CEST (+2) from 29 March
    # 02:30 does not exist on 29 March: it runs once, at 03:30 local (right after the jump)
    skipped = fires("30 2 * * *", datetime(2026, 3, 28, 12, tzinfo=UTC), 2)
    assert [d.astimezone(PARIS).strftime("%d %H:%M") for d in skipped] == ["29 03:30", "30 02:30"]


def test_cron_fires_once_when_clocks_go_back():
    got = fires("30 2 * * *", datetime(2026, 10, 24, 12, tzinfo=UTC), 2)
    assert [d.astimezone(PARIS).strftime("%d %H:%M %z") for d in got] == ["25 02:30 +0200", "26 02:30 +0100"]
    # an hourly job is about elapsed time: it fires at both 02:30s
    hourly = fires("30 * * * *", datetime(2026, 10, 25, 0, 0, tzinfo=UTC), 3)
    assert [d.strftime("%H:%M") for d in hourly] == ["00:30", "01:30", "02:30"]
    assert [d.astimezone(PARIS).strftime("%H:%M") for d in hourly] == ["02:30", "02:30", "03:30"]


def test_every_keeps_its_grid_across_restarts():
    anchor = datetime(2026, 1, 1, 0, 0, 7, tzinfo=UTC)
    later = datetime(2026, 1, 1, 5, 12, 0, tzinfo=UTC)
    nxt = triggers.next_fire("every", "30m", "UTC", after=later, anchor=anchor)
    assert nxt == datetime(2026, 1, 1, 5, 30, 7, tzinfo=UTC)


def test_at_and_validate():
    now = datetime(2026, 6, 1, tzinfo=UTC)
    spec = triggers.validate("at", "2026-12-01T09:00", "Europe/Paris", now=now)
    assert datetime.fromisoformat(spec) == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert triggers.next_fire("at", spec, "Europe/Paris", after=now) == datetime(2026, 12, 1, 8, tzinfo=UTC)
    with pytest.raises(UsageError, match="already passed"):
        triggers.validate("at", "2026-01-01T09:00", "UTC", now=now)
    with pytest.raises(UsageError, match="bad cron expression"):
        triggers.validate("cron", "61 * * * *", "UTC")
    with pytest.raises(UsageError, match="expected 5 fields"):
        triggers.validate("cron", "* * *", "UTC")
    with pytest.raises(UsageError, match="unknown time zone"):
        triggers.validate("every", "5m", "Mars/Olympus")
    assert triggers.validate("cron", "0  8 * *   1-5", "UTC") == "0 8 * * 1-5"
    six = triggers.build("cron", "*/10 * * * * *", "UTC")  # a seconds field first
    assert six.get_next_fire_time(None, now + timedelta(seconds=3)) == now + timedelta(seconds=10)
