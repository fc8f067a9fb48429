"""`copa device` end to end: the real CLI in a subprocess against the host firmware build on a pty."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from copa.device.transport import open_port


def pair(run_copa, board, name="lab"):
    r = run_copa("device", "pair", board.link, "--name", name, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_help_does_not_import_serial_or_nacl():
    code = ("import sys; from copa.cli.main import main; rc = main(['device', '--help']); "
            "bad = [m for m in ('serial', 'nacl', 'sqlite_utils') if m in sys.modules]; "
            "print('BAD', bad) if bad else None; sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pair" in r.stdout and "watch" in r.stdout and "flash" in r.stdout


def test_scan_pair_list_info(run_copa, board, copa_home):
    r = run_copa("device", "scan", "--port", board.link, "--json")
    assert r.returncode == 0, r.stderr
    found = [p for p in json.loads(r.stdout) if p["port"] == board.link]
    assert found and found[0]["copa"] is True and found[0]["board"] == "host"
    assert found[0]["paired"] is False and found[0]["paired_as"] is None

    rec = pair(run_copa, board)
    assert rec["name"] == "lab" and rec["board"] == "host" and rec["device_id"] == found[0]["device_id"]
    assert rec["port"] == board.link  # the stable path, not the pts behind it

    # the key is in the secrets store, never in the database
    import sqlite3

    conn = sqlite3.connect(copa_home / "data" / "copa.db")
    dump = "\n".join(conn.iterdump())
    conn.close()
    r = run_copa("secrets", "list", "--json")
    assert f"copa.device.{rec['device_id']}" in r.stdout
    from copa.workstation import Workstation

    with Workstation() as w:
        key = w.secrets.resolve(f"copa.device.{rec['device_id']}")
    assert key and len(key) == 32 and key not in dump

    r = run_copa("device", "list", "--json")
    assert [d["name"] for d in json.loads(r.stdout)] == ["lab"]
    r = run_copa("device", "info", "lab", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["authenticated"] is True and info["paired"] is True and info["adc_channels"] == 6
    r = run_copa("device", "scan", "--port", board.link, "--json")
    assert [p for p in json.loads(r.stdout) if p["port"] == board.link][0]["paired_as"] == "lab"
    # pairing the same board again under another name is refused, on one line
    r = run_copa("device", "pair", board.link, "--name", "other")
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "already paired as 'lab'" in r.stderr


def test_read_write_pwm_i2c(run_copa, board):
    pair(run_copa, board)
    board.control("adc 0 512")
    r = run_copa("device", "read", "lab", "a0")
    assert r.returncode == 0 and r.stdout.strip() == "512", r.stderr
    board.control("in 2 1")
    assert run_copa("device", "read", "lab", "d2").stdout.strip() == "1"
    r = run_copa("device", "write", "lab", "7", "high")
    assert r.returncode == 0, r.stderr
    assert board.pin(7)[:2] == (1, 1)  # output, driven high: seen from the board's side
    run_copa("device", "write", "lab", "d7", "low")
    assert board.pin(7)[1] == 0
    r = run_copa("device", "pwm", "lab", "3", "100")
    assert r.returncode == 0, r.stderr
    assert board.pin(3)[2] == 100
    r = run_copa("device", "pwm", "lab", "4", "100")  # not a PWM pin
    assert r.returncode != 0 and "UNSUPPORTED" in r.stderr
    r = run_copa("device", "i2c", "lab", "scan", "--json")
    assert json.loads(r.stdout) == [0x48]
    assert run_copa("device", "i2c", "lab", "write", "0x48", "2", "0xab", "0xcd").returncode == 0
    run_copa("device", "i2c", "lab", "write", "0x48", "2")
    assert json.loads(run_copa("device", "i2c", "lab", "read", "0x48", "2", "--json").stdout) == [0xAB, 0xCD]
    # a register read (write the register, repeated START, read): authenticated by the bridge
    r = run_copa("device", "i2c", "lab", "read", "0x48", "2", "3", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [0xCD, 0x00]


def test_watch_json_lines(run_copa, board):
    pair(run_copa, board)
    board.control("adc 1 321")
    r = run_copa("device", "watch", "lab", "--json", "--channels", "a1,d2", "--period", "20", "--count", "4")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    samples = [x for x in lines if x["type"] == "sample"]
    assert len(samples) == 4
    assert all(s["values"] == {"a1": 321, "d2": 0} for s in samples)
    ats = [s["at"] for s in samples]
    assert ats == sorted(ats) and all(a.endswith("+00:00") for a in ats)


def test_one_line_errors(run_copa, board):
    r = run_copa("device", "read", "nowhere", "a0")
    assert r.returncode != 0 and r.stderr.count("\n") == 1
    assert "no paired board named 'nowhere'" in r.stderr and "pair" in r.stderr
    pair(run_copa, board)
    held = open_port(board.link)  # another program holds the port
    try:
        r = run_copa("device", "read", "lab", "a0")
    finally:
        held.close()
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "busy" in r.stderr
    # a port where nothing answers: say what to do
    master, slave = os.openpty()
    try:
        r = run_copa("device", "pair", os.ttyname(slave), "--name", "mute", timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert r.returncode != 0 and r.stderr.count("\n") == 1
    assert "no HELLO answer" in r.stderr and "flash" in r.stderr
    r = run_copa("device", "pair", "/dev/nonexistent-tty", "--name", "x")
    assert r.returncode != 0 and "copa device scan" in r.stderr
    r = run_copa("device", "pair", board.link, "--name", "Bad Name")
    assert r.returncode != 0 and "invalid device name" in r.stderr


def test_forget(run_copa, board, copa_home):
    rec = pair(run_copa, board)
    r = run_copa("device", "forget", "lab")
    assert r.returncode == 0, r.stderr
    assert json.loads(run_copa("device", "list", "--json").stdout) == []
    assert f"copa.device.{rec['device_id']}" not in run_copa("secrets", "list", "--json").stdout
