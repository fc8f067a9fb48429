"""What boards sense, kept: readings in ``device_readings`` and notable events as memories.

Readings arrive as often as a board samples (every few ms if asked); the table keeps one averaged
value per channel per ``device.telemetry_interval`` seconds, deletes rows older than the retention
and caps the row count, so it stays small on a machine that runs for years. Notable events (a rule
fired or cleared, a board connected or lost) become memories of kind "event" with the device as
source, which is what makes "when did the greenhouse get too hot last week?" answerable.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from copa.db import rows as query_rows
from copa.device.protocol import Rule, RuleEvent, SampleEvent

if TYPE_CHECKING:
    from copa.device.session import ReceivedEvent

log = logging.getLogger("copa.device")


def channel_name(kind: int, index: int) -> str:
    return f"a{index}" if kind == Rule.ADC else f"d{index}"


@dataclass
class _Bucket:
    start: datetime
    total: float = 0.0
    n: int = 0


class Telemetry:
    """Downsamples readings of any number of boards into ``device_readings``. Thread-safe."""

    def __init__(self, conn: Any, config: Any, *, interval: float | None = None,
                 retention_days: int | None = None, max_rows: int | None = None):
        self.conn = conn  # a plain sqlite3 connection to the database (may be a per-thread deferral)
        cfg = config
        self.interval = float(interval if interval is not None else cfg.get("device.telemetry_interval"))
        self.retention = timedelta(days=retention_days if retention_days is not None
                                   else cfg.get("device.telemetry_retention_days"))
        self.max_rows = int(max_rows if max_rows is not None else cfg.get("device.telemetry_max_rows"))
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()
        self._written = 0

    def add(self, device: str, channel: str, value: float, at: datetime) -> None:
        """One raw sample; a bucket that has closed is written as its mean."""
        key = (device, channel)
        out: list[tuple[str, str, str, float]] = []
        with self._lock:
            b = self._buckets.get(key)
            if b is not None and (at - b.start).total_seconds() >= self.interval:
                out.append((device, channel, b.start.isoformat(), b.total / b.n))
                b = None
            if b is None:
                b = self._buckets[key] = _Bucket(at)
            b.total += value
            b.n += 1
        if out:
            self._write(out)

    def add_samples(self, device: str, channels: list[str], ev: SampleEvent, at: datetime) -> None:
        for ch, v in zip(channels, ev.values, strict=False):
            self.add(device, ch, float(v), at)

    def flush(self) -> int:
        """Write every open bucket now (at shutdown)."""
        with self._lock:
            out = [(d, c, b.start.isoformat(), b.total / b.n) for (d, c), b in self._buckets.items() if b.n]
            self._buckets.clear()
        self._write(out)
        return len(out)

    def _write(self, rows: list[tuple[str, str, str, float]]) -> None:
        if not rows:
            return
        self.conn.executemany("INSERT INTO device_readings (device, channel, at, value) VALUES (?, ?, ?, ?)", rows)
        self._written += len(rows)
        if self._written >= 200:
            self._written = 0
            self.prune()

    def prune(self, now: datetime | None = None) -> int:
        """Apply retention and the row cap; returns rows deleted."""
        conn = self.conn
        cutoff = ((now or datetime.now(UTC)) - self.retention).isoformat()
        n = conn.execute("DELETE FROM device_readings WHERE at < ?", [cutoff]).rowcount
        total = conn.execute("SELECT COUNT(*) FROM device_readings").fetchone()[0]
        if total > self.max_rows:
            n += conn.execute(
                "DELETE FROM device_readings WHERE rowid IN "
                "(SELECT rowid FROM device_readings ORDER BY at LIMIT ?)", [total - self.max_rows]).rowcount
        return n

    def readings(self, device: str, channel: str | None = None, since: datetime | None = None,
                 limit: int = 1000) -> list[dict[str, Any]]:
        sql = "SELECT device, channel, at, value FROM device_readings WHERE device = ?"
        args: list[Any] = [device]
        if channel:
            sql += " AND channel = ?"
            args.append(channel)
        if since:
            sql += " AND at >= ?"
            args.append(since.isoformat())
        sql += " ORDER BY at DESC LIMIT ?"
        args.append(limit)
        return query_rows(self.conn, sql, args)


def remember_event(memory: Any, device: str, text: str, at: datetime,
                   metadata: dict[str, Any] | None = None) -> str | None:
    """A memory of kind "event" with the device as its source; never raises (logging must go on)."""
    try:
        # no subject: the memory store supersedes memories by subject, and events must all stay
        return memory.add(f"{device}: {text}", kind="event", source=f"device:{device}",
                             occurred_at=at, metadata={"device": device, **(metadata or {})})
    except Exception:
        log.warning("could not store a device event as a memory", exc_info=True)
        return None


def describe_rule_event(ev: RuleEvent, rule_text: str | None) -> str:
    what = f"rule {ev.slot}" + (f" ({rule_text})" if rule_text else "")
    return f"{what} {'fired' if ev.fired else 'cleared'} at value {ev.value}"


class EventRecorder:
    """Subscribes to a session: samples -> telemetry, rule edges and link changes -> memories."""

    def __init__(self, memory: Any, telemetry: Telemetry, device: str, channels: list[str],
                 rule_texts: dict[int, str] | None = None):
        self.memory = memory
        self.telemetry = telemetry
        self.device = device
        self.channels = channels
        self.rule_texts = rule_texts or {}

    def on_event(self, rev: ReceivedEvent) -> None:
        ev = rev.event
        if isinstance(ev, SampleEvent):
            self.telemetry.add_samples(self.device, self.channels, ev, rev.at)
        elif isinstance(ev, RuleEvent):
            remember_event(self.memory, self.device, describe_rule_event(ev, self.rule_texts.get(ev.slot)),
                           rev.at, {"rule": ev.slot, "fired": ev.fired, "value": ev.value})

    def on_link(self, kind: str, info: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        if kind in ("connected", "reconnected"):
            remember_event(self.memory, self.device, f"board {kind} on {info.get('port', '?')}", now,
                           {"link": kind})
        elif kind == "lost":
            remember_event(self.memory, self.device, f"board connection lost ({info.get('reason', '')})", now,
                           {"link": kind})
