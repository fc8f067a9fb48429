"""copa with a model that really generates: llama.cpp's OpenAI-compatible server (llama-cpp-python)
serving SmolLM2-135M-Instruct with a 2,048-token window on 127.0.0.1 (built by `make test-tools`).

Per agent turn (one session, with N memories): copa's own time vs the model's time, the prompt
tokens copa spent on memory (preferences, tasks, recall, summary), tools, history, the system prompt
and the message (copa's estimate, calibrated on this model's tokenizer), and tokens/s. Baseline in
the same run: the bare request (the user's message alone, no agent) to the same server. Then the
same for one-shot `copa ask` processes (startup included), and the success rate of the prompt-level
tool protocol (tool_mode = prompt) on prompts that call for a tool.

    .venv/bin/python benchmarks/agent_real.py                      # 500 memories, 6 turns, 6 tool prompts
    .venv/bin/python benchmarks/agent_real.py --memories 2000 --turns 10 --tool-prompts 10

Figures on a shared machine are upper bounds: the model's speed depends on the CPU left to it.
"""

from __future__ import annotations

import argparse
import json
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

QUESTIONS = ["What is my sister's name?", "Which coffee do I like?", "When is the piano lesson?",
             "What did I say about the garden?", "Remind me of the budget for the laptop.",
             "What is the plan for the holiday?", "Which book was I reading?", "Where does my sister live?",
             "What time is the dentist?", "What is the wifi password hint?"]
FACTS = ["The user's sister is called Ines and lives in Ghent.", "The user likes flat white coffee.",
         "The piano lesson is on Thursdays at 18:00.", "The user planted tomatoes in the garden in May.",
         "The budget for the new laptop is 1200 euros.", "The holiday is in Porto in August.",
         "The user is reading 'The Left Hand of Darkness'.", "The dentist appointment is at 9:30 on Monday.",
         "The wifi password hint is the cat's name."]
TOOL_PROMPTS = ["Remember that my favourite colour is green.", "Please remember: my bike lock code is 4312.",
                "Search my memory for anything about the garden.", "Save a task: call the plumber tomorrow.",
                "What time is it now? Use the tool.", "Remember that I moved to Lyon.",
                "Forget what I told you about the wifi.", "Recall what you know about my sister.",
                "Remember that I am allergic to peanuts.", "Use the recall tool to find my coffee preference."]
WORDS = ["garden", "kitchen", "project", "deadline", "invoice", "train", "ticket", "doctor", "birthday",
         "router", "printer", "sister", "holiday", "porto", "coffee", "bicycle", "budget", "meeting", "release",
         "backup", "laptop", "phone", "piano", "recipe", "book", "film"]


def fill(ws, memories: int) -> None:
    rnd = random.Random(5)
    records = [{"text": f, "kind": "fact"} for f in FACTS]
    records += [{"text": " ".join(rnd.choice(WORDS) for _ in range(14)).capitalize() + ".",
                 "kind": "preference" if i % 40 == 0 else "fact"} for i in range(memories - len(FACTS))]
    ws.memory.add_many(records)


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def memory_tokens(spent: dict) -> int:
    return sum(spent.get(k, 0) for k in ("preferences", "tasks", "recall", "summary"))


def agent_turns(ws, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        result = ws.agent.run_turn(QUESTIONS[i % len(QUESTIONS)], session_id="bench")
        t, spent = result.timing, result.context["spent"]
        gen_s = (t["model_ms"] - t.get("ttfb_ms", 0.0)) / 1000
        rows.append({"total_ms": t["total_ms"], "model_ms": t["model_ms"], "copa_ms": t["overhead_ms"],
                     "first_token_ms": t.get("ttfb_ms", float("nan")),
                     "tok_s": (result.usage.output_tokens - 1) / gen_s if gen_s > 0 and result.usage.output_tokens > 1
                     else float("nan"),
                     "memory": memory_tokens(spent), "tools": spent.get("tools", 0),
                     "history": spent.get("history", 0), "system": spent.get("system", 0),
                     "message": spent.get("message", 0), "prompt": result.context["prompt_tokens"],
                     "estimated": result.usage.estimated})
    return rows


def bare_requests(ws, n: int) -> list[dict]:
    from copa.providers import ChatRequest, Message

    rows = []
    for i in range(n):
        reply = ws.models.chat(ChatRequest([Message("user", QUESTIONS[i % len(QUESTIONS)])], max_tokens=64), "local")
        gen_s = (reply.duration_ms - (reply.ttfb_ms or 0.0)) / 1000
        rows.append({"model_ms": reply.duration_ms, "first_token_ms": reply.ttfb_ms or float("nan"),
                     "tok_s": (reply.usage.output_tokens - 1) / gen_s if gen_s > 0 else float("nan"),
                     "prompt": reply.usage.input_tokens})
    return rows


def one_shot(n: int, env: dict) -> list[dict]:
    rows = []
    for i in range(n):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "copa", "ask", "--json", QUESTIONS[i % len(QUESTIONS)]],
                           capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=600)
        wall = (time.perf_counter() - t0) * 1000
        if r.returncode != 0:
            raise SystemExit(f"copa ask failed: {r.stderr.strip()}")
        t = json.loads(r.stdout)["timing"]
        rows.append({"wall_ms": wall, "model_ms": t["model_ms"], "copa_ms": wall - t["model_ms"],
                     "in_turn_ms": t["overhead_ms"]})
    return rows


