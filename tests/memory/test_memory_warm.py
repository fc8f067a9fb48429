"""Recall served by the daemon (copa/memory/warm.py): a real `copa daemon` subprocess and real
one-shot commands. While it runs, a search finds by meaning without loading numpy or the model in
the command's process; when it stops, or is killed and leaves its socket behind, commands search
themselves and find the same; a request without the daemon's token gets nothing."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from copa.memory import embeddings, warm
from tests.scheduler.sched_helpers import DaemonProcs, wait_for

if not embeddings.available():  # CI installs the dev extra, which brings it: there it must not skip
    if os.environ.get("CI"):
        raise RuntimeError("copa[embeddings] is missing in CI: the dev extra should install it")
    pytest.skip("copa[embeddings] is not installed", allow_module_level=True)

KITTEN = "We adopted a kitten in the spring, she's called Miso."
PROBE = ("import json, sys\n"
         "from copa.cli.main import main\n"
         "main(['memory', 'search', *sys.argv[1:], '--json'])\n"
         "print(json.dumps({'numpy': sys.modules.get('numpy') is not None}))\n")


def _run(home, *args: str) -> tuple[dict, bool]:
    """`copa memory search ARGS --json` in a fresh process, and whether that process loaded numpy."""
    env = {**os.environ, "COPA_HOME": str(home), "COPA_MEMORY_EMBEDDINGS": "static"}
    r = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    body, _, tail = r.stdout.rstrip().rpartition("\n")
    return json.loads(body), json.loads(tail)["numpy"]


def _search(home, query: str) -> tuple[list[str], bool]:
    doc, loaded = _run(home, query)
    return [h["text"] for h in doc["hits"]], loaded


def _doctor_says(home) -> str:
    """What `copa doctor --json` says of the memory store."""
    env = {**os.environ, "COPA_HOME": str(home), "COPA_MEMORY_EMBEDDINGS": "static"}
    r = subprocess.run([sys.executable, "-m", "copa", "doctor", "--json"], capture_output=True, text=True, env=env,
                       timeout=120)
    return next(c["detail"] for c in json.loads(r.stdout)["checks"] if c["name"] == "memory")


def _read(path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@pytest.fixture
def daemons(copa_home, run_copa):
    env = {"COPA_MEMORY_EMBEDDINGS": "static"}
    for text in (KITTEN, "The bike shop on Elm Street closes at six on Saturdays."):
        assert run_copa("memory", "add", text, env=env).returncode == 0
    assert run_copa("memory", "embed", env=env).returncode == 0
    d = DaemonProcs(copa_home)
    yield d
    d.kill_all()


def test_the_daemon_answers_searches_with_its_model_loaded(copa_home, daemons):
    state = copa_home / "state"
    local, loaded_here = _search(copa_home, "our new cat")  # no daemon: the command loads the model
    assert local[:1] == [KITTEN] and loaded_here
    assert "no daemon serves recall" in _doctor_says(copa_home)

    d = daemons.start(COPA_MEMORY_EMBEDDINGS="static")
    wait_for(lambda: (state / warm.TOKEN_NAME).exists(), 30, what="the daemon to serve recall")
    assert "the daemon serves recall with the model loaded" in _doctor_says(copa_home)
    for path in (state / warm.SOCKET_NAME, state / warm.TOKEN_NAME):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    served, loaded_here = _search(copa_home, "our new cat")  # found by meaning: no word in common
    assert served[:1] == [KITTEN] and not loaded_here

    d.terminate()
    assert d.wait(timeout=30) == 0
    assert not (state / warm.SOCKET_NAME).exists() and not (state / warm.TOKEN_NAME).exists()
    after, loaded_here = _search(copa_home, "our new cat")
    assert after[:1] == [KITTEN] and loaded_here


def test_a_killed_daemon_leaves_files_that_do_not_stop_a_search(copa_home, daemons):
    state = copa_home / "state"
    daemons.start(COPA_MEMORY_EMBEDDINGS="static")
    wait_for(lambda: (state / warm.TOKEN_NAME).exists(), 30, what="the daemon to serve recall")
    daemons.kill_all()  # SIGKILL: the socket file and the token stay behind
    assert (state / warm.SOCKET_NAME).exists() and (state / warm.TOKEN_NAME).exists()
    stale_token = (state / warm.TOKEN_NAME).read_text()
    found, loaded_here = _search(copa_home, "our new cat")
    assert found[:1] == [KITTEN] and loaded_here
    daemons.start(COPA_MEMORY_EMBEDDINGS="static")  # a new daemon replaces both and answers
    wait_for(lambda: _read(state / warm.TOKEN_NAME) not in ("", stale_token), 30, what="a new token")
    found, loaded_here = _search(copa_home, "our new cat")
    assert found[:1] == [KITTEN] and not loaded_here


def test_a_request_without_the_token_gets_nothing(copa_home, daemons):
    state = copa_home / "state"
    daemons.start(COPA_MEMORY_EMBEDDINGS="static")
    wait_for(lambda: (state / warm.TOKEN_NAME).exists(), 30, what="the daemon to serve recall")
    token = (state / warm.TOKEN_NAME).read_text().strip()
    base = {"v": warm.PROTOCOL, "db": str(copa_home / "data" / "copa.db"),
            "model": embeddings.model_name("static"), "query": "our new cat"}

    def send(req: dict) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(state / warm.SOCKET_NAME))
            s.sendall(json.dumps(req).encode() + b"\n")
            return json.loads(warm._read_line(s))

    assert send({**base, "token": "0" * 64}) == {"error": "token"}
    assert send(base) == {"error": "token"}
    assert send({**base, "token": token, "db": "/elsewhere/copa.db"}) == {"error": "another store"}
    assert send({**base, "op": "ping"}) == {"error": "token"}  # what `copa doctor` asks: the same rules
    assert send({**base, "op": "ping", "token": token, "db": "/elsewhere/copa.db"}) == {"error": "another store"}
    assert send({**base, "op": "ping", "token": token}) == {"serving": True}
    answered = send({**base, "token": token})  # the same request with the token is answered
    assert [h["text"] for h in answered["hits"]][:1] == [KITTEN]


def test_conversations_ranked_as_wholes_are_served_too(copa_home, daemons):
    from copa.memory import MemoryStore

    with MemoryStore(copa_home / "data" / "copa.db", embeddings="static") as store:
        for sid, turns in (("pets", ["We adopted a kitten in the spring.", "She sleeps on the sofa all day."]),
                           ("cars", ["My car needs new tyres before winter.", "Winter tyres grip better."])):
            store.add_many([{"text": t, "kind": "episode", "session_id": sid, "role": "user"} for t in turns])
        store.embed_missing()
    local, loaded_here = _run(copa_home, "--sessions", "the kitten on the sofa")
    assert local["sessions"][0]["session_id"] == "pets" and loaded_here
    daemons.start(COPA_MEMORY_EMBEDDINGS="static")
    wait_for(lambda: (copa_home / "state" / warm.TOKEN_NAME).exists(), 30, what="the daemon to serve recall")
    served, loaded_here = _run(copa_home, "--sessions", "the kitten on the sofa")
    assert served["sessions"] == local["sessions"] and not loaded_here


def test_serving_recall_can_be_turned_off(copa_home, daemons):
    d = daemons.start(COPA_MEMORY_EMBEDDINGS="static", COPA_MEMORY_SERVE_RECALL="false")
    found, loaded_here = _search(copa_home, "our new cat")
    assert found[:1] == [KITTEN] and loaded_here  # the command searched itself
    assert d.poll() is None and not (copa_home / "state" / warm.TOKEN_NAME).exists()


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def test_an_idle_daemon_gives_the_model_back_and_loads_it_again_when_asked(copa_home, daemons):
    """memory.keep_warm: after that many seconds without a search the daemon drops the model and the
    vectors (its memory shrinks); the next question loads them again and is still found by meaning."""
    d = daemons.start(COPA_MEMORY_EMBEDDINGS="static", COPA_MEMORY_KEEP_WARM="3")
    wait_for(lambda: (copa_home / "state" / warm.TOKEN_NAME).exists(), 30, what="the daemon to serve recall")
    log = copa_home / "daemon-0.log"

    def released() -> int:
        return _read(log).count("released the embedding model")

    found, loaded_here = _search(copa_home, "our new cat")
    warm_rss = _rss_mb(d.pid)  # read at once: the model was used just now, so it is still loaded
    assert found[:1] == [KITTEN] and not loaded_here
    before = released()
    wait_for(lambda: released() > before, 30, what="the daemon to release the model")
    cold_rss = _rss_mb(d.pid)
    assert warm_rss - cold_rss > 25, (warm_rss, cold_rss)  # the model and its word table are ~55 MB

    found, loaded_here = _search(copa_home, "our new cat")  # the daemon loads them again to answer
    assert found[:1] == [KITTEN] and not loaded_here
    wait_for(lambda: released() > before + 1, 30, what="a second release")
    assert d.poll() is None
