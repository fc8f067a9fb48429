"""The real daemon, as a subprocess, with jobs every second or two: it fires and output lands, it
picks up jobs added by the CLI without a restart, keeps them across restarts, and after a SIGKILL
mid-run the run is marked interrupted and the next run works. Every daemon is killed at teardown."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

from sched_helpers import query, wait_for

TICK = "# Tick {{now}}\n\nJobs run lately:\n\n{{runs days=1}}\n"


def _template(home: Path, name: str = "tick", text: str = TICK) -> None:
    d = home / "config" / "reports"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.md").write_text(text)


def _runs(home: Path, job: str, status: str | None = None) -> list:
    if status:
        return query(home, "SELECT * FROM sched_runs WHERE job_name = ? AND status = ? ORDER BY id", (job, status))
    return query(home, "SELECT * FROM sched_runs WHERE job_name = ? ORDER BY id", (job,))


def test_daemon_fires_picks_up_cli_changes_and_keeps_jobs_across_restart(copa_home, run_copa, daemons):
    _template(copa_home)
    out_dir = copa_home / "out"
    out_dir.mkdir()
    r = run_copa("schedule", "add", "tick", "--every", "1s", "--report", "tick", "--to", f"file:{out_dir}/")
    assert r.returncode == 0, r.stderr
    d1 = daemons.start()

    # a second daemon for the same COPA_HOME refuses and names the holder
    second = run_copa("daemon", env=daemons.env(), timeout=30)
    assert second.returncode != 0
    assert f"pid {d1.pid}" in second.stderr and "already running" in second.stderr

    wait_for(lambda: len([r for r in _runs(copa_home, "tick", "ok") if r["origin"] == "schedule"]) >= 2, 30,
             what="two scheduled ok runs of tick")
    files = sorted(out_dir.glob("*.md"))
    assert files, "the file delivery wrote nothing"
    assert files[0].read_text().startswith("# Tick ")
    oks = _runs(copa_home, "tick", "ok")
    # the 1 s grid started when the job was added; if the daemon took longer than that to start, the
    # first time counts as missed during downtime and runs once as a catch-up, never more
    assert [r["origin"] for r in oks].count("catch-up") <= 1
    ok = next(r for r in oks if r["origin"] == "schedule")
    assert Path(ok["output_path"]).read_text().startswith("# Tick")
    # each run knows the fire time it served: on the job's 1 s grid, and not after its start
    created = query(copa_home, "SELECT created_at FROM sched_jobs WHERE name = 'tick'")[0][0]
    from datetime import datetime

    for run in _runs(copa_home, "tick", "ok"):
        due = datetime.fromisoformat(run["scheduled_for"])
        offset = (due - datetime.fromisoformat(created)).total_seconds()
        assert abs(offset - round(offset)) < 0.01 and due <= datetime.fromisoformat(run["started_at"])
    assert query(copa_home, "SELECT COUNT(*) FROM sched_reports WHERE name = 'tick'")[0][0] >= 2

    # a job added through the CLI while the daemon runs fires without a restart
    r = run_copa("schedule", "add", "late", "--every", "1s", "--report", "tick")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: _runs(copa_home, "late", "ok"), 30, what="the job added while running to fire")
    # a --prompt job without a model fails with a recorded reason, is retried, and the daemon lives on
    r = run_copa("schedule", "add", "ask", "--every", "1s", "--prompt", "hello", "--retries", "1")
    assert r.returncode == 0, r.stderr
    failed = wait_for(lambda: [x for x in _runs(copa_home, "ask", "failed") if x["attempt"] == 2], 30,
                      what="a failed retry of the prompt job")
    assert failed[0]["origin"] == "retry"
    assert "model" in failed[0]["error"] or "agent" in failed[0]["error"]
    assert d1.poll() is None

    st = json.loads(run_copa("daemon", "status", "--json").stdout)
    assert st["running"] and st["pid"] == d1.pid and st["jobs"] == 3
    assert {n["job"] for n in st["next_runs"]} >= {"tick", "late"}
    assert st["heartbeat_age_s"] is not None and st["heartbeat_age_s"] < 30

    # pausing reaches the daemon too: once it has reloaded and any run in flight is over, no more runs
    reloads = Path(d1.log_path).read_text().count("reloaded")
    assert run_copa("schedule", "pause", "late").returncode == 0
    wait_for(lambda: Path(d1.log_path).read_text().count("reloaded") > reloads, 20, what="the daemon to reload")
    wait_for(lambda: not _runs(copa_home, "late", "running"), 20, what="a run in flight to end")
    n_late = len(_runs(copa_home, "late"))
    threading.Event().wait(2.5)
    assert len(_runs(copa_home, "late")) == n_late, "a paused job kept firing"
    assert run_copa("schedule", "remove", "ask").returncode == 0

    # SIGTERM: a clean exit, the lock is released
    os.killpg(d1.pid, signal.SIGTERM)
    assert d1.wait(timeout=30) == 0
    assert not (copa_home / "state" / "daemon.lock").exists()
    assert json.loads(run_copa("daemon", "status", "--json").stdout)["running"] is False
    assert not query(copa_home, "SELECT * FROM sched_runs WHERE status = 'running'")

    # restarted, it still has its jobs (from the database) and runs them
    before = len(_runs(copa_home, "tick", "ok"))
    d2 = daemons.start()
    wait_for(lambda: len(_runs(copa_home, "tick", "ok")) >= before + 2, 30, what="tick to fire after restart")
    assert d2.poll() is None
    listed = {j["name"]: j for j in json.loads(run_copa("schedule", "list", "--json").stdout)}
    assert set(listed) == {"tick", "late"} and listed["late"]["state"] == "paused"
    assert listed["tick"]["last_status"] == "ok"


def test_sigkill_mid_run_is_marked_interrupted_and_next_run_works(copa_home, run_copa, daemons, receiver):
    _template(copa_home)
    receiver.hold["/slow"] = threading.Event()
    r = run_copa("schedule", "add", "slow", "--every", "2s", "--report", "tick", "--retries", "0",
                 "--to", f"webhook:{receiver.url}/slow")
    assert r.returncode == 0, r.stderr
    d1 = daemons.start()
    wait_for(lambda: receiver.to("/slow"), 30, what="the run to reach its (held) delivery")
    running = _runs(copa_home, "slow", "running")
    assert len(running) == 1 and running[0]["pid"] == d1.pid
    os.killpg(d1.pid, signal.SIGKILL)
    d1.wait(timeout=10)
    # the row still says running: nobody could finish it
    assert _runs(copa_home, "slow", "running")[0]["id"] == running[0]["id"]
    receiver.hold.pop("/slow").set()

    d2 = daemons.start()
    row = wait_for(lambda: [x for x in _runs(copa_home, "slow") if x["id"] == running[0]["id"]
                            and x["status"] == "interrupted"], 30, what="the killed run to be marked")[0]
    assert str(d1.pid) in row["error"] and row["finished_at"]
    ok = wait_for(lambda: [x for x in _runs(copa_home, "slow", "ok") if x["id"] > row["id"]], 30,
                  what="a later run to succeed")
    assert ok[0]["pid"] == d2.pid
    delivered = [x for x in receiver.to("/slow") if x["json"] and x["json"]["run_id"] == ok[0]["id"]]
    assert delivered and delivered[0]["json"]["text"].startswith("# Tick")
    hist = json.loads(run_copa("schedule", "history", "slow", "--json").stdout)
    assert {"interrupted", "ok"} <= {h["status"] for h in hist}


def test_sigterm_mid_run_marks_the_run_interrupted_and_exits(copa_home, run_copa, daemons, receiver):
    _template(copa_home)
    receiver.hold["/slow"] = threading.Event()
    assert run_copa("schedule", "add", "slow", "--every", "1s", "--report", "tick", "--retries", "0",
                    "--to", f"webhook:{receiver.url}/slow").returncode == 0
    d = daemons.start(COPA_SCHEDULER_STOP_TIMEOUT="0.5")
    wait_for(lambda: receiver.to("/slow"), 30, what="the run to reach its (held) delivery")
    os.killpg(d.pid, signal.SIGTERM)
    assert d.wait(timeout=20) == 0
    rows = _runs(copa_home, "slow")
    interrupted = [r for r in rows if r["status"] == "interrupted"]
    assert len(interrupted) == 1 and "stopped" in interrupted[0]["error"]
    # fire times that came while it was held were refused (one instance at a time), not run
    assert {r["status"] for r in rows} <= {"interrupted", "skipped"}
    assert not _runs(copa_home, "slow", "running")
    assert "1 run(s) interrupted" in Path(d.log_path).read_text()


def test_missed_runs_after_downtime_run_once_and_at_jobs_fire_once(copa_home, run_copa, daemons):
    _template(copa_home)
    from datetime import UTC, datetime, timedelta

    assert run_copa("schedule", "add", "hourly", "--every", "1h", "--report", "tick").returncode == 0
    assert run_copa("schedule", "add", "missed-at", "--at", (datetime.now(UTC) + timedelta(hours=2)).isoformat(),
                    "--report", "tick").returncode == 0
    soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    assert run_copa("schedule", "add", "soon", "--at", soon, "--report", "tick").returncode == 0
    # the daemon was down while both were due (hours ago, several times over for the hourly one)
    import sqlite3

    conn = sqlite3.connect(copa_home / "data" / "copa.db")
    past = (datetime.now(UTC) - timedelta(hours=5)).isoformat()
    conn.execute("UPDATE sched_jobs SET next_run_at = ? WHERE name IN ('hourly', 'missed-at')", (past,))
    conn.commit()
    conn.close()

    daemons.start()
    wait_for(lambda: _runs(copa_home, "hourly", "ok") and _runs(copa_home, "missed-at", "ok"), 30,
             what="the catch-up runs")
    wait_for(lambda: _runs(copa_home, "soon", "ok"), 30, what="the --at job to fire")
    threading.Event().wait(2.0)
    hourly, missed_at, soon_runs = _runs(copa_home, "hourly"), _runs(copa_home, "missed-at"), _runs(copa_home, "soon")
    ran = [r for r in hourly if r["status"] != "coalesced"]
    assert [(r["origin"], r["status"]) for r in ran] == [("catch-up", "ok")]  # once, not five times
    # issue 16: every other missed hour is in the history too, folded into that run, with the reason
    coalesced = [r for r in hourly if r["status"] == "coalesced"]
    assert len(coalesced) in (4, 5) and all("coalesced into the run for" in r["error"] for r in coalesced)
    slots = sorted(datetime.fromisoformat(r["scheduled_for"]) for r in hourly)
    assert slots[0] == datetime.fromisoformat(past) and datetime.fromisoformat(ran[0]["scheduled_for"]) == slots[-1]
    assert [(r["origin"], r["status"]) for r in missed_at] == [("catch-up", "ok")]
    # once (as a catch-up instead if the daemon took more than 3 s to start on a loaded machine)
    assert [r["status"] for r in soon_runs] == ["ok"] and soon_runs[0]["origin"] in ("schedule", "catch-up")
    jobs = {j["name"]: j for j in json.loads(run_copa("schedule", "list", "--json").stdout)}
    assert jobs["soon"]["state"] == "done" and jobs["missed-at"]["state"] == "done"
    nxt = datetime.fromisoformat(jobs["hourly"]["next_run_at"])
    assert datetime.now(UTC) < nxt <= datetime.now(UTC) + timedelta(hours=1)

    # doctor sees it through the lock; `copa daemon stop` stops it and doctor then warns (jobs, no daemon)
    from copa.scheduler import check_daemon
    from copa.workstation import Workstation

    with Workstation() as ws:
        check = check_daemon(ws.paths, ws.conn)
    assert check.status == "ok" and f"pid {daemons.procs[-1].pid}" in check.detail
    stop = run_copa("daemon", "stop")
    assert stop.returncode == 0 and "stopped the daemon" in stop.stdout
    assert daemons.procs[-1].wait(timeout=10) == 0
    with Workstation() as ws:
        check = check_daemon(ws.paths, ws.conn)
    assert check.status == "warn" and "not running, and 3 job(s)" in check.detail
    assert run_copa("daemon", "stop").stdout.strip() == "the daemon is not running"


def test_a_run_missed_while_suspended_runs_once_on_wake(copa_home, run_copa, daemons):
    """SIGSTOP stands in for a laptop asleep: the due run is later than its misfire grace when the
    process wakes; instead of being dropped it runs once (origin catch-up)."""
    _template(copa_home)
    assert run_copa("schedule", "add", "nap", "--every", "4s", "--misfire-grace", "1", "--report", "tick",
                    "--retries", "0").returncode == 0
    d = daemons.start()
    n = len(wait_for(lambda: _runs(copa_home, "nap", "ok"), 30, what="a first run"))
    # stop it just after a scheduled run ends: the next fire time (4 s on) then passes during the
    # 6 s stop and is about 2 s late at the wake, more than the 1 s grace, with no later one yet
    wait_for(lambda: len(_runs(copa_home, "nap")) > n, 30, what="the next run to start")
    wait_for(lambda: not _runs(copa_home, "nap", "running"), 30, what="that run to end")
    from datetime import UTC, datetime

    stopped_at = datetime.now(UTC).isoformat()
    os.kill(d.pid, signal.SIGSTOP)
    try:
        threading.Event().wait(6)
    finally:
        os.kill(d.pid, signal.SIGCONT)
    caught = wait_for(lambda: [r for r in _runs(copa_home, "nap") if r["origin"] == "catch-up"
                               and r["started_at"] > stopped_at], 30, what="the missed run to be caught up")
    assert caught[0]["status"] in ("ok", "running")
    assert "missed its run" in Path(d.log_path).read_text()


def test_skill_workers_do_not_outlive_the_daemon(copa_home, run_copa, daemons):
    from sched_helpers import alive, children

    assert run_copa("schedule", "add", "clock", "--every", "1s", "--skill", "current_time",
                    "--arg", "timezone=UTC").returncode == 0
    for how in (signal.SIGTERM, signal.SIGKILL):
        n = len(_runs(copa_home, "clock", "ok"))
        d = daemons.start()
        wait_for(lambda n=n: len(_runs(copa_home, "clock", "ok")) >= n + 2, 30, what="skill runs")
        workers = wait_for(lambda d=d: children(d.pid), 10, what="a skill worker under the daemon")
        os.kill(d.pid, how)
        d.wait(timeout=30)
        wait_for(lambda w=workers: not any(alive(p) for p in w), 15, what=f"workers gone after {how.name}")
