"""The bridge end to end against every target: the host build, the real AVR image in simavr and
the real STM32 image in QEMU (parametrised by the ``emulated`` fixture)."""

from __future__ import annotations

import json
import os
import time

import pytest
from devkit.relay import Relay

from copa.device.codec import cobs_decode
from copa.device.protocol import Cmd, DeviceError, Rule, SampleEvent, Status
from copa.device.rules_syntax import format_rule, parse_rule
from copa.device.session import DeviceSession

BOARD = {"host": "host", "avr": "uno", "stm32": "stm32f103"}


def _point(link: str, target: str) -> None:
    os.symlink(target, link + ".new")
    os.replace(link + ".new", link)


def test_cli_scan_pair_read_write(run_copa, emulated):
    r = run_copa("device", "scan", "--port", emulated.link, "--json")
    found = [p for p in json.loads(r.stdout) if p["port"] == emulated.link]
    assert found and found[0]["copa"] is True and found[0]["board"] == BOARD[emulated.name]
    r = run_copa("device", "pair", emulated.link, "--name", "bench")
    assert r.returncode == 0, r.stderr
    assert run_copa("device", "write", "bench", "d7", "high").returncode == 0
    assert run_copa("device", "read", "bench", "d7").stdout.strip() == "1"
    assert run_copa("device", "write", "bench", "d7", "low").returncode == 0
    assert run_copa("device", "read", "bench", "d7").stdout.strip() == "0"
    r = run_copa("device", "rules", "bench", "add", "d2 < 1 for 2s -> notify")
    assert r.returncode == 0, r.stderr
    listed = json.loads(run_copa("device", "rules", "bench", "list", "--json").stdout)
    assert [x["rule"] for x in listed] == ["d2 < 1 for 2s -> notify"]


def test_auth_events_rules_and_replay(ws, emulated):
    ws.devices.pair(emulated.link, "bench")
    relay = Relay(emulated.pty, capture=True)
    try:
        s = ws.devices.registry.session("bench", port=relay.path, reconnect=False, timeout=3)
        s.gpio_mode(7, 1)
        s.gpio_write(7, 1)
        s.gpio_write(7, 0)
        assert s.gpio_read(7) == 0
        on = [w for w in relay.frames_sent() if (raw := cobs_decode(w[:-1]))[0] == Cmd.GPIO_WRITE and raw[3] == 1]
        assert len(on) == 1
        fails = s.board_stats().auth_fail
        relay.inject(on[0])  # replay of an accepted frame
        time.sleep(0.3)
        assert s.gpio_read(7) == 0 and s.board_stats().auth_fail == fails + 1
        # events
        got: list = []
        s.subscribe_events(got.append)
        s.set_subscription(20, [(Rule.PIN, 7), (Rule.PIN, 2)])
        deadline = time.monotonic() + 5
        while len(got) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        samples = [g.event for g in got if isinstance(g.event, SampleEvent)]
        assert len(samples) >= 5 and all(len(e.values) == 2 and e.values[0] == 0 for e in samples)
        s.set_subscription(0, [])
        # rules in the readable syntax survive the trip to the board and back
        text = "a0 > 612 for 5s -> d7 high, notify; clear < 590"
        slot = s.rule_add(parse_rule(text))
        assert [format_rule(e.rule) for e in s.rules() if e.slot == slot] == [text]
        s.rule_clear()
        s.close()
        # a host without the key cannot drive the pin
        stranger = DeviceSession(relay.path, reconnect=False, timeout=3)
        stranger.connect()
        with pytest.raises(DeviceError) as e:
            stranger.gpio_write(7, 1)
        assert e.value.status in (Status.AUTH_REQUIRED, Status.BAD_LENGTH)
        assert stranger.gpio_read(7) == 0
        stranger.close()
    finally:
        relay.close()


