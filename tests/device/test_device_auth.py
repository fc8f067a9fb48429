"""Authentication against the host firmware build: unpaired hosts refused, replays refused."""

from __future__ import annotations

import secrets
import time

import pytest
from devkit.relay import Relay

from copa.device.codec import cobs_decode
from copa.device.protocol import Cmd, DeviceError, ProtocolError, Status
from copa.device.session import DeviceSession
from copa.errors import CopaError


def _gpio_write_frames(relay: Relay, value: int) -> list[bytes]:
    out = []
    for wire in relay.frames_sent():
        raw = cobs_decode(wire[:-1])
        if raw[0] == Cmd.GPIO_WRITE and raw[3] == value:
            out.append(wire)
    return out


def test_unpaired_host_is_refused(ws, board):
    ws.devices.pair(board.link, "lab")
    lab = ws.devices.session("lab", reconnect=False)
    lab.gpio_mode(7, 1)
    lab.gpio_write(7, 0)
    lab.close()
    # a host without the key: reads are open, writes are refused, the pin does not move
    stranger = DeviceSession(board.link, reconnect=False, timeout=1)
    stranger.connect()
    with pytest.raises(DeviceError) as e:
        stranger.gpio_write(7, 1)
    # the board still holds the rightful host's session, so an unsigned write is malformed to it
    assert e.value.status in (Status.AUTH_REQUIRED, Status.BAD_LENGTH)
    assert board.pin(7)[1] == 0
    # a forged trailer (any counter, a guessed MAC) is refused too
    fut = stranger.submit(Cmd.GPIO_WRITE, bytes([7, 1]) + (5).to_bytes(4, "little") + secrets.token_bytes(8))
    assert stranger.result(fut).status == Status.BAD_MAC
    assert board.pin(7)[1] == 0
    with pytest.raises(DeviceError) as e:  # nor can it take the board over
        stranger.pair(secrets.token_bytes(16))
    assert e.value.status == Status.NOT_PAIRABLE
    stranger.close()
    # a host with a wrong key: the board cannot prove the key we hold, so copa refuses the board
    impostor = DeviceSession(board.link, key=secrets.token_bytes(16), reconnect=False, timeout=1)
    with pytest.raises(ProtocolError, match="failed to prove"):
        impostor.connect()
    impostor.close()
    # copa's pairing with another home is refused with what to do
    from copa.workstation import Workstation

    other_home = ws.paths.data_dir.parent.parent / "other-home"
    import os

    old = os.environ["COPA_HOME"]
    os.environ["COPA_HOME"] = str(other_home)
    try:
        with Workstation() as other, pytest.raises(CopaError, match="pairing jumper"):
            other.devices.pair(board.link, "mine")
    finally:
        os.environ["COPA_HOME"] = old
    # the rightful host still works (it re-authenticates after the impostor's attempt)
    lab = ws.devices.session("lab", reconnect=False)
    lab.gpio_write(7, 1)
    assert board.pin(7)[1] == 1
    lab.close()


def test_replayed_frames_are_refused(ws, board):
    ws.devices.pair(board.link, "lab")
    relay = Relay(board.pty, capture=True)
    try:
        s = ws.devices.registry.session("lab", port=relay.path, reconnect=False)
        s.gpio_mode(7, 1)
        s.gpio_write(7, 1)
        s.gpio_write(7, 0)
        assert board.pin(7)[1] == 0
        before = s.board_stats().auth_fail
        frame_on = _gpio_write_frames(relay, 1)
        assert len(frame_on) == 1
        # same session: the counter was already used -> REPLAY, pin stays low
        relay.inject(frame_on[0])
        time.sleep(0.2)
        assert board.pin(7)[1] == 0
        assert s.board_stats().auth_fail == before + 1
        assert s.stats["stray"] >= 1  # the board's refusal arrived, unasked-for
        counter_first = s.auth.counter
        s.close()
        # a new session (new nonces, new session key): the old MAC is worthless
        s2 = ws.devices.registry.session("lab", port=relay.path, reconnect=False)
        assert s2.auth.counter >= counter_first  # the host counter was persisted and continues
        relay.inject(frame_on[0])
        time.sleep(0.2)
        assert board.pin(7)[1] == 0
        assert s2.board_stats().auth_fail == before + 2
        s2.close()
        # after the board restarts (same stored key): refused too
        board.restart()
    finally:
        relay.close()
    relay = Relay(board.pty)
    try:
        s3 = ws.devices.registry.session("lab", port=relay.path, reconnect=False)
        s3.gpio_mode(7, 1)
        s3.gpio_write(7, 0)
        relay.inject(frame_on[0])
        time.sleep(0.2)
        assert board.pin(7)[1] == 0
        s3.close()
    finally:
        relay.close()


def test_counter_is_persisted_between_processes(ws, board):
    ws.devices.pair(board.link, "lab")
    s = ws.devices.registry.session("lab", reconnect=False)
    s.gpio_mode(7, 1)
    for i in range(300):  # crosses a 256-counter block: a new block is reserved and stored
        s.gpio_write(7, i & 1)
    used = s.auth.counter
    s.close()
    stored = ws.devices.get("lab").counter
    assert stored > used
    s = ws.devices.registry.session("lab", reconnect=False)
    assert s.auth.counter >= stored
    s.gpio_write(7, 1)  # and the board accepts the higher counter
    s.close()
