"""Device tools for the agent (``Devices.as_tools()``): status, read, write (dangerous), rules.

"What is the temperature in the lab?" becomes ``device_read(device="lab", channel="a0")``; "turn on
the fan" becomes ``device_write(...)``, which is dangerous, so the agent asks before each call.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from copa.errors import CopaError
from copa.tools import ToolResult, ToolSpec

if TYPE_CHECKING:
    from copa.device.devices import Devices


def parse_channel(text: str) -> tuple[str, int]:
    """'a0' -> ("a", 0); 'd7', 'pin7' or '7' -> ("d", 7)."""
    t = str(text).strip().lower()
    kind = "a" if t.startswith("a") else "d"
    digits = t.lstrip("adpin")
    if not digits.isdigit() or int(digits) > 254:
        raise CopaError(f"not a pin or channel: {text!r}", hint="use a pin number or dN (digital), aN (analog)")
    return kind, int(digits)


def parse_level(value: Any) -> int:
    t = str(value).strip().lower()
    if t in ("1", "high", "on", "true"):
        return 1
    if t in ("0", "low", "off", "false"):
        return 0
    raise CopaError(f"not a level: {value!r}", hint="use high/low, on/off or 1/0")


class _DeviceTool:
    def __init__(self, devices: Devices, spec: ToolSpec, fn):
        self.devices = devices
        self.spec = spec
        self._fn = fn

    def call(self, arguments: dict[str, Any]) -> ToolResult:
        t0 = time.perf_counter()
        try:
            content = self._fn(self.devices, **arguments)
        except CopaError as e:
            kind = "timeout" if "no answer" in e.message or "not connected" in e.message else "device"
            return ToolResult(False, error=str(e), error_type=kind,
                              duration_ms=(time.perf_counter() - t0) * 1000)
        except TypeError as e:
            return ToolResult(False, error=f"bad arguments: {e}", error_type="arguments")
        return ToolResult(True, content, duration_ms=(time.perf_counter() - t0) * 1000)


def _status(d: Devices, device: str | None = None) -> Any:
    names = [device] if device else d.registry.names()
    out = []
    for name in names:
        rec = d.get(name)
        entry: dict[str, Any] = {"name": name, "board": rec.board, "port": rec.port, "last_seen": rec.last_seen}
        try:
            s = d.session(name)
            entry["connected"] = s.connected
            st = s.board_stats()
            entry["uptime_s"] = st.uptime_ms / 1000
            entry["rules"] = len(s.rules())
        except CopaError as e:
            entry["connected"] = False
            entry["error"] = e.message
        out.append(entry)
    return out


def _read(d: Devices, device: str, channel: str) -> Any:
    return d.read(device, channel)


def _write(d: Devices, device: str, pin: str, value: Any) -> Any:
    return d.write(device, pin, value)


def _rules(d: Devices, device: str) -> Any:
    from copa.device.rules_syntax import format_rule

    return [{"slot": e.slot, "rule": format_rule(e.rule), "state": ("idle", "pending", "active")[min(e.state, 2)]}
            for e in d.session(device).rules()]


def device_tools(devices: Devices) -> list[_DeviceTool]:
    names = devices.registry.names()
    dev = {"type": "string", "description": "the board's name", "enum": names}
    specs = [
        (ToolSpec("device_status", "List the paired boards (sensors and actuators over USB) and whether they answer.",
                  {"type": "object", "properties": {"device": dev}}, False, "device"), _status),
        (ToolSpec("device_read", "Read a board's input: an analog channel (a0, a1, ...: raw ADC counts) or a "
                  "digital pin (d2, d7, ...: 0 or 1).",
                  {"type": "object", "properties": {"device": dev, "channel": {"type": "string"}},
                   "required": ["device", "channel"]}, False, "device"), _read),
        (ToolSpec("device_write", "Drive a board's digital output pin high or low (switches a relay, fan, LED...).",
                  {"type": "object", "properties": {"device": dev, "pin": {"type": "string"},
                                                    "value": {"type": "string", "enum": ["high", "low"]}},
                   "required": ["device", "pin", "value"]}, True, "device"), _write),
        (ToolSpec("device_rules", "List the rules a board runs by itself (e.g. 'a0 > 612 for 5s -> d7 high').",
                  {"type": "object", "properties": {"device": dev}, "required": ["device"]}, False, "device"),
         _rules),
    ]
    return [_DeviceTool(devices, spec, fn) for spec, fn in specs]
