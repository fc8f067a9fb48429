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
    def __init__(self, devices: Any, *, retry_max: float = 5.0, poll: float = 2.0):
        self.devices = devices  # the boards part: its registry, sessions, telemetry, memory and config
        self.retry_max = retry_max
        self.poll = poll
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started: set[str] = set()
        self._recorders = {}
        self._watch: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, DeviceSession] = {}
        self.errors: dict[str, str] = {}
        #: told of boards as they are attached, re-watched and forgotten (the MQTT bridge):
        #: ``attach(name, session, channels)``, ``channels_changed(name, channels)``, ``detach(name)``
        self.observers: list[Any] = []

    def _tell(self, method: str, *args: Any) -> None:
        for obs in list(self.observers):
            try:
                getattr(obs, method)(*args)
            except Exception:  # an observer must not stop the boards' logging
                log.exception("device observer %s failed", method)

    def start(self) -> None:
        """Start one connector thread per paired board and a registry watcher; returns at once."""
        self._stop.clear()
        self._sync()
        t = threading.Thread(target=self._watch_loop, daemon=True, name="copa-device-registry")
        t.start()
        self._threads.append(t)

    def _sync(self) -> None:
        """Boards paired since: connect them; boards forgotten: let go; new `watch --save`: apply."""
        try:
            records = {r.name: r for r in self.devices.list()}
        except Exception:  # the daemon must run even if the registry cannot be read now
            log.exception("cannot list paired boards")
            return
        for name in sorted(set(records) - self._started):
            self._started.add(name)
            t = threading.Thread(target=self._run, args=(name,), daemon=True, name=f"copa-device-{name}")
            t.start()
            self._threads.append(t)
        for name in sorted(self._started - set(records)):
            self._started.discard(name)
            s = self.sessions.pop(name, None)
            if s is not None:
                s.close()
                log.info("device %s forgotten: port released", name)
            self._tell("detach", name)
        for name, s in list(self.sessions.items()):
            watch = records[name].watch
            if watch != self._watch.get(name) and s.connected:
                self._subscribe(name, s, watch)

    def _watch_loop(self) -> None:
        while not self._stop.wait(self.poll):
            self._sync()

    def _subscribe(self, name: str, s: DeviceSession, watch: dict[str, Any]) -> None:
        labels, items = watch_items(watch)
        try:
            period = int(watch.get("period_ms") or self.devices.config.get("device.sample_period_ms"))
            s.set_subscription(period, items)
            self._watch[name] = watch
            if name in self._recorders:
                self._recorders[name].channels = labels
            self._tell("channels_changed", name, labels)
        except Exception as e:
            log.warning("could not subscribe to %s: %s", name, e)

    _recorders: dict[str, EventRecorder]

    def _run(self, name: str) -> None:
        from copa.errors import CopaError

        delay = 0.2
        while not self._stop.is_set() and name in self._started:
            try:
                s = self.devices.session(name, hello_attempts=8)
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

        rec = self.devices.get(name)
        labels, items = watch_items(rec.watch)
        try:
            texts = {e.slot: format_rule(e.rule) for e in s.rules()}
        except Exception:
            texts = {}
        recorder = EventRecorder(self.devices.memory, self.devices.telemetry, name, labels, texts)
        s.subscribe_events(recorder.on_event)
        s.add_listener(recorder.on_link)
        s.add_listener(lambda kind, info: kind == "reconnected" and self.devices.registry.touch(name))
        recorder.on_link("connected", {"port": s.port_path})
        self._recorders[name] = recorder
        if items:
            self._subscribe(name, s, rec.watch)
        self.sessions[name] = s
        self._tell("attach", name, s, labels)

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for rec in self.devices.list():
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
            remember_event(self.devices.memory, name, "logging stopped (daemon stopped)", datetime.now(UTC),
                           {"link": "stopped"})
        self.sessions.clear()
        try:
            self.devices.telemetry.flush()
        except Exception:
            log.warning("could not flush device telemetry", exc_info=True)
