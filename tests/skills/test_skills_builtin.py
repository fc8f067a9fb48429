"""The built-in skills, called through real workers exactly as the agent calls them."""

from __future__ import annotations

import http.server
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from copa.skills import Skills, discovery
from copa.workstation import Workstation


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = tmp_path / "project"
    (p / "src").mkdir(parents=True)
    (p / "src" / "app.py").write_text("def main():\n    return 'Hello Needle'\n")
    (p / "notes.md").write_text("# Notes\nthe needle is here\nline 3\n")
    (p / "blob.bin").write_bytes(b"\0\1\2" * 100)
    (p / ".git").mkdir()
    (p / ".git" / "config").write_text("needle in git\n")
    return p


@pytest.fixture
def builtins(project: Path):
    ws = Workstation()
    reg = Skills(ws.config, ws.paths, ws.secrets, memory=ws.memory, dirs=[("builtin", discovery.builtin_dir())],
                 cwd=str(project), min_interval=0)
    yield reg
    reg.close()
    ws.close()


def _ok(result):
    assert result.ok, f"{result.error_type}: {result.error}"
    return result.content


def test_every_builtin_loads(builtins):
    infos = builtins.list()
    bad = [(i.name, i.error) for i in infos if i.status != "ok"]
    assert not bad
    names = {i.name for i in infos}
    assert {"list_files", "read_file", "search_files", "fetch_url", "run_command", "system_status", "top_processes",
            "upcoming_events", "current_time", "convert_time", "date_add", "date_diff", "memory_remember",
            "memory_recall", "memory_forget", "memory_tasks", "memory_add_task"} <= names
    assert all(i.description and i.parameters["type"] == "object" for i in infos)
    import jsonschema

    for i in infos:  # what the model and MCP clients receive must be valid JSON Schema
        jsonschema.Draft202012Validator.check_schema(i.parameters)
    assert {i.name for i in infos if i.dangerous} == {"run_command", "memory_forget"}


def test_files(builtins, project, tmp_path):
    listing = _ok(builtins.call("list_files", {"path": "."}))
    assert {e["path"] for e in listing["entries"]} >= {"src", "notes.md", "blob.bin"}
    deep = _ok(builtins.call("list_files", {"recursive": True, "pattern": "*.py"}))
    assert [e["path"] for e in deep["entries"]] == [os.path.join("src", "app.py")]
    text = _ok(builtins.call("read_file", {"path": "notes.md", "start_line": 2, "max_lines": 1}))
    assert text["text"] == "the needle is here" and text["total_lines"] == 3 and text["truncated"]
    found = _ok(builtins.call("search_files", {"query": "NEEDLE"}))
    assert {(m["path"], m["line"]) for m in found["matches"]} == {("notes.md", 2), (os.path.join("src", "app.py"), 2)}
    rx = _ok(builtins.call("search_files", {"query": r"^line \d$", "regex": True}))
    assert [m["text"] for m in rx["matches"]] == ["line 3"]
    binary = builtins.call("read_file", {"path": "blob.bin"})
    assert not binary.ok and "binary" in binary.error
    outside = tmp_path / "outside.txt"  # neither under ~ nor the project
    outside.write_text("private")
    r = builtins.call("read_file", {"path": str(outside)})
    assert not r.ok and r.error_type == "permission"


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path == "/page":
            body = (b"<html><head><title>Test  Page</title><style>p{}</style><script>alert('x')</script></head>"
                    b"<body><h1>Welcome</h1><p>First paragraph &amp; more.</p><ul><li>one</li><li>two</li></ul>"
                    b"</body></html>")
            self._send(200, "text/html; charset=utf-8", body)
        elif self.path == "/big":
            self._send(200, "text/plain", b"x" * 300_000)
        elif self.path == "/image":
            self._send(200, "image/png", b"\x89PNG" + b"\0" * 100)
        elif self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            for _ in range(40):
                try:
                    self.wfile.write(b"tick\n")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.1)
        elif self.path == "/cal.ics":
            self._send(200, "text/calendar", self.server.ics)  # type: ignore[attr-defined]
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/page")
            self.end_headers()
        else:
            self._send(404, "text/plain", b"no")

    def _send(self, code, ctype, body):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def http_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.ics = b""
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_web_fetch(builtins, http_server):
    base = f"http://127.0.0.1:{http_server.server_address[1]}"
    page = _ok(builtins.call("fetch_url", {"url": base + "/redirect"}))
    assert page["title"] == "Test Page" and page["final_url"] == base + "/page" and page["status"] == 200
    assert "# Welcome" in page["text"] and "First paragraph & more." in page["text"] and "- one" in page["text"]
    assert "alert" not in page["text"] and "p{}" not in page["text"]
    big = _ok(builtins.call("fetch_url", {"url": base + "/big", "max_bytes": 100_000, "max_chars": 50_000}))
    assert big["truncated"] and len(big["text"]) == 50_000
    slow = builtins.call("fetch_url", {"url": base + "/slow", "timeout": 1})
    assert not slow.ok and "longer than 1 s" in slow.error
    img = builtins.call("fetch_url", {"url": base + "/image"})
    assert not img.ok and "image/png" in img.error
    bad = builtins.call("fetch_url", {"url": "file:///etc/passwd"})
    assert not bad.ok and "http" in bad.error
    meta = builtins.call("fetch_url", {"url": "http://169.254.169.254/latest/meta-data/", "timeout": 2})
    assert not meta.ok and meta.error_type == "permission" and "link-local" in meta.error


