"""What `copa daemon status`, the TUI's Schedules screen and `copa doctor` say about the daemon: read
from its lock and its heartbeat, so any face can ask without importing the daemon face."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from copa.checks import INFO, OK, WARN, Check
from copa.scheduler.lock import holder, read_info
from copa.scheduler.store import JobStore, pid_alive
from copa.timeutil import iso, parse_iso

STALE_HEARTBEAT = 60.0  # seconds: the daemon writes one every 10


def daemon_status(paths: Any, conn: Any, next_limit: int = 5) -> dict[str, Any]:
    """``paths``: copa's folders (the lock file, the database file); ``conn``: the database's plain
    sqlite3 connection (the workstation's ``conn``: reading status needs no sqlite-utils).

    What the lock, the PID and the heartbeat say together. ``state``: ``running``, ``stopped``,
    ``stale`` (a lock file or a held lock whose PID is gone: "not running (stale lock from PID n)")
    or ``unresponsive`` (the PID lives and holds the lock, but its heartbeat is older than 60 s)."""
    lock = paths.daemon_lock_file
    info = holder(lock)
    pid = (info or {}).get("pid")
    out: dict[str, Any] = {"running": False, "state": "stopped", "pid": pid,
                           "since": (info or {}).get("started"), "heartbeat": None, "heartbeat_age_s": None,
                           "stale_pid": None, "stopped_at": None, "jobs": 0, "next_runs": [], "active_runs": []}
    if info is not None and pid_alive(pid):
        out["running"], out["state"] = True, "running"
    else:  # no live holder: a file left behind (SIGKILL) or a lock held by an orphan of a dead daemon
        left = info or read_info(lock)
        if left and left.get("pid"):
            out["state"], out["stale_pid"], out["pid"] = "stale", left["pid"], None
    if not paths.db_file.exists():
        return out
    store = JobStore(conn)
    beat = parse_iso(store.meta("daemon_heartbeat"))
    if beat:
        out["heartbeat"] = iso(beat)
        out["heartbeat_age_s"] = round((datetime.now(UTC) - beat).total_seconds(), 1)
        if out["running"] and out["heartbeat_age_s"] > STALE_HEARTBEAT:
            out["state"] = "unresponsive"
    out["stopped_at"] = store.meta("daemon_stopped")
    jobs = store.list()
    out["jobs"] = len(jobs)
    upcoming = sorted((j for j in jobs if j.next_run_at and not j.paused and not j.done),
                      key=lambda j: j.next_run_at)
    out["next_runs"] = [{"job": j.name, "at": iso(j.next_run_at)} for j in upcoming[:next_limit]]
    out["active_runs"] = [{"run": r.id, "job": r.job_name, "started_at": iso(r.started_at), "pid": r.pid}
                          for r in store.running()]
    return out


def check_daemon(paths: Any, conn: Any) -> Check:
    st = daemon_status(paths, conn)
    if st["running"]:
        age = st["heartbeat_age_s"]
        if age is not None and age > STALE_HEARTBEAT:
            return Check("daemon", WARN, f"pid {st['pid']} holds the lock but its last heartbeat was {age:.0f}s ago",
                         "it may be stuck: 'copa daemon stop', then start it again")
        return Check("daemon", OK, f"running, pid {st['pid']}, since {st['since']}, {st['jobs']} job(s)")
    if st["state"] == "stale":
        return Check("daemon", WARN, f"not running (stale lock from PID {st['stale_pid']}), {st['jobs']} job(s)",
                     "start it again: 'copa daemon' (the stale lock does not block it)")
    if st["jobs"]:
        return Check("daemon", WARN, f"not running, and {st['jobs']} job(s) are scheduled",
                     "run 'copa daemon' (or 'copa daemon install' to start it with your session)")
    return Check("daemon", INFO, "not running (no jobs)", "run 'copa daemon' (or 'copa daemon install')")
