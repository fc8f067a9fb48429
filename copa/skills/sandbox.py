"""Confinement a skill worker applies to itself before it imports the skill (Linux first).

Layers, strongest first, each applied where the platform allows (the worker reports which held;
``copa doctor`` shows it):
- filesystem: Landlock (kernel >= 5.13) allow-list: read-only for Python, copa and the skill's own
  folder, plus declared ``fs.read``/``fs.write`` paths and a private temp dir. Without Landlock, an
  audit hook refuses Python-level ``open`` outside those paths (bypassable by native code).
- network, undeclared: a new, empty network namespace (``unshare(CLONE_NEWNET)``; root, or an
  unprivileged user namespace), a seccomp filter that fails every ``socket()`` call (UNIX sockets
  too), Landlock TCP bind/connect denial (ABI >= 4) and an audit hook on Python socket calls.
  ``net:HOST`` skills keep the network and get the audit-hook host allow-list.
- programs: without ``exec`` no file is executable under Landlock; the audit hook also refuses
  ``subprocess``/``os.exec*``/``os.system``.
- resources: RLIMIT_AS (memory), RLIMIT_CPU (per call), RLIMIT_FSIZE (skills without fs.write), no
  core files; the parent kills on timeout.
- signals: Landlock scoping (ABI >= 6) stops a skill from signalling copa or other processes.
Pure stdlib + ctypes.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import resource
import signal
import socket
import sys
from collections.abc import Iterable

# --- Landlock constants (include/uapi/linux/landlock.h) ---------------------------------------
_SYS_CREATE, _SYS_ADD_RULE, _SYS_RESTRICT = 444, 445, 446  # same number on every architecture
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REMOVE_DIR, FS_REMOVE_FILE, FS_MAKE_CHAR, FS_MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
FS_MAKE_REG, FS_MAKE_SOCK, FS_MAKE_FIFO, FS_MAKE_BLOCK = 1 << 8, 1 << 9, 1 << 10, 1 << 11
FS_MAKE_SYM, FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 12, 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX, SCOPE_SIGNAL = 1 << 0, 1 << 1
_FILE_ONLY = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
_PR_SET_NO_NEW_PRIVS, _PR_SET_PDEATHSIG = 38, 1
_CLONE_NEWNET, _CLONE_NEWUSER = 0x40000000, 0x10000000

READ = FS_READ_FILE | FS_READ_DIR
WRITE = (FS_WRITE_FILE | FS_REMOVE_DIR | FS_REMOVE_FILE | FS_MAKE_DIR | FS_MAKE_REG | FS_MAKE_SOCK
         | FS_MAKE_FIFO | FS_MAKE_SYM | FS_REFER | FS_TRUNCATE)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPort(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


_libc = None


def _c():
    global _libc
    if _libc is None:
        # on Linux the interpreter's own symbols include libc's: find_library would run ldconfig
        # in a subprocess (tens of ms on every cold worker)
        name = None
        if not sys.platform.startswith("linux"):
            from ctypes.util import find_library

            name = find_library("c")
        _libc = ctypes.CDLL(name, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc


def landlock_abi() -> int:
    """The Landlock ABI version the kernel offers, 0 when none (not Linux, old kernel, disabled)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        v = _c().syscall(ctypes.c_long(_SYS_CREATE), None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except Exception:
        return 0
    return max(int(v), 0)


def _fs_mask(abi: int) -> int:
    mask = (1 << 13) - 1
    if abi >= 2:
        mask |= FS_REFER
    if abi >= 3:
        mask |= FS_TRUNCATE
    if abi >= 5:
        mask |= FS_IOCTL_DEV
    return mask


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _carve(path: str, access: int, excluded: tuple[str, ...], rules: dict[str, int]) -> None:
    """Grant ``access`` beneath ``path`` except beneath the ``excluded`` folders.

    Landlock only allows (a rule covers everything beneath its folder), so a folder that holds an
    excluded one gets listing only, and each of its entries gets the grant on its own (recursing
    towards the excluded folder). Symbolic links among those entries get nothing: a path through
    one is checked against where it leads. Entries created later are not covered (copa starts a new
    worker when such a folder changes; see runner.carve_stamp).
    """
    real = os.path.realpath(path)
    if any(_under(real, e) for e in excluded):
        return
    inside = tuple(e for e in excluded if _under(e, real))
    if not inside:
        rules[real] = rules.get(real, 0) | access
        return
    rules[real] = rules.get(real, 0) | (access & FS_READ_DIR)
    try:
        entries = list(os.scandir(real))
    except OSError:
        return
    for entry in entries:
        if entry.is_symlink():
            continue
        _carve(entry.path, access, inside, rules)


def reveal_within(hidden: Iterable[str], reveal: Iterable[str]) -> list[str]:
    """``hidden`` folders, with the ``reveal`` folders inside them left out (the user's skills folder
    lives in copa's config folder): such a hidden folder is replaced by its other entries, plus a
    marker so that it stays listing-only (an entry created there later is not granted either)."""
    reveal = [os.path.realpath(r) for r in reveal]
    out: list[str] = []
    for h in (os.path.realpath(p) for p in hidden):
        inner = [r for r in reveal if r != h and _under(r, h)]
        if any(_under(h, r) for r in reveal) and not inner:
            continue  # a skills folder that holds copa's folder (odd, but then nothing is hidden there)
        if not inner:
            out.append(h)
            continue
        out.append(os.path.join(h, "\x01copa-hidden"))
        try:
            names = os.listdir(h)
        except OSError:
            continue
        for name in names:
            child = os.path.join(h, name)
            if any(r == child for r in inner):
                continue
            if any(_under(r, child) for r in inner):
                out += reveal_within([child], inner)
            else:
                out.append(child)
    return out


def apply_landlock(read: Iterable[str], write: Iterable[str], execute: Iterable[str], deny_tcp: bool,
                   hidden: Iterable[str] = (), protected: Iterable[str] = (), own: Iterable[str] = (),
                   tcp_ports: Iterable[int] = ()) -> str:
    """Restrict this process (and its children) to the given paths; returns what was done.

    ``hidden`` folders are neither readable nor writable whatever the grants above them (copa's
    config, data, cache and state); ``protected`` ones are not writable (other skills' folders);
    ``own`` paths (the private temp dir) are granted read-write as they are. ``deny_tcp`` refuses
    TCP bind/connect except connects to ``tcp_ports`` (ABI >= 4).
    """
    abi = landlock_abi()
    if abi <= 0:
        return "unavailable"
    libc = _c()
    handled = _fs_mask(abi)
    attr = _RulesetAttr(handled_access_fs=handled)
    size = 8
    tcp_ports = tuple(tcp_ports)
    if abi >= 4:
        size = 16
        if deny_tcp:
            attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP
    if abi >= 6:
        size = 24
        attr.scoped = SCOPE_SIGNAL | (SCOPE_ABSTRACT_UNIX if deny_tcp else 0)
    hidden = tuple(os.path.realpath(p) for p in hidden)
    protected = tuple(os.path.realpath(p) for p in protected)
    rules: dict[str, int] = {}
    for paths, access in ((read, READ), (execute, READ | FS_EXECUTE), (write, READ | WRITE)):
        for p in paths:
            if not os.path.exists(p):
                continue  # a path that does not exist grants nothing
            _carve(p, access & ~WRITE & handled, hidden, rules)
            if access & WRITE:
                _carve(p, access & WRITE & handled, hidden + protected, rules)
    for p in own:
        rules[os.path.realpath(p)] = rules.get(os.path.realpath(p), 0) | ((READ | WRITE) & handled)
    fd = libc.syscall(ctypes.c_long(_SYS_CREATE), ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        return f"failed (create_ruleset errno {ctypes.get_errno()})"
    try:
        for path, access in rules.items():
            try:
                pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                if not os.path.isdir(path):
                    access &= _FILE_ONLY
                if not access:
                    continue
                rule = _PathBeneath(allowed_access=access, parent_fd=pfd)
                rc = libc.syscall(ctypes.c_long(_SYS_ADD_RULE), ctypes.c_int(fd), ctypes.c_int(_RULE_PATH_BENEATH),
                                  ctypes.byref(rule), ctypes.c_uint32(0))
                if rc < 0:
                    return f"failed (add_rule {path}: errno {ctypes.get_errno()})"
            finally:
                os.close(pfd)
        if deny_tcp and abi >= 4:
            for port in tcp_ports:
                net = _NetPort(allowed_access=NET_CONNECT_TCP, port=port)
                if libc.syscall(ctypes.c_long(_SYS_ADD_RULE), ctypes.c_int(fd), ctypes.c_int(_RULE_NET_PORT),
                                ctypes.byref(net), ctypes.c_uint32(0)) < 0:
                    return f"failed (add_rule port {port}: errno {ctypes.get_errno()})"
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return f"failed (no_new_privs errno {ctypes.get_errno()})"
        if libc.syscall(ctypes.c_long(_SYS_RESTRICT), ctypes.c_int(fd), ctypes.c_uint32(0)) < 0:
            return f"failed (restrict_self errno {ctypes.get_errno()})"
    finally:
        os.close(fd)
    tcp = ""
    if deny_tcp and abi >= 4:
        tcp = ", TCP denied" + (f" but port {','.join(map(str, tcp_ports))}" if tcp_ports else "")
    return f"landlock ABI {abi}" + tcp


def isolate_network() -> str:
    """Move into an empty network namespace: 'netns', 'userns+netns', or 'unavailable'."""
    if not sys.platform.startswith("linux"):
        return "unavailable"
    libc = _c()
    if libc.unshare(_CLONE_NEWNET) == 0:
        return "netns"
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0:
        return "userns+netns"
    return "unavailable"


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


# (audit arch, number of the socket() syscall) for the architectures this filter knows
_SECCOMP_ARCH = {"x86_64": (0xC000003E, 41), "aarch64": (0xC00000B7, 198)}


def deny_sockets(allow_inet: bool = False) -> str:
    """seccomp: make socket() fail with EPERM (any family, UNIX sockets included: a path such as
    /var/run/docker.sock is not covered by Landlock or a network namespace), or with ``allow_inet``
    every family but IPv4/IPv6 (a ``net:HOST`` worker, whose namespace leads only to copa's proxy).
    io_uring is refused too (it can create sockets without the socket() system call). Unprivileged."""
    machine = os.uname().machine
    if not sys.platform.startswith("linux") or machine not in _SECCOMP_ARCH:
        return "unavailable"
    arch, nr_socket = _SECCOMP_ARCH[machine]
    nr_io_uring_setup = 425  # the same on x86_64 and aarch64
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    af_inet, af_inet6 = 2, 10
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, arch), (ret, 0, 0, deny),  # another ABI (int 0x80): refuse all
            (ld, 0, 0, 0), (jge, 7, 0, 0x40000000),  # x32 system calls: refuse
            (jeq, 6, 0, nr_io_uring_setup),
            (jeq, 1, 0, nr_socket), (ret, 0, 0, allow),
            (ld, 0, 0, 16),  # socket(domain, ...): the low 32 bits of the first argument
            (jeq, 1 if allow_inet else 2, 0, af_inet), (jeq, 0, 1, af_inet6 if allow_inet else 0xFFFFFFFF),
            (ret, 0, 0, allow), (ret, 0, 0, deny)]
    filters = (_SockFilter * len(prog))(*[_SockFilter(*f) for f in prog])
    fprog = _SockFprog(len(prog), filters)
    libc = _c()
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return f"failed (no_new_privs errno {ctypes.get_errno()})"
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        return f"failed (errno {ctypes.get_errno()})"
    return "seccomp" + (" (IPv4/IPv6 only)" if allow_inet else "")


