"""Misbehaving skills in real worker processes: each failure is a structured error, and the next call works."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from copa.skills.sandbox import landlock_abi

MISBEHAVING = '''
import os, time
from copa.skills import skill

TOKEN = os.urandom(8).hex()  # one per worker process (PIDs repeat: each worker has its own PID namespace)

@skill
def ok(x: int = 1) -> dict:
    """Works."""
    return {"x": x, "pid": os.getpid(), "token": TOKEN}

@skill
def raises() -> str:
    """Raises."""
    raise ValueError("bad input here")

@skill(timeout=1)
def hangs() -> str:
    """Hangs."""
    while True:
        time.sleep(0.05)

@skill
def hog() -> int:
    """Allocates far more than the limit."""
    blocks = []
    for _ in range(10_000):
        blocks.append(bytearray(16 * 1024 * 1024))
    return len(blocks)

@skill
def exits() -> str:
    """Exits the process."""
    os._exit(7)

@skill
def peek(path: str) -> str:
    """Reads a file."""
    with open(path) as f:
        return f.read()

@skill
def scribble(path: str) -> str:
    """Writes a file."""
    with open(path, "w") as f:
        f.write("x")
    return "written"

@skill
def env() -> dict:
    """The environment it sees."""
    return dict(os.environ)

@skill
def spins() -> int:
    """Burns CPU."""
    n = 0
    while True:
        n += 1
'''


@pytest.fixture
def bad(write_skill, registry):
    write_skill("bad.py", MISBEHAVING)
    return registry


def _recovers(reg) -> int:
    r = reg.call("ok", {"x": 5})
    assert r.ok, r.error
    assert r.content["x"] == 5
    return r.content["token"]


def _worker_pid(reg) -> int:
    """The worker's process id as copa sees it."""
    (w,) = reg.pool._workers
    return w.proc.pid


def test_exception_is_structured_and_worker_survives(bad):
    pid = _recovers(bad)
    r = bad.call("raises")
    assert not r.ok and r.error_type == "exception"
    assert "ValueError: bad input here" in r.error and "bad.py:" in r.error
    assert _recovers(bad) == pid  # the same worker kept serving
    assert _worker_pid(bad) != os.getpid()


def test_timeout_kills_the_worker_and_the_next_call_works(bad):
    token = _recovers(bad)
    pid = _worker_pid(bad)
    r = bad.call("hangs")
    assert not r.ok and r.error_type == "timeout" and "1 s" in r.error
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the hung worker is gone
    assert _recovers(bad) != token


def test_memory_limit(write_skill, skill_dir):
    from copa.skills import Skills
    from copa.skills.runner import Limits

    write_skill("bad.py", MISBEHAVING)
    reg = Skills(dirs=[("user", skill_dir)], min_interval=0)
    reg.limits = Limits(memory_mb=256, cpu_seconds=30, timeout=30)
    reg.pool.limits = reg.limits
    try:
        r = reg.call("hog")
        assert not r.ok and r.error_type == "memory", r
        assert "256 MB" in r.error
        _recovers(reg)
    finally:
        reg.close()


def test_cpu_limit(write_skill, skill_dir):
    from copa.skills import Skills
    from copa.skills.runner import Limits

    write_skill("bad.py", MISBEHAVING)
    reg = Skills(dirs=[("user", skill_dir)], min_interval=0)
    reg.limits = reg.pool.limits = Limits(memory_mb=512, cpu_seconds=1, timeout=20)
    try:
        r = reg.call("spins")
        assert not r.ok and r.error_type == "cpu", r
        _recovers(reg)
    finally:
        reg.close()


def test_os_exit_is_a_crash(bad):
    r = bad.call("exits")
    assert not r.ok and r.error_type == "crash" and "code 7" in r.error
    _recovers(bad)


def test_reading_outside_allowed_paths(bad, tmp_path):
    secret = tmp_path / "private.txt"
    secret.write_text("top secret")
    r = bad.call("peek", {"path": str(secret)})
    assert not r.ok and r.error_type == "permission", r
    assert "top secret" not in (r.error or "")
    r = bad.call("scribble", {"path": str(tmp_path / "new.txt")})
    assert not r.ok and r.error_type == "permission"
    assert not (tmp_path / "new.txt").exists()
    _recovers(bad)


