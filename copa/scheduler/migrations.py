"""Tables of the scheduler: job definitions (the source of truth), runs, reports, deliveries, and a
small key/value table holding the change counter the daemon polls and the daemon's heartbeat."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite_utils


def _init(db: sqlite_utils.Database) -> None:
    # one statement at a time: executescript() would COMMIT the migration's transaction early
    for statement in _strip_comments(_SCHEMA).split(";"):
        if statement.strip():
            db.execute(statement)


def _strip_comments(sql: str) -> str:
    return "\n".join(line.split("--")[0] for line in sql.splitlines())


_SCHEMA = """
        CREATE TABLE IF NOT EXISTS sched_jobs (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            trigger_kind TEXT NOT NULL,          -- cron | every | at
            trigger_spec TEXT NOT NULL,          -- '0 8 * * 1-5' | '30m' | ISO date-time
            timezone TEXT NOT NULL,              -- IANA zone, always explicit
            action_kind TEXT NOT NULL,           -- report | skill | prompt
            action_target TEXT NOT NULL,         -- report name | skill name | prompt text
            action_args TEXT NOT NULL DEFAULT '{}',
            deliver TEXT NOT NULL DEFAULT '[]',  -- JSON list of delivery target specs
            retries INTEGER,                     -- NULL = scheduler.retries
            misfire_grace INTEGER,               -- NULL = scheduler.misfire_grace
            paused INTEGER NOT NULL DEFAULT 0,
            done INTEGER NOT NULL DEFAULT 0,     -- a one-shot (--at) job that has fired
            next_run_at TEXT,                    -- UTC ISO; written by the daemon (and by add)
            last_run_at TEXT,
            last_status TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS sched_runs (
            id INTEGER PRIMARY KEY,
            job_id INTEGER,
            job_name TEXT NOT NULL,
            origin TEXT NOT NULL,                -- schedule | catch-up | manual | retry
            attempt INTEGER NOT NULL DEFAULT 1,
            scheduled_for TEXT,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            duration_ms REAL,
            status TEXT NOT NULL,                -- running | ok | partial | failed | interrupted | skipped
            output_path TEXT,
            report_id TEXT,
            error TEXT,
            pid INTEGER
        );
        CREATE INDEX IF NOT EXISTS sched_runs_job ON sched_runs(job_name, id);
        CREATE INDEX IF NOT EXISTS sched_runs_status ON sched_runs(status);
        CREATE TABLE IF NOT EXISTS sched_reports (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            title TEXT NOT NULL,
            created_at TEXT NOT NULL,
            path TEXT,
            body TEXT NOT NULL,
            memory_id TEXT,
            run_id INTEGER
        );
        CREATE INDEX IF NOT EXISTS sched_reports_name ON sched_reports(name, created_at);
        CREATE TABLE IF NOT EXISTS sched_deliveries (
            id INTEGER PRIMARY KEY,
            run_id INTEGER,
            report_id TEXT,
            target TEXT NOT NULL,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,                -- ok | failed
            attempts INTEGER NOT NULL,
            error TEXT,
            at TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS sched_meta (
            key TEXT PRIMARY KEY,
            value TEXT
        );
        INSERT OR IGNORE INTO sched_meta (key, value) VALUES ('jobs_version', '0');
"""


def _slots_and_policies(db: sqlite_utils.Database) -> None:
    """Issue 16: a misfire policy and maximum lateness per job, the approval a job was created with,
    and a slot key per run so a fire time is served (or recorded as missed) exactly once."""
    for statement in (
        "ALTER TABLE sched_jobs ADD COLUMN misfire_policy TEXT",       # run-once | skip | run-all; NULL = run-once
        "ALTER TABLE sched_jobs ADD COLUMN max_lateness INTEGER",      # seconds; NULL = no limit
        "ALTER TABLE sched_jobs ADD COLUMN allow_dangerous INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE sched_runs ADD COLUMN slot TEXT",                 # the fire time served (UTC ISO); NULL = manual
        "ALTER TABLE sched_runs ADD COLUMN notes TEXT",                # e.g. dangerous tool calls denied
        "CREATE UNIQUE INDEX IF NOT EXISTS sched_runs_slot ON sched_runs(job_id, slot, attempt) "
        "WHERE slot IS NOT NULL",
    ):
        db.execute(statement)


MIGRATIONS = [("scheduler_001_init", _init), ("scheduler_002_slots", _slots_and_policies)]
