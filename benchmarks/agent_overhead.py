"""Time copa spends per agent turn, excluding the model: context assembly, recall, logging and storing,
with a memory of N memories (default 100k), plus time to first byte over loopback.

The model is a loopback server speaking the OpenAI wire (tests/agent/fake_servers.py) in its own
process, answering at once. Baselines measured in the same run: the same turn with an empty memory,
and a bare provider request (no agent at all).

    .venv/bin/python benchmarks/agent_overhead.py                # 100k memories, 40 turns
    .venv/bin/python benchmarks/agent_overhead.py --memories 10000 --turns 20
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET_MS = 30.0

_VOCAB = ("garden kitchen project deadline invoice train ticket doctor appointment birthday python rust "
         "router printer sister brother mother holiday lisbon porto berlin tokyo coffee tea bicycle marathon "
         "budget salary meeting review release backup server laptop phone camera guitar piano recipe pasta "
         "soup bread cheese wine book novel film series museum concert football tennis swim yoga")
WORDS = _VOCAB.split()
QUERIES = ["when is my sister's birthday?", "what did we decide about the release?", "which coffee do I like?",
           "remind me of the doctor appointment", "what is the router password hint?", "plans for the holiday?",
           "how is the marathon training going?", "what book was I reading?", "budget for the laptop?",
           "what did I say about the concert in berlin?"]


def vocabulary(rng: random.Random, size: int = 20_000) -> list[str]:
    """Topic words plus pseudo-words: real notes have a large vocabulary with a Zipf-like spread."""
    syll = ["ka", "lo", "mi", "ren", "to", "sa", "vel", "dor", "in", "pa", "qu", "ze", "bri", "no", "st", "ar"]
    made = {"".join(rng.choice(syll) for _ in range(rng.randint(2, 4))) for _ in range(size)}
    return WORDS + sorted(made)


def sentence(rng: random.Random, n: int = 12, vocab: list[str] | None = None) -> str:
    vocab = vocab or WORDS
    # rank r drawn with weight ~1/r (Zipf): a few words are common, most are rare
    words = [vocab[min(len(vocab) - 1, int(rng.paretovariate(1.0)) - 1)] if rng.random() < 0.5
             else rng.choice(vocab) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def populate(ws, n: int, seed: int = 7) -> float:
    rng = random.Random(seed)
    vocab = vocabulary(rng)
    t0 = time.perf_counter()
    batch = []
    sessions = max(1, n // 40)
    for i in range(n):
        r = i % 10
        if r < 6:  # conversation turns
            s = i % sessions
            batch.append({"text": sentence(rng, 16, vocab), "kind": "episode", "session_id": f"bench-{s}",
                          "role": "user" if i % 2 else "assistant", "occurred_at": f"2024-{1 + s % 12:02d}-10"})
        elif r < 9:
            subject = f"bench.{rng.randrange(n // 3)}" if i % 7 == 0 else None  # some facts change
            batch.append({"text": sentence(rng, 12, vocab), "kind": "fact", "subject": subject})
        else:
            batch.append({"text": sentence(rng, 12, vocab), "kind": "note"})
        if len(batch) == 5000:
            ws.memory.add_many(batch)
            batch = []
    if batch:
        ws.memory.add_many(batch)
    for i in range(40):
        ws.memory.add(f"Preference {i}: " + sentence(rng, 8), kind="preference")
    for i in range(20):
        ws.memory.add_task(f"Task {i}: " + sentence(rng, 6))
    return time.perf_counter() - t0


def start_server() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests/agent/fake_servers.py"), "openai",
                             "--text", "Here is a short answer from the model."],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = proc.stdout.readline()
    return proc, line.split(" at ")[1].split(" ")[0]


def measure_turns(ws, turns: int) -> dict[str, list[float]]:

    out: dict[str, list[float]] = {k: [] for k in ("overhead_ms", "context_ms", "recall_ms", "store_ms",
                                                   "ttfb_ms", "caller_ttfb_ms", "total_ms", "cpu_ms")}
    for i in range(turns):
        t0 = time.perf_counter()
        c0 = time.process_time()
        first: list[float] = []

        def on_event(e, first=first, t0=t0):
            if e.type == "text" and not first:
                first.append((time.perf_counter() - t0) * 1000)

        r = ws.agent.run_turn(QUERIES[i % len(QUERIES)], session_id=f"run-{i % 4}", on_event=on_event)
        cpu = (time.process_time() - c0) * 1000
        for k in out:
            if k == "cpu_ms":
                out[k].append(cpu)
            elif k == "caller_ttfb_ms":
                out[k].append(first[0])
            else:
                out[k].append(r.timing.get(k, 0.0))
    return out


def bare_requests(ws, n: int) -> list[float]:
    from copa.providers import ChatRequest, Message

    ttfb = []
    for _ in range(n):
        r = ws.models.chat(ChatRequest([Message("user", "hi")]))
        ttfb.append(r.ttfb_ms)
    return ttfb


def cli_ttfb(env: dict[str, str], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "copa", "ask", "--no-memory", "hi"], stdout=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
        p.stdout.read(1)
        out.append((time.perf_counter() - t0) * 1000)
        p.communicate()
    return out


def cli_breakdown(env: dict[str, str]) -> dict[str, float]:
    """Where a cold `copa ask` process spends its time inside the turn (from --json)."""
    import json

    out = subprocess.run([sys.executable, "-m", "copa", "ask", "--json", "hi"], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, env=env, cwd=ROOT, check=True).stdout
    return json.loads(out)["timing"]


def fmt(xs: list[float]) -> str:
    xs = sorted(xs)
    p95 = xs[min(len(xs) - 1, int(len(xs) * 0.95))]
    return f"{statistics.median(xs):8.2f} {p95:8.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memories", type=int, default=100_000)
    ap.add_argument("--turns", type=int, default=40)
    args = ap.parse_args()
    proc, base_url = start_server()
    try:
        with tempfile.TemporaryDirectory() as big_home, tempfile.TemporaryDirectory() as empty_home:
            from copa.config import set_value
            from copa.paths import Paths
            from copa.workstation import Workstation

            results = {}
            for label, home, n in (("empty memory", empty_home, 0), (f"{args.memories:,} memories", big_home,
                                                                       args.memories)):
                os.environ["COPA_HOME"] = home
                paths = Paths.from_env()
                for k, v in (("provider", "openai"), ("base_url", base_url), ("model", "fake-model")):
                    set_value(paths, f"models.bench.{k}", v)
                ws = Workstation(paths)
                fill = populate(ws, n) if n else 0.0
                if n:
                    print(f"populated {n:,} memories in {fill:.1f} s "
                          f"({ws.memory.stats()['db_bytes'] / 2**20:.0f} MB)")
                measure_turns(ws, 3)  # warm up: migrations, imports, the HTTP connection
                results[label] = measure_turns(ws, args.turns)
                if not n:
                    bare_requests(ws, 3)
                    results["bare"] = bare_requests(ws, args.turns)
                    env = {**os.environ, "COPA_HOME": home}
                    results["cli"] = cli_ttfb(env, 5)
                    results["cli_timing"] = cli_breakdown(env)
                ws.close()
    finally:
        proc.terminate()
        proc.wait()

    big = f"{args.memories:,} memories"
    print(f"\nper turn (ms), {args.turns} turns each      median      p95")
    for label in ("empty memory", big):
        r = results[label]
        print(f"{label}")
        for k, name in (("overhead_ms", "copa overhead (excl. model)"), ("context_ms", "  context assembly"),
                        ("recall_ms", "  of which recall"), ("store_ms", "  storing + logging"),
                        ("caller_ttfb_ms", "turn start -> first answer byte"),
                        ("cpu_ms", "copa CPU for the whole turn")):
            print(f"  {name:<33}{fmt(r[k])}")
    print(f"bare provider request, first byte     {fmt(results['bare'])}")
    print(f"`copa ask --no-memory` process start -> first byte {fmt(results['cli'])}  (5 runs)")
    ct = results["cli_timing"]
    print("  one cold `copa ask --json` turn: " + ", ".join(
        f"{k} {ct.get(k, 0):.0f} ms" for k in ("tools_load_ms", "store_ms", "context_ms", "ttfb_ms", "total_ms")))
    big_med = statistics.median(results[big]["overhead_ms"])
    empty_med = statistics.median(results["empty memory"]["overhead_ms"])
    print(f"\noverhead ratio {big} / empty: {big_med / empty_med:.2f}x")
    print(f"first byte in a turn vs bare request: "
          f"{statistics.median(results[big]['caller_ttfb_ms']) / statistics.median(results['bare']):.1f}x")
    verdict = "met" if big_med <= TARGET_MS else "NOT met"
    cpu_med = statistics.median(results[big]["cpu_ms"])
    print(f"target copa overhead per turn <= {TARGET_MS:.0f} ms with {big}: {verdict} ({big_med:.1f} ms wall, "
          f"{cpu_med:.1f} ms CPU for the whole turn; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
