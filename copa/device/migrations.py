"""Tables of the serial bridge (given to copa.db through the copa_migrations hook of copa/device/plugin.py).

``devices``: paired boards under the names users chose (never their keys: those live in the secrets
store). ``device_readings``: downsampled telemetry; its name and columns are agreed with the
scheduler's reports, so they do not change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils


def _init(db: sqlite_utils.Database) -> None:
    db.execute("""
        CREATE TABLE IF NOT EXISTS devices (
            name TEXT PRIMARY KEY,
            device_id TEXT NOT NULL UNIQUE,
            board TEXT NOT NULL,
            port TEXT NOT NULL,
            usb_serial TEXT,
            firmware TEXT,
            paired_at TEXT NOT NULL,
            last_seen TEXT,
            counter INTEGER NOT NULL DEFAULT 0,
            watch TEXT NOT NULL DEFAULT '{}',
            info TEXT NOT NULL DEFAULT '{}'
        )""")
    db.execute("""
        CREATE TABLE IF NOT EXISTS device_readings (
            device TEXT NOT NULL,
            channel TEXT NOT NULL,
            at TEXT NOT NULL,
            value REAL NOT NULL
        )""")
    db.execute("CREATE INDEX IF NOT EXISTS device_readings_dca ON device_readings (device, channel, at)")
    db.execute("CREATE INDEX IF NOT EXISTS device_readings_at ON device_readings (at)")


MIGRATIONS = [("device_001_init", _init)]
