"""The parent side of isolation: worker processes, their pool, and the sandbox set-up they receive.

A worker serves one skill file under one permission set, and is reused for the next call (the cold
start, ~interpreter + imports, is paid once). A call that times out, crashes the worker (``os._exit``,
a signal, the memory or CPU limit) or leaves it unusable gets a structured ``ToolResult`` error and
the worker is replaced on the next call; copa's own process is never at risk.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import copa
from copa.skills.permissions import Permissions
from copa.tools import ToolResult

_COPA_PKG = str(Path(copa.__file__).resolve().parent)
_KEEP_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "USER", "LOGNAME", "COPA_HOME",
             "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "SYSTEMROOT")
_LIB_DIRS = ("/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/local/lib", "/usr/share/zoneinfo",
             "/etc/ld.so.cache", "/etc/localtime", "/etc/timezone", "/etc/mime.types", "/dev/urandom",
             "/dev/random", "/dev/zero")
_NET_FILES = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/gai.conf", "/etc/host.conf",
              "/etc/services", "/etc/protocols", "/etc/ssl", "/etc/ca-certificates", "/usr/share/ca-certificates",
              "/etc/pki")
_MAX_LINE = 8 * 1024 * 1024
_EXEC_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/opt")


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 512
    cpu_seconds: int = 30
    cpu_budget: int = 20  # a worker's lifetime CPU = cpu_seconds x this; then it is replaced
    output_mb: int = 256  # largest file a skill without fs.write may write (its output, its temp dir)
    timeout: float = 30.0
    idle_seconds: float = 300.0
    max_processes: int = 64  # processes and threads per worker (a skill may ask for more: processes=N)
    allow_unenforced: tuple[str, ...] = ()  # mechanisms the user accepts missing (skills.allow_unenforced)


# What a worker must get from the kernel, by name (the names of skills.allow_unenforced); a worker
# that did not get one refuses to load its skill (see worker.missing_mechanisms).
MECHANISMS = {
    "filesystem": "Landlock (the kernel confines files)",
    "network": "an empty network namespace or a seccomp socket filter (no network unless declared)",
    "net_hosts": "a network namespace whose only way out is copa's proxy (net:HOST)",
    "processes": "a pids cgroup, a PID namespace's pid_max, or RLIMIT_NPROC in a user namespace",
}


def required_mechanisms(perms: Permissions, limits: Limits) -> list[str]:
    need = ["filesystem", "processes"]
    if perms.net == "none":
        need.append("network")
    elif perms.net == "hosts":
        need.append("net_hosts")
    return [m for m in need if m not in limits.allow_unenforced]


def python_paths() -> list[str]:
    """What the interpreter needs to read: its prefixes, site-packages and copa's own package."""
    import site

    out = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, _COPA_PKG}
    user_site = site.getusersitepackages()  # packages a user installed with pip --user for a skill
    if isinstance(user_site, str) and os.path.isdir(user_site):
        out.add(user_site)
    for p in sys.path:
        if p and any(p.startswith(pre) for pre in (sys.prefix, sys.base_prefix)) and os.path.isdir(p):
            out.add(p)
    return sorted(out)


def sandbox_config(perms: Permissions, source: Path, limits: Limits, hidden: tuple[str, ...] = (),
                   protected: tuple[str, ...] = (), max_processes: int | None = None) -> dict[str, Any]:
    """The set-up line a worker confines itself with (absolute paths; "{tmp}" = its private temp dir).

    ``hidden``: copa's own folders (config, data, cache, state), unreadable whatever the grants;
    ``protected``: skill folders, never writable by a skill that does not run programs.
    """
    skill_dir = str(source if source.is_dir() else source.parent)
    read = python_paths() + [p for p in _LIB_DIRS] + [skill_dir] + list(perms.read)
    write = list(perms.write) + ["{tmp}", "/dev/null"]
    if perms.net != "none":
        read += _NET_FILES
    return {
        "hidden": list(hidden), "protected": [] if perms.exec else list(protected), "reveal": list(protected),
        "max_processes": max_processes or limits.max_processes,
        "require": required_mechanisms(perms, limits),
        # COPA_SKILLS_KERNEL_SANDBOX=0 skips Landlock and namespaces, leaving the fallback layers that
        # machines without them get (used by the tests of those layers; never needed otherwise)
        "kernel": os.environ.get("COPA_SKILLS_KERNEL_SANDBOX", "1") != "0",
        "read": read, "write": write, "exec": list(_EXEC_DIRS) if perms.exec else [],
        "net": perms.net, "hosts": list(perms.hosts), "allow_exec": perms.exec,
        "memory_mb": limits.memory_mb, "cpu_seconds": limits.cpu_seconds, "cpu_budget": limits.cpu_budget,
        "fsize_mb": 0 if perms.write else limits.output_mb,
    }


