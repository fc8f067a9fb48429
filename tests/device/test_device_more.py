"""Several boards at once, `watch` across a replug, the doctor check, scan's USB-id logic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from device_helpers import Board, ensure_built

from copa.device.scan import PortInfo, known_usb


def test_known_usb_ids():
    assert known_usb(0x2341, 0x0043) == "Arduino"
    assert known_usb(0x2341, 0x8036) == "Arduino"
    assert known_usb(0x1A86, 0x7523) == "CH340 USB-serial"
    assert known_usb(0x1A86, 0x5523) is None
    assert known_usb(0x10C4, 0xEA60) == "CP210x USB-serial"
    assert known_usb(0x0403, 0x6001) == "FTDI USB-serial"
    assert known_usb(0x0483, 0x374B) == "ST-LINK/V2-1"
    assert known_usb(0x0483, 0x5740) is None
    assert known_usb(None, None) is None
    assert PortInfo("/dev/ttyACM0", "2341:0043", "Arduino", "Uno").as_dict()["copa"] is None


@pytest.fixture
def two_boards(tmp_path: Path):
    ensure_built("host")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = Board("host", tmp_path / "a"), Board("host", tmp_path / "b")
    try:
        yield a, b
    finally:
        a.kill()
        b.kill()


def test_several_boards_at_once(ws, two_boards):
    a, b = two_boards
    ws.devices.pair(a.link, "lab")
    ws.devices.pair(b.link, "greenhouse")
    assert [r.name for r in ws.devices.list()] == ["greenhouse", "lab"]
    assert ws.devices.get("lab").device_id != ws.devices.get("greenhouse").device_id
    a.control("adc 0 100")
    b.control("adc 0 900")
    errors: list[Exception] = []

    def drive(name: str, board: Board, pin: int) -> None:
        try:
            s = ws.devices.session(name)
            s.gpio_mode(pin, 1)
            for i in range(100):
                s.gpio_write(pin, i & 1)
                assert s.adc_read(0) == (100 if name == "lab" else 900)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=drive, args=("lab", a, 7)), threading.Thread(target=drive, args=("greenhouse", b, 8))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, [f"{type(e).__name__}: {e}" for e in errors]
    assert a.pin(7)[1] == 1 and a.pin(8) == (0, 0, 0)
    assert b.pin(8)[1] == 1 and b.pin(7) == (0, 0, 0)
    # a key is bound to its board: the greenhouse's key does not open the lab
    from copa.device.protocol import ProtocolError
    from copa.device.session import DeviceSession

    ws.devices.close()
    wrong = DeviceSession(a.link, key=ws.devices.registry.key(ws.devices.get("greenhouse")), reconnect=False)
    with pytest.raises(ProtocolError):
        wrong.connect()
    wrong.close()


def test_watch_across_a_replug(run_copa, board, copa_home):
    assert run_copa("device", "pair", board.link, "--name", "lab").returncode == 0
    board.control("adc 0 123")
    proc = subprocess.Popen([sys.executable, "-m", "copa", "device", "watch", "lab", "--json", "-c", "a0",
                             "--period", "50", "--seconds", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ})
    try:
        time.sleep(1.5)
        board.kill()
        time.sleep(0.5)
        board.start()
        board.control("adc 0 456")
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    links = [x["state"] for x in lines if x["type"] == "link"]
    assert links == ["lost", "reconnected"], links
    values = [x["values"]["a0"] for x in lines if x["type"] == "sample"]
    assert 123 in values and 456 in values  # samples before and after, without subscribing again
    i_back = next(i for i, x in enumerate(lines) if x["type"] == "link" and x["state"] == "reconnected")
    assert any(x["type"] == "sample" for x in lines[i_back:])


def test_doctor_reports_paired_boards(run_copa, board):
    assert run_copa("device", "pair", board.link, "--name", "lab").returncode == 0
    r = run_copa("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["board lab"]["status"] == "ok" and "authenticated" in checks["board lab"]["detail"]
    assert "serial ports" in checks
    board.kill()
    r = run_copa("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["board lab"]["status"] == "fail" and checks["board lab"]["fix"]


def test_socket_and_loop_urls(ws, board):
    """A board behind a TCP serial server (like ser2net): pyserial's socket:// URL."""
    import select
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:  # one client at a time, as a serial server does
        fd = os.open(board.pty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        srv.settimeout(0.2)
        try:
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except TimeoutError:
                    continue
                with conn:
                    while not stop.is_set():
                        r, _, _ = select.select([conn, fd], [], [], 0.1)
                        if conn in r:
                            data = conn.recv(4096)
                            if not data:
                                break
                            os.write(fd, data)
                        if fd in r:
                            conn.sendall(os.read(fd, 4096))
        finally:
            os.close(fd)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        rec = ws.devices.pair(f"socket://127.0.0.1:{port}", "remote")
        assert rec.port == f"socket://127.0.0.1:{port}" and rec.board == "host"
        board.control("adc 2 222")
        s = ws.devices.session("remote")
        assert s.adc_read(2) == 222
        s.gpio_mode(7, 1)
        s.gpio_write(7, 1)
        assert board.pin(7)[1] == 1
        ws.devices.close()
    finally:
        stop.set()
        t.join(5)
        srv.close()
    # loop:// echoes our own requests back: they are not answers, so HELLO is never answered
    from copa.device import NoAnswer
    from copa.device.session import DeviceSession

    s = DeviceSession("loop://", reconnect=False, hello_attempts=2, hello_interval=0.1)
    with pytest.raises(NoAnswer):
        s.connect()
    s.close()