def set_limits(memory_mb: int, cpu_seconds: int, budget_calls: int = 20, fsize_mb: int = 0) -> str:
    """Resource limits; returns which held (a platform may refuse one, e.g. RLIMIT_AS on macOS)."""
    held, wanted = [], []
    if fsize_mb > 0:  # a flood of print() must not fill the disk before the timeout
        wanted.append(("output", resource.RLIMIT_FSIZE, (fsize_mb * 2**20,) * 2))
    if memory_mb > 0:
        wanted.append(("memory", resource.RLIMIT_AS, (memory_mb * 2**20,) * 2))
    wanted.append(("core", resource.RLIMIT_CORE, (0, 0)))
    if cpu_seconds > 0:
        # the hard limit is a lifetime budget (SIGKILL), so a skill that raises its own soft limit
        # gains little; the soft limit is moved per call (SIGXCPU); a spent worker is replaced
        wanted.append(("cpu", resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds * max(budget_calls, 2))))
    for name, which, value in wanted:
        try:
            resource.setrlimit(which, value)
            held.append(name)
        except (ValueError, OSError):
            pass  # the parent's timeout still bounds the call
    if sys.platform.startswith("linux"):
        _c().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # die with copa
    return "+".join(held) or "none"


def cpu_used() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def arm_cpu_limit(cpu_seconds: int) -> bool:
    """Allow ``cpu_seconds`` more CPU for the next call; False when the lifetime budget is spent."""
    if cpu_seconds <= 0:
        return True
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(cpu_used()) + cpu_seconds
    if hard != resource.RLIM_INFINITY and soft >= hard:
        return False
    with contextlib.suppress(ValueError, OSError):  # no CPU limit here: the timeout still applies
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    return True