def carve_stamp(cfg: dict[str, Any]) -> tuple:
    """The modification times of the folders between a grant and a hidden or protected folder below
    it: those folders are granted entry by entry (see sandbox._carve), so a new entry in one needs a
    new worker. Part of the pool key."""
    out = []
    excluded = [os.path.realpath(p) for p in cfg.get("hidden", []) + cfg.get("protected", [])]
    for grant in cfg.get("read", []) + cfg.get("write", []) + cfg.get("exec", []):
        g = os.path.realpath(grant)
        for e in excluded:
            if e != g and e.startswith(g.rstrip("/") + "/"):
                d = os.path.dirname(e)
                while True:
                    with contextlib.suppress(OSError):
                        out.append(os.stat(d).st_mtime_ns)
                    if d == g or len(d) <= len(g):
                        break
                    d = os.path.dirname(d)
    return tuple(out)


def worker_env(tmpdir: str, secrets: dict[str, str], cwd: str | None = None) -> dict[str, str]:
    """A scrubbed environment: locale, home, copa's location, and only the declared secrets.

    ``COPA_CWD`` is the folder copa runs in (the worker itself runs in its private temp dir), so a
    skill can resolve the user's relative paths.
    """
    env = {k: os.environ[k] for k in _KEEP_ENV if k in os.environ}  # no *_PROXY: copa's proxy or none
    env["COPA_CWD"] = cwd or os.getcwd()
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    # MALLOC_ARENA_MAX: glibc reserves 64 MB of address space per thread arena, which RLIMIT_AS counts
    env.update(TMPDIR=tmpdir, PYTHONPATH=str(Path(_COPA_PKG).parent), PYTHONDONTWRITEBYTECODE="1",
               PYTHONIOENCODING="utf-8", MALLOC_ARENA_MAX="2")
    env.update(secrets)
    return env


class WorkerDied(Exception):
    pass


