"""copa.device: boards running copa firmware, reached over serial (see docs/devices.md, docs/protocol.md).

The public API, imported lazily (``copa device --help`` must not pay for pyserial or the session
machinery):

- ``Devices``: the service faces use: pairing, sessions, ``read``/``write``/``pwm``, telemetry.
- ``DeviceSession``: one long-lived, reconnecting, authenticated session with a board.
- ``DeviceRecord``: a paired board as stored.
- errors: ``NoAnswer`` (and its kinds ``DeviceUnavailable``, ``RequestTimeout``), ``DeviceError``
  (the board refused), ``ProtocolError``, ``PortBusy``.
- ``parse_channel``: "a0" / "d7" / "7" as the CLI and tools accept them.
- what a live view reads: ``Rule`` (its channel kinds ``Rule.ADC``/``Rule.PIN``), the events a
  subscription delivers (``SampleEvent``, ``RuleEvent``) and ``format_rule`` (a rule as `copa device
  rules` prints it).

The rest (codec, protocol, transport, registry, service, telemetry, ...) is private to the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from copa.device.devices import Devices
    from copa.device.protocol import DeviceError, ProtocolError, Rule, RuleEvent, SampleEvent
    from copa.device.registry import DeviceRecord
    from copa.device.rules_syntax import format_rule
    from copa.device.session import DeviceSession, DeviceUnavailable, NoAnswer, RequestTimeout
    from copa.device.tools import parse_channel
    from copa.device.transport import PortBusy

_EXPORTS = {
    "Devices": "copa.device.devices",
    "DeviceSession": "copa.device.session",
    "DeviceRecord": "copa.device.registry",
    "NoAnswer": "copa.device.session",
    "DeviceUnavailable": "copa.device.session",
    "RequestTimeout": "copa.device.session",
    "DeviceError": "copa.device.protocol",
    "ProtocolError": "copa.device.protocol",
    "PortBusy": "copa.device.transport",
    "parse_channel": "copa.device.tools",
    "Rule": "copa.device.protocol",
    "RuleEvent": "copa.device.protocol",
    "SampleEvent": "copa.device.protocol",
    "format_rule": "copa.device.rules_syntax",
}

__all__ = ["DeviceError", "DeviceRecord", "DeviceSession", "DeviceUnavailable", "Devices", "NoAnswer", "PortBusy",
           "ProtocolError", "RequestTimeout", "Rule", "RuleEvent", "SampleEvent", "format_rule", "parse_channel"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'copa.device' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value
