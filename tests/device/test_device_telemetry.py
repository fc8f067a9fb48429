"""Telemetry (real SQLite) and the DeviceService: readings logged, events remembered."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from copa.device.protocol import SampleEvent
from copa.device.service import DeviceService
from copa.device.telemetry import Telemetry


def test_downsampling_retention_and_cap(ws):
    t = Telemetry(ws.conn, ws.config, interval=10, retention_days=7, max_rows=50)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(100):  # 100 samples at 1 Hz over two channels -> 10 rows each (10 s buckets)
        t.add_samples("lab", ["a0", "d2"], SampleEvent(i * 1000, (i, i % 2)), t0 + timedelta(seconds=i))
    t.flush()
    rows = list(ws.db.query("SELECT * FROM device_readings WHERE channel = 'a0' ORDER BY at"))
    assert len(rows) == 10
    assert rows[0]["value"] == sum(range(10)) / 10 and rows[0]["at"] == t0.isoformat()
    assert rows[-1]["value"] == sum(range(90, 100)) / 10
    assert [r["value"] for r in ws.db.query("SELECT value FROM device_readings WHERE channel = 'd2'")] == [0.5] * 10
    # retention: rows older than 7 days before "now" go
    assert t.prune(now=t0 + timedelta(days=7, seconds=45)) == 2 * 5
    assert ws.db.execute("SELECT COUNT(*) FROM device_readings").fetchone()[0] == 10
    # the cap keeps the newest rows
    for i in range(60):
        t.add("lab", "a1", 1.0, t0 + timedelta(days=8, seconds=10 * i))
    t.flush()
    t.prune(now=t0 + timedelta(days=8))
    assert ws.db.execute("SELECT COUNT(*) FROM device_readings").fetchone()[0] == 50
    newest = ws.db.execute("SELECT MAX(at) FROM device_readings").fetchone()[0]
    assert newest == (t0 + timedelta(days=8, seconds=590)).isoformat()


def _wait(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_service_logs_readings_and_remembers_events(ws, board, monkeypatch):
    monkeypatch.setenv("COPA_DEVICE_TELEMETRY_INTERVAL", "0.1")
    ws.devices.pair(board.link, "greenhouse")
    ws.devices.registry.set_watch("greenhouse", {"channels": ["a0"], "period_ms": 20})
    s = ws.devices.registry.session("greenhouse", reconnect=False)
    from copa.device.rules_syntax import parse_rule

    board.control("adc 0 300")
    s.rule_add(parse_rule("a0 > 612 for 100ms -> d7 high, notify; clear < 590"))
    s.close()

    svc = DeviceService(ws.devices)
    svc.start()
    try:
        assert _wait(lambda: "greenhouse" in svc.sessions)
        assert _wait(lambda: ws.db.execute("SELECT COUNT(*) FROM device_readings").fetchone()[0] >= 3)
        board.control("adc 0 700")
        assert _wait(lambda: any("fired" in h.text for h in ws.memory.search("greenhouse rule fired",
                                                                              kinds=["event"])))
        board.control("adc 0 500")
        ok = _wait(lambda: any("cleared" in h.text for h in ws.memory.search("greenhouse rule cleared",
                                                                              kinds=["event"])))
        assert ok, [(h.text, h.kind) for h in ws.memory.search("greenhouse", kinds=["event"], limit=50)]
        board.kill()
        assert _wait(lambda: any("lost" in h.text for h in ws.memory.search("greenhouse connection lost",
                                                                             kinds=["event"])))
        board.start()
        assert _wait(lambda: any("reconnected" in h.text for h in ws.memory.search("greenhouse reconnected",
                                                                                    kinds=["event"])))
        assert svc.status()["greenhouse"]["connected"]
    finally:
        svc.stop()
    values = [r["value"] for r in ws.db.query("SELECT value FROM device_readings WHERE device = 'greenhouse'")]
    assert any(v == 300 for v in values) and any(v >= 500 for v in values)
    hits = ws.memory.search("greenhouse rule fired", kinds=["event"])
    fired = [h for h in hits if "fired" in h.text][0]
    assert fired.source == "device:greenhouse" and fired.kind == "event"
    assert "a0 > 612 for 100ms -> d7 high, notify; clear < 590" in fired.text and "700" in fired.text
    assert fired.metadata["value"] == 700


def test_service_waits_for_an_absent_board(ws, board):
    ws.devices.pair(board.link, "lab")
    board.kill()
    svc = DeviceService(ws.devices, retry_max=0.3)
    t0 = time.monotonic()
    svc.start()
    assert time.monotonic() - t0 < 0.5  # starting never waits on a cable
    try:
        assert _wait(lambda: svc.status()["lab"]["error"] is not None)
        board.start()
        assert _wait(lambda: svc.status()["lab"]["connected"], timeout=8)
    finally:
        svc.stop()


def test_service_follows_the_registry(ws, board, tmp_path, monkeypatch):
    """Boards paired, re-watched or forgotten while the daemon runs are picked up without a restart."""
    from device_helpers import Board, ensure_built

    from copa.device.transport import open_port

    monkeypatch.setenv("COPA_DEVICE_TELEMETRY_INTERVAL", "0.1")
    ensure_built("host")
    (tmp_path / "second").mkdir()
    other = Board("host", tmp_path / "second")
    try:
        ws.devices.pair(board.link, "lab")
        svc = DeviceService(ws.devices, poll=0.2)
        svc.start()
        try:
            assert _wait(lambda: "lab" in svc.sessions)
            ws.devices.pair(other.link, "attic")  # paired while the service runs
            assert _wait(lambda: svc.status().get("attic", {}).get("connected"))
            other.control("adc 4 444")
            ws.devices.registry.set_watch("attic", {"channels": ["a4"], "period_ms": 20})
            assert _wait(lambda: ws.db.execute(
                "SELECT COUNT(*) FROM device_readings WHERE device = 'attic' AND channel = 'a4' AND value = 444"
            ).fetchone()[0] > 0)
            ws.devices.registry.forget("lab")  # as `copa device forget` in another process does
            assert _wait(lambda: "lab" not in svc.sessions)
            p = open_port(board.link)  # the port was let go
            p.close()
        finally:
            svc.stop()
    finally:
        other.kill()
