"""The static model's piece cache (copa/memory/pieces.py): a one-shot command embeds a question in
words it has seen without loading the tokenizer, and gets the very vectors the tokenizer gives."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from copa.memory import MemoryStore, embeddings, pieces

if not embeddings.available():  # CI installs the dev extra, which brings it: there it must not skip
    if os.environ.get("CI"):
        raise RuntimeError("copa[embeddings] is missing in CI: the dev extra should install it")
    pytest.skip("copa[embeddings] is not installed", allow_module_level=True)

# What the cache must split exactly like the tokenizer: accents, scripts without spaces, emoji (byte
# tokens), runs of spaces, tabs and newlines, punctuation glued to words, underscores, digits.
LEARNED = [
    "We adopted a kitten in the spring, she's called Miso.",
    "Überraschung in Zürich: naïve café, 東京の🚲!!",
    "  two  spaces,\ttabs\nand new\n\nlines ",
    "snake_case(x) = x**2; C++ & Rust -> 100% (really?)",
    "Meet me at 10:30 on 2025-03-04 near the bike shop.",
]
# Made only of pieces of the texts above (or their words capitalised or in lower case), in other
# orders: the cache must compose them.
COMPOSED = [
    "Meet the bike shop, she's called Miso.",
    "called Miso, in Zürich: naïve",
    "Rust -> 東京の🚲!!",
    "Kitten spring lines (really?)",
]


@pytest.fixture
def model(tmp_path):
    """A model with its piece cache in ``tmp_path``, which has learned ``LEARNED``; the process-wide
    model is left alone."""
    files = embeddings.static_model_files()
    m = embeddings.StaticEmbedder(*files, cache_dir=tmp_path)
    m.embed(LEARNED)
    return lambda: embeddings.StaticEmbedder(*files, cache_dir=tmp_path)


def test_cached_pieces_give_the_tokenizer_s_ids_and_the_same_vectors(model):
    fresh = model()
    reference = model()
    with reference._lock:
        tokenized = [e.ids for e in reference._tokenizer().encode_batch(LEARNED + COMPOSED, add_special_tokens=False)]
    assert fresh._pieces.ids(LEARNED + COMPOSED) == tokenized
    for text in LEARNED + COMPOSED:
        one = model()
        got = one.embed([text])
        assert not one.tokenizer_loaded, text  # answered from the cache
        with reference._lock:
            want = reference._embed_ids(reference._encode([text]), reference._whole_table())
        assert np.array_equal(got, want), text  # the same rows summed in the same order: equal to the bit


def test_what_the_pieces_cannot_split_goes_to_the_tokenizer(model):
    fresh = model()
    assert fresh._pieces.ids(["the bike shop zorblaxian"]) is None  # a word never seen
    assert fresh._pieces.ids(["<s> the bike shop"]) is None  # a special token's text is matched before splitting
    assert fresh._pieces.ids(["x². the"]) is None  # '².' is one token of this vocabulary: no split there
    assert fresh.embed_if_cached(["the zorblaxian shop"]) is None
    assert not fresh.tokenizer_loaded  # asking did not load it
    v = fresh.embed(["x². the zorblaxian"])  # the tokenizer answers
    assert fresh.tokenizer_loaded and v.shape == (1, 256)
    fresh.embed(["the zorblaxian"])  # and learns what it can split
    assert model()._pieces.ids(["The zorblaxian"]) is not None


def test_the_rules_are_read_from_the_vocabulary_and_refuse_another_tokenizer():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(embeddings.static_model_files()[1]))
    rules, vocabulary = pieces._rules_of(tok)
    assert rules["usable"] == "1"
    assert json.loads(rules["pairs"]) == ["\u00b2)", "\u00b2,", "\u00b2."]  # the three tokens that span a boundary
    assert "\u2581the" in vocabulary and "<s>" in json.loads(rules["special"])
    spec = json.loads(tok.to_str())
    spec["normalizer"] = {"type": "Lowercase"}  # a tokenizer built otherwise: the rule does not hold
    assert pieces._rules_of(Tokenizer.from_str(json.dumps(spec)))[0]["usable"] == "0"


@pytest.mark.parametrize("damage", ["not a database", "bad rules", "bad ids"])
def test_a_damaged_cache_is_ignored(tmp_path, model, damage):
    [cache] = (tmp_path / "embeddings").glob("pieces-*")
    question = "Meet the bike shop, she's called Miso."
    want = model().embed([question])
    if damage == "not a database":
        cache.write_bytes(b"not a database" * 100)
    else:
        with sqlite3.connect(cache) as db:
            if damage == "bad rules":
                db.execute("UPDATE rules SET value = '[not json' WHERE key = 'pairs'")
            else:
                db.execute("UPDATE pieces SET ids = x'010203' WHERE piece = ?", ("\u2581bike",))
    fresh = model()
    assert fresh._pieces.ids([question]) is None
    assert np.array_equal(fresh.embed([question]), want)  # the tokenizer answers


def test_a_search_defers_a_few_unseen_memories_instead_of_loading_the_tokenizer(tmp_path):
    """What a fresh `copa ask` meets: the previous answer is stored without a vector and holds new
    words. A question in known words leaves it to later (found by keywords meanwhile); a backlog of
    DEFER_BELOW memories, or a question that loads the tokenizer anyway, embeds it."""
    from copa.memory.vectors import DEFER_BELOW

    cache = tmp_path / "cache"

    def fresh_store():
        embeddings.unload()  # as in a new process
        return MemoryStore(tmp_path / "m.db", embeddings="static", cache_dir=cache)

    try:
        with fresh_store() as store:
            store.add_many([{"text": t} for t in LEARNED])
            store.search("Meet me near the bike shop.", limit=3)  # embeds them: their pieces are learned
            assert store.missing_vectors() == 0
        with fresh_store() as store:
            store.add("The quokka sanctuary opens at nine.")
            hits = store.search("Meet me near the bike shop.", limit=3)
            assert not store.vectors.embedder.tokenizer_loaded
            assert store.missing_vectors() == 1  # left for later
            assert store.search("quokka", limit=1)[0].text.startswith("The quokka")  # by keywords
            assert hits[0].text == LEARNED[4]
        with fresh_store() as store:
            store.add_many([{"text": f"Note {i}: the wombat sleeps."} for i in range(DEFER_BELOW)])
            store.search("Meet me near the bike shop.", limit=3)
            assert store.vectors.embedder.tokenizer_loaded and store.missing_vectors() == 0
    finally:
        embeddings.unload()


def test_forgetting_deletes_the_words_the_cache_learned(tmp_path):
    secret = "Xylophorbine"
    embeddings.unload()
    try:
        with MemoryStore(tmp_path / "m.db", embeddings="static", cache_dir=tmp_path / "cache") as store:
            mid = store.add(f"My bank's security answer is {secret}.")
            store.search("security answer", limit=1)  # embeds it: its pieces are learned
            kept = list((tmp_path / "cache" / "embeddings").glob("pieces-*"))
            assert any(secret.encode() in p.read_bytes() for p in kept)
            store.forget(mid)
            left = [p for p in (tmp_path / "cache" / "embeddings").iterdir()]
            assert not any(secret.encode() in p.read_bytes() for p in left)
            assert not any(p.name.startswith(pieces.FILE_PREFIX) for p in left)
    finally:
        embeddings.unload()


def test_two_processes_making_the_cache_at_once_both_succeed(tmp_path):
    """The first use makes the file (its rules, the vocabulary's 31,738 pieces): two processes doing
    it together must both end with a usable cache, neither with an error."""
    code = ("import sys; from copa.memory import embeddings as e; "
            "m = e.StaticEmbedder(*e.static_model_files(), cache_dir=sys.argv[1]); "
            "m.embed([sys.argv[2]]); print('ok')")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), text], stdout=subprocess.PIPE, text=True)
             for text in ("the quokka", "the wombat")]
    assert [p.communicate(timeout=120)[0].strip() for p in procs] == ["ok", "ok"]
    [cache] = (tmp_path / "embeddings").glob("pieces-*")
    with sqlite3.connect(cache) as db:
        got = {r[0] for r in db.execute("SELECT piece FROM pieces WHERE piece IN (?, ?)",
                                        ("\u2581quokka", "\u2581wombat"))}
    assert got == {"\u2581quokka", "\u2581wombat"}


def test_a_one_shot_search_in_known_words_does_not_import_the_tokenizer(tmp_path):
    env = {**os.environ, "COPA_HOME": str(tmp_path), "COPA_MEMORY_EMBEDDINGS": "static"}

    def copa(*args):
        return subprocess.run([sys.executable, "-X", "importtime", "-m", "copa", *args], env=env,
                              capture_output=True, text=True, timeout=120, check=True)

    copa("memory", "add", "The bike shop closes at six.")
    first = copa("memory", "search", "when does the bike shop close")  # embeds the memory, learns
    assert "The bike shop" in first.stdout and " tokenizers\n" in first.stderr
    again = copa("memory", "search", "does the bike shop close at six")
    assert "The bike shop" in again.stdout
    assert " tokenizers\n" not in again.stderr and " numpy\n" in again.stderr
