"""``ws.devices``: the one entry point faces use for boards (registry, sessions, tools, telemetry)."""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from copa.device.registry import DeviceRecord, DeviceRegistry

if TYPE_CHECKING:
    from copa.device.session import DeviceSession
    from copa.device.telemetry import Telemetry
    from copa.workstation import Workstation


class Devices:
    def __init__(self, ws: Workstation):
        self.ws = ws
        self.registry = DeviceRegistry(ws)
        self._sessions: dict[str, DeviceSession] = {}
        self._lock = threading.Lock()
        self._telemetry: Telemetry | None = None

    # registry
    def list(self) -> list[DeviceRecord]:
        return self.registry.list()

    def get(self, name: str) -> DeviceRecord:
        return self.registry.get(name)

    def pair(self, port: str, name: str, **kw: Any) -> DeviceRecord:
        return self.registry.pair(port, name, **kw)

    def forget(self, name: str) -> DeviceRecord:
        with self._lock:
            s = self._sessions.pop(name, None)
        if s is not None:
            s.close()
        return self.registry.forget(name)

    # sessions, shared by everything in this process (the port is exclusive)
    def session(self, name: str, **kw: Any) -> DeviceSession:
        with self._lock:
            s = self._sessions.get(name)
            if s is None or s._closed:
                s = self._sessions[name] = self.registry.session(name, **kw)
            return s

    def open_sessions(self) -> dict[str, DeviceSession]:
        with self._lock:
            return dict(self._sessions)

    @property
    def telemetry(self) -> Telemetry:
        if self._telemetry is None:
            from copa.device.telemetry import Telemetry

            self._telemetry = Telemetry(self.ws)
        return self._telemetry

    def as_tools(self) -> list:
        """Device tools for the agent (empty when no board is paired)."""
        from copa.device.tools import device_tools

        return device_tools(self) if self.registry.names() else []

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for s in sessions:
            s.close()
        if self._telemetry is not None:
            with contextlib.suppress(Exception):
                self._telemetry.flush()
