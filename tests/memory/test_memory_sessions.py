"""Earlier conversations ranked as wholes (copa/memory/sessions.py, `copa memory search --sessions`):
the real store and recall code over real SQLite files, and the CLI as a user runs it."""

from __future__ import annotations

import json

from copa.memory import MemoryStore
from copa.memory.sessions import TURN_HITS, search_sessions


def _session(store, session, texts, day):
    roles = ("user", "assistant")
    store.add_many([{"text": t, "kind": "episode", "session_id": session, "role": roles[i % 2],
                     "occurred_at": f"{day}T10:{i // 60:02d}:{i % 60:02d}+00:00"} for i, t in enumerate(texts)])


def _garden_store(path):
    s = MemoryStore(path)
    # one long conversation whose every turn matches the question better than any turn elsewhere
    _session(s, "greenhouse", [f"Greenhouse log {i}: the garden tomatoes got water and the garden tomatoes grew"
                               for i in range(TURN_HITS + 20)], "2025-05-01")
    # the conversation that is also about the garden's tomatoes, said over several turns
    _session(s, "allotment", ["I finally got a plot at the allotment garden this spring.",
                              "Lovely! What will you plant first?",
                              "Tomatoes, mostly, and some basil beside them.",
                              "Tomatoes like that sunny corner; stake them early."], "2025-04-02")
    _session(s, "bikes", ["My bike chain keeps slipping on the hills.",
                          "Check the derailleur hanger and the chain wear first."], "2025-04-20")
    return s


def test_conversations_the_turn_hits_never_reach_are_ranked(tmp_path):
    with _garden_store(tmp_path / "m.db") as s:
        turns = s.search("garden tomatoes", limit=TURN_HITS)
        assert {h.session_id for h in turns} == {"greenhouse"}  # the turn ranking names one conversation
        found = s.search_sessions("garden tomatoes", limit=3)
    assert [f.session_id for f in found[:2]] == ["greenhouse", "allotment"]
    assert "bikes" not in [f.session_id for f in found]  # no word and no meaning in common: not ranked
    allotment = found[1]
    assert allotment.turns == 4 and allotment.first_at.isoformat().startswith("2025-04-02")
    assert "words" in allotment.views and "turns" not in allotment.views
    assert found[0].hits and all(h.session_id == "greenhouse" for h in found[0].hits)


def test_a_session_can_be_left_out_and_the_limit_holds(tmp_path):
    with _garden_store(tmp_path / "m.db") as s:
        found = search_sessions(s, "garden tomatoes", limit=5, exclude_session="greenhouse")
        assert [f.session_id for f in found] == ["allotment"]
        assert len(s.search_sessions("garden tomatoes bike chain", limit=1)) == 1
        assert s.search_sessions("zyzzyva quokka", limit=5) == []


def test_cli_ranks_sessions_and_refuses_options_that_do_not_apply(run_copa, copa_home):
    with _garden_store(copa_home / "data" / "copa.db"):
        pass
    r = run_copa("memory", "search", "--sessions", "garden tomatoes", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [s["session_id"] for s in doc["sessions"][:2]] == ["greenhouse", "allotment"]
    assert doc["sessions"][1]["turns"] == 4 and "vectors_missing" in doc
    table = run_copa("memory", "search", "--sessions", "garden tomatoes", "-n", "2")
    assert table.returncode == 0 and "allotment" in table.stdout and "Greenhouse log" in table.stdout
    bad = run_copa("memory", "search", "--sessions", "--kind", "fact", "garden")
    assert bad.returncode == 2 and bad.stdout == ""
    assert len(bad.stderr.strip().splitlines()) == 1 and "--sessions" in bad.stderr
