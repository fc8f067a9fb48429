"""Skills benchmark: discovery of 100 skill files, and the cost of an isolated call.

    .venv/bin/python benchmarks/skills.py [--files 100] [--calls 500] [--cold 20]

Discovery: cold (every file imported in the confined inspector), warm (a new registry reading the
inspection cache: no process started), rescan (the same registry after a change check: stat only).
Calls: the same skill called in-process (baseline: coerce + call + to_json, no isolation), through a
warm worker (reused process), and cold (a fresh confined worker per call). Target: warm p50 <= 15 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from copa.skills import Skills  # noqa: E402

SKILL = '''
from dataclasses import dataclass
from typing import Literal
from copa.skills import skill

@dataclass
class Item:
    name: str
    qty: int = 1

@skill(permissions=["fs.read:~"])
def tool_{i}(text: str, times: int = 1, mode: Literal["a", "b"] = "a", items: list[Item] | None = None) -> dict:
    """Skill number {i}: repeat text.

    Args:
        text: the text.
        times: how many times.
    """
    return {{"out": " ".join([text] * times), "n": len(items or [])}}
'''


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def fmt(xs: list[float]) -> str:
    return f"p50 {pct(xs, 50):8.3f} ms   p95 {pct(xs, 95):8.3f} ms   (n={len(xs)})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--cold", type=int, default=20)
    a = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "skills"
        d.mkdir()
        for i in range(a.files):
            (d / f"s{i:03d}.py").write_text(SKILL.format(i=i))

        import os

        from copa.workstation import Workstation

        os.environ["COPA_HOME"] = str(Path(tmp) / "home")
        ws = Workstation()
        print(f"# skills benchmark: python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        print(f"\n## discovery of {a.files} skill files")
        t = time.perf_counter()
        reg = Skills(ws.config, ws.paths, ws.secrets, dirs=[("user", d)], min_interval=0)
        infos = reg.list()
        cold = (time.perf_counter() - t) * 1000
        assert sum(i.status == "ok" for i in infos) == a.files, [i.error for i in infos if i.status != "ok"][:3]
        t = time.perf_counter()
        reg2 = Skills(ws.config, ws.paths, ws.secrets, dirs=[("user", d)], min_interval=0)
        reg2.list()
        warm = (time.perf_counter() - t) * 1000
        rescans = []
        for _ in range(50):
            t = time.perf_counter()
            reg2.refresh(force=False)
            rescans.append((time.perf_counter() - t) * 1000)
        reg2.close()
        print(f"cold (confined import of every file, 1 inspector process): {cold:8.1f} ms")
        print(f"warm (new registry, inspection cache, no process):          {warm:8.1f} ms")
        print(f"rescan (change check on each access, stat only):            {statistics.median(rescans):8.3f} ms")

        print("\n## call overhead: tool_0(text='hi', times=3)")
        from copa.skills import worker
        from copa.skills.schema import coerce_arguments, to_json

        module = worker.load_module(str(d / "s000.py"))
        fn = module.tool_0
        args = {"text": "hi", "times": 3, "items": [{"name": "x"}]}
        inproc = []
        for _ in range(a.calls):
            t = time.perf_counter()
            to_json(fn(**coerce_arguments(fn, args)))
            inproc.append((time.perf_counter() - t) * 1000)
        reg.call("tool_0", args)  # start the worker
        warm_scan = []  # min_interval=0: every call also re-checks all 100 files for changes
        for _ in range(a.calls):
            t = time.perf_counter()
            r = reg.call("tool_0", args)
            warm_scan.append((time.perf_counter() - t) * 1000)
            assert r.ok, r.error
        # the default: change checks at most every 0.2 s
        reg3 = Skills(ws.config, ws.paths, ws.secrets, dirs=[("user", d)])
        reg3.call("tool_0", args)
        warm_calls = []
        for _ in range(a.calls):
            t = time.perf_counter()
            r = reg3.call("tool_0", args)
            warm_calls.append((time.perf_counter() - t) * 1000)
            assert r.ok, r.error
        reg3.close()
        cold_calls = []
        for _ in range(a.cold):
            reg.pool.close()
            t = time.perf_counter()
            r = reg.call("tool_0", args)
            cold_calls.append((time.perf_counter() - t) * 1000)
            assert r.ok, r.error
        print(f"in-process (no isolation, baseline): {fmt(inproc)}")
        print(f"isolated, warm worker:               {fmt(warm_calls)}")
        print(f"  same, re-scanning 100 files each:  {fmt(warm_scan)}")
        print(f"isolated, cold worker:               {fmt(cold_calls)}")
        print(f"\nwarm isolated p50 / in-process p50 = {pct(warm_calls, 50) / max(pct(inproc, 50), 1e-6):.0f}x; "
              f"cold / warm p50 = {pct(cold_calls, 50) / pct(warm_calls, 50):.0f}x")
        target = pct(warm_calls, 50) <= 15
        print(f"target warm isolated p50 <= 15 ms: {'met' if target else 'NOT met'} ({pct(warm_calls, 50):.3f} ms)")
        sb = reg.pool._workers[0].sandbox if reg.pool._workers else {}
        print(f"sandbox of the worker: {sb}")
        reg.close()
        ws.close()


if __name__ == "__main__":
    main()
