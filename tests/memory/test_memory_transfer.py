"""JSON Lines import of hand-written files, errors with line numbers, speaker names, doctor check."""

from __future__ import annotations

import json

import pytest

from copa.errors import UsageError
from copa.memory import MemoryStore
from copa.memory.transfer import export_jsonl, import_jsonl


def test_hand_written_lines_import_once(tmp_path):
    src = tmp_path / "notes.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"text": "I prefer aisle seats", "kind": "preference"},
        {"text": "Home city: Ghent", "kind": "fact", "subject": "user.home_city", "occurred_at": "2021-05-01"},
        {"text": "hello", "kind": "episode", "session_id": "old-chat", "role": "user",
         "occurred_at": "2022-01-01T10:00:00Z"},
        {"text": "hi, how can I help?", "kind": "episode", "session_id": "old-chat", "role": "assistant",
         "occurred_at": "2022-01-01T10:00:05Z"},
    ]) + "\n\n")
    with MemoryStore(tmp_path / "copa.db") as s:
        s.add("Home city: Antwerp", kind="fact", subject="user.home_city", occurred_at="2023-01-01")
        first = import_jsonl(s, src)
        assert first == {"added": 4, "skipped": 0, "sessions": 0}
        assert import_jsonl(s, src) == {"added": 0, "skipped": 4, "sessions": 0}  # idempotent without ids
        chain = s.history("user.home_city")
        assert [m.text for m in chain] == ["Home city: Ghent", "Home city: Antwerp"]  # older value slots in
        assert chain[0].superseded_by == chain[1].id and chain[1].current
        sess = s.sessions()
        assert [(x.id, x.title, x.turns) for x in sess] == [("old-chat", "hello", 2)]


def test_bad_line_reports_its_number_and_nothing_is_imported(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"text": "one"}\n{"text": "two"}\n{not json\n{"text": "four"}\n')
    with MemoryStore(tmp_path / "copa.db") as s:
        with pytest.raises(UsageError, match=r"bad.jsonl:3"):
            import_jsonl(s, src)
        assert s.list() == []  # all or nothing (issue 16): the lines before it are not kept either
        src.write_text('{"text": "x", "colour": "red"}\n')
        with pytest.raises(UsageError, match="unknown field"):
            import_jsonl(s, src)


def test_export_is_streamed_and_complete(tmp_path):
    with MemoryStore(tmp_path / "copa.db") as s:
        s.add_many([{"text": f"memory {i}", "kind": "episode", "session_id": f"s{i % 3}", "role": "user"}
                    for i in range(2500)])
        n = export_jsonl(s, tmp_path / "all.jsonl")
    lines = (tmp_path / "all.jsonl").read_text().splitlines()
    kinds = [json.loads(x)["record"] for x in lines]
    assert n == 2500 and kinds.count("memory") == 2500 and kinds.count("session") == 3 and kinds[0] == "header"


def test_speaker_names_count_for_questions_about_them(tmp_path):
    with MemoryStore(tmp_path / "copa.db") as s:
        s.add_turn("c1", "Caroline", "Yesterday I finally went to that support group I told you about, it was "
                   "powerful and I met lovely people there.", occurred_at="2023-05-08T10:00")
        s.add_turn("c1", "Melanie", "A support group? I went to one too.", occurred_at="2023-05-08T10:01")
        hits = s.search("When did Caroline go to the support group?", limit=2)
        assert hits[0].role == "caroline" and hits[0].occurred_at.date().isoformat() == "2023-05-08"


def test_doctor_reports_the_memory_store(copa_home):
    from copa.doctor import run_checks
    from copa.workstation import Workstation

    with Workstation() as ws:
        assert run_checks(ws, ["copa.memory.checks:check_memory"])[0].detail.startswith("empty")
        ws.memory.add("something")
        ws.memory.add_task("a task")
        check = run_checks(ws, ["copa.memory.checks:check_memory"])[0]
    assert check.status == "ok" and "2 memories" in check.detail and "1 open tasks" in check.detail
