"""Real third-party servers on 127.0.0.1 for tests and benchmarks: ser2net (Debian ``ser2net`` 4.x)
exporting a pty as RFC 2217 or raw TCP, and Mosquitto (Debian ``mosquitto``) with users and an ACL.

Both run in the foreground as child processes with a config written to a temporary folder, on
ports picked free at start; ``restart()`` keeps the ports (what a user sees when the service on the
other machine restarts).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}) before listening on {port}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def missing(*tools: str) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


class _Server:
    proc: subprocess.Popen | None = None
    ports: list[int]

    def _spawn(self) -> subprocess.Popen:
        raise NotImplementedError

    def start(self) -> None:
        self.proc = self._spawn()
        for port in self.ports:
            wait_listening(port, proc=self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)  # as a crash or a power cut: no goodbye to clients
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        self.proc = None

    def restart(self, down: float = 0.0) -> None:
        self.stop()
        time.sleep(down)
        self.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Ser2net(_Server):
    """ser2net exporting ``device`` (a pty or a tty) on ``rfc2217_port`` (telnet(rfc2217)) and/or
    ``raw_port`` (plain TCP). ``chardelay=False`` sends each byte on at once (lower latency)."""

    def __init__(self, device: str, tmp: Path, *, rfc2217: bool = True, raw: bool = False,
                 chardelay: bool = True, accepter_override: str | None = None):
        self.device = device
        self.rfc2217_port = free_port() if rfc2217 else None
        self.raw_port = free_port() if raw else None
        self.ports = [p for p in (self.rfc2217_port, self.raw_port) if p]
        options = "" if chardelay else "  options:\n    chardelay: false\n"
        blocks = []
        if self.rfc2217_port:
            acc = accepter_override or "telnet(rfc2217),tcp"
            blocks.append(f"connection: &rfc2217\n  accepter: {acc},127.0.0.1,{self.rfc2217_port}\n"
                          f"  connector: serialdev,{device},115200n81,local\n{options}")
        if self.raw_port:
            blocks.append(f"connection: &raw\n  accepter: tcp,127.0.0.1,{self.raw_port}\n"
                          f"  connector: serialdev,{device},115200n81,local\n{options}")
        self.config = tmp / f"ser2net-{self.ports[0]}.yaml"
        self.config.write_text("\n".join(blocks))
        self.start()

    @property
    def url(self) -> str:
        return f"rfc2217://127.0.0.1:{self.rfc2217_port}"

    @property
    def raw_url(self) -> str:
        return f"socket://127.0.0.1:{self.raw_port}"

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(["ser2net", "-n", "-d", "-c", str(self.config)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Mosquitto(_Server):
    """A Mosquitto broker on 127.0.0.1 with a password file and an ACL. ``users`` maps user ->
    password; ``acl`` is the ACL file's text (``user NAME`` / ``topic readwrite ...`` / ``pattern``)."""

    def __init__(self, tmp: Path, users: dict[str, str], acl: str, *, port: int | None = None,
                 tls: tuple[Path, Path] | None = None):
        self.port = port or free_port()
        self.ports = [self.port]
        self.dir = tmp / f"mosquitto-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        pw = self.dir / "passwd"
        pw.write_text("")
        for user, password in users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True,
                           capture_output=True)
        (self.dir / "acl").write_text(acl)
        self.log = self.dir / "mosquitto.log"
        (self.dir / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\n"
            + (f"certfile {tls[0]}\nkeyfile {tls[1]}\n" if tls else "") +
            "allow_anonymous false\n"
            f"password_file {pw}\n"
            f"acl_file {self.dir / 'acl'}\n"
            "persistence false\n"
            # as root, mosquitto drops to user "mosquitto", who cannot read pytest's 0700 folders
            + ("user root\n" if os.geteuid() == 0 else "") +
            f"log_dest file {self.log}\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n")
        for f in (pw, self.dir / "acl"):
            f.chmod(0o600)
        self.start()

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(["mosquitto", "-c", str(self.dir / "mosquitto.conf")], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def self_signed_cert(folder: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for ``host`` and 'localhost': (cert.pem, key.pem)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "broker-cert.pem", folder / "broker-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path
