"""``DeviceService``: what the daemon runs to keep paired boards connected and logging.

For every paired board it opens a reconnecting session (retrying in the background while the board
is absent, so the daemon's start never waits on a cable), subscribes to the channels saved with
``copa device watch NAME --save`` (``devices.watch``), writes readings to ``device_readings`` and turns
rule edges and link changes into memories of kind "event".
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from copa.device.protocol import Cmd, Rule
from copa.device.telemetry import EventRecorder, remember_event

if TYPE_CHECKING:
    from copa.device.session import DeviceSession
    from copa.workstation import Workstation

log = logging.getLogger("copa.device")


def watch_items(watch: dict[str, Any]) -> tuple[list[str], list[tuple[int, int]]]:
    from copa.device.tools import parse_channel

    labels, items = [], []
    for ch in watch.get("channels", []):
        kind, n = parse_channel(ch)
        labels.append(f"{kind}{n}")
        items.append((Rule.ADC if kind == "a" else Rule.PIN, n))
    return labels, items


class DeviceService:
    def __init__(self, ws: Workstation, *, retry_max: float = 5.0):
        self.ws = ws
        self.retry_max = retry_max
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.sessions: dict[str, DeviceSession] = {}
        self.errors: dict[str, str] = {}

    def start(self) -> None:
        """Start one connector thread per paired board; returns at once."""
        self._stop.clear()
        try:
            records = self.ws.devices.list()
        except Exception:  # the daemon must start even if the registry cannot be read
            log.exception("cannot list paired boards")
            return
        for rec in records:
            t = threading.Thread(target=self._run, args=(rec.name,), daemon=True, name=f"copa-device-{rec.name}")
            t.start()
            self._threads.append(t)

    def _run(self, name: str) -> None:
        from copa.errors import CopaError

        delay = 0.2
        while not self._stop.is_set():
            try:
                s = self.ws.devices.session(name, hello_attempts=8)
            except CopaError as e:
                if self.errors.get(name) != e.message:
                    log.info("device %s not reachable yet: %s", name, e.message)
                self.errors[name] = e.message
                self._stop.wait(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            self.errors.pop(name, None)
            self._attach(name, s)
            return

    def _attach(self, name: str, s: DeviceSession) -> None:
        from copa.device.rules_syntax import format_rule

        rec = self.ws.devices.get(name)
        labels, items = watch_items(rec.watch)
        try:
            texts = {e.slot: format_rule(e.rule) for e in s.rules()}
        except Exception:
            texts = {}
        recorder = EventRecorder(self.ws, self.ws.devices.telemetry, name, labels, texts)
        s.subscribe_events(recorder.on_event)
        s.add_listener(recorder.on_link)
        s.add_listener(lambda kind, info: kind == "reconnected" and self.ws.devices.registry.touch(name))
        recorder.on_link("connected", {"port": s.port_path})
        if items:
            try:
                s.set_subscription(int(rec.watch.get("period_ms") or self.ws.config.get("device.sample_period_ms")),
                                   items)
            except Exception as e:
                log.warning("could not subscribe to %s: %s", name, e)
        self.sessions[name] = s

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for rec in self.ws.devices.list():
            s = self.sessions.get(rec.name)
            out[rec.name] = {"connected": bool(s and s.connected), "error": self.errors.get(rec.name),
                             "stats": dict(s.stats) if s else {}}
        return out

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        for name, s in list(self.sessions.items()):
            if s.connected:
                with contextlib.suppress(Exception):  # quickly: a dead board must not hold the daemon
                    s.request(Cmd.SUBSCRIBE, b"\x00\x00", timeout=0.5, retries=0)
            s.close()
            remember_event(self.ws, name, "logging stopped (daemon stopped)", datetime.now(UTC), {"link": "stopped"})
        self.sessions.clear()
        try:
            self.ws.devices.telemetry.flush()
        except Exception:
            log.warning("could not flush device telemetry", exc_info=True)