@dataclass
class Worker:
    key: tuple
    config: dict[str, Any]
    env: dict[str, str]
    tmpdir: str
    proc: subprocess.Popen | None = None
    sandbox: dict[str, Any] = field(default_factory=dict)
    last_used: float = 0.0
    busy: bool = False
    calls: int = 0
    _buf: bytes = b""
    _stderr: Any = None
    _next_id: int = 0
    _pending: dict | None = None  # inspect mode: the first message, read while starting
    proxy: Any = None  # netproxy.HostProxy of a net:HOST worker
    host: Any = None  # callable(op, args) -> result: copa's side of copa.skills.host (set per call)

    # -- lifecycle
    def start(self, timeout: float = 20.0) -> None:
        try:
            self._start(timeout)
        except WorkerDied:
            # A SIGTERM/SIGINT sent to copa's process group (a service manager stopping the daemon, a
            # Ctrl-C) can land in the instant between fork and setsid, while the new worker is still in
            # that group: it dies before it ever ran. That stop was not meant for it; start it again once.
            if self.proc is None or self.proc.returncode not in (-signal.SIGTERM, -signal.SIGINT):
                raise
            os.makedirs(self.tmpdir, mode=0o700, exist_ok=True)  # close() removed it
            self._start(timeout)

    def _start(self, timeout: float) -> None:
        # The worker's output file: it appends through its own descriptor, copa reads through another,
        # so copa's reads never move the worker's write position.
        fd, path = tempfile.mkstemp(prefix="copa-skill-out-")
        child_fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.unlink(path)
        self._stderr = os.fdopen(fd, "rb")
        ours = theirs = None
        if self.config.get("max_processes") and self.config.get("kernel", True) and "cgroup" not in self.config:
            from copa.skills import cgroups

            self.config["cgroup"] = cgroups.create(int(self.config["max_processes"]))
        config = self.config
        if config.get("net") == "hosts":  # the worker hands its proxy listener over this pair
            import socket

            ours, theirs = socket.socketpair()
            config = dict(config, proxy_fd=theirs.fileno())
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-B", "-m", "copa.skills.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=child_fd, env=self.env, cwd=self.tmpdir, close_fds=True, start_new_session=True,
                pass_fds=(theirs.fileno(),) if theirs is not None else ())
        finally:
            os.close(child_fd)
            if theirs is not None:
                theirs.close()
        if config.get("cgroup"):
            # copa moves the new process into its cgroup while the interpreter starts (a cgroup v1
            # migration waits for an RCU grace period, 5-15 ms); it forks nothing before its set-up
            config = dict(config, cgroup_joined=_join_cgroup(config["cgroup"], self.proc.pid))
        try:
            self._write(config)
            hello = self._read(time.monotonic() + timeout)
            if ours is not None and hello.get("ready"):
                self._serve_proxy(ours, hello.get("sandbox", {}))
        except (WorkerDied, ValueError):
            _, why = self.death_reason()
            self.close()
            raise WorkerDied(why) from None
        finally:
            if ours is not None:
                ours.close()
        if self.config.get("mode") == "inspect":
            self._pending = hello
            return
        if not hello.get("ready"):
            self.close()
            raise WorkerDied(hello.get("error") or "the worker did not start")
        self.sandbox = hello.get("sandbox", {})

    def _serve_proxy(self, chan, report: dict) -> None:
        """Take the worker's listening socket (inside its network namespace) and serve it."""
        import socket

        from copa.skills.netproxy import HostProxy

        if not report.get("proxy"):
            return  # no namespace here: the worker says so, and refused if net_hosts was required
        chan.settimeout(5)
        try:
            _, fds, _, _ = socket.recv_fds(chan, 16, 1)
        except OSError as e:
            raise WorkerDied(f"the worker's network did not come up: {e}") from None
        if not fds:
            raise WorkerDied("the worker did not hand over its proxy socket")
        listener = socket.socket(fileno=fds[0])
        name = Path(self.config.get("file", "")).name
        self.proxy = HostProxy(listener, tuple(self.config.get("hosts", [])), name=name)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        if self.proc is not None:
            try:  # the worker and anything it started (even after the worker itself has exited)
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                if self.proc.poll() is None:
                    self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            for f in (self.proc.stdin, self.proc.stdout):
                with contextlib.suppress(OSError):
                    f.close()
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        shutil.rmtree(self.tmpdir, ignore_errors=True)  # never follows the skill's symbolic links
        if self.config.get("cgroup"):
            _remove_cgroup(self.config["cgroup"])

    def stderr_tail(self, n: int = 600) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - n))
            return self._stderr.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    # -- wire
    def _write(self, obj: dict) -> None:
        assert self.proc and self.proc.stdin
        try:
            self.proc.stdin.write(json.dumps(obj).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise WorkerDied(str(e)) from None

    def _read(self, deadline: float) -> dict:
        assert self.proc and self.proc.stdout
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise TimeoutError
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise WorkerDied("exited")
                self._buf += chunk
                if len(self._buf) > _MAX_LINE:  # the worker caps replies; more is a broken or hostile worker
                    self.close()
                    raise WorkerDied("sent an over-long reply")
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def read_message(self, timeout: float) -> dict:
        pending = self._pending
        if pending is not None:
            self._pending = None
            return pending
        return self._read(time.monotonic() + timeout)

    def death_reason(self) -> tuple[str, str]:
        """(error_type, message) for a worker that has exited."""
        assert self.proc
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "crash", "the worker stopped answering"
        if code < 0:
            sig = signal.Signals(-code)
            if sig == signal.SIGXFSZ:
                return "output", f"the skill wrote more than {self.config.get('fsize_mb')} MB (output or a file)"
            if sig == signal.SIGXCPU:
                return "cpu", f"the skill used more than {self.config.get('cpu_seconds')} s of CPU (stopped)"
            if sig in (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS):
                tail = self.stderr_tail()
                mem = "MemoryError" in tail or "memory" in tail.lower()
                return ("memory" if mem else "crash"), f"the skill's worker died ({sig.name})" + (
                    f": {tail.splitlines()[-1]}" if tail else "")
            return "crash", f"the skill's worker was killed ({sig.name})"
        tail = self.stderr_tail()
        last = tail.splitlines()[-1] if tail else ""
        if "MemoryError" in last:
            return "memory", f"the skill ran out of memory (limit {self.config.get('memory_mb')} MB)"
        return "crash", f"the skill's worker exited with code {code}" + (f": {last}" if last else "")

    def output_since(self, pos: int, limit: int = 20000) -> str:
        """What the skill printed (stdout and stderr) since ``pos`` in its output file."""
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(pos)
            data = self._stderr.read(limit + 1)
        except (OSError, ValueError):
            return ""
        text = data[:limit].decode("utf-8", "replace")
        return text + ("\n... (more output cut)" if len(data) > limit else "")

    def output_pos(self) -> int:
        try:
            return self._stderr.seek(0, os.SEEK_END) if self._stderr is not None else 0
        except (OSError, ValueError):
            return 0

    def call(self, function: str, arguments: dict[str, Any], timeout: float) -> ToolResult:
        t0 = time.perf_counter()
        self._next_id += 1
        rid = self._next_id
        self.calls += 1
        try:
            deadline = time.monotonic() + timeout
            self._write({"id": rid, "function": function, "arguments": arguments})
            while True:
                reply = self._read(deadline)
                if "host" in reply:  # the skill asks copa for something (copa.skills.host)
                    self._write(self._answer_host(reply))
                    continue
                if reply.get("id") == rid:
                    break
        except TimeoutError:
            self.close()
            return ToolResult(False, error=f"the skill did not finish within {timeout:g} s (stopped)",
                              error_type="timeout", duration_ms=_ms(t0))
        except (WorkerDied, ValueError) as e:
            if "over-long" in str(e):
                return ToolResult(False, error=f"the skill's worker {e} (stopped)", error_type="result",
                                  duration_ms=_ms(t0))
            kind, msg = self.death_reason()
            self.close()
            return ToolResult(False, error=msg, error_type=kind, duration_ms=_ms(t0))
        if reply.get("recycle"):
            self.close()
        if reply.get("ok"):
            return ToolResult(True, content=reply.get("content"), duration_ms=_ms(t0))
        err = reply.get("error") or "failed"
        if reply.get("where"):
            err += f" (at {reply['where']})"
        return ToolResult(False, error=err, error_type=reply.get("error_type") or "exception", duration_ms=_ms(t0))


    def _answer_host(self, request: dict) -> dict:
        op = str(request.get("host"))
        if self.host is None:
            return {"ok": False, "error_type": "permission", "error": f"copa offers no '{op}' here"}
        try:
            return {"ok": True, "result": self.host(op, request.get("args") or {})}
        except PermissionError as e:
            return {"ok": False, "error_type": "permission", "error": str(e)}
        except Exception as e:  # noqa: BLE001 - the skill gets the error; copa carries on
            return {"ok": False, "error_type": "exception", "error": f"{type(e).__name__}: {e}"}


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)