def tool_protocol(ws, prompts: int) -> tuple[int, int, int]:
    """(turns, turns with at least one parsed call, calls that ran ok) with tool_mode = prompt."""
    with_call = ok = 0
    for i in range(prompts):
        result = ws.agent.run_turn(TOOL_PROMPTS[i % len(TOOL_PROMPTS)], session_id=f"tools{i}")
        if result.tool_calls:
            with_call += 1
        ok += sum(1 for c in result.tool_calls if c["ok"])
    return prompts, with_call, ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memories", type=int, default=500)
    ap.add_argument("--turns", type=int, default=6)
    ap.add_argument("--one-shot", type=int, default=3)
    ap.add_argument("--tool-prompts", type=int, default=6)
    args = ap.parse_args()

    from tests.realmodel.llama import API_KEY, MODEL, N_CTX, LlamaServer, find_parts

    try:
        python, gguf = find_parts()
    except LookupError as e:
        raise SystemExit(f"{e}; build it with 'make test-tools'") from None
    tmp = Path(tempfile.mkdtemp(prefix="copa-bench-real-"))
    server = LlamaServer(python, gguf, tmp / "server.log").start()
    env = {**os.environ, "COPA_HOME": str(tmp / "home"), "LOCAL_KEY": API_KEY}
    os.environ.update({"COPA_HOME": env["COPA_HOME"], "LOCAL_KEY": API_KEY})
    try:
        from copa.config import set_value
        from copa.paths import Paths
        from copa.workstation import Workstation

        paths = Paths.from_env()
        for key, value in {"provider": "openai", "base_url": server.root + "/v1", "model": MODEL, "key": "LOCAL_KEY",
                           "max_tokens": 64, "context_window": N_CTX}.items():
            set_value(paths, f"models.local.{key}", value)
        set_value(paths, "agent.model", "local")
        set_value(paths, "agent.read_timeout", 600)
        ws = Workstation()
        fill(ws, args.memories)
        print(f"llama-cpp-python server, SmolLM2-135M-Instruct Q4_1, n_ctx {N_CTX}; {args.memories} memories; "
              f"load average {os.getloadavg()[0]:.1f}")
        bare = bare_requests(ws, min(3, args.turns))
        turns = agent_turns(ws, args.turns)
        ws.close()
        shots = one_shot(args.one_shot, env)
        set_value(paths, "models.local.tool_mode", "prompt")
        set_value(paths, "agent.max_tool_steps", 2)
        ws = Workstation()
        done, with_call, ok = tool_protocol(ws, args.tool_prompts)
        ws.close()
    finally:
        server.stop()

    print(f"\nper agent turn, {len(turns)} turns in one session (medians; ms unless said)")
    print(f"  {'':34s}{'agent turn':>12s}{'bare request':>14s}")
    print(f"  {'total':34s}{med([r['total_ms'] for r in turns]):12.0f}{med([r['model_ms'] for r in bare]):14.0f}")
    print(f"  {'model (request -> last token)':34s}{med([r['model_ms'] for r in turns]):12.0f}"
          f"{med([r['model_ms'] for r in bare]):14.0f}")
    print(f"  {'copa itself (excl. model)':34s}{med([r['copa_ms'] for r in turns]):12.1f}{'-':>14s}")
    print(f"  {'first token':34s}{med([r['first_token_ms'] for r in turns]):12.0f}"
          f"{med([r['first_token_ms'] for r in bare]):14.0f}")
    print(f"  {'tokens/s (generation)':34s}{med([r['tok_s'] for r in turns]):12.1f}"
          f"{med([r['tok_s'] for r in bare]):14.1f}")
    print(f"  {'prompt tokens (copa estimate)':34s}{med([r['prompt'] for r in turns]):12.0f}"
          f"{med([r['prompt'] for r in bare]):14.0f}")
    for part in ("memory", "tools", "history", "system", "message"):
        print(f"    {part:32s}{med([r[part] for r in turns]):12.0f}")
    print(f"\none-shot `copa ask --json`, {len(shots)} runs (medians, ms)")
    print(f"  wall {med([r['wall_ms'] for r in shots]):.0f}, model {med([r['model_ms'] for r in shots]):.0f}, "
          f"copa {med([r['copa_ms'] for r in shots]):.0f} (process start, imports, store, context: "
          f"{med([r['in_turn_ms'] for r in shots]):.0f} of it inside the turn)")
    print(f"\nprompt-level tool protocol (tool_mode = prompt), {done} prompts that call for a tool:")
    print(f"  turns with a parsed tool call: {with_call}/{done} ({100 * with_call / max(1, done):.0f} %), "
          f"calls that ran ok: {ok}")


if __name__ == "__main__":
    main()
