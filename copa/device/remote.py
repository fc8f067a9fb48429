"""Boards on another machine: ``rfc2217://HOST:PORT`` (ser2net's telnet(rfc2217) accepter) and
``socket://HOST:PORT`` (a raw TCP accepter), as pyserial ports with every guarantee of a local one.

pyserial 3.5's RFC 2217 client and ser2net 4 disagree in ways that bite copa (checked against
ser2net 4.3.11 on 127.0.0.1, tests/device/test_device_remote.py):

- ``write_timeout`` raises ``NotImplementedError`` in the RFC 2217 client (pyserial issue 412). copa
  sets none there; the client's socket has a 5 s timeout of its own, which bounds a stuck write.
- The client waits in ``open()`` for the server to acknowledge each SET_CONTROL (DTR, RTS, flow
  control). ser2net does not acknowledge them when its serial side cannot do modem control (a pty,
  some USB adapters), so ``open()`` failed after 3 s: "timeout while waiting for option 'control'".
  pyserial's ``ign_set_control`` only replaces the wait with a 0.1 s sleep per line; copa sends the
  request and does not wait: no copa feature depends on the answer.
- The same wait on PURGE acknowledgements fails against ser2net releases that do not acknowledge
  a purge (labgrid issue 1396, ser2net issue 116: "timeout while waiting for option 'purge'").
  copa sends the purge and does not wait: stale bytes are harmless, HELLO resynchronises the link.
- A server that refuses (or never acknowledges) the speed setting (ser2net issue 92) is not fatal:
  the speed is ser2net's to set (its connector line); a wrong one shows up as no HELLO answer.
- BREAK gets a corrupted answer from ser2net (ser2net issue 134): copa never sends BREAK.

Both kinds also get TCP keep-alives, so a link that dies silently (a cable pulled between two
switches, a machine powered off) is noticed within ~15 s, not at the next request; and errors a
user can cause (nothing listening, the wrong kind of port) become one-line ``CopaError``s.

pyserial is imported here at module level; this module is imported only when a URL is opened.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import time
from typing import Any

import serial
from serial import rfc2217
from serial.urlhandler import protocol_socket

from copa.errors import CopaError

log = logging.getLogger("copa.device")

REMOTE_SCHEMES = ("rfc2217", "socket")
KEEPALIVE = (5, 2, 5)  # idle seconds before the first probe, seconds between probes, probes
TELNET_SNIFF = 0.3  # seconds a socket:// port waits at open for a telnet server's answer to TELNET_PROBE
TELNET_PROBE = b"\xff\xfd\x00\x00"  # IAC DO BINARY, then a frame delimiter
_IAC, _WILL, _DONT = 0xFF, 0xFB, 0xFE


def scheme(url: str) -> str:
    return url.split("://", 1)[0].lower()


def is_remote(url: str) -> bool:
    return "://" in url and scheme(url) in REMOTE_SCHEMES


def _keepalive(sock: socket.socket | None) -> None:
    if sock is None:
        return
    idle, interval, count = KEEPALIVE
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", idle), ("TCP_KEEPINTVL", interval), ("TCP_KEEPCNT", count)):
        if hasattr(socket, name):  # Linux; macOS has TCP_KEEPALIVE for the idle time only
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


class Rfc2217Port(rfc2217.Serial):
    """pyserial's RFC 2217 client, minus the waits ser2net 4 does not answer (see the module doc)."""

    def open(self) -> None:
        super().open()
        _keepalive(self._socket)

    def _internal_raw_write(self, data: bytes) -> None:
        # Telnet negotiation answers are written from pyserial's reader thread; a server that hangs
        # up meanwhile (ser2net's "Port already in use") made that thread die with a traceback on
        # stderr. The reader sees the close on its next recv and ends cleanly instead.
        try:
            super()._internal_raw_write(data)
        except OSError as e:
            log.debug("%s: write during negotiation failed: %s", self.portstr, e)

    def rfc2217_set_control(self, value: bytes) -> None:
        self._rfc2217_options["control"].set(value)  # sent; the answer is not waited for

    def rfc2217_send_purge(self, value: bytes) -> None:
        self._rfc2217_options["purge"].set(value)

    def _reconfigure_port(self) -> None:
        try:
            super()._reconfigure_port()
        except serial.SerialException as e:
            if "does not accept parameter change" not in str(e):
                raise
            said = self._said_before_closing()
            if said is not None:  # not a refusal: the server hung up ("Port already in use")
                raise serial.SerialException(f"closed by the server: {said or 'no reason given'}") from None
            log.warning("%s did not confirm the serial settings; using the server's own (%s)", self.portstr, e)

    def _said_before_closing(self) -> str | None:
        """What the server sent before it closed the connection; None while it is open."""
        if self._thread is not None and self._thread.is_alive():
            return None
        chunks = []
        while not self._read_buffer.empty():
            chunks.append(self._read_buffer.get_nowait() or b"")
        return b"".join(chunks).decode(errors="replace").strip()


