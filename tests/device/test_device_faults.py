"""Fault injection: a relay that corrupts, drops and duplicates 1 % of the bytes each way.

The quick variant (2,000 requests, ~5 s) runs in `make test`; COPA_FAULT_REQUESTS=10000 runs the full
campaign of the issue (also in benchmarks/bridge.py)."""

from __future__ import annotations

import os

from devkit.relay import Relay, fault_campaign

N = int(os.environ.get("COPA_FAULT_REQUESTS", "2000"))


def test_faulty_link_never_executes_a_wrong_command(ws, board):
    ws.devices.pair(board.link, "lab")
    board.control("adc 1 777")
    relay = Relay(board.pty, fault_rate=0.01, seed=8)
    try:
        s = ws.devices.registry.session("lab", port=relay.path, reconnect=False, timeout=2)
        s.gpio_mode(7, 1)
        s.gpio_mode(8, 1)
        s.gpio_write(8, 0)
        before = s.board_stats()
        relay.bytes = 0
        r = fault_campaign(s, N, adc_value=777)
        faults = dict(relay.faults)
        relay.fault_rate = 0.0  # the link heals
        # the faults were real and were all caught: as timeouts and re-sends, never as wrong answers
        assert sum(faults.values()) >= relay.bytes * 0.005, (faults, relay.bytes)
        assert r["wrong_answers"] == 0 and r["other_errors"] == 0, r["wrong"]
        assert r["timeouts"] > 0 and r["resent"] >= r["timeouts"] - r["failed"]
        assert r["ok"] + r["failed"] == N and r["failed"] <= N * 0.01, r
        # the session is still usable
        assert s.ping(b"after") == b"after"
        s.gpio_write(7, 0)
        after = s.board_stats()
        assert after.bad_crc + after.bad_frame > before.bad_crc + before.bad_frame  # the board saw damage
        # the board's state: only what we asked for, nothing else touched
        assert board.pin(7)[1] == 0
        duty = board.pin(3)[2]
        assert duty == r["last_duty"] or duty in r["unacked_duties"], (duty, r["last_duty"])
        for pin in range(20):
            if pin not in (3, 7, 8):
                assert board.pin(pin) == (0, 0, 0), pin  # no corrupted command reached another pin
        assert s.rules() == []
        assert board.pin(8)[:2] == (1, 0)
        s.close()
    finally:
        relay.close()
