"""Issue 16: the scheduler never loses a slot silently. Real daemon subprocesses, real signals, a
real user skill that sleeps, a real loopback model server; every daemon is SIGKILLed at teardown."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sched_helpers import query, wait_for

NAP = ("import time\n\nfrom copa.skills import skill\n\n\n"
       "@skill{deco}\n"
       "def nap(seconds: float = 0.1) -> str:\n"
       "    '''Sleep a while, then say so.\n\n    Args:\n        seconds: how long.\n    '''\n"
       "    time.sleep(seconds)\n"
       "    return f'slept {{seconds}}'\n")


def _nap_skill(home: Path, dangerous: bool = False) -> None:
    d = home / "config" / "skills"
    d.mkdir(parents=True, exist_ok=True)
    (d / "nap.py").write_text(NAP.format(deco="(dangerous=True)" if dangerous else ""))


def _runs(home: Path, job: str) -> list[sqlite3.Row]:
    return query(home, "SELECT * FROM sched_runs WHERE job_name = ? ORDER BY id", (job,))


def _set(home: Path, sql: str, params: tuple = ()) -> None:
    conn = sqlite3.connect(home / "data" / "copa.db", timeout=30)
    conn.execute(sql, params)
    conn.commit()
    conn.close()


def test_sigterm_mid_skill_run_gets_its_grace_and_never_fails_20_times(copa_home, run_copa, daemons):
    """SIGTERM (to the whole process group, as a service manager sends it) while a skill job runs:
    a run that can finish within scheduler.stop_timeout finishes ok; one that cannot is marked
    interrupted. Never failed, never a promised retry. Repeated 20 times (it failed 2 in 6 before)."""
    _nap_skill(copa_home)
    for name, seconds in (("short", "0.6"), ("long", "60")):
        r = run_copa("schedule", "add", name, "--every", "1s", "--skill", "nap", "--arg", f"seconds={seconds}",
                     "--retries", "2", "--paused")
        assert r.returncode == 0, r.stderr
    outcomes = []
    for i in range(20):
        name = "short" if i % 2 == 0 else "long"
        _set(copa_home, "UPDATE sched_jobs SET paused = (name != ?), next_run_at = NULL", (name,))
        seen = max([r["id"] for r in _runs(copa_home, name)] or [0])
        d = daemons.start(COPA_SCHEDULER_STOP_TIMEOUT="10" if name == "short" else "0.5")
        run = wait_for(lambda n=name, s=seen: [r for r in _runs(copa_home, n) if r["id"] > s
                                               and r["status"] == "running"], 30, 0.02, f"a {name} run to start")[0]
        os.killpg(d.pid, signal.SIGTERM)
        assert d.wait(timeout=60) == 0
        row = next(r for r in _runs(copa_home, name) if r["id"] == run["id"])
        outcomes.append((name, row["status"]))
        expected = "ok" if name == "short" else "interrupted"
        assert row["status"] == expected, (i, dict(row), Path(d.log_path).read_text()[-3000:])
        log = Path(d.log_path).read_text()
        assert "retrying in" not in log, log[-2000:]
    assert not query(copa_home, "SELECT * FROM sched_runs WHERE status IN ('failed', 'running')")
    assert outcomes.count(("short", "ok")) == 10 and outcomes.count(("long", "interrupted")) == 10


def test_an_overlapping_fire_time_is_recorded_when_it_happens(copa_home, run_copa, daemons):
    _nap_skill(copa_home)
    assert run_copa("schedule", "add", "slow", "--every", "1s", "--skill", "nap", "--arg", "seconds=3",
                    "--retries", "0").returncode == 0
    d = daemons.start()
    skipped = wait_for(lambda: [r for r in _runs(copa_home, "slow") if r["status"] == "skipped"], 30,
                       what="a skipped overlapping fire time in the history, without a restart")
    assert "already running" in skipped[0]["error"] and skipped[0]["scheduled_for"] and skipped[0]["slot"]
    assert d.poll() is None
    # the startup line counts scheduled jobs, not catch-up replays (it said "3 job(s)" for 2)
    assert "1 job(s) scheduled" in Path(d.log_path).read_text()


def test_each_slot_is_served_exactly_once_across_processes(copa_home, run_copa, tmp_path):
    """Two processes fire the same slot of a job at the same moment, then a third one later: the
    unique slot key in the database lets exactly one of them run it."""
    _nap_skill(copa_home)
    r = run_copa("schedule", "add", "once", "--every", "1h", "--skill", "nap", "--arg", "seconds=0.5")
    assert r.returncode == 0, r.stderr
    slot = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    script = tmp_path / "fire.py"
    script.write_text(
        "import sys\nfrom datetime import datetime\n"
        "from copa.workstation import Workstation\nfrom copa.scheduler import runner\n"
        "from copa.scheduler.store import AlreadyRunning, JobStore, SlotTaken, slot_key\n"
        "when = datetime.fromisoformat(sys.argv[1])\n"
        "with Workstation() as ws:\n"
        "    job = JobStore(ws.conn).get('once')\n"
        "    try:\n"
        "        print(runner.execute(ws, job, origin='schedule', scheduled_for=when, slot=slot_key(when)).status)\n"
        "    except SlotTaken:\n        print('taken')\n"
        "    except AlreadyRunning:\n        print('busy')\n")
    procs = [subprocess.Popen([sys.executable, str(script), slot.isoformat()], stdout=subprocess.PIPE, text=True,
                              env=os.environ.copy()) for _ in range(2)]
    outs = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert outs[1] == "ok" or outs[0] == "ok", outs
    assert outs.count("ok") == 1 and set(outs) <= {"ok", "taken", "busy"}, outs
    later = subprocess.run([sys.executable, str(script), slot.isoformat()], capture_output=True, text=True,
                           timeout=120, env=os.environ.copy())
    assert later.stdout.strip() == "taken", later.stderr
    rows = query(copa_home, "SELECT status FROM sched_runs WHERE job_name = 'once' AND scheduled_for IS NOT NULL")
    assert [r["status"] for r in rows] == ["ok"]


@pytest.mark.parametrize("policy", ["run-once", "skip", "run-all"])
def test_misfire_policy_after_downtime_records_every_slot(copa_home, run_copa, daemons, policy):
    _nap_skill(copa_home)
    assert run_copa("schedule", "add", "j", "--every", "1h", "--skill", "nap", "--misfire", policy,
                    "--max-lateness", str(int(3.5 * 3600)), "--retries", "0").returncode == 0
    # the daemon was down for five hours: slots at -5h, -4h, -3h, -2h, -1h (and one about now)
    first = datetime.now(UTC) - timedelta(hours=5)
    _set(copa_home, "UPDATE sched_jobs SET next_run_at = ? WHERE name = 'j'", (first.isoformat(),))
    d = daemons.start()
    # the replay of the missed slots is not a job of its own (a restart used to say "2 job(s)" here)
    assert "running (pid" in Path(d.log_path).read_text() and "1 job(s) scheduled" in Path(d.log_path).read_text()
    wait_for(lambda: len([r for r in _runs(copa_home, "j") if r["status"] != "running"]) >= 5, 30,
             what="every missed slot to be accounted for")
    threading.Event().wait(1.0)
    rows = _runs(copa_home, "j")
    by = {s: [r for r in rows if r["status"] == s] for s in ("ok", "missed", "coalesced")}
    too_late = [r for r in by["missed"] if "max lateness" in r["error"]]
    assert len(too_late) == 2  # -5h and -4h are later than 3.5 h: never run, whatever the policy
    if policy == "run-once":
        assert len(by["ok"]) == 1 and by["ok"][0]["origin"] == "catch-up" and len(by["coalesced"]) >= 2
    elif policy == "skip":
        assert not by["ok"] and len(by["missed"]) >= 5
        assert all("misfire policy skip" in r["error"] for r in by["missed"] if r not in too_late)
    else:
        assert len(by["ok"]) >= 3 and not by["coalesced"]
        assert [r["scheduled_for"] for r in by["ok"]] == sorted(r["scheduled_for"] for r in by["ok"])
    slots = [r["slot"] for r in rows]
    assert len(slots) == len(set(slots)) and all(slots)  # one row per slot, each keyed


def test_dangerous_tool_calls_in_unattended_runs_are_denied_and_recorded(copa_home, run_copa):
    from tests.agent.fake_servers import Answer, FakeModelServer

    with FakeModelServer("openai") as server:
        server.configure("fake")
        assert run_copa("config", "set", "agent.model", "fake").returncode == 0
        # outside copa's home: no skill (run_command included) may write there (issue 15)
        work = copa_home.parent / "work"
        work.mkdir()
        call = ("run_command", {"command": "touch " + str(work / "pwned")})
        server.add(Answer(tool_calls=[call]), Answer(text="could not"), Answer(tool_calls=[call]),
                   Answer(text="done"))
        assert run_copa("schedule", "add", "p", "--every", "1h", "--prompt", "clean up").returncode == 0
        r = run_copa("schedule", "run", "p", "--json", timeout=120)
        assert r.returncode == 0, r.stderr
        run = json.loads(r.stdout)
        assert run["status"] == "ok" and "denied" in run["notes"] and "run_command" in run["notes"]
        assert not (work / "pwned").exists()
        # created with the approval: the same call runs
        assert run_copa("schedule", "add", "q", "--every", "1h", "--prompt", "clean up",
                        "--allow-dangerous").returncode == 0
        run = json.loads(run_copa("schedule", "run", "q", "--json", timeout=120).stdout)
        assert "allowed" in run["notes"] and (work / "pwned").exists()
    # a skill that became dangerous after its job was added is denied at run time, with the reason
    _nap_skill(copa_home)
    assert run_copa("schedule", "add", "n", "--every", "1h", "--skill", "nap", "--retries", "0").returncode == 0
    _nap_skill(copa_home, dangerous=True)
    r = run_copa("schedule", "run", "n", "--json")
    assert r.returncode == 1 and "denied" in json.loads(r.stdout)["error"]


def test_cron_macros_and_expressions_that_never_fire(copa_home, run_copa):
    r = run_copa("schedule", "add", "feb31", "--cron", "0 8 31 2 *", "--report", "daily-briefing")
    assert r.returncode == 2 and "can never fire" in r.stderr and "day 31 never occurs in February" in r.stderr
    r = run_copa("schedule", "add", "never", "--cron", "0 8 31 4,6,9,11 *", "--report", "daily-briefing")
    assert r.returncode == 2 and "April, June, September, November" in r.stderr
    for macro in ("@hourly", "@daily", "@weekly", "@monthly", "@yearly"):
        r = run_copa("schedule", "add", macro[1:], "--cron", macro, "--tz", "UTC", "--report", "daily-briefing",
                     "--json")
        assert r.returncode == 0, r.stderr
        nxt = datetime.fromisoformat(json.loads(r.stdout)["next_run_at"])
        assert nxt.minute == 0 and nxt.second == 0 and nxt > datetime.now(UTC)
        if macro != "@hourly":
            assert nxt.hour == 0
    assert run_copa("schedule", "add", "boot", "--cron", "@reboot", "--report", "daily-briefing").returncode == 2


def test_daemon_status_tells_a_stale_lock_from_a_running_daemon(copa_home, run_copa, daemons):
    assert run_copa("schedule", "add", "t", "--every", "1h", "--report", "daily-briefing").returncode == 0
    d = daemons.start()
    st = json.loads(run_copa("daemon", "status", "--json").stdout)
    assert st["running"] and st["state"] == "running" and st["pid"] == d.pid
    os.killpg(d.pid, signal.SIGKILL)
    d.wait(timeout=10)
    assert (copa_home / "state" / "daemon.lock").exists()  # left behind by the kill
    r = run_copa("daemon", "status")
    assert f"not running (stale lock from PID {d.pid})" in r.stdout
    st = json.loads(run_copa("daemon", "status", "--json").stdout)
    assert not st["running"] and st["state"] == "stale" and st["stale_pid"] == d.pid
    # a heartbeat older than 60 s from a live holder: not responding
    d2 = daemons.start()
    os.kill(d2.pid, signal.SIGSTOP)
    try:
        _set(copa_home, "UPDATE sched_meta SET value = ? WHERE key = 'daemon_heartbeat'",
             ((datetime.now(UTC) - timedelta(seconds=300)).isoformat(),))
        r = run_copa("daemon", "status")
        assert "not responding" in r.stdout and str(d2.pid) in r.stdout
    finally:
        os.kill(d2.pid, signal.SIGCONT)


def test_an_old_scheduler_database_is_upgraded(copa_home):
    """A database made before migration scheduler_002 keeps its jobs and history and gains the new
    columns; its runs have no slot key (NULL), which the unique index allows."""
    import sqlite_utils

    from copa import db as copa_db
    from copa.scheduler import migrations

    path = copa_home / "data" / "copa.db"
    path.parent.mkdir(parents=True)
    db = sqlite_utils.Database(copa_db.connect(path))
    old = migrations.MIGRATIONS
    try:
        migrations.MIGRATIONS = old[:1]
        copa_db.migrate(db, ["copa.scheduler.migrations"])
    finally:
        migrations.MIGRATIONS = old
    db.execute("INSERT INTO sched_jobs (name, trigger_kind, trigger_spec, timezone, action_kind, action_target,"
               " created_at, updated_at) VALUES ('old', 'every', '1h', 'UTC', 'report', 'daily-briefing', "
               "'2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')")
    for _ in range(2):
        db.execute("INSERT INTO sched_runs (job_id, job_name, origin, started_at, status) "
                   "VALUES (1, 'old', 'schedule', '2026-01-01T01:00:00+00:00', 'ok')")
    db.conn.close()
    from copa.scheduler import JobStore
    from copa.workstation import Workstation

    with Workstation() as ws:
        store = JobStore(ws.conn)
        job = store.get("old")
        assert job.misfire_policy is None and job.max_lateness is None and job.allow_dangerous is False
        assert [r.slot for r in store.runs("old")] == [None, None]


def test_the_policy_is_a_pure_function_of_the_slots():
    """Scheduler.plan, alone: what each policy makes of on-time, late and too-late slots."""
    from copa.scheduler.engine import Scheduler
    from copa.scheduler.store import Job

    class Cfg:
        def __init__(self, catch_up: bool = True):
            self.values = {"scheduler.misfire_grace": 60, "scheduler.catch_up": catch_up}

        def get(self, key: str):
            return self.values[key]

    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    slots = [now - timedelta(hours=h) for h in (3, 2, 1)] + [now - timedelta(seconds=10)]

    def job(policy: str | None, max_late: int | None = None) -> Job:
        return Job(id=1, name="j", trigger_kind="every", trigger_spec="1h", timezone="UTC", action_kind="report",
                   action_target="x", misfire_policy=policy, max_lateness=max_late)

    def plan(policy: str | None, max_late: int | None = None, catch_up: bool = True):
        runs, records = Scheduler(Cfg(catch_up), None, None).plan(job(policy, max_late), slots, now)
        return [(s, o) for s, o in runs], [(s, st) for s, st, _ in records]

    runs, records = plan(None)
    assert runs == [(slots[-1], "schedule")] and records == [(s, "coalesced") for s in slots[:3]]
    runs, records = plan("skip")
    assert runs == [(slots[-1], "schedule")] and records == [(s, "missed") for s in slots[:3]]
    runs, records = plan("run-all")
    assert runs == [(s, "catch-up") for s in slots[:3]] + [(slots[-1], "schedule")] and records == []
    runs, records = plan("run-all", max_late=2 * 3600 + 60)
    assert records == [(slots[0], "missed")] and [s for s, _ in runs] == slots[1:]
    runs, records = plan(None, catch_up=False)  # scheduler.catch_up off: run-once acts as skip
    assert runs == [(slots[-1], "schedule")] and all(st == "missed" for _, st in records)
    runs, records = plan("run-once")
    late_only = Scheduler(Cfg(), None, None).plan(job("run-once"), slots[:3], now)
    assert late_only[0] == [(slots[2], "catch-up")] and len(late_only[1]) == 2


def test_a_skill_printing_undecodable_text_is_kept_with_the_replacement_shown(copa_home, run_copa):
    """Skill output is text from elsewhere: a lone surrogate (an undecodable byte read with
    surrogateescape) becomes U+FFFD; the run, its output file and --json all keep the rest."""
    d = copa_home / "config" / "skills"
    d.mkdir(parents=True, exist_ok=True)
    (d / "odd.py").write_text(
        "import os\n\nfrom copa.skills import skill\n\n\n@skill\n"
        "def odd_bytes() -> str:\n    '''Text read from a Latin-1 file.'''\n"
        "    return 'caf' + os.fsdecode(b'\\xe9') + ' au lait'\n")
    r = run_copa("skills", "run", "odd_bytes", "--json")
    assert r.returncode == 0, r.stderr
    assert "caf\ufffd au lait" in r.stdout
    assert run_copa("schedule", "add", "odd", "--every", "1h", "--skill", "odd_bytes").returncode == 0
    r = run_copa("schedule", "run", "odd", "--json")
    assert r.returncode == 0, r.stderr
    run = json.loads(r.stdout)
    assert run["status"] == "ok" and Path(run["output_path"]).read_text() == "caf\ufffd au lait"