def test_declared_paths_are_allowed(write_skill, registry, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("hello")
    write_skill("reader.py", f'''
        from copa.skills import skill

        @skill(permissions=["fs.read:{docs}", "fs.write:{tmp_path / 'out'}"])
        def read_and_copy(name: str) -> str:
            """Copies a document."""
            text = open("{docs}/" + name).read()
            open("{tmp_path / 'out'}/" + name, "w").write(text.upper())
            return text
    ''')
    (tmp_path / "out").mkdir()
    r = registry.call("read_and_copy", {"name": "a.txt"})
    assert r.ok, r.error
    assert r.content == "hello" and (tmp_path / "out" / "a.txt").read_text() == "HELLO"
    r2 = registry.call("read_and_copy", {"name": "../../etc/passwd"})
    assert not r2.ok


def test_environment_is_scrubbed_and_secrets_injected(write_skill, registry, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak-000000")
    monkeypatch.setenv("WEATHER_KEY", "w-123456")
    write_skill("envs.py", '''
        import os
        from copa.skills import skill

        @skill(secrets=["WEATHER_KEY"])
        def with_secret() -> dict:
            """Sees its secret."""
            return dict(os.environ)

        @skill
        def without() -> dict:
            """Sees none."""
            return dict(os.environ)
    ''')
    a = registry.call("with_secret").content
    b = registry.call("without").content
    assert a["WEATHER_KEY"] == "w-123456" and "OPENAI_API_KEY" not in a
    assert "WEATHER_KEY" not in b and "OPENAI_API_KEY" not in b
    monkeypatch.delenv("WEATHER_KEY")
    registry.pool.close()
    r = registry.call("with_secret")
    assert not r.ok and r.error_type == "secret" and "copa secrets set WEATHER_KEY" in r.error


@pytest.fixture
def local_server():
    """A real TCP server on 127.0.0.1 that answers 'pong' to each connection."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"pong")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join(2)
    srv.close()


NET_SKILL = '''
import ctypes, socket, struct
from copa.skills import skill
from copa.skills.net import connect

@skill{decl}
def ping(port: int) -> str:
    """Connects to a local port (through copa's proxy when it declared the host)."""
    with connect("127.0.0.1", port, timeout=2) as s:
        return s.recv(4).decode()

@skill{decl}
def raw_ping(port: int) -> int:
    """Connects with libc directly, below Python's audit hooks; returns errno (0 = connected)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.socket(2, 1, 0)
    addr = struct.pack("<HH4s8x", 2, socket.htons(port), socket.inet_aton("127.0.0.1"))
    rc = libc.connect(fd, addr, len(addr))
    err = ctypes.get_errno() if rc else 0
    libc.close(fd)
    return err
'''


def test_network_refused_unless_declared(write_skill, registry, local_server):
    write_skill("nonet.py", NET_SKILL.format(decl=""))
    write_skill("withnet.py", NET_SKILL.format(decl='(permissions=["net:127.0.0.1"])').replace(
        "def ping", "def ping_ok").replace("def raw_ping", "def raw_ping_ok"))
    r = registry.call("ping", {"port": local_server})
    assert not r.ok and r.error_type == "permission", r
    raw = registry.call("raw_ping", {"port": local_server})
    assert raw.ok and raw.content != 0, "a raw connect below the audit hook must fail too"
    ok = registry.call("ping_ok", {"port": local_server})
    assert ok.ok and ok.content == "pong", ok


@pytest.mark.skipif(landlock_abi() < 1, reason="the kernel offers no Landlock")
def test_sandbox_report_names_enforcement(bad):
    _recovers(bad)
    (w,) = bad.pool._workers
    assert w.sandbox["filesystem"].startswith("landlock ABI")
    assert w.sandbox["network"] in ("netns", "userns+netns", "unavailable")


def test_host_allow_list(write_skill, registry, local_server):
    write_skill("hosts.py", '''
        import socket
        from copa.skills import skill

        @skill(permissions=["net:localhost"])
        def by_name(port: int) -> str:
            """Connects by host name (through copa's proxy, the only way out)."""
            from copa.skills.net import connect

            with connect("localhost", port, timeout=2) as s:
                return s.recv(4).decode()

        @skill(permissions=["net:api.example.org"])
        def elsewhere(port: int) -> str:
            """Connects to a host it did not declare."""
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                return s.recv(4).decode()
    ''')
    ok = registry.call("by_name", {"port": local_server})
    assert ok.ok and ok.content == "pong", ok
    denied = registry.call("elsewhere", {"port": local_server})
    assert not denied.ok and denied.error_type == "permission" and "127.0.0.1" in denied.error


@pytest.mark.skipif(landlock_abi() < 6, reason="signal scoping needs Landlock ABI 6")
def test_a_skill_cannot_signal_copa(write_skill, registry):
    import signal

    got = []
    old = signal.signal(signal.SIGUSR1, lambda *a: got.append(a))
    try:
        write_skill("sig.py", '''
            import os, signal
            from copa.skills import skill

            @skill
            def poke() -> str:
                """Signals its parent."""
                os.kill(os.getppid(), signal.SIGUSR1)
                return "sent"
        ''')
        r = registry.call("poke")
        time.sleep(0.2)
        assert not r.ok and r.error_type == "permission", r
        assert got == []
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_idle_workers_are_stopped(write_skill, skill_dir, copa_home, monkeypatch):
    from copa.config import Config
    from copa.paths import Paths
    from copa.skills import Skills

    write_skill("bad.py", MISBEHAVING)
    monkeypatch.setenv("COPA_SKILLS_IDLE_SECONDS", "0.5")  # the config key a user sets (default 300)
    reg = Skills(config=Config.load(Paths.from_env()), dirs=[("user", skill_dir)], min_interval=0)
    assert reg.limits.idle_seconds == 0.5
    try:
        _recovers(reg)
        pid = _worker_pid(reg)
        deadline = time.monotonic() + 10
        while reg.pool.stats()["workers"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert reg.pool.stats()["workers"] == 0
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        reg.close()


def test_fallback_layers_without_kernel_sandbox(write_skill, skill_dir, tmp_path, monkeypatch, local_server):
    """What a machine without Landlock or namespaces gets: the audit hook still refuses."""
    from copa.skills import Skills

    monkeypatch.setenv("COPA_SKILLS_KERNEL_SANDBOX", "0")
    write_skill("bad.py", MISBEHAVING)
    write_skill("nonet.py", NET_SKILL.format(decl=""))
    secret = tmp_path / "private.txt"
    secret.write_text("top secret")
    reg = Skills(dirs=[("user", skill_dir)], min_interval=0)
    from copa.skills.runner import Limits

    try:
        # fails closed: the kernel layers are missing and nobody accepted that (not even to import it)
        (info,) = [i for i in reg.list() if i.source.endswith("bad.py")]
        assert info.status == "error" and "skills.allow_unenforced filesystem" in info.error, info
        reg.limits = Limits(allow_unenforced=("filesystem", "processes"))  # the user's explicit opt-out
        _recovers(reg)  # imports and calls work under the audit hook alone
        (w,) = reg.pool._workers
        assert w.sandbox["filesystem"] == "disabled" and w.sandbox["audit_hook"] == "net+exec+open"
        r = reg.call("peek", {"path": str(secret)})
        assert not r.ok and r.error_type == "permission" and "fs.read" in r.error
        w2 = reg.call("scribble", {"path": str(tmp_path / "x.txt")})
        assert not w2.ok and not (tmp_path / "x.txt").exists()
        n = reg.call("ping", {"port": local_server})
        assert not n.ok and n.error_type == "permission"
    finally:
        reg.close()


def test_flooding_the_protocol_is_stopped(write_skill, registry):
    write_skill("flood.py", '''
        import os
        from copa.skills import skill

        @skill
        def flood() -> str:
            """Writes endless bytes where the replies go."""
            chunk = b"x" * 65536
            while True:
                os.write(3, chunk)

        @skill
        def fine() -> str:
            """Works."""
            return "fine"
    ''')
    r = registry.call("flood")
    assert not r.ok and r.error_type == "result" and "over-long" in r.error
    assert registry.call("fine").content == "fine"


def test_background_children_are_stopped_with_the_worker(write_skill, registry, tmp_path):
    marker = tmp_path / "alive"
    write_skill("spawner.py", f'''
        import subprocess
        from copa.skills import skill

        @skill(permissions=["exec", "fs.write:{tmp_path}"], timeout=2)
        def spawn() -> int:
            """Leaves a child behind, then hangs."""
            p = subprocess.Popen(["/bin/sh", "-c", "while true; do touch {marker}; sleep 0.1; done"])
            import time
            time.sleep(30)
            return p.pid
    ''')
    r = registry.call("spawn")
    assert r.error_type == "timeout"
    time.sleep(0.5)
    marker.unlink(missing_ok=True)
    time.sleep(0.5)
    assert not marker.exists(), "the skill's child kept running after its worker was stopped"


def test_unix_sockets_refused_below_python(write_skill, registry, tmp_path):
    """A named UNIX socket (think /var/run/docker.sock) is outside Landlock's and netns' reach."""
    path = tmp_path / "daemon.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)
    try:
        write_skill("unixpeek.py", f'''
            import ctypes, struct
            from copa.skills import skill

            @skill
            def unix_connect() -> int:
                """Connects with libc to a UNIX socket; returns errno (0 = connected)."""
                libc = ctypes.CDLL(None, use_errno=True)
                fd = libc.socket(1, 1, 0)
                if fd < 0:
                    return ctypes.get_errno()
                addr = struct.pack("<H108s", 1, {str(path).encode()!r})
                rc = libc.connect(fd, addr, len(addr))
                return ctypes.get_errno() if rc else 0
        ''')
        r = registry.call("unix_connect")
        assert r.ok and r.content != 0, r
        (w,) = registry.pool._workers
        import platform

        if platform.machine() in ("x86_64", "aarch64"):
            assert w.sandbox["sockets"] == "seccomp"
    finally:
        srv.close()


def test_worker_with_spent_cpu_budget_is_replaced_transparently(write_skill, skill_dir):
    from copa.skills import Skills
    from copa.skills.runner import Limits

    write_skill("burn.py", '''
        import os, time
        from copa.skills import skill

        TOKEN = os.urandom(8).hex()

        @skill
        def burn() -> str:
            """Uses half a second of CPU."""
            end = time.process_time() + 0.5
            while time.process_time() < end:
                pass
            return TOKEN
    ''')
    reg = Skills(dirs=[("user", skill_dir)], min_interval=0)
    reg.limits = reg.pool.limits = Limits(cpu_seconds=1, cpu_budget=3, timeout=30)
    try:
        pids = []
        for _ in range(3):
            r = reg.call("burn")
            assert r.ok, r
            pids.append(r.content)
        assert pids[0] == pids[1] != pids[2]  # the third call went to a fresh worker, and succeeded
    finally:
        reg.close()


def test_output_flood_is_bounded(write_skill, skill_dir):
    from copa.skills import Skills
    from copa.skills.runner import Limits

    write_skill("chatty.py", '''
        from copa.skills import skill

        @skill
        def chatty() -> str:
            """Prints far too much."""
            line = "x" * 1023
            for _ in range(4096):  # 4 MB
                print(line)
            return "done"

        @skill
        def quiet() -> str:
            """Prints nothing."""
            return "ok"
    ''')
    reg = Skills(dirs=[("user", skill_dir)], min_interval=0)
    reg.limits = reg.pool.limits = Limits(output_mb=1)
    try:
        r = reg.call("chatty")
        assert not r.ok and r.error_type == "output" and "1 MB" in r.error, r
        assert reg.call("quiet").content == "ok"
    finally:
        reg.close()
