"""`copa memory` and `copa tasks` through the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import stat
import sys

from copa.memory import MemoryStore
from copa.paths import Paths


def _ok(r):
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r


def _db(copa_home):
    return MemoryStore(Paths.from_env({"COPA_HOME": str(copa_home)}).db_file)


def test_add_search_show_history_list(run_copa, copa_home):
    a = _ok(run_copa("memory", "add", "I live in Lisbon", "--kind", "fact", "--subject", "user.home_city",
                     "--at", "2023-01-01")).stdout.strip()
    b = _ok(run_copa("memory", "add", "We moved to Porto", "--kind", "fact", "--subject", "user.home_city",
                     "--at", "2024-02-01", "--json"))
    b = json.loads(b.stdout)["id"]
    hits = json.loads(_ok(run_copa("memory", "search", "Where do I live?", "--json")).stdout)["hits"]
    assert hits[0]["id"] == b and hits[0]["current"] is True
    old = json.loads(_ok(run_copa("memory", "search", "Lisbon", "--all", "--json")).stdout)["hits"]
    assert old[0]["id"] == a and old[0]["current"] is False
    then = json.loads(_ok(run_copa("memory", "search", "live", "--as-of", "2023-06-01", "--json")).stdout)["hits"]
    assert [h["id"] for h in then] == [a]
    shown = json.loads(_ok(run_copa("memory", "show", a[-6:], "--json")).stdout)  # a unique tail
    assert shown["superseded_by"] == b and shown["valid_to"].startswith("2024-02-01")
    hist = _ok(run_copa("memory", "history", "user.home_city")).stdout
    assert hist.index("Lisbon") < hist.index("Porto")
    listed = json.loads(_ok(run_copa("memory", "list", "--kind", "fact", "--json")).stdout)
    assert [m["id"] for m in listed] == [b]
    listed_all = json.loads(_ok(run_copa("memory", "list", "--all", "--json")).stdout)
    assert {m["id"] for m in listed_all} == {a, b}
    st = json.loads(_ok(run_copa("memory", "stats", "--json")).stdout)
    assert st["memories"] == 2 and st["superseded"] == 1


def test_errors_are_one_line(run_copa):
    r = run_copa("memory", "show", "deadbeef")
    assert r.returncode == 5 and r.stderr.startswith("copa: error: no memory with id") and "Traceback" not in r.stderr
    r = run_copa("memory", "add", "x", "--at", "someday maybe")
    assert r.returncode == 2 and "cannot read" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_copa("memory", "forget")
    assert r.returncode == 2 and "say what to forget" in r.stderr
    r = run_copa("memory", "import", "/nonexistent/file.jsonl")
    assert r.returncode == 2 and "cannot read" in r.stderr
    r = run_copa("tasks", "done", "ffff0000")
    assert r.returncode == 5


def test_edit_with_options_and_editor(run_copa, tmp_path, copa_home):
    mid = _ok(run_copa("memory", "add", "my bike is blue")).stdout.strip()
    _ok(run_copa("memory", "edit", mid, "--text", "my bike is green", "--importance", "0.9"))
    editor = tmp_path / "ed.py"
    editor.write_text("import sys, pathlib\np = pathlib.Path(sys.argv[1])\n"
                      "p.write_text(p.read_text().replace('green', 'red'))\n")
    _ok(run_copa("memory", "edit", mid, env={"EDITOR": f"{sys.executable} {editor}"}))
    with _db(copa_home) as s:
        m = s.get(mid)
    assert m.text == "my bike is red" and m.importance == 0.9


def test_bulk_forget_dry_run_then_yes(run_copa, copa_home):
    _ok(run_copa("memory", "add", "secret project falcon kickoff", "--source", "meeting"))
    with _db(copa_home) as s:
        s.add("secret project falcon budget", source="meeting")
        s.add("secret project falcon launch date", source="email")
        s.add("grocery list: eggs", source="meeting")
    dry = json.loads(_ok(run_copa("memory", "forget", "--match", "falcon project", "--dry-run", "--json")).stdout)
    assert dry["would_forget"] == 3
    r = run_copa("memory", "forget", "--match", "falcon project")  # no tty, no --yes: refused, nothing lost
    assert r.returncode == 2 and "--yes" in r.stderr
    with _db(copa_home) as s:
        assert s.stats()["memories"] == 4
    out = json.loads(_ok(run_copa("memory", "forget", "--match", "falcon", "--source", "meeting", "--yes",
                                  "--json")).stdout)
    assert out == {"forgotten": 2}
    with _db(copa_home) as s:
        assert {m.text for m in s.list()} == {"grocery list: eggs", "secret project falcon launch date"}


def test_export_import_roundtrip_through_cli(run_copa, copa_home, tmp_path):
    with _db(copa_home) as s:
        s.add("Editor: vim", kind="preference", subject="user.editor", occurred_at="2020-01-01")
        s.add("Editor: helix", kind="preference", subject="user.editor", occurred_at="2024-01-01")
        s.add_turn("chat1", "user", "hello there", occurred_at="2024-01-02T10:00")
        s.add_turn("chat1", "assistant", "hi!", occurred_at="2024-01-02T10:01")
        s.add_task("water plants", due="2024-01-03")
    out = tmp_path / "mem.jsonl"
    _ok(run_copa("memory", "export", str(out)))
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    other = tmp_path / "other-home"
    env = {"COPA_HOME": str(other)}
    r = _ok(run_copa("memory", "import", str(out), "--progress", "--json", env=env))
    assert json.loads(r.stdout)["added"] == 5 and "100.0%" in r.stderr
    r = _ok(run_copa("memory", "import", str(out), "--json", env=env))
    assert json.loads(r.stdout) == {"added": 0, "skipped": 5, "sessions": 0}
    out2 = tmp_path / "mem2.jsonl"
    _ok(run_copa("memory", "export", str(out2), env=env))
    strip = [json.loads(line) for line in out.read_text().splitlines()[1:]]
    again = [json.loads(line) for line in out2.read_text().splitlines()[1:]]
    assert strip == again  # lossless: every field of every record, sessions included


def test_tasks_commands(run_copa):
    a = _ok(run_copa("tasks", "add", "file taxes", "--due", "2024-04-15")).stdout.strip()
    b = _ok(run_copa("tasks", "add", "call mum")).stdout.strip()
    listed = json.loads(_ok(run_copa("tasks", "list", "--json")).stdout)
    assert [t["id"] for t in listed] == [a, b] and all(t["status"] == "open" for t in listed)
    _ok(run_copa("tasks", "start", a))
    assert "done" in _ok(run_copa("tasks", "done", b[-8:])).stdout
    listed = json.loads(_ok(run_copa("tasks", "list", "--json")).stdout)
    assert [(t["id"], t["status"]) for t in listed] == [(a, "in_progress")]
    _ok(run_copa("tasks", "cancel", a))
    assert _ok(run_copa("tasks", "list")).stdout.strip() == "no tasks"
    every = json.loads(_ok(run_copa("tasks", "list", "--all", "--json")).stdout)
    assert {t["status"] for t in every} == {"done", "cancelled"}


def test_help_stays_light(run_copa):
    code = ("import sys, copa.cli.main as m; m.main(['memory', '--help']); m.main(['tasks', '--help']);"
            "heavy = [x for x in ('textual', 'apscheduler', 'keyring', 'nacl', 'serial', 'httpx', 'sqlite_utils')"
            " if x in sys.modules]; print(heavy)")
    import subprocess

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"
