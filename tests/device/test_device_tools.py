"""Device tools for the agent, the daemon hook, against the host firmware build."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


def test_no_tools_without_paired_boards(ws):
    assert ws.devices.as_tools() == []


def test_tools_status_read_write_rules(ws, board):
    ws.devices.pair(board.link, "lab")
    tools = {t.spec.name: t for t in ws.devices.as_tools()}
    assert set(tools) == {"device_status", "device_read", "device_write", "device_rules"}
    assert tools["device_write"].spec.dangerous and not tools["device_read"].spec.dangerous
    assert tools["device_read"].spec.parameters["properties"]["device"]["enum"] == ["lab"]
    board.control("adc 3 456")
    r = tools["device_read"].call({"device": "lab", "channel": "a3"})
    assert r.ok and r.content == {"device": "lab", "channel": "a3", "value": 456, "max": 1023}
    r = tools["device_write"].call({"device": "lab", "pin": "d7", "value": "high"})
    assert r.ok and r.content["value"] == 1 and board.pin(7)[:2] == (1, 1)
    r = tools["device_status"].call({})
    assert r.ok and r.content[0]["name"] == "lab" and r.content[0]["connected"] is True
    ws.devices.session("lab").rule_add(__import__("copa.device.rules_syntax", fromlist=["x"]).parse_rule(
        "a0 > 612 -> d7 high"))
    r = tools["device_rules"].call({"device": "lab"})
    assert r.ok and r.content == [{"slot": 0, "rule": "a0 > 612 -> d7 high", "state": "idle"}]
    r = tools["device_read"].call({"device": "nope", "channel": "a0"})
    assert not r.ok and "no paired board" in r.error
    r = tools["device_write"].call({"device": "lab", "pin": "a0", "value": "high"})
    assert not r.ok and "analog channels are inputs" in r.error
    board.kill()
    r = tools["device_read"].call({"device": "lab", "channel": "a0"})
    assert not r.ok and r.error_type == "timeout"


def test_agent_collects_device_tools(ws, board):
    names = [t.spec.name for t in ws.agent.tools(use_memory=False, session_id="s", turn_id="t", saved=[])]
    assert not [n for n in names if n.startswith("device_")]
    ws.devices.pair(board.link, "lab")
    names = [t.spec.name for t in ws.agent.tools(use_memory=False, session_id="s", turn_id="t", saved=[])]
    assert {"device_status", "device_read", "device_write", "device_rules"} <= set(names)


def _rows(home: Path, sql: str) -> list:
    conn = sqlite3.connect(home / "data" / "copa.db", timeout=30)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def test_daemon_keeps_boards_logging(run_copa, board, copa_home):
    assert run_copa("device", "pair", board.link, "--name", "lab").returncode == 0
    board.control("adc 0 640")
    r = run_copa("device", "watch", "lab", "--save", "-c", "a0", "--period", "20", "--count", "1")
    assert r.returncode == 0, r.stderr
    env = {**os.environ, "COPA_DEVICE_TELEMETRY_INTERVAL": "0.1", "COPA_SCHEDULER_POLL_INTERVAL": "0.2"}
    log = open(copa_home / "daemon.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "copa", "daemon"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _rows(
                copa_home, "SELECT 1 FROM device_readings WHERE device = 'lab' AND value = 640"):
            assert proc.poll() is None, (copa_home / "daemon.log").read_text()
            time.sleep(0.1)
        assert _rows(copa_home, "SELECT 1 FROM device_readings WHERE device = 'lab' AND value = 640")
        # while the daemon holds the port, a write says so on one line; a read of a logged channel
        # answers from the daemon's latest reading
        r = run_copa("device", "write", "lab", "d7", "high")
        assert r.returncode != 0 and r.stderr.count("\n") == 1 and "busy" in r.stderr and "daemon" in r.stderr
        r = run_copa("device", "read", "lab", "a0", "--json")
        assert r.returncode == 0, r.stderr
        got = json.loads(r.stdout)
        assert got["value"] == 640 and "daemon" in got["source"] and got["at"]
        r = run_copa("device", "read", "lab", "a1")
        assert r.returncode != 0 and "busy" in r.stderr
        # watching more channels while the daemon runs: saved, and the daemon picks them up
        board.control("adc 1 101")
        r = run_copa("device", "watch", "lab", "--save", "-c", "a0,a1", "--period", "20")
        assert r.returncode == 0 and "saved" in r.stdout, r.stderr
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _rows(
                copa_home, "SELECT 1 FROM device_readings WHERE device = 'lab' AND channel = 'a1' AND value = 101"):
            time.sleep(0.1)
        assert _rows(copa_home, "SELECT 1 FROM device_readings WHERE device = 'lab' AND channel = 'a1' AND value = 101")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
    texts = [t for (t,) in _rows(copa_home, "SELECT text FROM memories WHERE kind = 'event'")]
    assert any("lab: board connected" in t for t in texts)
    assert any("lab: logging stopped" in t for t in texts)
    # after the daemon, the port is free again
    assert run_copa("device", "read", "lab", "a0").stdout.strip() == "640"
