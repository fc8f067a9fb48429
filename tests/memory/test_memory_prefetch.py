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
    if case == "child killed before it was asked":
        assert store.prepare_search()  # forked, loading the model, not asked yet
        os.kill(store._ahead.pid, signal.SIGKILL)
        os.waitpid(store._ahead.pid, 0)  # dead for sure: the question finds no reader
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


@pytest.mark.parametrize("case", ["other question", "child killed", "child killed before it was asked"])
def test_the_parent_searches_itself_when_the_child_cannot_answer(store_files, case):
    got = _run(*store_files, case)
    assert got["started"] == (case != "child killed before it was asked")  # a dead child is not asked
    assert got["reaped"]  # no child is left behind
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


@pytest.mark.parametrize("when", ["at the turn", "before the store is opened"])
def test_the_search_ahead_is_forked_from_a_process_no_skill_can_read(tmp_path, copa_home, when):
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
        def spy(prepare):
            seen.append(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))  # PR_GET_DUMPABLE, at the fork
            return start(prepare)
        prefetch.start = spy
        ws = Workstation()
        if sys.argv[1] == "before the store is opened":  # as copa ask does
            from copa.agent import get_ready
            assert get_ready(lambda: ws.config, lambda: ws.memory)
        ws.memory.add("We adopted a kitten in the spring, she's called Miso.")
        result = ws.agent.run_turn("what is my cat called?")
        ws.close()
        print(json.dumps({"dumpable_at_fork": seen, "used": [m["text"] for m in result.memories_used],
                          "numpy_here": "numpy" in sys.modules}))
    """)
    with FakeModelServer("openai") as srv:
        srv.configure("fake")
        srv.add(Answer("Miso."))
        out = subprocess.run([sys.executable, "-c", script, when], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "COPA_MEMORY_EMBEDDINGS": "static", "OPENAI_API_KEY": "sk-secret"})
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["dumpable_at_fork"] == [0]  # forked once, not dumpable
    assert MEMORIES[0] in got["used"]
    assert not got["numpy_here"]  # the child searched: the one forked before the store was opened, too


CHILD_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from copa.memory import prefetch
    from copa.memory.model import Hit

    def threads():
        return len(os.listdir("/proc/self/task"))

    def prepare():
        import numpy  # noqa: F401 - what a search ahead loads
        print("noise from the child", flush=True)
        print("noise from the child", file=sys.stderr, flush=True)

        def search(request):
            return [Hit(id=request, text=str(threads()), kind="fact", subject=None, score=1.0, occurred_at=None,
                        source=None, metadata={})]
        return search

    ahead = prefetch.start(prepare)
    too_long = ahead.ask("long", "x" * (prefetch.MAX_REQUEST + 1))
    ahead.discard()
    ahead = prefetch.start(prepare)
    asked = ahead.ask("key", "the request")
    other = prefetch.start(prepare)
    other.ask("key", "q")
    hits, mismatch = ahead.take("key"), other.take("another key")
    import numpy  # noqa: F401 - and here, with the defaults
    print(json.dumps({"too_long": too_long, "asked": asked, "id": hits[0].id, "child_threads": int(hits[0].text),
                      "threads_here": threads(), "mismatch": mismatch}))
""")


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: numpy starts no BLAS thread anyway")
def test_the_child_runs_one_blas_thread_stays_quiet_and_takes_only_its_own_request():
    """numpy's OpenBLAS starts a thread per core at import, and its spinning took the core the parent
    runs on: the child must run with one (docs/benchmarks.md, round 11)."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", CHILD_SCRIPT], capture_output=True, text=True, timeout=60,
                         check=True, env=env)
    got = json.loads(out.stdout)  # one JSON document: nothing of the child's on stdout
    assert "noise" not in out.stderr
    assert got["threads_here"] > 1  # what numpy does by default here: the test can tell
    assert got["child_threads"] == 1
    assert got["asked"] and got["id"] == "the request"
    assert not got["too_long"]  # longer than a pipe holds: the caller searches itself
    assert got["mismatch"] is None  # another search's key: not its hits


def test_copa_ask_with_a_broken_configuration_says_so(run_copa, copa_home):
    """The search ahead is forked before the configuration is read: a broken one must still end in
    its own clear error (exit 3), not an internal one."""
    from copa.paths import Paths

    cfg = Paths.from_env().config_file
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("[memory\nembeddings = 'static'\n")
    out = run_copa("ask", "-m", "fake", "what is my cat called?", env={"COPA_MEMORY_EMBEDDINGS": "static"})
    assert out.returncode == 3, out.stderr
    assert "config" in out.stderr.lower() and "internal" not in out.stderr.lower()


def test_the_child_opens_the_store_only_when_its_search_arrives(store_files):
    """Before it is asked, the child touches no database: the parent opens the store (and applies a
    pending migration) alone; a child migrating could hold the write lock past the parent's busy
    timeout, or be killed midway."""
    db, cache = store_files
    script = textwrap.dedent("""
        import json, os, sys, time
        from copa.memory import MemoryStore
        store = MemoryStore(sys.argv[1], embeddings="static", warm_dir=sys.argv[2], cache_dir=sys.argv[2])
        assert store.prepare_search()
        pid = store._ahead.pid
        def db_fds(proc):
            return {fd for fd in os.listdir(f"/proc/{proc}/fd")
                    if os.path.realpath(f"/proc/{proc}/fd/{fd}").startswith(os.path.realpath(sys.argv[1]))}
        inherited = db_fds("self")  # the fork copies this process's descriptors: not the child's doing
        seen = []
        for _ in range(20):  # 1 s: the child imports numpy meanwhile
            seen.append(bool(db_fds(pid) - inherited))
            time.sleep(0.05)
        assert store.prefetch("What is the name of my cat?", limit=3)  # the waiting child is asked
        hits = store.search("What is the name of my cat?", limit=3)
        print(json.dumps({"before": any(seen), "hits": [h.text for h in hits],
                          "numpy_here": "numpy" in sys.modules}))
    """)
    out = subprocess.run([sys.executable, "-c", script, str(db), str(cache)], capture_output=True, text=True,
                         timeout=60, check=True)
    got = json.loads(out.stdout)
    assert got["before"] is False
    assert got["hits"][0] == MEMORIES[0] and not got["numpy_here"]


def test_copa_ask_forks_nothing_when_a_daemon_serves_recall(copa_home):
    """The daemon answers sooner than a fork: with its token present, copa ask's early call forks no
    child (one would import numpy only to be killed)."""
    script = textwrap.dedent("""
        import json, sys
        import copa.memory.prefetch as prefetch
        from copa.agent import get_ready
        from copa.workstation import Workstation
        forks = []
        start = prefetch.start
        prefetch.start = lambda prepare: forks.append(1) or start(prepare)
        ws = Workstation()
        ws.paths.state_dir.mkdir(parents=True, exist_ok=True)
        if sys.argv[1] == "daemon":
            (ws.paths.state_dir / "recall.token").write_text("x")
        ready = get_ready(lambda: ws.config, lambda: ws.memory, ws.paths.state_dir)
        ws.close()
        print(json.dumps({"ready": ready, "forks": len(forks)}))
    """)
    got = {}
    for case in ("no daemon", "daemon"):  # the token stays: the case without it first
        out = subprocess.run([sys.executable, "-c", script, case], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "COPA_MEMORY_EMBEDDINGS": "static"})
        assert out.returncode == 0, out.stderr
        got[case] = json.loads(out.stdout)
    assert got["daemon"] == {"ready": False, "forks": 0}
    assert got["no daemon"] == {"ready": True, "forks": 1}  # the same script forks without the token


# `copa ask` through the CLI's own entry (copa.cli.main.main), with prefetch.start spied on: how many
# children it forked, whether copa was dumpable then, and the children's pids (to see them end).
CLI_SCRIPT = textwrap.dedent("""
    import ctypes, json, sys
    import copa.memory.prefetch as prefetch
    from copa.cli.main import main
    forks = []
    start = prefetch.start
    def spy(prepare):
        dumpable = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE, at the fork
        typer = "typer" in sys.modules
        ahead = start(prepare)
        forks.append({"dumpable": dumpable, "typer": typer, "pid": ahead.pid if ahead else None})
        return ahead
    prefetch.start = spy
    code = main(json.loads(sys.argv[1]))
    print(json.dumps({"code": code, "forks": forks, "numpy_here": "numpy" in sys.modules}), file=sys.stderr)
