"""The TUI's responsiveness: time to first paint of `copa` in a pseudo-terminal, input latency while an
answer streams at ~200 tokens/s, and memory search latency on the Memory screen with 100k memories.

Baselines measured in the same run: a one-widget Textual app in the same pty (Textual's own floor),
input latency with nothing streaming, and the store's own search call (ws.memory.search) for the
same queries, so the screen's overhead is visible.

    .venv/bin/python benchmarks/tui.py                       # 100k memories
    .venv/bin/python benchmarks/tui.py --memories 20000 --paints 3

Targets (issue 9): first paint <= 0.8 s, search <= 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pty
import random
import select
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
COPA = Path(sys.executable).parent / "copa"
_VOCAB = ("garden kitchen project deadline invoice train ticket doctor appointment birthday python rust "
          "router printer sister brother mother holiday lisbon porto berlin tokyo coffee tea bicycle "
          "marathon budget salary meeting review release backup server laptop phone camera guitar piano "
          "recipe pasta soup bread cheese wine book novel film series museum concert football tennis swim "
          "yoga")
WORDS = _VOCAB.split()
QUERIES = ["sister birthday", "release review", "coffee", "doctor appointment", "router printer", "holiday tokyo",
           "marathon", "novel book", "laptop budget", "concert berlin"]


def pty_time(argv: list[str], env: dict[str, str], marker: bytes, timeout: float = 15.0) -> float:
    """Seconds from spawn until ``marker`` appears in what the program writes to its terminal."""
    t0 = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.execve(argv[0], argv, env)
    seen = b""
    try:
        while time.perf_counter() - t0 < timeout:
            r, _, _ = select.select([fd], [], [], 0.05)
            if r:
                try:
                    seen += os.read(fd, 65536)
                except OSError:
                    break
                if marker in seen:
                    return time.perf_counter() - t0
        raise RuntimeError(f"{marker!r} not seen in {timeout} s")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)


def first_paint(home: str, runs: int) -> tuple[list[float], list[float]]:
    env = {"COPA_HOME": home, "TERM": "xterm-256color", "PATH": os.environ["PATH"], "LANG": "C.UTF-8",
           "HOME": os.environ.get("HOME", "/tmp"), "COLUMNS": "100", "LINES": "30"}
    paint = [pty_time([str(COPA)], env, b"Schedules") for _ in range(runs)]
    base = [pty_time([sys.executable, "-c", HELLO], env, b"Schedules") for _ in range(runs)]
    return paint, base


# The floor: the smallest Textual app painting the same word, in the same pty.
HELLO = ("from textual.app import App\nfrom textual.widgets import Static\n"
         "class A(App):\n    def compose(self):\n        yield Static('Schedules')\nA().run()\n")


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))) + f" #{rng.randint(0, 10**6)}"


def fill(ws, n: int) -> None:
    rng = random.Random(7)
    kinds = ["note", "fact", "episode", "event", "preference", "task"]
    batch = 5000
    for start in range(0, n, batch):
        ws.memory.add_many([{"text": sentence(rng), "kind": rng.choice(kinds), "source": "bench",
                             "occurred_at": f"20{20 + (i % 6)}-0{1 + i % 9}-1{i % 10}T10:00:00Z"}
                            for i in range(start, min(n, start + batch))])


async def typing_latency(app, pilot, keys: int) -> list[float]:
    box = app.screen.query_one("#chat-input")
    out = []
    for i in range(keys):
        ch = "abcdefghij"[i % 10]
        before = box.text
        t0 = time.perf_counter()
        await pilot.press(ch)
        while box.text == before:
            await asyncio.sleep(0)
        out.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(0.02)
    box.clear()
    return out


# The model server runs in its own process (as a real one would): in this process it would compete
# with the UI for the interpreter lock. ~4 characters per token, one token per event, 5 ms apart:
# 200 tokens/s; a paragraph every 50 tokens.
SERVER = """
import random, sys, time
sys.path.insert(0, sys.argv[1])
from tests.agent.fake_servers import Answer, FakeModelServer
words, n = sys.argv[2].split(), int(sys.argv[3])
rng = random.Random(1)
text = "".join(rng.choice(words)[:3] + ("\\n\\n" if i % 50 == 49 else " ") for i in range(n))
srv = FakeModelServer("openai", responder=lambda req: Answer(text, chunk=4, delay=0.005)).start()
print(srv.base_url, flush=True)
time.sleep(3600)
"""


async def chat_latency(ws, tokens: int, keys: int) -> tuple[list[float], list[float], float]:
    import subprocess

    from copa.config import set_value

    server = subprocess.Popen([sys.executable, "-c", SERVER, str(ROOT), " ".join(WORDS), str(tokens)],
                              stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()
        set_value(ws.paths, "models.stream.provider", "openai")
        set_value(ws.paths, "models.stream.base_url", base_url)
        set_value(ws.paths, "models.stream.model", "fake-model")
        set_value(ws.paths, "agent.model", "stream")
        ws.__dict__.pop("config", None)
        ws.__dict__.pop("models", None)
        return await _chat_latency(ws, tokens, keys)
    finally:
        server.kill()
        server.wait()


async def _chat_latency(ws, tokens: int, keys: int) -> tuple[list[float], list[float], float]:
    from copa.tui.app import CopaApp

    app = CopaApp(ws)
    async with app.run_test(size=(100, 30)) as pilot:
        while app.screen.ready is None:
            await pilot.pause(0.05)
        idle = await typing_latency(app, pilot, keys)
        box = app.screen.query_one("#chat-input")
        box.text = "tell me a long story"
        await pilot.press("enter")
        while not app.screen.busy:
            await pilot.pause(0.01)
        t0 = time.perf_counter()
        await asyncio.sleep(0.3)
        streaming = await typing_latency(app, pilot, keys)
        while app.screen.busy:
            await pilot.pause(0.05)
        rate = tokens / (time.perf_counter() - t0)
    return idle, streaming, rate


async def search_latency(ws) -> tuple[list[float], list[float]]:
    from copa.tui.app import CopaApp

    app = CopaApp(ws, mode="memory")
    screen_ms = []
    async with app.run_test(size=(100, 30)) as pilot:
        while not getattr(app.screen, "searches", 0):
            await pilot.pause(0.05)
        box = app.screen.query_one("#search")
        for q in QUERIES * 2:
            box.value = q[:-1]
            n = app.screen.searches
            await until(lambda n=n: app.screen.searches > n)
            n = app.screen.searches
            t0 = time.perf_counter()
            box.value = q  # the last keystroke of the query (key handling itself: see input latency)
            await until(lambda n=n, q=q: app.screen.searches > n and app.screen.query_one("#search").value == q)
            screen_ms.append((time.perf_counter() - t0) * 1000)
    direct = []
    for q in QUERIES * 2:
        t0 = time.perf_counter()
        ws.memory.search(q, limit=100)
        direct.append((time.perf_counter() - t0) * 1000)
    return screen_ms, direct


async def until(cond, timeout: float = 30.0) -> None:
    deadline = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > deadline:
            raise RuntimeError("timed out")
        await asyncio.sleep(0.001)


def p(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memories", type=int, default=100_000)
    ap.add_argument("--paints", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=1200)
    ap.add_argument("--keys", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["COPA_HOME"] = home
        from copa.workstation import Workstation
        from tests.agent.fake_servers import FakeModelServer

        with FakeModelServer("openai") as srv:
            srv.configure(name="fake")
            paint, base = first_paint(home, args.paints)
            print(f"first paint of `copa` (pty, 100x30): median {statistics.median(paint) * 1000:.0f} ms, "
                  f"max {max(paint) * 1000:.0f} ms (target <= 800 ms); baseline: a one-widget Textual app, median "
                  f"{statistics.median(base) * 1000:.0f} ms; ratio "
                  f"{statistics.median(paint) / statistics.median(base):.1f}x")
            ws = Workstation()
            idle, streaming, rate = asyncio.run(chat_latency(ws, args.tokens, args.keys))
            print(f"input latency (key to text in the input): idle median {statistics.median(idle):.1f} ms "
                  f"p95 {p(idle, .95):.1f} ms; while streaming at {rate:.0f} tokens/s median "
                  f"{statistics.median(streaming):.1f} ms p95 {p(streaming, .95):.1f} ms; ratio "
                  f"{statistics.median(streaming) / statistics.median(idle):.1f}x")
            t0 = time.perf_counter()
            fill(ws, args.memories)
            print(f"filled {args.memories} memories in {time.perf_counter() - t0:.0f} s")
            screen_ms, direct = asyncio.run(search_latency(ws))
            print(f"memory search on the Memory screen ({args.memories} memories, keystroke to table updated): "
                  f"median {statistics.median(screen_ms):.1f} ms p95 {p(screen_ms, .95):.1f} ms (target <= 100 ms); "
                  f"baseline ws.memory.search median {statistics.median(direct):.1f} ms; ratio "
                  f"{statistics.median(screen_ms) / statistics.median(direct):.1f}x")
            ws.close()


if __name__ == "__main__":
    main()