def test_shell(builtins, project):
    spec = next(t.spec for t in builtins.as_tools() if t.spec.name == "run_command")
    assert spec.dangerous
    out = _ok(builtins.call("run_command", {"command": "ls; echo err >&2; exit 3"}))
    assert out["exit_code"] == 3 and "notes.md" in out["stdout"] and out["stderr"] == "err\n"
    slow = _ok(builtins.call("run_command", {"command": "sleep 5", "timeout": 1}))
    assert slow["timed_out"] and slow["exit_code"] is None


def test_system(builtins):
    s = _ok(builtins.call("system_status"))
    assert s["cpu"]["cores"] >= 1 and s["memory"]["total_gb"] > 0 and s["uptime"]["seconds"] > 0
    assert s["disks"] and all(d["total_gb"] > 0 for d in s["disks"])
    top = _ok(builtins.call("top_processes", {"sort_by": "memory", "limit": 500}))
    assert any(p["pid"] == os.getpid() for p in top)
    assert top == sorted(top, key=lambda p: p["memory_mb"], reverse=True)
    assert len(_ok(builtins.call("top_processes", {"limit": 2}))) == 2


def _ics(now: datetime) -> bytes:
    def f(dt):
        return dt.strftime("%Y%m%dT%H%M%SZ")

    soon, weekly = now + timedelta(hours=5), now.replace(microsecond=0) + timedelta(hours=1)
    skipped, moved = weekly + timedelta(weeks=1), weekly + timedelta(weeks=2)
    tomorrow = (now + timedelta(days=1)).strftime("%Y%m%d")
    return "\r\n".join([
        "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//copa tests//EN",
        "BEGIN:VEVENT", "UID:soon@test", f"DTSTART:{f(soon)}", f"DTEND:{f(soon + timedelta(hours=1))}",
        "SUMMARY:Dentist", "LOCATION:Main St", "END:VEVENT",
        "BEGIN:VEVENT", "UID:past@test", f"DTSTART:{f(now - timedelta(days=3))}",
        f"DTEND:{f(now - timedelta(days=3, hours=-1))}", "SUMMARY:Old thing", "END:VEVENT",
        "BEGIN:VEVENT", "UID:weekly@test", f"DTSTART:{f(weekly)}", f"DTEND:{f(weekly + timedelta(minutes=30))}",
        "RRULE:FREQ=WEEKLY;COUNT=6", f"EXDATE:{f(skipped)}", "SUMMARY:Standup", "END:VEVENT",
        "BEGIN:VEVENT", "UID:weekly@test", f"RECURRENCE-ID:{f(moved)}", f"DTSTART:{f(moved + timedelta(hours=2))}",
        f"DTEND:{f(moved + timedelta(hours=3))}", "SUMMARY:Standup (moved)", "END:VEVENT",
        "BEGIN:VEVENT", "UID:allday@test", f"DTSTART;VALUE=DATE:{tomorrow}", "SUMMARY:Holiday", "END:VEVENT",
        "END:VCALENDAR", ""]).encode()


def test_calendar_file_and_url(builtins, project, http_server):
    now = datetime.now(UTC)
    data = _ics(now)
    (project / "cal.ics").write_bytes(data)
    events = _ok(builtins.call("upcoming_events", {"source": "cal.ics", "days": 30, "timezone": "UTC"}))
    summaries = [e["summary"] for e in events]
    assert "Old thing" not in summaries
    # weeks 0..4 fall within 30 days: week 1 is excluded (EXDATE), week 2 moved (RECURRENCE-ID)
    assert summaries.count("Standup") == 3
    assert "Standup (moved)" in summaries and "Dentist" in summaries and "Holiday" in summaries
    starts = [e["start"] for e in events if not e["all_day"]]
    assert starts == sorted(starts)
    holiday = next(e for e in events if e["summary"] == "Holiday")
    assert holiday["all_day"] and holiday["start"] == (now + timedelta(days=1)).date().isoformat()
    week = _ok(builtins.call("upcoming_events", {"source": "cal.ics", "days": 2, "timezone": "UTC"}))
    assert {e["summary"] for e in week} == {"Dentist", "Standup", "Holiday"}
    http_server.ics = data
    url = f"http://127.0.0.1:{http_server.server_address[1]}/cal.ics"
    assert _ok(builtins.call("upcoming_events", {"source": url, "days": 30, "timezone": "UTC"})) == events


