"""Namespaces, a process cap and dropped capabilities for a skill worker (Linux).

Called by the worker right after it has read its set-up, before anything else runs. Where the kernel
allows it, the worker process unshares a PID, mount (and, unless the skill may use any network, a
network) namespace and forks twice:

    outer (copa's child; waits and relays the exit status)
      └─ init (PID 1 of the new namespace; mounts a fresh /proc, reaps orphans)
           └─ worker (PID 2: confines itself further and serves calls)

So a worker sees only its own processes in /proc (never copa's environment), dies with everything
it started when copa stops it, and (when copa created one) sits in a pids cgroup that caps how many
processes and threads it may have. As root, the worker then drops every capability (bounding set
included, with the securebits locked) so root's powers do not come back on exec. Not root: a user
namespace gives the same namespaces where the kernel permits unprivileged ones, and RLIMIT_NPROC in
that fresh namespace caps the processes. Pure stdlib + ctypes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import struct
import sys

CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWUSER = 0x00020000, 0x20000000, 0x40000000, 0x10000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REC, _MS_PRIVATE = 2, 4, 8, 0x4000, 1 << 18
_PR_SET_PDEATHSIG, _PR_CAPBSET_DROP, _PR_SET_SECUREBITS, _PR_CAP_AMBIENT = 1, 24, 28, 47
_PR_SET_DUMPABLE = 4
# SECBIT_NOROOT, NO_SETUID_FIXUP, KEEP_CAPS_LOCKED, NO_CAP_AMBIENT_RAISE, each with its lock bit
_SECUREBITS = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80


def _libc():
    from copa.skills.sandbox import _c

    return _c()


def make_undumpable() -> bool:
    """prctl(PR_SET_DUMPABLE, 0) for copa itself: its /proc files (environ, mem, maps, fd) become
    root's, so no process of the same user (a skill worker included) can read them; no core dumps."""
    if not sys.platform.startswith("linux"):
        return False
    return _libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _status_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def _relay_exit(code: int) -> None:
    """Exit as the worker did: by the same signal when it died from one (copa reads SIGXCPU etc.)."""
    if 128 < code < 128 + signal.NSIG:
        sig = code - 128
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
            os.kill(os.getpid(), sig)
    os._exit(code)


def _quiet(keep: tuple[int, ...] = ()) -> None:
    """Drop the protocol pipes in outer/init: only the worker talks to copa."""
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    for fd in keep:
        with contextlib.suppress(OSError):
            os.close(fd)


def enter(cfg: dict) -> dict:
    """Enter the namespaces; returns (in the worker only) what held. Outer and init never return."""
    report = {"pid_namespace": "unavailable", "network": "allowed" if cfg.get("net") == "any" else "unavailable",
              "processes": "unlimited", "capabilities": "kept" if os.geteuid() == 0 else "none (not root)"}
    if not sys.platform.startswith("linux"):
        return report
    libc = _libc()
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    root = os.geteuid() == 0
    want_net = cfg.get("net") != "any"
    flags = CLONE_NEWPID | CLONE_NEWNS | (CLONE_NEWNET if want_net else 0)
    uid, gid = os.geteuid(), os.getegid()
    if cfg.get("cgroup") and cfg.get("cgroup_joined"):  # copa moved us in; init and worker are born in it
        report["processes"] = f"pids cgroup (max {cfg.get('max_processes')})"
    userns = False
    if libc.unshare(flags) != 0:
        if libc.unshare(flags | CLONE_NEWUSER) != 0:
            if want_net and libc.unshare(CLONE_NEWNET) == 0:  # at least the network, as before
                report["network"] = "netns"
            return report
        userns = True
        with contextlib.suppress(OSError):
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"{uid} {uid} 1")
            _write("/proc/self/gid_map", f"{gid} {gid} 1")
    if want_net:
        report["network"] = "userns+netns" if userns else "netns"
    libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None)  # our /proc mount stays ours
    keep = tuple(fd for fd in (cfg.get("proxy_fd"),) if isinstance(fd, int))
    init = os.fork()
    if init:  # outer: wait for init and relay how the worker ended
        _quiet(keep)
        _, status = os.waitpid(init, 0)
        _relay_exit(_status_code(status))
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    proc = libc.mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None) == 0
    worker = os.fork()
    if worker:  # init: PID 1 reaps whatever the skill orphans; when the worker ends, the namespace ends
        _quiet(keep)
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                os._exit(0)
            if pid == worker:
                os._exit(_status_code(status))
    report["pid_namespace"] = ("userns+" if userns else "") + ("pidns, own /proc" if proc else "pidns, host /proc")
    n = int(cfg.get("max_processes") or 0)
    if userns and n and report["processes"] == "unlimited":
        # a fresh user namespace counts its own processes: this caps the worker, not the whole user
        import resource

        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NPROC, (n, n))
            report["processes"] = f"RLIMIT_NPROC {n} (user namespace)"
    if proc and n and report["processes"] == "unlimited":
        # kernels >= 6.14 keep pid_max per PID namespace: at most that many processes and threads in
        # it (the kernel's floor is 301); no cgroup needed, and it holds for root too
        try:
            _write("/proc/sys/kernel/pid_max", str(max(n, 301)))
            report["processes"] = f"pid namespace pid_max {max(n, 301)}"
        except OSError:
            pass
    if root and not userns:
        report["capabilities"] = "kept"
    return report


def loopback_up() -> bool:
    """Bring up lo in a fresh network namespace (it starts down); needs CAP_NET_ADMIN there."""
    import fcntl

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            req = fcntl.ioctl(s.fileno(), siocgifflags, struct.pack("16sh22x", b"lo", 0))
            flags = struct.unpack("16sh22x", req)[1]
            fcntl.ioctl(s.fileno(), siocsifflags, struct.pack("16sh22x", b"lo", flags | iff_up))
        except OSError:
            return False
    return True


def hand_over_proxy_listener(channel_fd: int) -> int:
    """Listen on 127.0.0.1 inside the worker's network namespace and give the socket to copa, which
    serves it as the only way out (an HTTP proxy allowing the declared hosts). Returns the port."""
    lo = loopback_up()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        port = listener.getsockname()[1]
        with socket.socket(fileno=channel_fd) as chan:
            socket.send_fds(chan, [b"L" if lo else b"l"], [listener.fileno()])
    finally:
        listener.close()
    return port


def drop_capabilities(in_userns: bool = False) -> str:
    """Root, or anyone inside a user namespace of its own (where it holds every capability): lose
    every capability for good (bounding set, ambient, securebits locked)."""
    if not sys.platform.startswith("linux") or (os.geteuid() != 0 and not in_userns):
        return "none (not root)"
    libc = _libc()
    libc.prctl(_PR_SET_SECUREBITS, _SECUREBITS, 0, 0, 0)
    cap = 0
    while cap < 64 and libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    libc.prctl(_PR_CAP_AMBIENT, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    hdr, data = _CapHeader(0x20080522, 0), (_CapData * 2)()
    if libc.syscall(ctypes.c_long(126 if _x86() else 91), ctypes.byref(hdr), data) != 0:  # capset
        return f"failed (errno {ctypes.get_errno()})"
    return "all dropped"


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _x86() -> bool:
    return os.uname().machine == "x86_64"