_TMP_ROOT: str | None = None
_STALE_CGROUPS: list[str] = []


def tmp_root() -> str:
    """A private (0700) folder holding every worker's temp dir: hidden from all workers but their own."""
    global _TMP_ROOT
    if _TMP_ROOT is None or not os.path.isdir(_TMP_ROOT):
        _TMP_ROOT = tempfile.mkdtemp(prefix=f"copa-skills-{os.getpid()}-")
    return _TMP_ROOT


def new_tmpdir(parent: str | None = None) -> str:
    if parent:
        os.makedirs(parent, mode=0o700, exist_ok=True)
    return tempfile.mkdtemp(prefix="copa-skill-", dir=parent or tmp_root())


def _join_cgroup(path: str, pid: int) -> bool:
    try:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(pid))
        return True
    except OSError:
        return False


def _remove_cgroup(path: str) -> None:
    from copa.skills import cgroups

    for p in [path, *_STALE_CGROUPS]:  # a cgroup whose last process is still exiting: try again later
        cgroups.remove(p)
        if os.path.isdir(p):
            if p not in _STALE_CGROUPS:
                _STALE_CGROUPS.append(p)
        elif p in _STALE_CGROUPS:
            _STALE_CGROUPS.remove(p)


@atexit.register
def _cleanup_files() -> None:
    from copa.skills import cgroups

    for p in list(_STALE_CGROUPS):
        cgroups.remove(p)
    cgroups.cleanup()
    if _TMP_ROOT:
        shutil.rmtree(_TMP_ROOT, ignore_errors=True)


