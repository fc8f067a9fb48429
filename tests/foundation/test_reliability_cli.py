"""Issue 16: no input ends in an internal error or a lost record. Real `copa` processes with real
bytes on argv and stdin, real files to import, real environment variables."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def copa_bytes(*args: bytes | str, stdin: bytes | None = None, env: dict[str, str] | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """Run copa with arguments given as raw bytes (what a shell passes for a Latin-1 file name)."""
    argv = [sys.executable.encode(), b"-m", b"copa", *[a if isinstance(a, bytes) else a.encode() for a in args]]
    return subprocess.run(argv, input=stdin if stdin is not None else b"", capture_output=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def _db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "data" / "copa.db")


def test_latin1_argument_is_refused_naming_the_argument_and_offset(copa_home):
    for args in ((b"memory", b"add", b"caf\xe9"), (b"memory", b"search", b"caf\xe9"), (b"tasks", b"add", b"caf\xe9")):
        r = copa_bytes(*args)
        err = r.stderr.decode()
        assert r.returncode == 2, err
        assert "argument 3" in err and "offset 3" in err and "iconv" in err, err
        assert "internal error" not in err and "Traceback" not in err
        assert err.count("\n") == 1  # one line
    assert not (copa_home / "data" / "copa.db").exists() or \
        _db(copa_home).execute("SELECT COUNT(*) FROM memories").fetchone()[0] == 0


def test_latin1_stdin_is_refused_with_the_byte_offset(copa_home):
    r = copa_bytes("ask", "translate", stdin=b"caf\xe9\n")
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert "offset 3" in err and "iconv" in err and "Traceback" not in err
    # a secret is refused too, and its bytes are never echoed
    r = copa_bytes("secrets", "set", "FOO", stdin=b"hunter\xe9\xe92\n")
    assert r.returncode == 2 and b"hunter" not in r.stderr and b"offset 6" in r.stderr


def test_a_latin1_config_file_is_refused_naming_the_offset(copa_home, run_copa):
    cfg = copa_home / "config" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_bytes(b'[agent]\nsystem_prompt = "r\xe9ponds en fran\xe7ais"\n')
    r = run_copa("config", "show")
    assert r.returncode == 3 and "offset 26" in r.stderr and "iconv" in r.stderr and "Traceback" not in r.stderr


def test_utf8_text_round_trips_and_json_on_failure(copa_home, run_copa):
    r = copa_bytes("memory", "add", "café ☕ naïve", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["text"] == "café ☕ naïve"
    # --json on failure: the error as a document on stdout, the same exit code
    for args, code, name in ((("memory", "show", "nope", "--json"), 5, "not_found"),
                             ((b"memory", b"add", b"caf\xe9", b"--json"), 2, "usage"),
                             (("memory", "search", "x", "--limit", "0", "--json"), 2, "usage"),
                             (("schedule", "add", "j", "--every", "1s", "--report", "nope", "--json"), 5, "not_found")):
        r = copa_bytes(*args)
        assert r.returncode == code, (args, r.stderr)
        doc = json.loads(r.stdout)
        assert set(doc["error"]) >= {"code", "message", "hint"} and doc["error"]["code"] == name
        assert doc["error"]["exit_code"] == code and doc["error"]["message"]
    # a provider failure of `copa ask --json` goes through the same path
    r = copa_bytes("ask", "hi", "--json", env={"OPENAI_API_KEY": "x", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
                                                "COPA_AGENT_RETRIES": "0"})
    assert r.returncode == 4, r.stderr
    assert json.loads(r.stdout)["error"]["code"] == "provider"


def test_import_is_all_or_nothing_and_skip_bad_reports_line_numbers(copa_home, run_copa, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"text": "one"}\n{"text": "two", "importance": "very"}\n{"text": "three"}\n'
                    b'{"text": "caf\xe9"}\n{"text": 5}\n{"text": "six", "importance": 1.5}\n'
                    b'{"text": "seven", "metadata": [1]}\n{"text": "\\udce9"}\n')
    r = run_copa("memory", "import", str(src))
    assert r.returncode == 2, r.stderr
    assert "in.jsonl:2" in r.stderr and "'importance'" in r.stderr and "more bad line" in r.stderr
    assert "nothing was imported" in r.stderr and "--skip-bad" in r.stderr
    assert "internal error" not in r.stderr
    conn = _db(copa_home)
    assert conn.execute("SELECT COUNT(*) FROM memories").fetchone()[0] == 0  # not even line 1

    r = run_copa("memory", "import", str(src), "--skip-bad", "--json")
    assert r.returncode == 0, r.stderr
    counts = json.loads(r.stdout)
    assert counts["added"] == 2 and counts["bad"] == 6
    assert [b["line"] for b in counts["bad_lines"]] == [2, 4, 5, 6, 7, 8]
    errors = {b["line"]: b["error"] for b in counts["bad_lines"]}
    assert "offset" in errors[4] and "'text'" in errors[5] and "'importance'" in errors[6]
    assert "'metadata'" in errors[7] and "surrogate" in errors[8]
    assert {t for (t,) in conn.execute("SELECT text FROM memories")} == {"one", "three"}
    r = run_copa("memory", "import", str(src), "--skip-bad")
    assert r.returncode == 0 and "imported 0 memories (2 already present" in r.stdout
    assert "skipped 6 bad line(s)" in r.stderr and "in.jsonl:8" in r.stderr


def test_export_import_round_trip_is_lossless_and_idempotent(copa_home, run_copa, tmp_path):
    for text, extra in (("Home city: Ghent", ["--subject", "user.home_city"]),
                        ("Home city: Antwerp", ["--subject", "user.home_city"]),
                        ("emoji 🦜 and 中文 and tab\tinside", []), ("replacement � kept", [])):
        assert run_copa("memory", "add", text, *extra).returncode == 0
    assert run_copa("tasks", "add", "water the plants", "--due", "2030-01-01T10:00").returncode == 0
    out = tmp_path / "out.jsonl"
    assert run_copa("memory", "export", str(out)).returncode == 0
    other = tmp_path / "other-home"
    env = {"COPA_HOME": str(other)}
    r = run_copa("memory", "import", str(out), "--json", env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["added"] == 5, r.stderr
    again = run_copa("memory", "import", str(out), "--json", env=env)
    assert json.loads(again.stdout) == {"added": 0, "skipped": 5, "sessions": 0}
    out2 = tmp_path / "out2.jsonl"
    assert run_copa("memory", "export", str(out2), env=env).returncode == 0

    def records(p: Path) -> list[dict]:
        return sorted((json.loads(line) for line in p.read_text().splitlines()
                       if json.loads(line)["record"] != "header"), key=lambda r: r["id"])

    assert records(out) == records(out2)


def _exit_code_table() -> dict[int, str]:
    text = (ROOT / "docs" / "cli.md").read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^\| (\d+) \| (.+?) \|$", section, re.M)}


def test_each_documented_exit_code_has_a_case(copa_home, run_copa, tmp_path, capsys, monkeypatch):
    table = _exit_code_table()
    assert set(table) >= {0, 1, 2, 3, 4, 5, 6, 70, 130}
    seen: dict[int, str] = {}

    def expect(code: int, r: subprocess.CompletedProcess) -> None:
        assert r.returncode == code, (code, table[code], r.stderr)
        assert "Traceback" not in r.stderr
        seen[code] = r.stderr

    expect(0, run_copa("config", "path"))
    cfg = copa_home / "config" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("[general\n")
    expect(1, run_copa("doctor"))  # a check reported a failure (the broken file)
    cfg.unlink()
    expect(2, run_copa("config", "set", "agent.retries", "lots"))  # a bad value on the command line
    assert "agent.retries" in seen[2]
    expect(2, run_copa("config", "set", "agent.retrys", "3"))  # an unknown key: usage, with the nearest
    assert "agent.retries" in seen[2]
    expect(3, run_copa("config", "show", env={"COPA_AGENT_RETRIES": "lots"}))  # the configuration is broken
    assert "COPA_AGENT_RETRIES" in seen[3]
    expect(4, run_copa("ask", "hi", env={"OPENAI_API_KEY": "x", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
                                         "COPA_AGENT_RETRIES": "0"}))
    expect(5, run_copa("memory", "show", "nope"))
    assert run_copa("config", "set", "secrets.backend", "file").returncode == 0
    assert run_copa("secrets", "set", "FOO", input="v\n", env={"COPA_PASSPHRASE": "right"}).returncode == 0
    expect(6, run_copa("secrets", "list", env={"COPA_PASSPHRASE": "wrong"}))

    # 130: Ctrl-C while a command waits (an import reading a FIFO that nobody writes)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # Ctrl-C's default action, whatever this test inherited: a shell starts a background job with
    # SIGINT ignored, Python then keeps it ignored, and the import would wait for the FIFO forever.
    proc = subprocess.Popen([sys.executable, "-m", "copa", "memory", "import", str(fifo)], stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=os.environ.copy(),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _blocked_in_open(proc.pid):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err

    # 70: only a bug gives it; a command that raises an unexpected exception stands in for one
    import types

    import typer

    from copa.cli import main as cli_main

    broken = types.ModuleType("copa_test_bug")
    broken.app = typer.Typer()

    @broken.app.command()
    def explode(json_out: bool = typer.Option(False, "--json")) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setitem(sys.modules, "copa_test_bug", broken)
    monkeypatch.setitem(cli_main.COMMANDS, "explode", ("copa_test_bug", "Raise a bug."))
    capsys.readouterr()
    assert cli_main.main(["explode", "--json"]) == 70
    out = capsys.readouterr()
    assert json.loads(out.out)["error"]["code"] == "internal" and "internal error" in out.err


def _blocked_in_open(pid: int) -> bool:
    """True once the process waits in the kernel (the FIFO open): its imports are done."""
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return stat == "S" and "fifo" in wchan


def test_doctor_names_an_unknown_copa_variable_and_its_nearest_key(copa_home, run_copa):
    r = run_copa("doctor", "--json", env={"COPA_AGENT_RETRYS": "5", "COPA_NOT_A_THING_AT_ALL": "1"})
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    env = checks["environment"]
    assert env["status"] == "warn"
    assert "COPA_AGENT_RETRYS (did you mean COPA_AGENT_RETRIES?)" in env["detail"]
    assert "COPA_NOT_A_THING_AT_ALL" in env["detail"]
    r = run_copa("doctor", "--json", env={"COPA_AGENT_RETRIES": "5"})
    assert {c["name"]: c for c in json.loads(r.stdout)["checks"]}["environment"]["status"] == "ok"


@pytest.mark.parametrize("payload", [b"\xff\xfe\x00garbage", b"ok\n\x00\x01", "\u202e\u0007 bell".encode()])
def test_odd_bytes_on_stdin_and_in_values_never_crash(copa_home, payload):
    r = copa_bytes("memory", "add", payload.replace(b"\0", b""), stdin=payload)  # argv cannot hold NUL
    assert r.returncode in (0, 2), r.stderr
    assert b"Traceback" not in r.stderr and b"internal error" not in r.stderr


# --- text from elsewhere: a model server whose answer holds bytes that are not UTF-8 ----------------

_BAD_ANSWER = "cafQ1Q au lait Q2Q crQ3Qme"  # markers, swapped for raw bytes / an escape on the wire
_BAD_BYTES = ((b"Q1Q", b"\xe9"), (b"Q2Q", b"\xff"), (b"Q3Q", b"\\udce8"))  # Latin-1, never UTF-8, a lone surrogate
_SHOWN = "caf\ufffd au lait \ufffd cr\ufffdme"


def _spoil(data: bytes) -> bytes:
    for marker, raw in _BAD_BYTES:
        data = data.replace(marker, raw)
    return data


@pytest.mark.parametrize(("wire", "stream", "as_json"), [
    ("openai", True, False), ("openai", True, True), ("openai", False, False), ("openai", False, True),
    ("anthropic", True, False), ("anthropic", False, True), ("gemini", True, True), ("gemini", False, False)])
def test_a_model_answer_with_bytes_that_are_not_utf8_is_shown_with_u_fffd(copa_home, wire, stream, as_json):
    """The policy for what copa receives: U+FFFD per bad byte (and per lone-surrogate escape), the
    rest kept; the answer is printed, stored and valid JSON; exit 0, no retry, no traceback."""
    from tests.agent.fake_servers import ENCODERS, PLAIN, Answer, FakeModelServer

    with FakeModelServer(wire) as srv:
        srv.configure("fake")
        plain = json.dumps(PLAIN[wire](Answer(_BAD_ANSWER), srv.model)).encode()
        blocks = [_spoil(b.encode()) for b in ENCODERS[wire](Answer(_BAD_ANSWER, chunk=100), srv.model)]
        assert any(b"\xe9" in b for b in blocks + [plain])  # the wire really carries the bad bytes
        srv.add(Answer(raw_events=blocks, raw_json=_spoil(plain)))
        session = f"enc-{wire}-{int(stream)}{int(as_json)}"
        args = ["ask", "--session", session, *([] if stream else ["--no-stream"]), *(["--json"] if as_json else []),
                "say it"]
        r = copa_bytes(*args)
        assert len(srv.requests) == 1  # answered at the first attempt: nothing was refused or retried
    err = r.stderr.decode("utf-8")
    assert r.returncode == 0, err
    assert "Traceback" not in err and "internal error" not in err
    out = r.stdout.decode("utf-8")  # strict: what copa prints is UTF-8
    assert (json.loads(out)["answer"] if as_json else out) == (_SHOWN if as_json else _SHOWN + "\n")
    con = _db(copa_home)
    try:
        stored = con.execute("SELECT text FROM memories WHERE session_id = ? AND role = 'assistant'",
                             (session,)).fetchall()
        assert stored == [(_SHOWN,)]
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        con.close()
