"""Skills benchmark: discovery of 100 skill files, and the cost of an isolated call.

    .venv/bin/python benchmarks/skills.py [--files 100] [--calls 500] [--cold 20]

Discovery: cold (every file imported in the confined inspector), warm (a new registry reading the
inspection cache: no process started), rescan (the same registry after a change check: stat only).
Calls: the same skill called in-process (baseline: coerce + call + to_json, no isolation), through a
warm worker (reused process), and cold (a fresh confined worker per call). Targets: warm p50 <= 2 ms,
cold p50 <= 150 ms.

Isolation mechanisms (issue 15), each measured against a baseline in the same run: a cold worker with
and without the kernel layers; what each layer cost inside the worker (its report's "ms"); a pids
cgroup made and removed; Landlock with copa's folders carved out of a grant; a TCP connection through
copa's proxy (net:HOST) against a direct one (net); a memory recall through copa's channel against the
same call in-process.
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
        target = pct(warm_calls, 50) <= 2
        print(f"target warm isolated p50 <= 2 ms: {'met' if target else 'NOT met'} ({pct(warm_calls, 50):.3f} ms)")
        target = pct(cold_calls, 50) <= 150
        print(f"target cold worker p50 <= 150 ms: {'met' if target else 'NOT met'} ({pct(cold_calls, 50):.1f} ms)")
        sb = reg.pool._workers[0].sandbox if reg.pool._workers else {}
        print(f"sandbox of the worker: {sb}")
        reg.close()
        mechanisms(ws, Path(tmp), a.cold)
        ws.close()


MECH_SKILLS = '''
import socket
from copa.skills import skill
from copa.skills.net import connect

@skill
def plain() -> int:
    """Nothing."""
    return 1

@skill(permissions=["fs.read:{wide}"])
def carved() -> int:
    """A grant of a folder that holds copa's folders (they are carved out)."""
    return 1

@skill(permissions=["net:127.0.0.1"])
def via_proxy(port: int, n: int) -> int:
    """n connections to a declared host, through copa's proxy."""
    for _ in range(n):
        with connect("127.0.0.1", port, timeout=5) as s:
            s.recv(4)
    return n

@skill(permissions=["net"])
def direct(port: int, n: int) -> int:
    """n direct connections (net: any host)."""
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.recv(4)
    return n

@skill(permissions=["memory"])
def recall(q: str) -> int:
    """A memory search through copa."""
    from copa.skills.host import memory
    return len(memory.recall(q, limit=5))
'''


def mechanisms(ws, tmp: Path, cold: int) -> None:
    import os
    import socket
    import threading

    from copa.skills import cgroups
    from copa.skills.runner import Limits

    print("\n## isolation mechanisms (issue 15)")
    d = tmp / "mech"
    d.mkdir()
    (d / "mech.py").write_text(MECH_SKILLS.replace("{wide}", str(tmp)))
    reg = Skills(ws.config, ws.paths, ws.secrets, memory=ws.memory, dirs=[("user", d)], min_interval=0)

    def cold_starts(name: str, registry, args=None, n=cold):
        out, layers = [], {}
        for _ in range(n):
            registry.pool.close()
            t = time.perf_counter()
            r = registry.call(name, args or {})
            out.append((time.perf_counter() - t) * 1000)
            assert r.ok, r.error
            for k, v in registry.pool._workers[0].sandbox.get("ms", {}).items():
                layers.setdefault(k, []).append(v)
        return out, layers

    full, layers = cold_starts("plain", reg)
    os.environ["COPA_SKILLS_KERNEL_SANDBOX"] = "0"
    bare_reg = Skills(dirs=[("user", d)], min_interval=0)
    bare_reg.limits = Limits(allow_unenforced=("filesystem", "network", "processes", "net_hosts"))
    bare, _ = cold_starts("plain", bare_reg)
    bare_reg.close()
    del os.environ["COPA_SKILLS_KERNEL_SANDBOX"]
    print(f"cold worker, every kernel layer:      {fmt(full)}")
    print(f"cold worker, kernel layers off:       {fmt(bare)}   (baseline: audit hook + rlimits only)")
    print(f"  -> the kernel layers cost {pct(full, 50) - pct(bare, 50):+.1f} ms per cold start (p50)")
    for k, v in sorted(layers.items()):
        print(f"  inside the worker, {k:<14} p50 {pct(v, 50):7.3f} ms")
    _, carve = cold_starts("carved", reg)
    print(f"  landlock with copa's folders carved out of a wider grant: p50 {pct(carve['landlock'], 50):.3f} ms "
          f"(vs {pct(layers['landlock'], 50):.3f})")
    cg = []
    for _ in range(200):
        t = time.perf_counter()
        path = cgroups.create(64)
        cgroups.remove(path)
        cg.append((time.perf_counter() - t) * 1000)
    print(f"pids cgroup create + remove (in copa): {fmt(cg)}" + ("" if path else "   (no cgroup here)"))

    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            c.sendall(b"pong")
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    per = 50
    reg.call("via_proxy", {"port": port, "n": 1})
    reg.call("direct", {"port": port, "n": 1})
    proxied, direct = [], []
    for _ in range(10):
        t = time.perf_counter()
        reg.call("via_proxy", {"port": port, "n": per})
        proxied.append((time.perf_counter() - t) * 1000 / per)
        t = time.perf_counter()
        reg.call("direct", {"port": port, "n": per})
        direct.append((time.perf_counter() - t) * 1000 / per)
    srv.close()
    print(f"TCP connection + 4 bytes, direct (net):        {fmt(direct)}")
    print(f"TCP connection + 4 bytes, copa's proxy (net:H): {fmt(proxied)}")
    hosts_cold, hl = cold_starts("via_proxy", reg, {"port": 9, "n": 0}, n=max(cold // 2, 3))
    print(f"cold net:HOST worker (netns + proxy hand-over): {fmt(hosts_cold)}; hand-over p50 "
          f"{pct(hl.get('proxy_handover', [0]), 50):.3f} ms")

    for i in range(200):
        ws.memory.add(f"note {i} about the garden and the bikes", kind="note")
    reg.call("recall", {"q": "garden"})
    via, inproc = [], []
    for _ in range(100):
        t = time.perf_counter()
        reg.call("recall", {"q": "garden"})
        via.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        ws.memory.search("garden", limit=5)
        inproc.append((time.perf_counter() - t) * 1000)
    print(f"memory recall in copa (baseline):           {fmt(inproc)}")
    print(f"memory_recall skill through copa's channel: {fmt(via)}")
    reg.close()


if __name__ == "__main__":
    main()
