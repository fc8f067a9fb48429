"""Job definitions and run history in the copa database: the source of truth every face shares.

Every change to a job bumps ``jobs_version`` in ``sched_meta``; the daemon polls that one row (a
cheap read) and reloads its scheduler when it moves, so a job added from the CLI or the TUI reaches
a running daemon within a poll interval without a restart.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from copa.errors import NotFoundError, UsageError
from copa.timeutil import iso, now_utc, parse_iso  # noqa: F401 - re-exported to the scheduler's modules


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@dataclass
class Job:
    id: int
    name: str
    trigger_kind: str
    trigger_spec: str
    timezone: str
    action_kind: str
    action_target: str
    action_args: dict[str, Any] = field(default_factory=dict)
    deliver: list[str] = field(default_factory=list)
    retries: int | None = None
    misfire_grace: int | None = None
    misfire_policy: str | None = None  # run-once (default) | skip | run-all
    max_lateness: int | None = None  # seconds; a slot later than this never runs (recorded missed)
    allow_dangerous: bool = False  # approved at creation: dangerous tools may run unattended
    paused: bool = False
    done: bool = False
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    last_status: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def state(self) -> str:
        return "done" if self.done else "paused" if self.paused else "active"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("next_run_at", "last_run_at", "created_at", "updated_at"):
            d[k] = iso(d[k])
        d["state"] = self.state
        return d

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        return cls(
            id=row["id"], name=row["name"], trigger_kind=row["trigger_kind"], trigger_spec=row["trigger_spec"],
            timezone=row["timezone"], action_kind=row["action_kind"], action_target=row["action_target"],
            action_args=json.loads(row["action_args"] or "{}"), deliver=json.loads(row["deliver"] or "[]"),
            retries=row["retries"], misfire_grace=row["misfire_grace"],
            misfire_policy=row["misfire_policy"], max_lateness=row["max_lateness"],
            allow_dangerous=bool(row["allow_dangerous"]), paused=bool(row["paused"]),
            done=bool(row["done"]), next_run_at=parse_iso(row["next_run_at"]),
            last_run_at=parse_iso(row["last_run_at"]), last_status=row["last_status"],
            created_at=parse_iso(row["created_at"]), updated_at=parse_iso(row["updated_at"]),
        )


@dataclass
class Run:
    id: int
    job_id: int | None
    job_name: str
    origin: str
    attempt: int
    scheduled_for: datetime | None
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None
    status: str
    output_path: str | None
    report_id: str | None
    error: str | None
    pid: int | None
    slot: str | None = None
    notes: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("scheduled_for", "started_at", "finished_at"):
            d[k] = iso(d[k])
        return d

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Run:
        return cls(
            id=row["id"], job_id=row["job_id"], job_name=row["job_name"], origin=row["origin"],
            attempt=row["attempt"], scheduled_for=parse_iso(row["scheduled_for"]),
            started_at=parse_iso(row["started_at"]), finished_at=parse_iso(row["finished_at"]),
            duration_ms=row["duration_ms"], status=row["status"], output_path=row["output_path"],
            report_id=row["report_id"], error=row["error"], pid=row["pid"], slot=row["slot"], notes=row["notes"],
        )


class AlreadyRunning(UsageError):
    """The job has a live run (in the daemon or a foreground `schedule run`)."""


class SlotTaken(Exception):
    """This fire time of the job was already served or recorded (by this or another process)."""


POLICIES = ("run-once", "skip", "run-all")


def slot_key(when: datetime | None) -> str | None:
    """The stable key of a fire time: UTC, microseconds, so every process derives the same one."""
    return None if when is None else when.astimezone(UTC).isoformat(timespec="microseconds")


class JobStore:
    """Reads and writes the scheduler tables through one SQLite connection (autocommit mode)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn  # may be shared (ws.db): rows come as sqlite3.Row per cursor, never globally

    def _q(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        cur = self.conn.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(sql, params)

    # --- jobs -------------------------------------------------------------------------------
    def add(self, *, name: str, trigger_kind: str, trigger_spec: str, timezone: str, action_kind: str,
            action_target: str, action_args: dict[str, Any] | None = None, deliver: list[str] | None = None,
            retries: int | None = None, misfire_grace: int | None = None, misfire_policy: str | None = None,
            max_lateness: int | None = None, allow_dangerous: bool = False, paused: bool = False,
            next_run_at: datetime | None = None) -> Job:
        stamp = iso(now_utc())
        try:
            with self._tx():
                self.conn.execute(
                    "INSERT INTO sched_jobs (name, trigger_kind, trigger_spec, timezone, action_kind, action_target,"
                    " action_args, deliver, retries, misfire_grace, misfire_policy, max_lateness, allow_dangerous,"
                    " paused, next_run_at, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (name, trigger_kind, trigger_spec, timezone, action_kind, action_target,
                     json.dumps(action_args or {}), json.dumps(deliver or []), retries, misfire_grace,
                     misfire_policy, max_lateness, int(allow_dangerous), int(paused), iso(next_run_at), stamp, stamp),
                )
                self._bump()
        except sqlite3.IntegrityError:
            raise UsageError(f"a job named {name!r} already exists",
                             hint=f"pick another name or 'copa schedule remove {name}' first") from None
        return self.get(name)

    def update(self, name: str, *, trigger_kind: str, trigger_spec: str, timezone: str, action_kind: str,
               action_target: str, action_args: dict[str, Any] | None = None, deliver: list[str] | None = None,
               retries: int | None = None, misfire_grace: int | None = None, misfire_policy: str | None = None,
               max_lateness: int | None = None, allow_dangerous: bool = False,
               next_run_at: datetime | None = None) -> Job:
        """A new definition for an existing job (the daemon sees the bump and reschedules it)."""
        job = self.get(name)
        with self._tx():
            self.conn.execute(
                "UPDATE sched_jobs SET trigger_kind = ?, trigger_spec = ?, timezone = ?, action_kind = ?,"
                " action_target = ?, action_args = ?, deliver = ?, retries = ?, misfire_grace = ?,"
                " misfire_policy = ?, max_lateness = ?, allow_dangerous = ?, done = 0,"
                " next_run_at = ?, updated_at = ? WHERE id = ?",
                (trigger_kind, trigger_spec, timezone, action_kind, action_target, json.dumps(action_args or {}),
                 json.dumps(deliver or []), retries, misfire_grace, misfire_policy, max_lateness,
                 int(allow_dangerous), iso(next_run_at), iso(now_utc()), job.id),
            )
            self._bump()
        return self.get(name)

    def find(self, name: str) -> Job | None:
        row = self._q("SELECT * FROM sched_jobs WHERE name = ?", (name,)).fetchone()
        return Job.from_row(row) if row else None

    def get(self, name: str) -> Job:
        job = self.find(name)
        if job is None:
            names = [j.name for j in self.list()]
            raise NotFoundError(f"no job named {name!r}",
                                hint=("jobs: " + ", ".join(names)) if names else "add one with 'copa schedule add'")
        return job

    def get_by_id(self, job_id: int) -> Job | None:
        row = self._q("SELECT * FROM sched_jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    def list(self) -> list[Job]:
        return [Job.from_row(r) for r in self._q("SELECT * FROM sched_jobs ORDER BY name")]

    def remove(self, name: str) -> None:
        job = self.get(name)
        with self._tx():
            self.conn.execute("DELETE FROM sched_jobs WHERE id = ?", (job.id,))
            self._bump()

    def set_paused(self, name: str, paused: bool, next_run_at: datetime | None = None) -> Job:
        job = self.get(name)
        with self._tx():
            self.conn.execute(
                "UPDATE sched_jobs SET paused = ?, next_run_at = ?, updated_at = ? WHERE id = ?",
                (int(paused), iso(next_run_at) if not paused else None, iso(now_utc()), job.id),
            )
            self._bump()
        return self.get(name)

    def set_next_run(self, job_id: int, when: datetime | None, *, done: bool = False) -> None:
        """Written by the daemon as its scheduler moves on; not a definition change (no bump)."""
        self.conn.execute("UPDATE sched_jobs SET next_run_at = ?, done = done OR ? WHERE id = ?",
                          (iso(when), int(done), job_id))

    # --- runs -------------------------------------------------------------------------------
    def begin_run(self, job: Job, *, origin: str, attempt: int = 1, scheduled_for: datetime | None = None,
                  slot: str | None = None) -> int:
        """Record a run as started, refusing if the job already has a live run in any process
        (:class:`AlreadyRunning`) or if ``slot`` was already served or recorded (:class:`SlotTaken`)."""
        me = os.getpid()
        with self._tx():
            if slot is not None and self._slot_row(job.id, slot, attempt) is not None:
                raise SlotTaken(slot)
            for row in self._q(
                "SELECT id, pid FROM sched_runs WHERE job_id = ? AND status = 'running'", (job.id,)
            ).fetchall():
                if pid_alive(row["pid"]):
                    where = "this process" if row["pid"] == me else f"pid {row['pid']}"
                    raise AlreadyRunning(f"job {job.name!r} is already running (run {row['id']}, {where})",
                                         hint="wait for it to finish; one instance at a time")
            try:
                cur = self.conn.execute(
                    "INSERT INTO sched_runs (job_id, job_name, origin, attempt, scheduled_for, started_at, status,"
                    " pid, slot) VALUES (?,?,?,?,?,?, 'running', ?, ?)",
                    (job.id, job.name, origin, attempt, iso(scheduled_for), iso(now_utc()), me, slot),
                )
            except sqlite3.IntegrityError:  # the unique slot index: another process won the race
                raise SlotTaken(slot) from None
            return int(cur.lastrowid)

    def _slot_row(self, job_id: int, slot: str, attempt: int = 1) -> sqlite3.Row | None:
        return self._q("SELECT id, status FROM sched_runs WHERE job_id = ? AND slot = ? AND attempt = ?",
                       (job_id, slot, attempt)).fetchone()

    def finish_run(self, run_id: int, status: str, *, output_path: str | None = None,
                   report_id: str | None = None, error: str | None = None) -> Run:
        end = now_utc()
        row = self._q("SELECT started_at, job_id FROM sched_runs WHERE id = ?", (run_id,)).fetchone()
        duration = (end - parse_iso(row["started_at"])).total_seconds() * 1000 if row else None
        with self._tx():
            self.conn.execute(
                "UPDATE sched_runs SET status = ?, finished_at = ?, duration_ms = ?, output_path = ?,"
                " report_id = ?, error = ? WHERE id = ? AND status = 'running'",
                (status, iso(end), duration, output_path, report_id, error, run_id),
            )
            if row and row["job_id"] is not None:
                self.conn.execute("UPDATE sched_jobs SET last_run_at = ?, last_status = ? WHERE id = ?",
                                  (iso(end), status, row["job_id"]))
        return self.run(run_id)

    def record_skipped(self, job: Job, reason: str, *, origin: str, status: str = "skipped",
                       scheduled_for: datetime | None = None, slot: str | None = None) -> bool:
        """A fire time that did not run, with why: ``skipped`` (another run held the job), ``missed``
        (too late for its policy) or ``coalesced`` (folded into another run). With a ``slot``, only
        if that slot has no row yet; returns whether a row was written."""
        stamp = iso(now_utc())
        try:
            self.conn.execute(
                "INSERT INTO sched_runs (job_id, job_name, origin, attempt, scheduled_for, started_at, finished_at,"
                " duration_ms, status, error, pid, slot) VALUES (?,?,?,1,?,?,?,0,?,?,?,?)",
                (job.id, job.name, origin, iso(scheduled_for), stamp, stamp, status, reason, os.getpid(), slot),
            )
        except sqlite3.IntegrityError:  # that slot was served or recorded already
            return False
        return True

    def set_notes(self, run_id: int, notes: str | None) -> None:
        self.conn.execute("UPDATE sched_runs SET notes = ? WHERE id = ?", (notes, run_id))

    def run(self, run_id: int) -> Run:
        row = self._q("SELECT * FROM sched_runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no run {run_id}")
        return Run.from_row(row)

    def runs(self, job_name: str | None = None, limit: int = 20) -> list[Run]:
        if job_name is None:
            rows = self._q("SELECT * FROM sched_runs ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._q("SELECT * FROM sched_runs WHERE job_name = ? ORDER BY id DESC LIMIT ?",
                                     (job_name, limit))
        return [Run.from_row(r) for r in rows]

    def running(self) -> list[Run]:
        return [Run.from_row(r) for r in self._q("SELECT * FROM sched_runs WHERE status = 'running'")]

    def mark_interrupted(self, run_ids: list[int], reason: str) -> int:
        n = 0
        for run_id in run_ids:
            self.finish_run(run_id, "interrupted", error=reason)
            n += 1
        return n

    def mark_stale_interrupted(self) -> int:
        """Runs left 'running' by a process that is gone (killed, crashed, power cut)."""
        me = os.getpid()
        stale = [r for r in self.running() if r.pid == me or not pid_alive(r.pid)]
        for r in stale:
            self.finish_run(r.id, "interrupted", error=f"the process running it (pid {r.pid}) stopped before it "
                                                       "finished")
        return len(stale)

    # --- meta: the change counter and the daemon's heartbeat --------------------------------
    def version(self) -> int:
        row = self._q("SELECT value FROM sched_meta WHERE key = 'jobs_version'").fetchone()
        return int(row[0]) if row else 0

    def _bump(self) -> None:
        self.conn.execute("UPDATE sched_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'jobs_version'")

    def bump(self) -> None:
        self._bump()

    def meta(self, key: str) -> str | None:
        row = self._q("SELECT value FROM sched_meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        self.conn.execute("INSERT INTO sched_meta (key, value) VALUES (?, ?)"
                          " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def _tx(self):
        return _Transaction(self.conn)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT on an autocommit connection (nesting is flattened)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.outer = False

    def __enter__(self) -> None:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")
            self.outer = True

    def __exit__(self, exc_type, *rest: object) -> None:
        if not self.outer:
            return
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
