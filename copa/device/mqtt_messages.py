"""What the MQTT bridge publishes and accepts: the topic tree, payloads, Home Assistant discovery,
command parsing and the approval decision. Pure functions (no paho, no threads), so every rule here
is unit-tested on its own; ``copa.device.mqtt`` moves the bytes. The tree is documented in
docs/remote.md.

Under the base topic B (``mqtt.topic``, default ``copa``):

====================================  ===========================================  ====  ========
topic                                 payload                                      QoS   retained
====================================  ===========================================  ====  ========
B/status                              ``online`` / ``offline`` (birth, last will)  1     yes
B/BOARD/availability                  ``online`` / ``offline`` (the board's link)  1     yes
B/BOARD/info                          board kind, firmware, pins, watched channels 1     yes
B/BOARD/state                         the latest sample ``{"at", "values"}``       S     yes
B/BOARD/telemetry                     every sample ``{"at", "t_ms", "values"}``    S     no
B/BOARD/event                         rule edges and link changes                  E     no
B/BOARD/cmd/USER                      a command from broker user USER (in)         1     no
B/BOARD/result                        what became of each command                  1     no
====================================  ===========================================  ====  ========

S = ``mqtt.sample_qos`` (0: a lost sample is replaced by the next), E = ``mqtt.event_qos`` (1).
A command's user is the last topic level; the broker's ACL must bind it to the login
(``pattern write B/+/cmd/%u``), which is what makes it an identity (docs/remote.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from copa.errors import CopaError

ACTIONS = ("write", "pwm", "rule_add", "rule_remove", "rule_clear")
#: the tool each command counts as for copa's approval policy (agent.approval / allow_tools / deny_tools)
TOOL_OF = {"write": "device_write", "pwm": "device_pwm", "rule_add": "device_rules_edit",
           "rule_remove": "device_rules_edit", "rule_clear": "device_rules_edit"}
MAX_COMMAND_BYTES = 1024


class Rejected(CopaError):
    """A command refused before it reached a board; ``reason`` is the counter it is counted under."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class Topics:
    base: str = "copa"
    discovery_prefix: str = "homeassistant"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    def board(self, name: str, leaf: str) -> str:
        return f"{self.base}/{name}/{leaf}"

    @property
    def commands(self) -> str:
        return f"{self.base}/+/cmd/+"

    def parse_command_topic(self, topic: str) -> tuple[str, str] | None:
        """``B/BOARD/cmd/USER`` -> (BOARD, USER); anything else None."""
        head = f"{self.base}/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head):].split("/")
        if len(parts) != 3 or parts[1] != "cmd" or not parts[0] or not parts[2]:
            return None
        return parts[0], parts[2]

    def discovery(self, component: str, device_id: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/copa_{device_id}/{object_id}/config"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def sample_payload(at: str, t_ms: int, values: dict[str, float]) -> bytes:
    return dumps({"at": at, "t_ms": t_ms, "values": values})


def state_payload(at: str, values: dict[str, float]) -> bytes:
    return dumps({"at": at, "values": values})


def info_payload(rec: Any, channels: list[str]) -> bytes:
    """A paired board as others may know it: never its key (which the record does not hold)."""
    info = rec.info or {}
    return dumps({"name": rec.name, "board": rec.board, "device_id": rec.device_id, "firmware": rec.firmware,
                  "outputs": info.get("outputs", []), "pwm": info.get("pwm", []),
                  "adc_channels": info.get("adc_channels"), "channels": channels})


@dataclass
class Discovery:
    """Home Assistant MQTT discovery: a sensor per watched analog channel, a binary sensor per
    watched digital pin, and a connectivity sensor for the board's link; all on one HA device."""

    topics: Topics
    configs: dict[str, bytes] = field(default_factory=dict)

    def for_board(self, rec: Any, channels: list[str]) -> dict[str, bytes]:
        t = self.topics
        device = {"identifiers": [f"copa_{rec.device_id}"], "name": rec.name, "manufacturer": "copa",
                  "model": rec.board, "sw_version": rec.firmware or ""}
        availability = [{"topic": t.status}, {"topic": t.board(rec.name, "availability")}]
        out: dict[str, bytes] = {}
        for ch in channels:
            analog = ch.startswith("a")
            cfg: dict[str, Any] = {
                "name": ch, "unique_id": f"copa_{rec.device_id}_{ch}", "object_id": f"{rec.name}_{ch}",
                "state_topic": t.board(rec.name, "state"), "availability": availability,
                "availability_mode": "all", "device": device,
            }
            if analog:
                cfg |= {"value_template": f"{{{{ value_json['values']['{ch}'] }}}}", "state_class": "measurement"}
            else:
                cfg |= {"value_template": f"{{{{ 'ON' if value_json['values']['{ch}'] else 'OFF' }}}}"}
            out[t.discovery("sensor" if analog else "binary_sensor", rec.device_id, ch)] = dumps(cfg)
        out[t.discovery("binary_sensor", rec.device_id, "link")] = dumps({
            "name": "link", "unique_id": f"copa_{rec.device_id}_link", "object_id": f"{rec.name}_link",
            "state_topic": t.board(rec.name, "availability"), "payload_on": "online", "payload_off": "offline",
            "device_class": "connectivity", "availability": [{"topic": t.status}], "device": device,
        })
        return out


@dataclass
class Command:
    board: str
    user: str
    action: str
    args: dict[str, Any]
    id: str | None = None

    @property
    def tool(self) -> str:
        return TOOL_OF[self.action]

    def describe(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in self.args.items())
        return f"{self.action} {args}".strip()


def parse_command(board: str, user: str, payload: bytes, *, info: dict[str, Any] | None) -> Command:
    """Check a command fully before anything is sent: JSON shape, action, pin and value ranges
    against the board's capabilities (``info``: what HELLO said, as stored at pairing)."""
    if len(payload) > MAX_COMMAND_BYTES:
        raise Rejected("malformed", f"command larger than {MAX_COMMAND_BYTES} bytes")
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise Rejected("malformed", f"not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise Rejected("malformed", "a command is a JSON object, e.g. {\"action\": \"write\", \"pin\": \"d7\", "
                       "\"value\": \"high\"}")
    action = obj.get("action")
    if action not in ACTIONS:
        raise Rejected("malformed", f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    cid = peek_id(payload)
    info = info or {}
    if action in ("write", "pwm"):
        pin = _pin(obj.get("pin"))
        allowed = info.get("pwm" if action == "pwm" else "outputs")
        if allowed is not None and pin not in allowed:
            kind = "PWM" if action == "pwm" else "output"
            raise Rejected("bad_pin", f"d{pin} is not an {kind} pin of {board} (those are: "
                           f"{', '.join(f'd{p}' for p in allowed) or 'none'})")
        if action == "write":
            return Command(board, user, action, {"pin": f"d{pin}", "value": _level(obj.get("value"))}, cid)
        duty = obj.get("duty")
        if isinstance(duty, bool) or not isinstance(duty, int | float) or not math.isfinite(duty) \
                or int(duty) != duty or not 0 <= duty <= 255:
            raise Rejected("bad_value", f"duty must be an integer 0..255, not {duty!r}")
        return Command(board, user, action, {"pin": f"d{pin}", "duty": int(duty)}, cid)
    if action == "rule_add":
        from copa.device.rules_syntax import parse_rule

        text = obj.get("rule")
        if not isinstance(text, str) or not text.strip():
            raise Rejected("malformed", "rule_add needs \"rule\": e.g. \"a0 > 612 for 5s -> d7 high\"")
        try:
            parse_rule(text)
        except CopaError as e:
            raise Rejected("bad_value", f"bad rule: {e.message}") from None
        return Command(board, user, action, {"rule": text.strip()}, cid)
    if action == "rule_remove":
        slot = obj.get("slot")
        if isinstance(slot, bool) or not isinstance(slot, int) or not 0 <= slot <= 254:
            raise Rejected("bad_value", f"slot must be an integer 0..254, not {slot!r}")
        return Command(board, user, action, {"slot": slot}, cid)
    return Command(board, user, action, {}, cid)


def peek_id(payload: bytes) -> str | None:
    """The ``id`` of a command, if it has one, whatever else is wrong with it."""
    try:
        obj = json.loads(payload) if len(payload) <= MAX_COMMAND_BYTES else None
    except (ValueError, UnicodeDecodeError):
        return None
    cid = obj.get("id") if isinstance(obj, dict) else None
    return str(cid)[:64] if cid is not None else None


def _pin(value: Any) -> int:
    text = str(value).strip().lower() if value is not None else ""
    digits = text[1:] if text.startswith("d") else text
    if not digits.isdigit() or int(digits) > 254:
        raise Rejected("bad_pin", f"not a digital pin: {value!r} (use d7 or 7)")
    return int(digits)


def _level(value: Any) -> str:
    t = str(value).strip().lower()
    if t in ("1", "high", "on", "true"):
        return "high"
    if t in ("0", "low", "off", "false"):
        return "low"
    raise Rejected("bad_value", f"not a level: {value!r} (use high/low, on/off or 1/0)")


def approval(tool: str, config: Any) -> tuple[bool, str]:
    """copa's approval policy (``copa.tools.decide``, as the agent applies it) for a dangerous call
    when nobody can be asked: allowed only by agent.approval = always or agent.allow_tools."""
    from copa.tools import ToolSpec, decide

    ok, why = decide(ToolSpec(tool, "", dangerous=True), {}, config, None)
    if not ok and why.startswith("needs approval"):
        why = f"{tool} needs approval and nobody can be asked over MQTT (add it to agent.allow_tools to let " \
              "the listed users do it)"
    return ok, why