def _is_telnet(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == _IAC and _WILL <= head[1] <= _DONT


class SocketPort(protocol_socket.Serial):
    """pyserial's raw TCP port, with keep-alives and a clear refusal of a telnet server.

    A telnet(rfc2217) accepter greets a new client with option negotiations (IAC WILL/DO ...).
    Spoken to as a raw port it would also take every 0xFF byte of a frame as a telnet command and
    corrupt it, so the port refuses it: at open when the greeting comes at once, else at the first
    bytes read (the session then reports the link lost with this reason)."""

    _first = True
    _greeted = False  # a telnet greeting was among the bytes pyserial's open() discards

    def reset_input_buffer(self) -> None:
        if self.is_open:
            ready, _, _ = select.select([self._socket], [], [], 0)
            if ready:
                with contextlib.suppress(OSError):
                    self._greeted = self._greeted or _is_telnet(self._socket.recv(3, socket.MSG_PEEK))
        super().reset_input_buffer()

    def open(self) -> None:
        self._greeted = False
        super().open()  # its reset_input_buffer() would swallow a greeting that came at once
        _keepalive(self._socket)
        self._first, self._head = True, b""
        if self._greeted:
            self.close()
            raise serial.SerialException("telnet server")
        # ser2net's telnet side does not always greet first, so ask: IAC DO BINARY makes a telnet
        # server answer IAC WILL/WONT at once. On a raw port the bytes reach the board as a
        # 2-byte frame closed by the 0x00 delimiter, which its decoder drops (bad CRC).
        with contextlib.suppress(OSError):
            self._socket.sendall(TELNET_PROBE)
        deadline = time.monotonic() + TELNET_SNIFF
        head = b""
        while len(head) < 2 and (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self._socket], [], [], left)
            if not ready:
                break
            try:
                head = self._socket.recv(3, socket.MSG_PEEK)
            except BlockingIOError:
                continue
            except OSError:
                break
            if not head:
                break
            if len(head) < 2:
                time.sleep(0.005)
        if _is_telnet(head):
            self.close()
            raise serial.SerialException("telnet server")

    def read(self, size: int = 1) -> bytes:
        data = super().read(size)
        if data and self._first:
            # Decide on the first two bytes, which may come in two reads: a lone IAC first (ser2net
            # answering late, under load) used to end the check, and the telnet port was used raw.
            self._head = getattr(self, "_head", b"") + data
            if len(self._head) >= 2 or self._head[0] != _IAC:
                self._first = False
                if _is_telnet(self._head):
                    raise serial.SerialException(remote_error(self.portstr, Exception("telnet server")).message)
        return data


def open_remote(url: str, *, baudrate: int, timeout: float) -> Any:
    """Open a ``rfc2217://`` or ``socket://`` URL; raises a one-line ``CopaError`` on failure."""
    kind = scheme(url)
    port = (Rfc2217Port if kind == "rfc2217" else SocketPort)(None, baudrate=baudrate, timeout=timeout)
    port.port = url  # pyserial parses host, port and ?options (logging=debug, timeout=N) from it
    try:
        port.open()
    except (serial.SerialException, ValueError, OSError) as e:
        raise remote_error(url, e) from None
    return port


def remote_error(url: str, e: Exception) -> CopaError:
    text = str(e)
    where = url.split("://", 1)[1].split("?", 1)[0]
    if "Connection refused" in text:
        return CopaError(f"nothing listens at {where} ({url})",
                         hint="is ser2net running on that machine, and is the port its accepter's? "
                         "(docs/devices.md, 'Boards on another machine')")
    if "timed out" in text or "No route to host" in text or "unreachable" in text:
        return CopaError(f"cannot reach {where}: {text.split(':')[-1].strip()}",
                         hint="check the host name, the network and the firewall")
    if "Name or service not known" in text or "getaddrinfo" in text or "nodename" in text:
        return CopaError(f"unknown host in {url}", hint="check the host name (or use its IP address)")
    if "closed by the server" in text and "in use" in text:
        from copa.device.transport import PortBusy

        return PortBusy(f"the remote port {where} is busy: another client is connected to it",
                        hint="is the copa daemon (or a terminal) on another machine using it? close that "
                        "client, or raise max-connections in ser2net's config")
    if "closed by the server" in text:
        return CopaError(f"{where} closed the connection: {text.split(':', 1)[1].strip()}",
                         hint="see ser2net's log on that machine (is its serial device there?)")
    if "does not seem to support RFC2217" in text:
        return CopaError(f"{where} does not speak RFC 2217",
                         hint="for a raw TCP port use socket://; or give ser2net's accepter the option: "
                         "telnet(rfc2217),tcp,PORT")
    if text == "telnet server":
        return CopaError(f"{where} is a telnet (RFC 2217) port, not a raw TCP one",
                         hint=f"use rfc2217://{where}")
    if "expected" in text and "://" in text or "invalid" in text.lower():
        return CopaError(f"bad URL {url}: {text}", hint="use rfc2217://HOST:PORT or socket://HOST:PORT")
    return CopaError(f"cannot open {url}: {text}", hint="check that ser2net runs and exports the board there")
