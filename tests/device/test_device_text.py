"""Issue 16, text from a board: bytes that are not UTF-8 on the serial line never crash copa.

The board protocol carries no text from the firmware (docs/protocol.md: HELLO, answers, events and
errors are numbers and status codes), so copa never decodes a board's bytes as a string and there
is nowhere for U+FFFD to appear. What a board *can* send that is not UTF-8 is chatter outside the
protocol (an Arduino sketch's Latin-1 ``Serial.print``, a bootloader, 0xFF from a floating line)
and frames with bodies copa does not know (an event kind from newer firmware). The real host
build of the firmware runs on a pty; a relay (tests/devkit/relay.py) sits between it and copa and
adds those bytes on the board-to-copa side, because the firmware itself cannot be made to send
them (it has no text to send). Expected: the chatter is dropped as noise, an unknown event is
shown as hex, the session keeps working, nothing reaches a traceback.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time

from devkit.relay import Relay

from copa.device.protocol import EVENT_TYPE, encode_frame

UNKNOWN_KIND = 0x7E  # an event kind this copa does not know, with a body that is not UTF-8
NOT_UTF8 = b"Gr\xfc\xdfe: 23\xb0C \xff\xfe \xc3\x28 \xed\xa0\x80 \xf0\x28\x8c"
CHATTER = [
    b"Gr\xfc\xdfe aus dem Sketch: 23\xb0C\r\n\x00",  # a Latin-1 Serial.print, then a NUL
    b"\xff" * 40 + b"\x00",  # a floating line
    b"\xc3\x28 \xe2\x82 \xf0\x28\x8c\x28 \xed\xa0\x80\x00",  # broken and surrogate UTF-8 sequences
    encode_frame(EVENT_TYPE, 0, bytes([UNKNOWN_KIND]) + NOT_UTF8),  # a well-formed unknown event
]


def test_chatter_and_unknown_frames_that_are_not_utf8_leave_the_session_working(ws, board, caplog):
    ws.devices.pair(board.link, "lab")
    caplog.set_level(logging.WARNING)
    relay = Relay(board.pty)
    s = ws.devices.registry.session("lab", port=relay.path, reconnect=False, timeout=0.3)
    try:
        seen = []
        s.subscribe_events(seen.append)
        for i, chunk in enumerate(CHATTER * 5):
            relay.inject_to_host(chunk)
            assert s.ping(bytes([i])) == bytes([i])
        # chatter with no delimiter runs into the next answer, which is then lost: re-sent, answered
        relay.inject_to_host(b"boot caf\xe9 \xff")
        assert s.ping(b"after") == b"after"
        s.gpio_mode(7, 1)
        s.gpio_write(7, 1)
        assert board.pin(7)[:2] == (1, 1)
        assert s.board_stats().frames_ok > 0
        deadline = time.monotonic() + 2
        while len(seen) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        unknown = [ev.event for ev in seen]
        assert len(unknown) == 5 and all(f.status == UNKNOWN_KIND and f.payload == NOT_UTF8 for f in unknown)
        assert s.stats["retries"] >= 1 and s.stats.get("reconnects", 0) == 0
        assert s.connected
    finally:
        s.close()
        relay.close()
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]


def test_device_watch_keeps_streaming_through_chatter_that_is_not_utf8(run_copa, board, copa_home):
    """`copa device watch --json` (a real process) while the line carries Latin-1 chatter and an
    unknown event: every line it prints is UTF-8 JSON, the unknown event is shown as hex."""
    relay = Relay(board.pty)
    stop = threading.Event()

    def chatter() -> None:
        while not stop.is_set():
            for chunk in CHATTER:
                relay.inject_to_host(chunk)
                time.sleep(0.05)

    try:
        r = run_copa("device", "pair", relay.path, "--name", "lab", "--json")
        assert r.returncode == 0, r.stderr
        board.control("adc 0 321")
        noise = threading.Thread(target=chatter, daemon=True)
        noise.start()
        r = subprocess.run([sys.executable, "-m", "copa", "device", "watch", "lab", "--json", "--channels", "a0",
                            "--period", "50", "--seconds", "2.5"], capture_output=True, timeout=60)
        stop.set()
        noise.join(timeout=2)
        err = r.stderr.decode("utf-8")
        assert r.returncode == 0, err
        assert "Traceback" not in err
        lines = [json.loads(line) for line in r.stdout.decode("utf-8").splitlines()]  # strict UTF-8, all JSON
        samples = [d for d in lines if d["type"] == "sample"]
        unknown = [d for d in lines if d["type"] == "unknown"]
        assert len(samples) >= 10 and all(d["values"] == {"a0": 321} for d in samples), lines[:5]
        assert unknown and all(bytes.fromhex(d["frame"]) == bytes([UNKNOWN_KIND]) + NOT_UTF8 for d in unknown)
        r = run_copa("device", "info", "lab", "--json")  # the board is still fine afterwards
        assert r.returncode == 0 and json.loads(r.stdout)["authenticated"] is True, r.stderr
    finally:
        stop.set()
        relay.close()