""")


@pytest.mark.parametrize("case", ["ask", "help", "no memory", "usage error", "daemon serves recall"])
def test_copa_ask_forks_its_search_before_parsing_and_only_when_it_will_search(copa_home, case):
    """``copa ask`` forks the search child before typer is imported (copa/agent/ahead.py:
    fork_early): one child, not dumpable, adopted by the turn (no second fork; the hits are the
    child's, so numpy never loads here). A command that will not search forks nothing; one that
    fails before its turn leaves a child that ends on its own."""
    from tests.agent.fake_servers import Answer, FakeModelServer

    args = {"ask": ["ask", "--json", "what is my cat called?"], "help": ["ask", "--help"],
            "no memory": ["ask", "--no-memory", "what is my cat called?"],
            "usage error": ["ask", "--continue", "--session", "x", "what is my cat called?"],
            "daemon serves recall": ["ask", "what is my cat called?"]}[case]
    env = {**os.environ, "COPA_MEMORY_EMBEDDINGS": "static"}
    with FakeModelServer("openai") as srv:
        srv.configure("fake")
        srv.add(Answer("She is called Miso."))
        for t in MEMORIES:
            subprocess.run([sys.executable, "-m", "copa", "memory", "add", t], env=env, check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "copa", "memory", "embed"], env=env, check=True, capture_output=True)
        if case == "daemon serves recall":
            from copa.paths import Paths

            state = Paths.from_env().state_dir
            state.mkdir(parents=True, exist_ok=True)
            (state / "recall.token").write_text("x")
        out = subprocess.run([sys.executable, "-c", CLI_SCRIPT, json.dumps(args)], capture_output=True, text=True,
                             timeout=120, env=env)
    got = json.loads(out.stderr.strip().splitlines()[-1])
    if case == "ask":
        assert got["code"] == 0
        assert [f["dumpable"] for f in got["forks"]] == [0]  # one child, forked while copa was closed
        assert not got["forks"][0]["typer"]  # before the command line was parsed
        assert MEMORIES[0] in [m["text"] for m in json.loads(out.stdout)["memories_used"]]
        assert not got["numpy_here"]  # the child searched
    elif case == "usage error":
        assert got["code"] == 2 and len(got["forks"]) == 1
        pid = got["forks"][0]["pid"]
        import time

        deadline = time.monotonic() + 30
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(pid)  # its parent left without asking: it ended
    else:
        assert got["forks"] == [] and got["code"] == 0


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie has ended: whoever adopted it may not have reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