def test_time(builtins):
    now = _ok(builtins.call("current_time", {"timezone": "Asia/Tokyo"}))
    assert now["utc_offset"] == "+09:00" and abs(now["unix"] - time.time()) < 60
    conv = _ok(builtins.call("convert_time", {"time": "2025-07-01T12:00", "from_zone": "Europe/Lisbon",
                                              "to_zone": "America/New_York"}))
    assert conv["to"]["iso"] == "2025-07-01T07:00:00-04:00"
    leap = _ok(builtins.call("date_add", {"start": "2024-01-31", "months": 1, "timezone": "UTC"}))
    assert leap["date"] == "2024-02-29"
    assert _ok(builtins.call("date_add", {"start": "2025-03-01T10:00+00:00", "days": -1, "hours": 3}))["iso"] == \
        "2025-02-28T13:00:00+00:00"
    diff = _ok(builtins.call("date_diff", {"start": "2025-01-06", "end": "2025-01-20", "timezone": "UTC"}))
    assert diff["calendar_days"] == 14 and diff["weekdays"] == 10
    bad = builtins.call("current_time", {"timezone": "Mars/Olympus"})
    assert not bad.ok and "unknown time zone" in bad.error


def test_memory(builtins):
    rid = _ok(builtins.call("memory_remember", {"text": "My bike is a green Brompton", "kind": "fact"}))["id"]
    ws = Workstation()  # the same store, seen from copa's own process
    try:
        assert ws.memory.get(rid).text == "My bike is a green Brompton"
        hits = _ok(builtins.call("memory_recall", {"query": "what bike do I have"}))
        assert hits and hits[0]["id"] == rid
        tid = _ok(builtins.call("memory_add_task", {"text": "Fix the bike light", "due": "2030-01-01T09:00"}))["id"]
        assert [t["id"] for t in _ok(builtins.call("memory_tasks"))] == [tid]
        _ok(builtins.call("memory_set_task_status", {"id": tid, "status": "done"}))
        assert _ok(builtins.call("memory_tasks")) == []
        assert _ok(builtins.call("memory_forget", {"id": rid}))["deleted"] == 1
        assert ws.memory.get(rid) is None
    finally:
        ws.close()


def test_memory_permission_cannot_reach_the_secrets_key(write_skill, skill_dir):
    ws = Workstation()
    ws.secrets.set("SOME_KEY", "value-1234")  # creates the key file (file backend here)
    key_file = ws.paths.secrets_key_file
    assert key_file.exists()
    write_skill("peek_key.py", f'''
        from copa.skills import skill

        @skill(permissions=["memory"])
        def peek_key() -> int:
            """Tries to read copa's secrets key."""
            return len(open({str(key_file)!r}, "rb").read())
    ''')
    reg = Skills(ws.config, ws.paths, ws.secrets, dirs=[("user", skill_dir)], min_interval=0)
    try:
        r = reg.call("peek_key")
        assert not r.ok and r.error_type == "permission", r
    finally:
        reg.close()
        ws.close()


def test_files_refuse_credentials_in_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY needle")
    (home / "todo.txt").write_text("needle: water the plants")
    monkeypatch.setenv("HOME", str(home))
    reg = Skills(dirs=[("builtin", discovery.builtin_dir())], cwd=str(home), min_interval=0)
    try:
        r = reg.call("read_file", {"path": "~/.ssh/id_ed25519"})
        assert not r.ok and r.error_type == "permission" and "credentials" in r.error
        listing = _ok(reg.call("list_files", {"path": "~"}))
        assert [e["path"] for e in listing["entries"]] == ["todo.txt"]
        found = _ok(reg.call("search_files", {"query": "needle", "path": "~"}))
        assert [m["path"] for m in found["matches"]] == ["todo.txt"]
    finally:
        reg.close()


def test_forgetting_a_memory_is_marked_dangerous(builtins):
    """Forgetting is irreversible, so the agent (and `copa skills run`) must ask first."""
    info = builtins.get("memory_forget")
    assert info.dangerous is True
    assert builtins.get("memory_recall").dangerous is False
