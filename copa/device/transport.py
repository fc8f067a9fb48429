"""Opening a serial link: real ports, ptys and pyserial URLs (``rfc2217://`` and ``socket://`` for a
board on another machine, see remote.py; ``loop://`` and the rest as pyserial has them).

pyserial is imported inside :func:`open_port` only (CLI startup must not pay for it). Errors a user
can cause (no such port, port busy, no permission) become one-line ``CopaError``s with the fix.
"""

from __future__ import annotations

import errno
import os
import time
from typing import Any

from copa.errors import CopaError, NotFoundError

BAUDRATE = 115200
READ_TIMEOUT = 0.02  # a short read timeout: the reader thread polls, it never blocks a caller


class PortBusy(CopaError):
    """Another program (often the copa daemon, or a serial monitor) has the port open."""


def is_url(port: str) -> bool:
    return "://" in port


BUSY_GRACE = 1.0  # seconds a just-released lock may take to clear (see open_port)


def open_port(port: str, *, baudrate: int = BAUDRATE, exclusive: bool = True,
              busy_grace: float = BUSY_GRACE) -> Any:
    """Open ``port`` (a device path, a pty, or a pyserial URL) and return the pyserial object.

    ``exclusive`` takes an advisory lock on device paths so two copa processes never share a board.
    A lock found held is retried for ``busy_grace`` seconds before the port is called busy: a port
    closed a moment ago can still be locked by a child being forked at that instant (pyserial opens
    without O_CLOEXEC and the child holds the lock until it execs), which bit under load in tests.
    """
    deadline = time.monotonic() + busy_grace
    while True:
        try:
            return _open_once(port, baudrate, exclusive)
        except PortBusy:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _open_once(port: str, baudrate: int, exclusive: bool) -> Any:
    import serial  # noqa: PLC0415 - heavy-ish, and `copa device --help` must not import it

    if is_url(port):
        from copa.device.remote import is_remote, open_remote  # noqa: PLC0415

        if is_remote(port):  # rfc2217:// and socket://: see remote.py for what pyserial needs there
            return open_remote(port, baudrate=baudrate, timeout=READ_TIMEOUT)
    try:
        if is_url(port):
            s = serial.serial_for_url(port, baudrate=baudrate, timeout=READ_TIMEOUT,
                                      write_timeout=2.0, do_not_open=True)
        else:
            if not os.path.exists(port):
                raise NotFoundError(f"no serial port {port}",
                                    hint="run 'copa device scan' to see the ports; is the board plugged in?")
            s = serial.Serial(baudrate=baudrate, timeout=READ_TIMEOUT, write_timeout=2.0,
                              exclusive=exclusive)
            s.port = port
        s.open()
        return s
    except serial.SerialException as e:
        raise _port_error(port, e) from None


def _port_error(port: str, e: Exception) -> CopaError:
    no = getattr(e, "errno", None)
    text = str(e)
    if no in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or "exclusively lock" in text \
            or "Resource temporarily unavailable" in text or "busy" in text.lower():
        return PortBusy(f"port {port} is busy",
                        hint="another program has it open (the copa daemon? a serial monitor?); "
                        "close it, or stop the daemon with 'copa daemon stop'")
    if no == errno.EACCES or "Permission denied" in text:
        return CopaError(f"no permission to open {port}",
                         hint="add yourself to the 'dialout' group (sudo usermod -aG dialout $USER), "
                         "then log in again")
    if no == errno.ENOENT or "No such file" in text or "could not open port" in text:
        return NotFoundError(f"cannot open serial port {port}: {text}",
                             hint="run 'copa device scan' to see the ports; is the board plugged in?")
    return CopaError(f"cannot open serial port {port}: {text}", hint="check the port name and cable")
