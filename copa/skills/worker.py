"""The skill worker: a child process that confines itself, imports one skill file and serves calls.

Started by ``runner.py`` as ``python -m copa.skills.worker``. The first line on stdin is the set-up
(JSON: mode, file, paths, limits); then one JSON request per line, one JSON reply per line. Replies go
to a private copy of the original stdout; fd 1 is pointed at stderr so a skill's ``print`` cannot
corrupt the protocol. Mode "inspect" imports a list of files and describes their skills (discovery
runs here, confined, so copa's own process never executes skill code).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.util
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

MAX_REPLY = 4 * 1024 * 1024


def _send(out, obj: dict) -> None:
    data = json.dumps(obj, ensure_ascii=False, default=str).encode()
    if len(data) > MAX_REPLY:
        data = json.dumps({k: obj[k] for k in ("id",) if k in obj} | {
            "ok": False, "error_type": "result",
            "error": f"the result is too large ({len(data) // 1024} KB; the limit is {MAX_REPLY // 1024} KB)"}).encode()
    out.write(data + b"\n")
    out.flush()


def _confine(cfg: dict, report: dict) -> dict:
    from copa.skills import isolate, sandbox

    kernel = cfg.get("kernel", True)
    net = cfg.get("net", "none")
    tcp_ports: list[int] = []
    t_proxy = time.perf_counter()
    if net == "hosts" and "netns" in report.get("network", "") and isinstance(cfg.get("proxy_fd"), int):
        port = isolate.hand_over_proxy_listener(cfg["proxy_fd"])
        proxy = f"http://127.0.0.1:{port}"
        os.environ.update(HTTP_PROXY=proxy, HTTPS_PROXY=proxy, ALL_PROXY=proxy, http_proxy=proxy,
                          https_proxy=proxy, all_proxy=proxy, COPA_SKILL_PROXY=proxy)
        report["proxy"], tcp_ports = port, [port]
    elif isinstance(cfg.get("proxy_fd"), int):
        with contextlib.suppress(OSError):
            os.close(cfg["proxy_fd"])
    ms = report.setdefault("ms", {})
    t = time.perf_counter()
    if tcp_ports:
        ms["proxy_handover"] = round((t - t_proxy) * 1000, 3)
    report["capabilities"] = (isolate.drop_capabilities("userns" in report.get("pid_namespace", "")) if kernel
                              else "kept (kernel sandbox off)")
    ms["capabilities"] = round((time.perf_counter() - t) * 1000, 3)
    report["limits"] = sandbox.set_limits(int(cfg.get("memory_mb", 0)), int(cfg.get("cpu_seconds", 0)),
                                          int(cfg.get("cpu_budget", 20)), int(cfg.get("fsize_mb", 0)))
    if net == "none" and "netns" not in report.get("network", ""):
        report["network"] = "unavailable"
    t = time.perf_counter()
    report["sockets"] = (sandbox.deny_sockets() if net == "none" else
                         sandbox.deny_sockets(allow_inet=True) if net == "hosts" else "allowed")
    ms["seccomp"] = round((time.perf_counter() - t) * 1000, 3)
    t = time.perf_counter()
    hidden = sandbox.reveal_within(cfg.get("hidden", []), cfg.get("reveal", []))
    if "own /proc" not in report.get("pid_namespace", ""):  # other processes' /proc folders stay out
        me = str(os.getpid())
        with contextlib.suppress(OSError):
            hidden += [f"/proc/{n}" for n in os.listdir("/proc") if n.isdigit() and n != me]
    report["filesystem"] = sandbox.apply_landlock(
        cfg.get("read", []), cfg.get("write", []), cfg.get("exec", []), deny_tcp=net != "any",
        hidden=hidden, protected=cfg.get("protected", []), own=cfg.get("own", []),
        tcp_ports=tcp_ports) if kernel else "disabled"
    ms["landlock"] = round((time.perf_counter() - t) * 1000, 3)
    landlocked = report["filesystem"].startswith("landlock")
    roots = None if landlocked else (tuple(cfg.get("read", []) + cfg.get("exec", [])),
                                     tuple(cfg.get("write", []) + cfg.get("own", [])))
    sandbox.install_audit_hook(net=net, hosts=tuple(cfg.get("hosts", [])), allow_exec=bool(cfg.get("allow_exec")),
                               fs_roots=roots, proxy_port=report.get("proxy"))
    report["audit_hook"] = "net+exec" + ("" if landlocked else "+open")
    return report


def missing_mechanisms(cfg: dict, report: dict) -> list[str]:
    """The required mechanisms (cfg["require"]) this worker did not get."""
    held = {
        "filesystem": report.get("filesystem", "").startswith("landlock"),
        "network": "netns" in report.get("network", "") or report.get("sockets", "").startswith("seccomp")
        or "TCP denied" in report.get("filesystem", ""),
        "net_hosts": bool(report.get("proxy")),
        "processes": report.get("processes", "unlimited") != "unlimited",
    }
    return [m for m in cfg.get("require", []) if not held.get(m, False)]


def module_name(path: str) -> str:
    digest = hashlib.sha1(path.encode()).hexdigest()[:10]
    stem = "".join(c if c.isalnum() else "_" for c in Path(path).stem)
    return f"copa_skill_{stem}_{digest}"


def load_module(path: str):
    """Import a skill file or package folder under a private module name."""
    p = Path(path)
    name = module_name(path)
    if p.is_dir():
        spec = importlib.util.spec_from_file_location(name, p / "__init__.py", submodule_search_locations=[str(p)])
    else:
        spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    parent = str(p.parent)
    sys.path.append(parent)  # helpers next to the skill file can be imported
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        if parent in sys.path:
            sys.path.remove(parent)
    return module


def _error_text(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    return text if len(text) < 2000 else text[:2000] + "..."


def _where(e: BaseException, path: str) -> str:
    """The last frame of the traceback that is inside the skill file (file:line)."""
    for frame in reversed(traceback.extract_tb(e.__traceback__)):
        if frame.filename.startswith(path):
            return f"{Path(frame.filename).name}:{frame.lineno}"
    return ""


def describe(module) -> list[dict]:
    from copa.skills.decorator import meta_of
    from copa.skills.schema import function_schema

    out = []
    for attr, obj in vars(module).items():
        meta = meta_of(obj)
        owner = getattr(obj, "__module__", None) or ""
        if meta is None or not (owner == module.__name__ or owner.startswith(module.__name__ + ".")):
            continue  # imported from elsewhere: that file is its home
        entry = {"function": attr, "name": meta.name, "permissions": list(meta.permissions),
                 "dangerous": meta.dangerous, "timeout": meta.timeout, "secrets": list(meta.secrets),
                 "processes": getattr(meta, "processes", None)}
        try:
            desc, params = function_schema(obj)
            entry.update(description=meta.description or desc, parameters=params, error=None)
        except Exception as e:
            entry.update(description=meta.description or "", parameters={}, error=_error_text(e))
        out.append(entry)
    return out


def inspect_files(cfg: dict, out) -> None:
    for path in cfg["files"]:
        _send(out, {"started": path})
        try:
            module = load_module(path)
            _send(out, {"path": path, "skills": describe(module), "error": None})
        except BaseException as e:  # noqa: BLE001 - any failure of a skill's import is its own
            where = _where(e, path)
            _send(out, {"path": path, "skills": [], "error": _error_text(e) + (f" ({where})" if where else "")})
    _send(out, {"done": True})


def _classify(e: BaseException) -> str:
    if isinstance(e, MemoryError):
        return "memory"
    if isinstance(e, PermissionError):
        return "permission"
    if isinstance(e, OSError) and e.errno == errno.EFBIG:  # RLIMIT_FSIZE (Python ignores SIGXFSZ)
        return "output"
    return "exception"


def serve(cfg: dict, out, report: dict) -> None:
    from copa.skills import sandbox
    from copa.skills.decorator import meta_of
    from copa.skills.schema import ArgumentError, coerce_arguments, to_json

    path = cfg["file"]
    try:
        module = load_module(path)
    except BaseException as e:  # noqa: BLE001
        _send(out, {"ready": False, "error_type": "load", "error": _error_text(e)})
        return
    _send(out, {"ready": True, "sandbox": report})
    cpu = int(cfg.get("cpu_seconds", 0))
    while True:
        line = sys.stdin.buffer.readline()
        if not line:
            return
        req = json.loads(line)
        rid = req.get("id")
        func = getattr(module, req.get("function", ""), None)
        if func is None or meta_of(func) is None:
            _send(out, {"id": rid, "ok": False, "error_type": "not_found",
                        "error": f"{Path(path).name} has no skill function {req.get('function')!r}"})
            continue
        if not sandbox.arm_cpu_limit(cpu):
            _send(out, {"id": rid, "ok": False, "error_type": "retired", "recycle": True,
                        "error": "this worker's CPU budget is spent; the call goes to a new one"})
            return
        try:
            kwargs = coerce_arguments(func, req.get("arguments") or {})
        except ArgumentError as e:
            _send(out, {"id": rid, "ok": False, "error_type": "invalid_arguments", "error": str(e)})
            continue
        recycle = False
        try:
            reply = {"id": rid, "ok": True, "content": to_json(func(**kwargs))}
        except TypeError as e:
            if "into JSON" in str(e):
                reply = {"id": rid, "ok": False, "error_type": "result", "error": str(e)}
            else:
                reply = {"id": rid, "ok": False, "error_type": "exception", "error": _error_text(e),
                         "where": _where(e, path)}
        except BaseException as e:  # noqa: BLE001 - SystemExit and KeyboardInterrupt too
            kind = _classify(e)
            if kind == "memory":
                e = MemoryError(f"the skill ran out of memory (limit {cfg.get('memory_mb')} MB)")
            if kind == "output":
                e = OSError(f"the skill wrote more than {cfg.get('fsize_mb')} MB (output or a file)")
            recycle = kind in ("memory", "output") or isinstance(e, SystemExit | KeyboardInterrupt)
            reply = {"id": rid, "ok": False, "error_type": kind, "error": _error_text(e), "where": _where(e, path)}
        if recycle:
            reply["recycle"] = True
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()  # what the skill printed is in the output file before the reply
        _send(out, reply)
        if recycle:
            return


def main() -> None:
    cfg = json.loads(sys.stdin.buffer.readline())
    report: dict[str, Any] = {}
    from copa.skills import isolate

    t0 = time.perf_counter()  # CLOCK_MONOTONIC: comparable across the outer, init and worker processes
    if cfg.get("kernel", True):
        report = isolate.enter(cfg)  # namespaces: only the worker itself returns from here
    report["ms"] = {"namespaces": round((time.perf_counter() - t0) * 1000, 3)}  # what each layer cost
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # print() in a skill goes to the worker's stderr, never into the protocol
    sys.stdout = sys.stderr
    try:
        report = _confine(cfg, report)
    except Exception as e:
        _send(out, {"ready": False, "error_type": "sandbox", "error": f"cannot confine the worker: {_error_text(e)}"})
        return
    missing = missing_mechanisms(cfg, report)
    if missing:
        from copa.skills.runner import MECHANISMS

        _send(out, {"ready": False, "error_type": "sandbox", "sandbox": report,
                    "error": f"this machine cannot enforce {missing[0]} ({MECHANISMS[missing[0]]}); the skill is "
                             f"refused (accept the risk with: copa config set skills.allow_unenforced {missing[0]})"})
        return
    from copa.skills import host

    host.attach(out, sys.stdin.buffer)
    if cfg.get("mode") == "inspect":
        _send(out, {"sandbox": report})
        inspect_files(cfg, out)
    else:
        serve(cfg, out, report)


if __name__ == "__main__":
    main()
