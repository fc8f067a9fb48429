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
  subscription delivers (``SampleEvent``, ``RuleEvent``), ``format_rule`` and ``parse_rule`` (a rule
  as `copa device rules` prints and reads it).
- finding and flashing boards: ``list_ports``, ``probe_port`` (HELLO on one port), ``board_spec``,
  ``flash_board``.
- the parts the daemon runs: ``DeviceService`` (paired boards kept connected and logging) and the
  MQTT bridge (``mqtt_bridge_for``, ``mqtt_bridge_status``, ``probe_broker``).

The rest (codec, protocol, transport, registry, service, telemetry, ...) is private to the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from copa.exports import lazy

if TYPE_CHECKING:
    from copa.device.devices import Devices
    from copa.device.flash import board_spec
    from copa.device.flash import flash as flash_board
    from copa.device.mqtt import bridge_for as mqtt_bridge_for
    from copa.device.mqtt import bridge_status as mqtt_bridge_status
    from copa.device.mqtt import probe as probe_broker
    from copa.device.protocol import DeviceError, ProtocolError, Rule, RuleEvent, SampleEvent
    from copa.device.registry import DeviceRecord
    from copa.device.rules_syntax import format_rule, parse_rule
    from copa.device.scan import list_ports
    from copa.device.scan import probe as probe_port
    from copa.device.service import DeviceService
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
    "parse_rule": "copa.device.rules_syntax",
    "list_ports": "copa.device.scan",
    "probe_port": "copa.device.scan:probe",
    "board_spec": "copa.device.flash",
    # not "flash": that is the submodule's name, which importing it binds on the package
    "flash_board": "copa.device.flash:flash",
    "DeviceService": "copa.device.service",
    "mqtt_bridge_for": "copa.device.mqtt:bridge_for",
    "mqtt_bridge_status": "copa.device.mqtt:bridge_status",
    "probe_broker": "copa.device.mqtt:probe",
}

__all__ = ["DeviceError", "DeviceRecord", "DeviceService", "DeviceSession", "DeviceUnavailable", "Devices",
           "NoAnswer", "PortBusy", "ProtocolError", "RequestTimeout", "Rule", "RuleEvent", "SampleEvent",
           "board_spec", "flash_board", "format_rule", "list_ports", "mqtt_bridge_for", "mqtt_bridge_status",
           "parse_channel", "parse_rule", "probe_broker", "probe_port"]


__getattr__ = lazy(__name__, _EXPORTS)