def test_unplug_and_replug(ws, emulated):
    """The USB link (a relay behind a stable path) goes away and comes back; the board runs on."""
    ws.devices.pair(emulated.link, "bench")
    relay = Relay(emulated.pty)
    _point(emulated.link, relay.path)
    kinds: list[tuple[float, str]] = []
    s = ws.devices.session("bench", timeout=3)
    s.add_listener(lambda kind, info: kinds.append((time.monotonic(), kind)))
    s.set_subscription(20, [(Rule.PIN, 2)])
    time.sleep(0.2)
    relay.close()  # unplugged: the port and its by-id link go away
    os.unlink(emulated.link)
    deadline = time.monotonic() + 5
    while not kinds and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [k for _, k in kinds] == ["lost"]
    relay = Relay(emulated.pty)  # plugged back in
    try:
        _point(emulated.link, relay.path)
        back = time.monotonic()
        while len(kinds) < 2 and time.monotonic() < back + 5:
            time.sleep(0.01)
        assert [k for _, k in kinds] == ["lost", "reconnected"]
        assert kinds[1][0] - back < 2.0
        s.gpio_mode(7, 1)
        s.gpio_write(7, 1)  # re-authenticated
        assert s.gpio_read(7) == 1
        n0 = s.stats["events"]
        deadline = time.monotonic() + 3
        while s.stats["events"] < n0 + 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert s.stats["events"] >= n0 + 3  # re-subscribed
        s.gpio_write(7, 0)
        s.set_subscription(0, [])
        s.close()
    finally:
        relay.close()


def test_pipelined_storage_writes(ws, emulated):
    """Rule writes (EEPROM on the Uno: 3.4 ms a byte) pipelined among PINGs: the bridge sends a
    storage write alone and waits for its answer (docs/protocol.md asks for it); everything is
    answered and the board drops nothing. (With the 96-byte window alone nothing was lost either.)"""
    ws.devices.pair(emulated.link, "bench")
    s = ws.devices.registry.session("bench", reconnect=False, timeout=5)
    rule = parse_rule("a1 > 900 for 1s -> notify; clear < 800")
    timeouts = s.stats["timeouts"]  # HELLO retries while QEMU attaches count too
    futs = []
    for i in range(4):
        futs.append(("rule", s.submit(Cmd.RULE_ADD, rule.to_wire(), wait=10)))
        futs += [("ping", s.submit(Cmd.PING, bytes([i, j]) * 8, wait=10)) for j in range(15)]
    answers = [(kind, s.result(f, 10)) for kind, f in futs]
    assert all(f.status == Status.OK for _, f in answers)
    assert sorted(f.payload[0] for kind, f in answers if kind == "rule") == [0, 1, 2, 3]
    assert len(s.rules()) == 4 and s.stats["timeouts"] == timeouts
    st = s.board_stats()
    assert st.oversize == 0 and st.bad_crc == 0 and st.bad_frame == 0
    s.rule_clear()
    s.close()


def test_avr_killed_and_restarted_reconnects_with_its_pairing(ws, tmp_path):
    """The simavr process dies and a new one starts on the same EEPROM (a board power-cycled): the
    session finds it again through the stable link within 2 s, re-authenticates with the key the
    board kept, and drives a pin again."""
    from device_helpers import Board, ensure_built

    ensure_built("avr")
    board = Board("avr", tmp_path, persist=True)
    try:
        ws.devices.pair(board.link, "uno")
        kinds: list[tuple[float, str]] = []
        s = ws.devices.session("uno", timeout=3)
        s.add_listener(lambda kind, info: kinds.append((time.monotonic(), kind)))
        s.gpio_mode(7, 1)
        s.gpio_write(7, 1)
        board.kill()
        deadline = time.monotonic() + 5
        while not kinds and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [k for _, k in kinds] == ["lost"]
        board.start()  # a new simavr process, a new pty, the same EEPROM file and stable link
        back = time.monotonic()
        while len(kinds) < 2 and time.monotonic() < back + 5:
            time.sleep(0.01)
        assert [k for _, k in kinds] == ["lost", "reconnected"]
        assert kinds[1][0] - back < 2.0, f"reconnected after {kinds[1][0] - back:.2f}s"
        assert s.gpio_read(7) == 0  # a power cycle clears the pins...
        s.gpio_mode(7, 1)
        s.gpio_write(7, 1)  # ...and a MACed write works: re-authenticated with the kept key
        assert s.gpio_read(7) == 1
        s.close()
    finally:
        board.kill()
