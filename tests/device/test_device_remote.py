"""Boards on another machine: the real ser2net 4 exports the host build's pty (and the AVR in simavr)
as RFC 2217 and raw TCP on 127.0.0.1; copa pairs and uses it as ``rfc2217://`` / ``socket://`` with
every guarantee of a local port, and recovers by itself when ser2net restarts."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest
from device_helpers import Board, ensure_built
from devkit.servers import Ser2net, free_port, missing

from copa.device import DeviceUnavailable, NoAnswer
from copa.device.protocol import Cmd, Rule, SampleEvent, encode_frame

pytestmark = pytest.mark.skipif(bool(missing("ser2net")), reason="ser2net is not installed (tests/apt-packages.txt)")


@pytest.fixture
def exported(board, tmp_path: Path):
    """The host build behind ser2net: RFC 2217 and raw TCP, both pointing at the board's stable path."""
    with Ser2net(board.link, tmp_path, raw=True) as s:
        yield s


def _wait(pred, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def test_pair_and_use_over_rfc2217_with_the_cli(run_copa, board, exported):
    r = run_copa("device", "pair", exported.url, "--name", "remote", "--json")
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["port"] == exported.url and rec["board"] == "host" and rec["usb_serial"] is None
    r = run_copa("device", "write", "remote", "d7", "high")
    assert r.returncode == 0 and r.stdout.strip() == "d7 = 1", r.stderr
    assert board.pin(7)[1] == 1  # seen from the board's side
    board.control("adc 3 333")
    r = run_copa("device", "read", "remote", "a3", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["value"] == 333, r.stderr
    assert run_copa("device", "rules", "remote", "add", "a0 > 612 -> d7 high").returncode == 0
    r = run_copa("device", "rules", "remote", "list", "--json")
    assert [x["rule"] for x in json.loads(r.stdout)] == ["a0 > 612 -> d7 high"]
    r = run_copa("device", "info", "remote", "--json")
    info = json.loads(r.stdout)
    assert info["authenticated"] is True and info["port"] == exported.url and info["auth_fail"] == 0
    # the counter moved on across the one-shot commands (each one a new authenticated session)
    r = run_copa("device", "list", "--json")
    assert json.loads(r.stdout)[0]["counter"] > rec["counter"]


def test_session_over_ser2net_pipelines_streams_and_recovers(ws, board, exported):
    ws.devices.pair(exported.url, "remote")
    s = ws.devices.session("remote", timeout=3)
    kinds: list[str] = []
    s.add_listener(lambda kind, info: kinds.append(kind))
    samples: list[SampleEvent] = []
    s.subscribe_events(lambda ev: isinstance(ev.event, SampleEvent) and samples.append(ev.event))
    board.control("adc 0 700")
    s.set_subscription(20, [(Rule.ADC, 0)])
    assert _wait(lambda: len(samples) >= 5, 5)
    assert list(samples[-1].values) == [700]
    # pipelining within the board's window: all answered, in any order, none lost
    futs = [s.submit(Cmd.PING, i.to_bytes(2, "little") * 4) for i in range(300)]
    assert [s.result(f, 10).payload for f in futs] == [i.to_bytes(2, "little") * 4 for i in range(300)]
    s.gpio_mode(7, 1)
    s.gpio_write(7, 1)
    assert s.gpio_read(7) == 1

    # ser2net goes away with requests in flight: each one ends (answered or "link lost"), none hangs
    futs = [s.submit(Cmd.PING, b"inflight") for _ in range(50)]
    exported.stop()
    ends: list[str] = []
    for f in futs:
        try:
            s.result(f, 5)
            ends.append("answered")
        except NoAnswer:
            ends.append("failed")
    assert len(ends) == 50
    assert _wait(lambda: "lost" in kinds, 5), kinds
    with pytest.raises(DeviceUnavailable):  # meanwhile: a clear error, not a hang
        s.gpio_read(7)
    exported.start()
    assert _wait(lambda: kinds[-1:] == ["reconnected"], 10), kinds
    # re-authenticated (a MACed write works: the counter went on, the board takes it) and re-subscribed
    s.gpio_write(7, 0)
    assert s.gpio_read(7) == 0 and board.pin(7)[1] == 0
    n = len(samples)
    assert _wait(lambda: len(samples) >= n + 5, 5)
    assert s.board_stats().auth_fail == 0
    s.set_subscription(0, [])


def test_raw_tcp_socket_url(ws, board, exported):
    ws.devices.pair(exported.raw_url, "raw")
    s = ws.devices.session("raw", timeout=3)
    assert s.ping(b"\xff\xfe\xfd raw") == b"\xff\xfe\xfd raw"  # 0xFF is data here, not telnet's IAC
    s.gpio_mode(7, 1)
    s.gpio_write(7, 1)
    exported.restart()
    assert _wait(lambda: s.connected and s.stats["reconnects"] >= 1, 10), s.stats
    s.gpio_write(7, 0)
    assert s.gpio_read(7) == 0


def test_the_avr_in_simavr_through_ser2net(ws, tmp_path: Path):
    ensure_built("avr")
    uno = Board("avr", tmp_path)
    try:
        with Ser2net(uno.link, tmp_path) as srv:
            ws.devices.pair(srv.url, "uno")
            assert ws.devices.get("uno").board == "uno"
            out = ws.devices.write("uno", "d7", "high")
            assert out == {"device": "uno", "pin": "d7", "value": 1}
            s = ws.devices.session("uno")
            futs = [s.submit(Cmd.PING, bytes([i]) * 8) for i in range(40)]  # 96-byte window: waits, loses none
            assert [s.result(f, 10).payload for f in futs] == [bytes([i]) * 8 for i in range(40)]
            srv.restart()
            assert _wait(lambda: s.connected and s.stats["reconnects"] >= 1, 15), s.stats
            assert ws.devices.write("uno", "d7", "low")["value"] == 0
    finally:
        uno.kill()


def test_extra_ports_accept_urls(run_copa, board, exported):
    r = run_copa("device", "scan", "--json", env={"COPA_DEVICE_EXTRA_PORTS": f"{exported.url},{exported.raw_url}"})
    assert r.returncode == 0, r.stderr
    found = {p["port"]: p for p in json.loads(r.stdout)}
    assert found[exported.url]["copa"] is True and found[exported.url]["board"] == "host"
    assert found[exported.raw_url]["copa"] is True


# ---------------------------------------------------------------- faults: one line, never a traceback

class _FakeRemote:
    """A TCP server standing in for a broken remote port: ``garbage`` streams random bytes;
    ``half_frame`` answers the first request with half of a valid frame, then closes."""

    def __init__(self, mode: str):
        self.mode = mode
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import random

        rng = random.Random(7)
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                if self.mode == "garbage":
                    while not self.stop.is_set():
                        try:
                            conn.sendall(bytes(rng.randrange(1, 256) for _ in range(64)))
                        except OSError:
                            break
                        time.sleep(0.01)
                else:
                    conn.settimeout(2)
                    try:
                        req = conn.recv(64)
                        assert req  # a HELLO request: answer it with the first half of a well-formed reply
                        reply = encode_frame(Cmd.HELLO | 0x80, 1, b"\x00" + bytes(30))
                        conn.sendall(reply[: len(reply) // 2])
                    except OSError:
                        pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def _one_line_error(r) -> str:
    assert r.returncode not in (0, 70), r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    return r.stderr


def test_remote_faults_are_one_line_errors(run_copa, board, exported, tmp_path: Path):
    err = _one_line_error(run_copa("device", "pair", f"rfc2217://127.0.0.1:{free_port()}", "--name", "x"))
    assert "nothing listens at 127.0.0.1:" in err and "ser2net" in err
    # the wrong kind of port, both ways round
    err = _one_line_error(run_copa("device", "pair", f"rfc2217://127.0.0.1:{exported.raw_port}", "--name", "x"))
    assert "does not speak RFC 2217" in err and "socket://" in err
    err = _one_line_error(run_copa("device", "pair", f"socket://127.0.0.1:{exported.rfc2217_port}", "--name", "x"))
    assert "telnet (RFC 2217) port, not a raw TCP one" in err and f"rfc2217://127.0.0.1:{exported.rfc2217_port}" in err
    slow = {"COPA_DEVICE_HELLO_TIMEOUT": "1"}
    expected = {"garbage": "no HELLO answer", "half_frame": "closed the link before the board answered HELLO"}
    for mode in ("garbage", "half_frame"):
        fake = _FakeRemote(mode)
        try:
            err = _one_line_error(run_copa("device", "pair", f"socket://127.0.0.1:{fake.port}", "--name", "x",
                                           env=slow))
            assert expected[mode] in err, err
        finally:
            fake.close()
    r = run_copa("device", "list", "--json")
    assert json.loads(r.stdout) == []  # nothing half-written
    # and the real remote board still pairs and works after all that
    r = run_copa("device", "pair", exported.url, "--name", "remote")
    assert r.returncode == 0, r.stderr


def test_session_sees_ser2net_close_mid_frame(ws, board, exported):
    """ser2net killed while answers stream back: partial frames are dropped, the pending requests
    fail at once, nothing else stops, and the session is whole after ser2net returns."""
    ws.devices.pair(exported.url, "remote")
    s = ws.devices.session("remote", timeout=2)
    done: list[Future] = []
    stop = threading.Event()

    def flood() -> None:
        while not stop.is_set():
            try:
                done.append(s.submit(Cmd.PING, b"z" * 24, wait=0.5))
            except NoAnswer:
                time.sleep(0.01)

    threads = [threading.Thread(target=flood, daemon=True) for _ in range(2)]  # requests always in flight
    for t in threads:
        t.start()
    outcomes = {"ok": 0, "failed": 0}
    seen = 0
    # A kill can fall between two requests (the board answers in ~3 ms): up to 3 kills, each one
    # with its own reconnect, until one has cut requests in flight.
    for kill in range(1, 4):
        time.sleep(0.3)
        exported.stop()
        time.sleep(0.3)
        exported.start()
        assert _wait(lambda k=kill: s.connected and s.stats["reconnects"] >= k, 10), s.stats
        batch, seen = done[seen:], len(done)
        for f in batch:
            try:
                assert s.result(f, 5).payload == b"z" * 24  # an answer is whole or not at all
                outcomes["ok"] += 1
            except NoAnswer:
                outcomes["failed"] += 1
        if outcomes["failed"]:
            break
    stop.set()
    for t in threads:
        t.join(5)
    assert outcomes["ok"] > 10 and outcomes["failed"] >= 1, outcomes
    assert s.ping(b"after") == b"after"


def test_a_busy_remote_port_says_so(ws, run_copa, board, exported):
    """ser2net allows one client per port: a second one (the laptop while the daemon holds it) is
    told "Port already in use" and hung up on; copa says who to blame, on one line."""
    ws.devices.pair(exported.url, "remote")
    s = ws.devices.session("remote")
    try:
        err = _one_line_error(run_copa("device", "read", "remote", "d7"))
        assert "is busy: another client is connected" in err, err
    finally:
        s.close()
    r = run_copa("device", "read", "remote", "d7")
    assert r.returncode == 0, r.stderr


def test_socket_url_at_a_telnet_port_is_refused_every_time(board, exported):
    """ser2net's telnet greeting comes at once (and pyserial's open() discards what came) or after a
    while: either way a raw socket:// at a telnet port is refused, never used with 0xFF corrupted."""
    import serial

    from copa.device.transport import open_port
    from copa.errors import CopaError

    def use(url: str) -> None:  # refused at open, or at the first bytes read when the answer is late
        port = open_port(url)
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                port.read(64)
            pytest.fail("a telnet port was used as a raw one for 5 s")
        finally:
            port.close()

    for _ in range(15):
        with pytest.raises((CopaError, serial.SerialException), match="telnet \\(RFC 2217\\) port, not a raw TCP one"):
            use(f"socket://127.0.0.1:{exported.rfc2217_port}")
