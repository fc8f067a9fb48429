"""`copa schedule` through the real CLI: definitions in the database, clear refusals, history,
the foreground `run` sharing the daemon's code path, and cheap startup (no APScheduler)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sched_helpers import query

PROBE = ("import sys; from copa.cli.main import main; rc = main(sys.argv[1:]); "
         "heavy = [m for m in ('apscheduler', 'httpx', 'textual', 'keyring', 'nacl', 'serial') if m in sys.modules]; "
         "print('HEAVY=' + ','.join(heavy), file=sys.stderr); sys.exit(rc)")


def _heavy(*args: str) -> str:
    r = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stderr.strip().rsplit("HEAVY=", 1)[1]


def test_listing_and_help_never_import_apscheduler(run_copa):
    assert run_copa("schedule", "add", "m", "--every", "1h", "--report", "daily-briefing").returncode == 0
    for args in (["--help"], ["schedule", "--help"], ["schedule", "list"], ["schedule", "list", "--json"],
                 ["schedule", "history", "m"], ["daemon", "--help"], ["daemon", "status"], ["report", "--help"],
                 ["report", "list"]):
        assert "apscheduler" not in _heavy(*args), args


def test_add_list_pause_resume_remove(run_copa, copa_home):
    r = run_copa("schedule", "add", "morning", "--cron", "0 8 * * 1-5", "--tz", "Europe/Paris",
                 "--report", "daily-briefing", "--to", "file:~/briefing.md", "--retries", "1", "--json")
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)
    assert job["timezone"] == "Europe/Paris" and job["deliver"] == ["file:~/briefing.md"] and job["retries"] == 1
    assert job["next_run_at"] and job["state"] == "active"
    r = run_copa("schedule", "add", "clock", "--every", "15m", "--skill", "current_time", "--arg",
                 "timezone=Asia/Tokyo", "--tz", "UTC")
    assert r.returncode == 0, r.stderr
    bad = run_copa("schedule", "add", "nope", "--every", "15m", "--skill", "no_such_skill")
    assert bad.returncode == 5 and "no skill named 'no_such_skill'" in bad.stderr
    listed = {j["name"]: j for j in json.loads(run_copa("schedule", "list", "--json").stdout)}
    assert set(listed) == {"morning", "clock"}
    assert listed["clock"]["action_args"] == {"timezone": "Asia/Tokyo"} and listed["clock"]["timezone"] == "UTC"
    # the skill runs through the real skills worker, its result is the run's output
    run = json.loads(run_copa("schedule", "run", "clock", "--json").stdout)
    assert run["status"] == "ok", run
    assert "+09:00" in Path(run["output_path"]).read_text()
    assert "Europe/Paris" in run_copa("schedule", "list").stdout
    v0 = query(copa_home, "SELECT value FROM sched_meta WHERE key='jobs_version'")[0][0]
    assert run_copa("schedule", "pause", "morning").returncode == 0
    row = query(copa_home, "SELECT paused, next_run_at FROM sched_jobs WHERE name='morning'")[0]
    assert row["paused"] == 1 and row["next_run_at"] is None
    assert int(query(copa_home, "SELECT value FROM sched_meta WHERE key='jobs_version'")[0][0]) > int(v0)
    assert "paused" in run_copa("schedule", "list").stdout
    r = run_copa("schedule", "resume", "morning")
    assert r.returncode == 0 and "next run" in r.stdout
    assert query(copa_home, "SELECT next_run_at FROM sched_jobs WHERE name='morning'")[0][0]
    assert run_copa("schedule", "remove", "morning").returncode == 0
    assert "morning" not in {j["name"] for j in json.loads(run_copa("schedule", "list", "--json").stdout)}


def test_refusals_are_one_line_and_write_nothing(run_copa, copa_home):
    cases = [
        (["schedule", "add", "x", "--report", "daily-briefing"], "exactly one of --cron, --every or --at"),
        (["schedule", "add", "x", "--every", "5m"], "exactly one action"),
        (["schedule", "add", "x", "--every", "5m", "--cron", "* * * * *", "--report", "daily-briefing"],
         "exactly one of"),
        (["schedule", "add", "x", "--every", "soon", "--report", "daily-briefing"], "cannot read the interval"),
        (["schedule", "add", "x", "--cron", "0 25 * * *", "--report", "daily-briefing"], "bad cron expression"),
        (["schedule", "add", "x", "--at", "2001-01-01T00:00", "--report", "daily-briefing"], "already passed"),
        (["schedule", "add", "x", "--every", "5m", "--tz", "Moon/Base", "--report", "daily-briefing"],
         "unknown time zone"),
        (["schedule", "add", "x", "--every", "5m", "--report", "nope"], "no report template named 'nope'"),
        (["schedule", "add", "x y", "--every", "5m", "--report", "daily-briefing"], "invalid job name"),
        (["schedule", "add", "x", "--every", "5m", "--report", "daily-briefing", "--to", "fax:123"],
         "unknown delivery target"),
        (["schedule", "add", "x", "--every", "5m", "--report", "daily-briefing", "--to", "email:nobody"],
         "is not an email address"),
        (["schedule", "pause", "ghost"], "no job named 'ghost'"),
        (["schedule", "run", "ghost"], "no job named 'ghost'"),
    ]
    for args, message in cases:
        r = run_copa(*args)
        assert r.returncode != 0, args
        assert r.stderr.startswith("copa: error: ") and message in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not query(copa_home, "SELECT * FROM sched_jobs")
    assert run_copa("schedule", "add", "x", "--every", "5m", "--report", "daily-briefing").returncode == 0
    dup = run_copa("schedule", "add", "x", "--every", "9m", "--report", "daily-briefing")
    assert dup.returncode == 2 and "already exists" in dup.stderr


def test_run_now_records_history_and_failures(run_copa, copa_home):
    out = copa_home / "out.md"
    run_copa("schedule", "add", "brief", "--every", "1d", "--report", "weekly-review", "--to", f"file:{out}")
    r = run_copa("schedule", "run", "brief", "--json")
    assert r.returncode == 0, r.stderr
    run = json.loads(r.stdout)
    assert run["status"] == "ok" and run["origin"] == "manual" and run["report_id"]
    assert out.read_text().startswith("# Weekly review") and Path(run["output_path"]).read_text() == out.read_text()
    # a prompt job with no model fails clearly, retried per its policy (each attempt recorded)
    run_copa("schedule", "add", "ask", "--every", "1d", "--prompt", "summarize my week", "--retries", "1")
    r = run_copa("schedule", "run", "ask", env={"COPA_SCHEDULER_RETRY_DELAY": "0"})
    assert r.returncode == 1 and "no model is configured" in r.stdout
    hist = json.loads(run_copa("schedule", "history", "ask", "--json").stdout)
    assert [(h["attempt"], h["origin"], h["status"]) for h in hist] == [(2, "retry", "failed"), (1, "manual", "failed")]
    assert all(h["duration_ms"] is not None and h["started_at"] for h in hist)
    text = run_copa("schedule", "history", "brief").stdout
    row = next(line for line in text.splitlines()[1:] if " manual " in line)
    assert " ok " in row and run["output_path"][:40] in row
    listed = {j["name"]: j for j in json.loads(run_copa("schedule", "list", "--json").stdout)}
    assert listed["brief"]["last_status"] == "ok" and listed["ask"]["last_status"] == "failed"


def test_daemon_install_unit(run_copa, tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    shown = run_copa("daemon", "install", "--print", env=env)
    assert shown.returncode == 0
    assert "ExecStart=" in shown.stdout and "-m copa daemon" in shown.stdout
    assert "Environment=COPA_HOME=" in shown.stdout
    assert not (tmp_path / "xdg").exists()
    r = run_copa("daemon", "install", env=env)
    unit = tmp_path / "xdg" / "systemd" / "user" / "copa.service"
    assert r.returncode == 0 and unit.read_text() == shown.stdout.split("\n", 1)[1]
    assert "systemctl --user enable --now copa.service" in r.stdout
    plist = run_copa("daemon", "install", "--print", "--system", "launchd", env=env)
    assert "<key>ProgramArguments</key>" in plist.stdout and "org.copa.daemon" in plist.stdout


def test_dangerous_skill_needs_explicit_consent_and_exit_codes_count(run_copa, copa_home):
    r = run_copa("schedule", "add", "sh", "--every", "1h", "--skill", "run_command", "--arg", "command=echo hi")
    assert r.returncode == 2 and "marked dangerous" in r.stderr and "--allow-dangerous" in r.stderr
    assert run_copa("schedule", "add", "sh", "--every", "1h", "--skill", "run_command", "--arg",
                    "command=echo scheduled-hello", "--allow-dangerous").returncode == 0
    run = json.loads(run_copa("schedule", "run", "sh", "--json").stdout)
    assert run["status"] == "ok" and "scheduled-hello" in Path(run["output_path"]).read_text()
    assert run_copa("schedule", "add", "bad", "--every", "1h", "--skill", "run_command", "--arg",
                    "command=echo oops >&2; exit 3", "--allow-dangerous", "--retries", "0").returncode == 0
    r = run_copa("schedule", "run", "bad")
    assert r.returncode == 1 and "exit code 3: oops" in r.stdout


def test_prompt_job_runs_an_agent_turn_against_a_real_model_server(run_copa, copa_home):
    from tests.agent.fake_servers import Answer, FakeModelServer

    with FakeModelServer("openai") as srv:
        srv.configure("fake")
        srv.add(Answer("Your week: three meetings and one deadline."))
        assert run_copa("schedule", "add", "ask", "--every", "1d", "--prompt", "summarize my week",
                        "--to", f"file:{copa_home}/answer.md").returncode == 0
        r = run_copa("schedule", "run", "ask", "--json", env={"COPA_AGENT_RETRIES": "0"})
        assert r.returncode == 0, r.stderr
        run = json.loads(r.stdout)
        assert run["status"] == "ok"
        assert (copa_home / "answer.md").read_text().strip() == "Your week: three meetings and one deadline."
        assert "summarize my week" in json.dumps(srv.requests[0].body)


def test_one_instance_at_a_time_across_processes(run_copa, copa_home):
    import os

    from copa.scheduler.store import JobStore
    from copa.workstation import Workstation

    assert run_copa("schedule", "add", "solo", "--every", "1h", "--report", "weekly-review").returncode == 0
    with Workstation() as ws:
        store = JobStore(ws.conn)
        run_id = store.begin_run(store.get("solo"), origin="manual")  # a live run, in this (test) process
        r = run_copa("schedule", "run", "solo")
        assert r.returncode == 2 and f"already running (run {run_id}, pid {os.getpid()})" in r.stderr
        store.finish_run(run_id, "ok")
    assert run_copa("schedule", "run", "solo").returncode == 0
    # a run left 'running' by a process that is gone does not block, and is shown for what it is
    with Workstation() as ws:
        ws.conn.execute("UPDATE sched_runs SET status = 'running', pid = 999999999 WHERE id = ?", (run_id,))
    assert "running? (process gone)" in run_copa("schedule", "history", "solo").stdout
    assert run_copa("schedule", "run", "solo").returncode == 0
