"""Forgetting for real, several writer processes at once, and SIGKILL in the middle of an import."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from copa.db import integrity
from copa.memory import MemoryStore
from copa.memory.transfer import import_jsonl


def _file_bytes(path: Path) -> bytes:
    data = b""
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal")):
        if p.exists():
            data += p.read_bytes()
    return data


def test_forget_wipes_text_from_db_and_wal_bytes(tmp_path):
    path = tmp_path / "copa.db"
    secret = "quixotic-zanzibar-marmalade xylographer"
    with MemoryStore(path) as s:
        for i in range(300):  # enough rows for several pages and FTS segments
            s.add(f"ordinary memory number {i} about gardening and tomatoes", kind="note")
        mid = s.add(f"My bank PIN hint is {secret}", kind="fact", subject="user.pin_hint")
        s.add_turn("chat", "user", f"remember {secret} for me")
        keep = s.add("the tomatoes need water on Fridays", kind="note")
        assert secret.encode() in _file_bytes(path) or b"zanzibar" in _file_bytes(path)
        turn = [t.id for t in s.turns("chat")]
        assert s.forget(mid) == 1
        assert s.forget_many(turn) == 1
        assert s.search("zanzibar marmalade") == []
        assert s.get(keep) is not None
        raw = _file_bytes(path)
        # neither the text nor its index terms (the FTS5 segments keep raw terms) survive anywhere
        for needle in (b"zanzibar", b"quixot", b"marmalad", b"xylograph", b"PIN hint"):
            assert needle not in raw, needle
        assert b"tomatoes need water" in raw  # the scan would see text that is still there
    assert integrity(path) == "ok"


def test_bulk_forget_by_subject_kind_time_and_match(tmp_path):
    with MemoryStore(tmp_path / "copa.db") as s:
        s.add("Car: Fiat", kind="fact", subject="user.car", occurred_at="2019-01-01")
        s.add("Car: Volvo", kind="fact", subject="user.car", occurred_at="2022-01-01")
        s.add("door opened", kind="event", source="device:lab", occurred_at="2024-01-01T10:00")
        s.add("door closed", kind="event", source="device:lab", occurred_at="2024-01-02T10:00")
        s.add("door painted green", kind="note", occurred_at="2024-01-01T12:00")
        assert len(s.select_for_forget(subject="user.car")) == 2
        assert [m.text for m in s.select_for_forget(kind="event", since="2024-01-02")] == ["door closed"]
        assert {m.text for m in s.select_for_forget(query="door")} == {"door opened", "door closed",
                                                                       "door painted green"}
        assert [m.text for m in s.select_for_forget(query="door", source="device:lab", until="2024-01-02")] == [
            "door opened"]
        assert s.stats()["memories"] == 5  # selecting is a dry run
        n = s.forget_many(m.id for m in s.select_for_forget(subject="user.car"))
        assert n == 2 and s.history("user.car") == []


WRITER = textwrap.dedent("""
    import sys
    from copa.memory import MemoryStore
    path, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with MemoryStore(path) as s:
        for i in range(n):
            if i % 3 == 0:
                s.add_turn(f"session-{who}", "user", f"writer {who} turn {i}")
            elif i % 3 == 1:
                s.add(f"writer {who} fact {i}", kind="fact", subject=f"w{who}.counter")
            else:
                s.add_many([{"text": f"writer {who} batch {i} item {j}"} for j in range(5)])
            if i % 10 == 0:
                s.search(f"writer {who}")
    print("done")
""")


def test_several_processes_write_at_once_without_lock_errors(tmp_path):
    path = tmp_path / "copa.db"
    MemoryStore(path).close()  # the schema exists; the writers race on data, not on migration
    n, writers = 60, 4
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), str(n)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for w in range(writers)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and out.strip() == "done", err
        assert "locked" not in err
    with MemoryStore(path) as s:
        st = s.stats()
        per_writer = n // 3 + (n // 3) + (n // 3) * 5  # turns + facts + batch items (n divisible by 3)
        assert st["memories"] == writers * per_writer
        for w in range(writers):
            chain = s.history(f"w{w}.counter")
            assert len(chain) == n // 3 and sum(m.current for m in chain) == 1
            assert s.sessions(limit=10) and len(s.turns(f"session-{w}")) == n // 3
    assert integrity(path) == "ok"


def test_fresh_database_migrated_by_racing_processes(tmp_path):
    path = tmp_path / "fresh.db"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), "3"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for w in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    names = sqlite3.connect(path).execute("SELECT name FROM _migrations").fetchall()
    assert names.count(("memory_001_init",)) == 1


IMPORTER = textwrap.dedent("""
    import sys
    from copa.memory import MemoryStore
    from copa.memory.transfer import import_jsonl
    def progress(done, total):
        print(done, flush=True)
    with MemoryStore(sys.argv[1]) as s:
        import_jsonl(s, sys.argv[2], batch=500, progress=progress)
    print("finished", flush=True)
""")


def test_sigkill_mid_import_leaves_nothing_half_written(tmp_path):
    """An import is one transaction (issue 16): killed while writing, the store has none of it, and
    running it again imports everything."""
    path, src = tmp_path / "copa.db", tmp_path / "big.jsonl"
    with src.open("w") as f:
        for i in range(60_000):
            f.write(json.dumps({"id": f"{i:016x}", "text": f"imported memory {i} about topic {i % 97}",
                                "kind": "note", "occurred_at": "2024-01-01T00:00:00+00:00"}) + "\n")
    MemoryStore(path).close()
    half = src.stat().st_size // 2  # progress past half: the checking pass is over, batches are being written
    p = subprocess.Popen([sys.executable, "-c", IMPORTER, str(path), str(src)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    batches = 0
    while batches < 3 and time.monotonic() < deadline:  # kill only after some batches are written
        line = p.stdout.readline()
        if not line:
            break
        batches += line.strip().isdigit() and int(line) > half
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL and batches >= 3
    assert integrity(path) == "ok"
    with MemoryStore(path) as s:
        assert s.stats()["memories"] == 0  # all or nothing: not even the batches written before the kill
        fts = s.conn.execute("SELECT count(*) FROM memories_fts WHERE memories_fts MATCH 'imported'").fetchone()[0]
        assert fts == 0  # the index agrees with the table
        counts = import_jsonl(s, src)
        assert counts["added"] == 60_000 and counts["skipped"] == 0
        assert s.stats()["memories"] == 60_000
    assert integrity(path) == "ok"
