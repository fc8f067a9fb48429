"""`copa doctor`: one line per item, --json, and failures that say how to fix them."""

from __future__ import annotations

import json
import sqlite3


def test_doctor_json_on_a_fresh_home(run_copa):
    proc = run_copa("doctor", "--json")
    report = json.loads(proc.stdout)
    names = [c["name"] for c in report["checks"]]
    for expected in ("config", "data dir", "database", "secrets", "daemon"):
        assert expected in names
    assert report["ok"] is True and proc.returncode == 0
    assert all(set(c) == {"name", "status", "detail", "fix"} for c in report["checks"])
    assert all(c["status"] in ("ok", "warn", "fail", "info") for c in report["checks"])


def test_doctor_human_output_has_one_line_per_check(run_copa):
    proc = run_copa("doctor")
    checks = json.loads(run_copa("doctor", "--json").stdout)["checks"]
    assert len(proc.stdout.strip().splitlines()) == len(checks)


def test_broken_config_fails_with_a_fix(run_copa, copa_home):
    cfg = copa_home / "config" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("[general]\nlog_level = 'shout'\n")
    proc = run_copa("doctor", "--json")
    assert proc.returncode == 1
    check = next(c for c in json.loads(proc.stdout)["checks"] if c["name"] == "config")
    assert check["status"] == "fail" and "log_level" in check["detail"] and check["fix"]


def test_corrupt_database_is_caught(run_copa, copa_home):
    db = copa_home / "data" / "copa.db"
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [(f"row {i}" * 50,) for i in range(2000)])
    conn.commit()
    conn.close()
    data = bytearray(db.read_bytes())
    for offset in range(4096 * 2, len(data) - 4096, 4096):  # scribble over every page but the first
        data[offset + 100 : offset + 140] = b"\xff" * 40
    db.write_bytes(bytes(data))
    proc = run_copa("doctor", "--json")
    check = next(c for c in json.loads(proc.stdout)["checks"] if c["name"] == "database")
    assert check["status"] == "fail" and proc.returncode == 1


def test_a_crashing_check_does_not_hide_the_others(copa_home):
    from copa.doctor import run_checks
    from copa.workstation import Workstation

    results = run_checks(Workstation(), ["copa.doctor:check_config", "copa.nonexistent:check_x",
                                         "copa.daemon.status:check_daemon"])
    assert [r.status for r in results][0] == "ok"
    assert results[1].status == "fail" and "crashed" in results[1].detail
    assert results[2].name == "daemon"
