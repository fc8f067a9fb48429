"""DeviceSession against the host firmware build: pipelining, events, listeners, reconnect."""

from __future__ import annotations

import threading
import time

import pytest

from copa.device.protocol import Cmd, Rule, SampleEvent
from copa.device.session import DeviceSession, DeviceUnavailable, RequestTimeout


def test_pipelined_requests_are_matched_by_id(ws, board):
    ws.devices.pair(board.link, "lab")
    s = ws.devices.registry.session("lab", reconnect=False)
    futs = [s.submit(Cmd.PING, bytes([i % 251]) * (i % 40)) for i in range(600)]  # > 255: ids wrap
    for i, f in enumerate(futs):
        assert s.result(f, 5).payload == bytes([i % 251]) * (i % 40)
    # several threads at once share one session
    errors: list[Exception] = []

    def worker(k: int) -> None:
        try:
            for j in range(50):
                assert s.ping(bytes([k, j])) == bytes([k, j])
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    s.close()


def test_silent_port_times_out_and_never_blocks(tmp_path):
    import os

    master, slave = os.openpty()
    try:
        s = DeviceSession(os.ttyname(slave), reconnect=False, hello_attempts=2, hello_interval=0.05, timeout=0.1)
        t0 = time.monotonic()
        with pytest.raises(RequestTimeout.__mro__[1]):  # NoAnswer
            s.connect()
        assert time.monotonic() - t0 < 2
        s.close()
    finally:
        os.close(master)
        os.close(slave)


def test_events_reach_subscribers_in_order(ws, board):
    ws.devices.pair(board.link, "lab")
    s = ws.devices.registry.session("lab", reconnect=False)
    got: list = []
    s.subscribe_events(got.append)
    board.control("adc 0 700")
    s.set_subscription(10, [(Rule.ADC, 0), (Rule.PIN, 2)])
    deadline = time.monotonic() + 5
    while len(got) < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    samples = [g.event for g in got if isinstance(g.event, SampleEvent)]
    assert len(samples) >= 10 and all(e.values == (700, 0) for e in samples)
    ts = [e.t_ms for e in samples]
    assert ts == sorted(ts)
    s.set_subscription(0, [])
    s.close()


def test_reconnects_after_the_board_is_killed_and_restarted(ws, board):
    ws.devices.pair(board.link, "lab")
    s = ws.devices.session("lab")  # reconnecting session, found again through the stable link
    link_events: list[tuple[float, str]] = []
    s.add_listener(lambda kind, info: link_events.append((time.monotonic(), kind)))
    delivered: list = []
    gate = threading.Event()

    def slow_subscriber(ev) -> None:
        gate.wait(10)  # holds the queue until after the reconnect: nothing queued may be lost
        delivered.append(ev)

    s.subscribe_events(slow_subscriber)
    s.gpio_mode(7, 1)
    board.control("adc 0 111")
    s.set_subscription(10, [(Rule.ADC, 0)])
    time.sleep(0.3)
    board.kill()
    deadline = time.monotonic() + 5
    while not any(k == "lost" for _, k in link_events) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [k for _, k in link_events] == ["lost"]
    received_before = s.stats["events"]
    assert received_before >= 5
    # while the board is away a request fails within its timeout instead of hanging
    t0 = time.monotonic()
    with pytest.raises(DeviceUnavailable):
        s.request(Cmd.PING, timeout=0.3, retries=0)
    assert time.monotonic() - t0 < 1.5

    board.start()  # a new process, a new pty, the same stable link and store
    back = time.monotonic()
    while not any(k == "reconnected" for _, k in link_events) and time.monotonic() < back + 5:
        time.sleep(0.01)
    kinds = [k for _, k in link_events]
    assert kinds == ["lost", "reconnected"], kinds
    took = [t for t, k in link_events if k == "reconnected"][0] - back
    assert took < 2.0, f"reconnected after {took:.2f}s"
    assert True  # a new pts number is usual, not required
    # re-authenticated: a MACed write works and the board's pin moves
    s.gpio_mode(7, 1)
    s.gpio_write(7, 1)
    assert board.pin(7)[1] == 1
    # re-subscribed: samples of the new process arrive without subscribing again
    board.control("adc 0 222")
    n0 = s.stats["events"]
    deadline = time.monotonic() + 3
    while s.stats["events"] < n0 + 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert s.stats["events"] >= n0 + 5
    gate.set()
    deadline = time.monotonic() + 5
    while len(delivered) < s.stats["events"] - 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    values = [d.event.values[0] for d in delivered if isinstance(d.event, SampleEvent)]
    assert values.count(111) >= received_before - 1  # everything queued before the loss arrived
    assert 222 in values
    s.set_subscription(0, [])
    s.close()


def test_a_hung_board_is_reopened(ws, board):
    """The port stays open but the board stops answering (SIGSTOP): after its retries the session
    reopens the port, and once the board runs again it is back, re-authenticated."""
    import signal

    ws.devices.pair(board.link, "lab")
    s = ws.devices.session("lab", timeout=0.3)
    kinds: list[str] = []
    s.add_listener(lambda kind, info: kinds.append(kind))
    s.gpio_mode(7, 1)
    board.t.proc.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(RequestTimeout):
            s.ping(b"x")
        assert kinds == ["lost"]
        with pytest.raises(DeviceUnavailable):
            s.ping(b"x")  # reconnecting: fails within its timeout, never hangs
    finally:
        board.t.proc.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + 5
    while "reconnected" not in kinds and time.monotonic() < deadline:
        time.sleep(0.02)
    assert kinds == ["lost", "reconnected"]
    s.gpio_write(7, 1)
    assert board.pin(7)[1] == 1
    s.close()
