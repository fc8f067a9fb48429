"""The TUI's responsiveness, measured as a user meets it, in a pseudo-terminal: time to first paint of
`copa`, keystroke-to-screen latency (a key written to the terminal until the program has drawn it)
while an answer streams at ~200 tokens/s and while idle, and memory search latency on the Memory
screen with 100k memories.

Baselines measured in the same run: a one-widget Textual app in the same pty for the first paint, and
a one-TextArea Textual app for the keystroke (Textual's own floor), and the store's own search call
(ws.memory.search) for the same queries, so the screen's overhead is visible.

    .venv/bin/python benchmarks/tui.py                       # 100k memories
    .venv/bin/python benchmarks/tui.py --memories 20000 --paints 3

Targets (issue 18): first paint median <= 400 ms; keystroke-to-screen p95 while streaming <= 100 ms;
(issue 9) search <= 100 ms. On a shared, loaded machine the figures are upper bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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


class Pty:
    """A program on a pseudo-terminal of a given size: what it writes, and keys written to it."""

    def __init__(self, argv: list[str], env: dict[str, str], cols: int = 100, rows: int = 30):
        import fcntl
        import struct
        import termios

        self.t0 = time.perf_counter()
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child
            os.execve(argv[0], argv, env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.seen = b""

    def read(self, timeout: float) -> bytes:
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return b""
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:
            return b""
        self.seen += chunk
        return chunk

    def wait_for(self, marker: bytes, timeout: float = 15.0, since: int = 0) -> float:
        """Seconds until ``marker`` appears in the output (after byte ``since``), from now."""
        t0 = time.perf_counter()
        while marker not in self.seen[since:]:
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"{marker!r} not seen in {timeout} s")
            self.read(0.05)
        return time.perf_counter() - t0

    def drain(self, quiet: float = 0.05) -> None:
        while self.read(quiet):
            pass

    def key_to_screen(self, key: bytes) -> float:
        """ms from writing ``key`` until the program echoes it (it draws the character)."""
        self.drain(0.0)
        mark = len(self.seen)
        t0 = time.perf_counter()
        os.write(self.fd, key)
        while key not in self.seen[mark:]:
            if time.perf_counter() - t0 > 10:
                raise RuntimeError(f"{key!r} never drawn")
            self.read(0.01)
        return (time.perf_counter() - t0) * 1000

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        os.close(self.fd)


def pty_env(home: str) -> dict[str, str]:
    return {"COPA_HOME": home, "TERM": "xterm-256color", "PATH": os.environ["PATH"], "LANG": "C.UTF-8",
            "HOME": os.environ.get("HOME", "/tmp"), "TZ": "UTC"}


def pty_time(argv: list[str], env: dict[str, str], marker: bytes) -> float:
    """Seconds from spawn until ``marker`` appears in what the program writes to its terminal."""
    p = Pty(argv, env)
    try:
        p.wait_for(marker)
        return time.perf_counter() - p.t0
    finally:
        p.close()


def first_paint(home: str, runs: int) -> tuple[list[float], list[float]]:
    env = pty_env(home)
    paint = [pty_time([str(COPA)], env, b"Schedules") for _ in range(runs)]
    base = [pty_time([sys.executable, "-c", HELLO], env, b"Schedules") for _ in range(runs)]
    return paint, base


# The floors: the smallest Textual app painting the same word, and one with a single text area.
HELLO = ("from textual.app import App\nfrom textual.widgets import Static\n"
         "class A(App):\n    def compose(self):\n        yield Static('Schedules')\nA().run()\n")
ONE_TEXTAREA = ("from textual.app import App\nfrom textual.widgets import Static, TextArea\n"
                "class A(App):\n    def compose(self):\n        yield Static('ready')\n"
                "        yield TextArea(id='t')\n    def on_mount(self):\n        self.query_one('#t').focus()\n"
                "A().run()\n")
KEYS = b"QJZX"  # letters the streamed answer (lowercase words) and copa's own labels never draw alone


def keystrokes(p: Pty, n: int) -> list[float]:
    """Type n keys one at a time (each erased again, so a key is only ever drawn when typed)."""
    out = []
    for i in range(n):
        key = KEYS[i % len(KEYS):i % len(KEYS) + 1]
        out.append(p.key_to_screen(key))
        os.write(p.fd, b"\x7f")  # backspace
        p.drain(0.03)
    return out


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


def chat_latency(home: str, tokens: int, keys: int) -> tuple[list[float], list[float], list[float], float]:
    """Keystroke-to-screen in `copa` idle and while an answer streams, and in a one-TextArea app."""
    import subprocess

    from copa.config import set_value
    from copa.paths import Paths

    server = subprocess.Popen([sys.executable, "-c", SERVER, str(ROOT), " ".join(WORDS), str(tokens)],
                              stdout=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()
        paths = Paths.from_env({"COPA_HOME": home})
        set_value(paths, "models.stream.provider", "openai")
        set_value(paths, "models.stream.base_url", base_url)
        set_value(paths, "models.stream.model", "fake-model")
        set_value(paths, "agent.model", "stream")
        env = pty_env(home)
        floor = Pty([sys.executable, "-c", ONE_TEXTAREA], env)
        try:
            floor.wait_for(b"ready")
            floor.drain(0.3)
            baseline = keystrokes(floor, keys)
        finally:
            floor.close()
        p = Pty([str(COPA)], env)
        try:
            p.wait_for(b"(/model to change)")  # the model check is done: the welcome names the model
            p.drain(0.3)
            idle = keystrokes(p, keys)
            os.write(p.fd, b"tell me a long story\r")
            t0 = time.perf_counter()
            mark = len(p.seen)
            p.wait_for(b"answering", since=mark)
            time.sleep(0.3)
            streaming = []
            for _ in range(keys):
                streaming += keystrokes(p, 1)
                if b"tokens (" in p.seen[mark:]:  # the turn ended (its usage line): stop measuring
                    break
            p.wait_for(b"tokens (", timeout=120, since=mark)
            rate = tokens / (time.perf_counter() - t0)
        finally:
            p.close()
        return baseline, idle, streaming, rate
    finally:
        server.kill()
        server.wait()


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
                  f"max {max(paint) * 1000:.0f} ms (target median <= 400 ms); baseline: a one-widget Textual app, "
                  f"median {statistics.median(base) * 1000:.0f} ms; ratio "
                  f"{statistics.median(paint) / statistics.median(base):.1f}x")
            floor, idle, streaming, rate = chat_latency(home, args.tokens, args.keys)
            print(f"keystroke to screen (pty): while an answer streams ({rate:.0f} tokens/s delivered) median "
                  f"{statistics.median(streaming):.1f} ms p95 {p(streaming, .95):.1f} ms (target p95 <= 100 ms, "
                  f"{len(streaming)} keys); copa idle median {statistics.median(idle):.1f} ms "
                  f"p95 {p(idle, .95):.1f} ms; "
                  f"baseline: a one-TextArea Textual app, median {statistics.median(floor):.1f} ms "
                  f"p95 {p(floor, .95):.1f} ms; ratio (streaming p95 / baseline p95) "
                  f"{p(streaming, .95) / p(floor, .95):.1f}x")
            ws = Workstation()
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
