"""A search started ahead in a forked process (copa/memory/prefetch.py): real processes, the real
static model, real SQLite files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from copa.memory import MemoryStore, embeddings

if not embeddings.available():  # CI installs the dev extra, which brings it: there it must not skip
    if os.environ.get("CI"):
        raise RuntimeError("copa[embeddings] is missing in CI: the dev extra should install it")
    pytest.skip("copa[embeddings] is not installed", allow_module_level=True)
if not sys.platform.startswith("linux"):
    pytest.skip("the search ahead forks on Linux only", allow_module_level=True)

MEMORIES = ["We adopted a kitten in the spring, she's called Miso.", "The bike shop closes at six on Fridays.",
            "My sister lives in Porto and works as a nurse.", "The car needs new tyres before winter."]

# Run in a fresh interpreter: the parent must be single-threaded and must not have numpy or the model
# loaded, as in a one-shot command.
SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    from copa.memory import MemoryStore
    db, cache, case = sys.argv[1], sys.argv[2], sys.argv[3]
    store = MemoryStore(db, embeddings="static", warm_dir=cache, cache_dir=cache)
    question = "What is the name of my cat?"
    started = store.prefetch(question, limit=3)
    pid = store._ahead.pid if started else None
    if case == "other question":
        question = "When does the bike shop close?"
    if case == "child killed":
        os.kill(pid, signal.SIGKILL)
    hits = store.search(question, limit=3)
    reaped = True
    if pid is not None:
        try:
            os.waitpid(pid, os.WNOHANG)
            reaped = False
        except ChildProcessError:
            pass
    store.close()
    print(json.dumps({"started": started, "hits": [h.text for h in hits], "why": [h.why for h in hits],
                      "numpy_here": "numpy" in sys.modules, "reaped": reaped}))
""")


@pytest.fixture
def store_files(tmp_path):
    db, cache = tmp_path / "m.db", tmp_path / "cache"
    embeddings.unload()
    try:
        with MemoryStore(db, embeddings="static", cache_dir=cache) as store:
            store.add_many([{"text": t} for t in MEMORIES])
            assert store.search("cat", limit=1)  # gives every memory its vector
    finally:
        embeddings.unload()
    return db, cache


def _run(db, cache, case: str) -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(db), str(cache), case], capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def test_the_hits_come_from_the_child_and_are_the_search_s_own(store_files):
    ahead = _run(*store_files, "same question")
    assert ahead["started"] and ahead["reaped"]
    assert not ahead["numpy_here"]  # the parent never loaded the model: the child searched
    assert ahead["hits"][0] == MEMORIES[0] and "dense" in ahead["why"][0]  # found by meaning ("cat" ~ "kitten")
    with MemoryStore(store_files[0], embeddings="static", cache_dir=store_files[1]) as store:
        assert ahead["hits"] == [h.text for h in store.search("What is the name of my cat?", limit=3)]


@pytest.mark.parametrize("case", ["other question", "child killed"])
def test_the_parent_searches_itself_when_the_child_cannot_answer(store_files, case):
    got = _run(*store_files, case)
    assert got["started"] and got["reaped"]  # no child is left behind
    assert got["numpy_here"]  # it searched here
    want = MEMORIES[1] if case == "other question" else MEMORIES[0]
    assert got["hits"][0] == want


def test_nothing_starts_when_a_daemon_serves_recall_or_threads_run(store_files):
    db, cache = store_files
    cache.mkdir(exist_ok=True)
    (cache / "recall.token").write_text("x")  # a daemon serves recall: it answers sooner than a fork
    assert not _run(db, cache, "same question")["started"]
    (cache / "recall.token").unlink()
    import threading

    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        embeddings.unload()
        with MemoryStore(db, embeddings="static", warm_dir=cache, cache_dir=cache) as store:
            assert not store.prefetch("cat", limit=3)  # another thread: forking is not safe
    finally:
        stop.set()
        t.join()


def test_copa_ask_recalls_the_same_with_and_without_the_search_ahead(run_copa, copa_home):
    import shutil

    from tests.agent.fake_servers import Answer, FakeModelServer  # a real HTTP server on 127.0.0.1

    static = {"COPA_MEMORY_EMBEDDINGS": "static"}
    used = {}
    with FakeModelServer("openai") as srv:
        srv.configure("fake")
        for t in MEMORIES:
            assert run_copa("memory", "add", t, env=static).returncode == 0
        assert run_copa("memory", "embed", env=static).returncode == 0
        twin = copa_home.with_name("twin")
        shutil.copytree(copa_home, twin)  # the same store for both: an ask stores its own turns
        for flag, home in (("true", copa_home), ("false", twin)):
            srv.add(Answer("She is called Miso."))
            out = run_copa("ask", "--json", "what is my cat called?",
                           env={**static, "COPA_MEMORY_PREFETCH": flag, "COPA_HOME": str(home)})
            assert out.returncode == 0, out.stderr
            used[flag] = [m["text"] for m in json.loads(out.stdout)["memories_used"]]
    assert MEMORIES[0] in used["true"]
    assert used["true"] == used["false"]


def test_the_search_ahead_is_forked_from_a_process_no_skill_can_read(tmp_path, copa_home):
    """The child copies copa's memory and environment (API keys set there included): it must be as
    closed as copa itself is before any skill runs (docs/skills.md: copa is not dumpable, so its
    /proc files are root's). The flag is inherited by a fork, so copa must have it when it forks."""
    from tests.agent.fake_servers import Answer, FakeModelServer

    script = textwrap.dedent("""
        import ctypes, json, sys
        import copa.memory.prefetch as prefetch
        from copa.workstation import Workstation
        seen = []
        start = prefetch.start
        def spy(key, search):
            seen.append(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))  # PR_GET_DUMPABLE, at the fork
            return start(key, search)
        prefetch.start = spy
        ws = Workstation()
        ws.memory.add("We adopted a kitten in the spring, she's called Miso.")
        result = ws.agent.run_turn("what is my cat called?")
        ws.close()
        print(json.dumps({"dumpable_at_fork": seen, "used": [m["text"] for m in result.memories_used]}))
    """)
    with FakeModelServer("openai") as srv:
        srv.configure("fake")
        srv.add(Answer("Miso."))
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "COPA_MEMORY_EMBEDDINGS": "static", "OPENAI_API_KEY": "sk-secret"})
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["dumpable_at_fork"] == [0]  # forked once, not dumpable
    assert MEMORIES[0] in got["used"]