# Pools still open at exit get their workers stopped. A WeakSet (not one atexit hook per pool, which
# would keep every pool alive) so a long-lived process creating many registries leaks nothing.
_OPEN_POOLS: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


@atexit.register
def _close_open_pools() -> None:
    for pool in list(_OPEN_POOLS):
        pool.close()


class WorkerPool:
    """Reusable workers keyed by (file, version, permissions, secrets); idle ones are stopped."""

    def __init__(self, limits: Limits, max_workers: int = 16, tmp_parent: str | None = None):
        # tmp_parent: where worker temp dirs go; copa's cache folder (hidden from every skill anyway)
        # keeps /tmp itself whole for skills granted it; without one, a private folder in /tmp
        self.tmp_parent = tmp_parent
        self.limits = limits
        self.max_workers = max_workers
        self._workers: list[Worker] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        _OPEN_POOLS.add(self)
        from copa.skills.isolate import make_undumpable

        make_undumpable()  # before any skill runs: no process of ours reads copa's environment or memory

    def _reap_loop(self) -> None:
        """Stop idle workers even when no call comes (a TUI or daemon may sit idle for hours)."""
        interval = max(1.0, min(30.0, self.limits.idle_seconds / 4))
        while not self._stop.wait(interval):
            with self._lock:
                self._reap()

    def acquire(self, key: tuple, config: dict[str, Any], secrets: dict[str, str]) -> Worker:
        with self._lock:
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap_loop, name="copa-skill-reaper", daemon=True)
                self._reaper.start()
            self._reap()
            for w in self._workers:
                if w.key == key and not w.busy and w.alive:
                    w.busy = True
                    return w
            tmp = new_tmpdir(self.tmp_parent)
            cfg = dict(config)
            cfg["write"] = [p for p in cfg["write"] if p != "{tmp}"]
            cfg.update(own=[tmp], hidden=list(cfg.get("hidden", [])) + [os.path.dirname(tmp)])
            w = Worker(key=key, config=cfg, env=worker_env(tmp, secrets, cfg.get("cwd")), tmpdir=tmp, busy=True)
            self._workers.append(w)
        try:
            w.start()
        except BaseException:
            with self._lock:
                self._workers.remove(w)
            w.close()
            raise
        return w

    def release(self, worker: Worker) -> None:
        with self._lock:
            worker.busy = False
            worker.last_used = time.monotonic()
            if not worker.alive:
                self._workers.remove(worker)
                worker.close()

    def _reap(self) -> None:
        now = time.monotonic()
        limit = self.limits.idle_seconds
        idle = [w for w in self._workers if not w.busy and (not w.alive or now - w.last_used > limit)]
        spare = sorted((w for w in self._workers if not w.busy and w not in idle), key=lambda w: w.last_used)
        while len(self._workers) - len(idle) >= self.max_workers and spare:
            idle.append(spare.pop(0))
        for w in idle:
            self._workers.remove(w)
            w.close()

    def discard(self, predicate) -> None:
        """Stop idle workers matching ``predicate(key)`` (e.g. after a skill file changed)."""
        with self._lock:
            for w in [w for w in self._workers if not w.busy and predicate(w.key)]:
                self._workers.remove(w)
                w.close()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"workers": len(self._workers), "busy": sum(w.busy for w in self._workers)}

    def close(self) -> None:
        self._stop.set()
        _OPEN_POOLS.discard(self)
        with self._lock:
            workers, self._workers = self._workers, []
        for w in workers:
            w.close()
