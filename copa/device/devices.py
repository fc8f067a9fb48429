"""``Devices``: the one entry point faces use for boards (registry, sessions, tools, telemetry)."""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from copa.device.registry import DeviceRecord, DeviceRegistry

if TYPE_CHECKING:
    from copa.device.session import DeviceSession
    from copa.device.telemetry import Telemetry


class Devices:
    """Boards: the registry, shared sessions, tools and telemetry, over ``conn`` (a plain sqlite3
    connection to the database, possibly a per-thread deferral), ``secrets`` (pairing keys),
    ``memory`` (board events worth remembering) and ``config`` (device.*)."""

    def __init__(self, conn: Any, secrets: Any, memory: Any, config: Any):
        self.conn, self.secrets, self.memory, self.config = conn, secrets, memory, config
        self.registry = DeviceRegistry(conn, secrets, config)
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

    # pins: what faces (CLI, TUI, the agent's tools, the MQTT bridge) do with a board
    def read(self, name: str, channel: str) -> dict[str, Any]:
        """Read a digital pin (``d7``) or an analog channel (``a0``). When the daemon holds the port,
        answer from its latest stored reading (marked with its time and source)."""
        from copa.device.tools import parse_channel
        from copa.device.transport import PortBusy

        kind, n = parse_channel(channel)
        try:
            s = self.session(name)
        except PortBusy:
            rows = self.telemetry.readings(name, f"{kind}{n}", limit=1)
            if not rows:
                raise
            return {"device": name, "channel": f"{kind}{n}", "value": rows[0]["value"], "at": rows[0]["at"],
                    "source": "the daemon's log (the daemon holds the port)"}
        value = s.adc_read(n) if kind == "a" else s.gpio_read(n)
        out: dict[str, Any] = {"device": name, "channel": f"{kind}{n}", "value": value}
        if kind == "a" and s.hello_info:
            out["max"] = (1 << s.hello_info.adc_bits) - 1
        return out

    def write(self, name: str, pin: str, value: Any) -> dict[str, Any]:
        """Drive a digital pin high or low (made an output first); returns the level read back."""
        from copa.device.protocol import Mode
        from copa.device.tools import parse_channel, parse_level
        from copa.errors import CopaError

        kind, n = parse_channel(pin)
        if kind == "a":
            raise CopaError("analog channels are inputs", hint="write a digital pin (dN)")
        level = parse_level(value)
        s = self.session(name)
        s.gpio_mode(n, Mode.OUTPUT)
        s.gpio_write(n, level)
        return {"device": name, "pin": f"d{n}", "value": s.gpio_read(n)}

    def pwm(self, name: str, pin: str, duty: int) -> dict[str, Any]:
        """Set a PWM pin's duty cycle (0..255)."""
        from copa.device.tools import parse_channel
        from copa.errors import UsageError

        kind, n = parse_channel(pin)
        if kind == "a" or not 0 <= int(duty) <= 255:
            raise UsageError(f"bad PWM request: {pin} {duty}", hint="use a digital pin (dN) and a duty of 0..255")
        self.session(name).pwm_write(n, int(duty))
        return {"device": name, "pin": f"d{n}", "duty": int(duty)}

    @property
    def telemetry(self) -> Telemetry:
        if self._telemetry is None:
            from copa.device.telemetry import Telemetry

            self._telemetry = Telemetry(self.conn, self.config)
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