def install_audit_hook(*, net: str, hosts: tuple[str, ...], allow_exec: bool,
                       fs_roots: tuple[tuple[str, ...], tuple[str, ...]] | None, proxy_port: int | None = None) -> None:
    """Python-level refusals: the fallback where the kernel offers nothing, and defence in depth.

    ``fs_roots`` = (readable roots, writable roots) enforces paths for ``open`` (None: not used).
    ``proxy_port``: a ``net:HOST`` worker's way out (copa's proxy on 127.0.0.1), always allowed.
    """
    from copa.skills.permissions import host_allowed

    resolved: set[str] = set()
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):  # remember the addresses of allowed hosts
        try:
            out = real_getaddrinfo(host, *args, **kwargs)
        except socket.gaierror:
            if proxy_port and net == "hosts":
                raise socket.gaierror(socket.EAI_NONAME, f"{host}: a net:HOST skill reaches its hosts through "
                                      "copa's proxy (HTTPS_PROXY, used by HTTP clients), or "
                                      "copa.skills.net.connect(host, port) for other TCP") from None
            raise
        if net == "hosts" and isinstance(host, str | bytes):
            name = host.decode() if isinstance(host, bytes) else host
            if host_allowed(name, hosts):
                resolved.update(str(ai[4][0]) for ai in out)
        return out

    socket.getaddrinfo = getaddrinfo
    read_roots, write_roots = (tuple(os.path.realpath(p) for p in roots) for roots in (fs_roots or ((), ())))

    def under(path: str, roots: tuple[str, ...]) -> bool:
        return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)

    def hook(event: str, args: tuple) -> None:
        if event.startswith("socket.") and net != "any":
            if event == "socket.getaddrinfo" or event == "socket.gethostbyname":
                host = args[0]
                if isinstance(host, bytes):
                    host = host.decode(errors="replace")
                if net == "none":
                    raise PermissionError("network access was not declared (add permissions=['net:HOST'])")
                if proxy_port and str(host) == "127.0.0.1":
                    return  # the proxy's own address
                if not (host_allowed(str(host), hosts) or str(host) in resolved):
                    raise PermissionError(f"network access to {host!r} was not declared (add 'net:{host}')")
            elif event in ("socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind"):
                sock, address = args[0], args[1] if len(args) > 1 else None
                family = getattr(sock, "family", None)
                if family == socket.AF_UNIX and event != "socket.bind":
                    if net == "none":
                        raise PermissionError("socket connections were not declared (add permissions=['net'])")
                    return
                if net == "none":
                    raise PermissionError("network access was not declared (add permissions=['net:HOST'])")
                ip = address[0] if isinstance(address, tuple) and address else None
                if proxy_port and address == ("127.0.0.1", proxy_port):
                    return
                if event != "socket.bind" and ip is not None and str(ip) not in resolved \
                        and not host_allowed(str(ip), hosts):
                    raise PermissionError(f"network access to {ip} was not declared")
        elif not allow_exec and event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
                                          "os.spawn", "os.fork", "os.forkpty", "pty.spawn"):
            raise PermissionError("running programs was not declared (add permissions=['exec'])")
        elif fs_roots is not None and event == "open":
            path, mode, flags = args[0], args[1], args[2]
            if not isinstance(path, str | bytes):
                return
            p = os.path.realpath(os.fsdecode(path))
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC))
            if writing and not under(p, write_roots):
                raise PermissionError(f"writing {p} was not declared (add 'fs.write:{os.path.dirname(p)}')")
            if not writing and not under(p, read_roots + write_roots):
                raise PermissionError(f"reading {p} was not declared (add 'fs.read:{os.path.dirname(p)}')")

    sys.addaudithook(hook)
