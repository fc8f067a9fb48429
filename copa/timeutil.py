"""Time in copa's stored form: timezone-aware UTC datetimes in Python, fixed-width ISO 8601 text in
SQLite and JSON (so that text order is time order). Shared by every part that stores times."""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None) -> str | None:
    """The stored form: UTC, microseconds, fixed width."""
    return dt.astimezone(UTC).isoformat(timespec="microseconds") if dt else None


def parse_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
