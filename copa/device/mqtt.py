"""The MQTT bridge: the daemon's paired boards on a broker (Mosquitto, Home Assistant, Node-RED ...).

For each board the daemon keeps connected (``DeviceService``), samples and rule events go out under
the topic tree of ``copa.device.mqtt_messages``, with retained state, birth and last-will presence
and Home Assistant discovery. Commands come in only when ``mqtt.commands`` is on, only from the
broker users in ``mqtt.command_users`` (the broker's ACL binds the topic's user level to the login),
and only when copa's approval policy allows the action with nobody to ask.

While the broker is away (restarting, network down, login refused) the bridge reconnects with
back-off (paho's, 1 s doubling to ``mqtt.reconnect_max``) and keeps what it cannot send in a
bounded outbox: samples up to ``mqtt.queue_samples`` (the oldest dropped first), events up to
``mqtt.queue_events``; every drop is counted. Retained topics (presence, info, state, discovery)
are not queued: their latest value is published again on every connect.

The bridge's state goes to a small JSON file (``state_dir/mqtt-status.json``) that
``copa mqtt status`` and the doctor read. The password is read from the secrets store and handed
to paho only; no secret and no pairing key is ever published or logged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import socket
import ssl
import threading
from collections import OrderedDict, deque
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from copa.device.mqtt_messages import (
    Command,
    Discovery,
    Rejected,
    Topics,
    approval,
    dumps,
    info_payload,
    parse_command,
    peek_id,
    sample_payload,
    state_payload,
)
from copa.device.protocol import RuleEvent, SampleEvent
from copa.errors import CopaError

if TYPE_CHECKING:
    from copa.device.session import DeviceSession, ReceivedEvent

log = logging.getLogger("copa.mqtt")
STATUS_FILE = "mqtt-status.json"
STATUS_EVERY = 2.0  # seconds between status-file writes while something changes


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Outbox:
    """What could not be sent while the broker was away: samples and events in separate bounded
    queues, so a long outage drops the oldest samples and keeps the events (both counted)."""

    def __init__(self, max_samples: int, max_events: int):
        self.samples: deque[tuple[str, bytes, int]] = deque()
        self.events: deque[tuple[str, bytes, int]] = deque()
        self.max_samples, self.max_events = max(0, max_samples), max(1, max_events)
        self.dropped_samples = 0
        self.dropped_events = 0
        self.lock = threading.Lock()

    def put(self, kind: str, topic: str, payload: bytes, qos: int) -> None:
        with self.lock:
            q, limit = (self.samples, self.max_samples) if kind == "sample" else (self.events, self.max_events)
            q.append((topic, payload, qos))
            while len(q) > limit:
                q.popleft()
                if kind == "sample":
                    self.dropped_samples += 1
                else:
                    self.dropped_events += 1

    def drain(self) -> list[tuple[str, bytes, int]]:
        """Everything queued, events first (they matter more), each part in order."""
        with self.lock:
            out = list(self.events) + list(self.samples)
            self.events.clear()
            self.samples.clear()
            return out

    def __len__(self) -> int:
        return len(self.samples) + len(self.events)


def _qos(value: Any, key: str) -> int:
    from copa.errors import ConfigError

    if value not in (0, 1, 2):
        raise ConfigError(f"{key} must be 0, 1 or 2, not {value!r}", hint=f"copa config set {key} 1")
    return int(value)


class MqttSettings:
    """The ``mqtt.*`` keys the bridge uses, read once."""

    def __init__(self, config: Any):
        g = config.get
        self.host = g("mqtt.host")
        self.port = int(g("mqtt.port"))
        self.tls = bool(g("mqtt.tls"))
        self.ca_file = g("mqtt.ca_file")
        self.username = g("mqtt.username")
        self.password_secret = g("mqtt.password_secret")
        self.client_id = g("mqtt.client_id") or f"copa-{socket.gethostname()}"
        self.topics = Topics(g("mqtt.topic").strip("/") or "copa", g("mqtt.discovery_prefix"))
        self.discovery = bool(g("mqtt.discovery"))
        self.commands = bool(g("mqtt.commands"))
        self.command_users = list(g("mqtt.command_users"))
        self.sample_qos = _qos(g("mqtt.sample_qos"), "mqtt.sample_qos")
        self.event_qos = _qos(g("mqtt.event_qos"), "mqtt.event_qos")
        self.queue_samples = int(g("mqtt.queue_samples"))
        self.queue_events = int(g("mqtt.queue_events"))
        self.keepalive = int(g("mqtt.keepalive"))
        self.reconnect_max = int(g("mqtt.reconnect_max"))

    @property
    def broker(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def make_client(s: MqttSettings, password: str | None, *, client_id: str | None = None) -> Any:
    """A paho 2.x client (callback API v2) with login, TLS and back-off set; not yet connected."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise CopaError("the MQTT bridge needs paho-mqtt", hint="pip install 'copa[mqtt]'") from None
    # MQTT 5: its "retain as published" subscription option is what lets the bridge see (and refuse)
    # a command published with the retain flag, which would otherwise run again at every reconnect
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or s.client_id, protocol=mqtt.MQTTv5)
    if s.username:
        c.username_pw_set(s.username, password)
    if s.tls:
        c.tls_set(ca_certs=s.ca_file or None)
    c.reconnect_delay_set(min_delay=1, max_delay=max(1, s.reconnect_max))
    return c


def connect_error(reason: Any, s: MqttSettings) -> str:
    """A refused CONNACK as one line that says what to fix."""
    text = str(reason)
    if "not authori" in text.lower() or "bad user" in text.lower():
        return (f"the broker at {s.broker} refused the login as {s.username or '(anonymous)'!r} ({text}): "
                f"check mqtt.username and the secret {s.password_secret} ('copa secrets set {s.password_secret}')")
    return f"the broker at {s.broker} refused the connection: {text}"


class MqttBridge:
    """Publishes the boards of a ``DeviceService`` and runs commands for them (see the module doc).

    ``devices`` is the ``Devices`` service (records and pin writes), ``sessions`` maps a board's name
    to its live session (the device service's), ``config`` gives the mqtt.* and agent.* keys.
    """

    def __init__(self, config: Any, password: str | None, devices: Any, sessions: dict[str, DeviceSession],
                 state_dir: Path):
        self.config = config
        self.s = MqttSettings(config)
        self.password = password
        self.devices = devices
        self.sessions = sessions
        self.topics = self.s.topics
        self.status_path = state_dir / STATUS_FILE
        self.outbox = Outbox(self.s.queue_samples, self.s.queue_events)
        self.retained: dict[str, bytes] = {}  # topic -> latest retained payload (republished on connect)
        self._retained_lock = threading.Lock()
        self.channels: dict[str, list[str]] = {}
        self.stats: dict[str, Any] = {"published": {"telemetry": 0, "event": 0, "retained": 0},
                                      "commands": {"done": 0, "failed": 0}, "rejected": {},
                                      "connects": 0, "disconnects": 0}
        self._stats_lock = threading.Lock()
        self.connected = False
        self.since: str | None = None
        self.last_error: str | None = None
        self._commands: queue.Queue[Command | None] = queue.Queue(maxsize=64)
        self._seen_ids: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._stop = threading.Event()
        self._dirty = threading.Event()
        self._client: Any = None
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        c = self._client = make_client(self.s, self.password)
        c.will_set(self.topics.status, b"offline", qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_connect_fail = self._on_connect_fail
        c.connect_async(self.s.host, self.s.port, keepalive=self.s.keepalive)
        c.loop_start()  # its thread connects, reconnects with back-off, reads and writes
        for target, name in ((self._command_loop, "copa-mqtt-commands"), (self._status_loop, "copa-mqtt-status")):
            t = threading.Thread(target=target, daemon=True, name=name)
            t.start()
            self._threads.append(t)
        log.info("mqtt: bridging to %s as %s", self.s.broker, self.s.client_id)
        self._announce_paired()
        self._dirty.set()

    def _announce_paired(self) -> None:
        """Boards paired but not (yet) connected are known to subscribers too: info, discovery and
        "offline", until the device service attaches them."""
        try:
            records = self.devices.list()
        except Exception:  # the bridge runs even if the registry cannot be read now
            log.warning("mqtt: cannot list the paired boards", exc_info=True)
            return
        for rec in records:
            if rec.name not in self.channels:
                self.channels[rec.name] = list(rec.watch.get("channels", []))
                self._publish_board(rec.name)
                self._presence(rec.name, False)

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._commands.put_nowait(None)
        c = self._client
        if c is not None:
            try:
                if self.connected:  # a clean goodbye: retained "offline" (the will is for crashes)
                    for name in list(self.channels):
                        c.publish(self.topics.board(name, "availability"), b"offline", qos=1, retain=True)
                    c.publish(self.topics.status, b"offline", qos=1, retain=True).wait_for_publish(timeout)
                c.disconnect()
            except Exception:  # stopping must not fail on a dead broker
                log.debug("mqtt: goodbye failed", exc_info=True)
            c.loop_stop()
        for t in self._threads:
            t.join(timeout)
        self.connected = False
        self._write_status()

    # ------------------------------------------------------------------ boards (DeviceService observer)
    def attach(self, name: str, session: DeviceSession, channels: list[str]) -> None:
        """A board the device service now keeps connected: publish its presence, info and
        discovery, and everything it sends from now on."""
        self.channels[name] = list(channels)
        self._publish_board(name)
        self._presence(name, session.connected)
        session.subscribe_events(lambda ev, n=name: self._on_event(n, ev))
        session.add_listener(lambda kind, info, n=name: self._on_link(n, kind, info))

    def channels_changed(self, name: str, channels: list[str]) -> None:
        if self.channels.get(name) != channels:
            self.channels[name] = list(channels)
            self._publish_board(name)

    def detach(self, name: str) -> None:
        """A forgotten board: offline, and its discovery configs removed (empty retained payloads)."""
        self.channels.pop(name, None)
        self._retain(self.topics.board(name, "availability"), b"offline")
        with self._retained_lock:
            gone = [t for t in self.retained if t.startswith(f"{self.topics.base}/{name}/") and
                    not t.endswith("/availability")]
            gone += [t for t in self.retained if t.startswith(f"{self.topics.discovery_prefix}/")
                     and f'"object_id":"{name}_' in self.retained[t].decode()]
        for t in gone:
            self._retain(t, b"")

    def _publish_board(self, name: str) -> None:
        try:
            rec = self.devices.get(name)
        except CopaError:
            return
        channels = self.channels.get(name, [])
        self._retain(self.topics.board(name, "info"), info_payload(rec, channels))
        if self.s.discovery:
            for topic, payload in Discovery(self.topics).for_board(rec, channels).items():
                self._retain(topic, payload)

    def _presence(self, name: str, online: bool) -> None:
        self._retain(self.topics.board(name, "availability"), b"online" if online else b"offline")

    def _on_link(self, name: str, kind: str, info: dict[str, Any]) -> None:
        online = kind in ("connected", "reconnected")
        if kind in ("connected", "reconnected", "lost"):
            self._presence(name, online)
            self._send("event", self.topics.board(name, "event"),
                       dumps({"at": now_iso(), "type": "link", "state": kind,
                              **({"reason": info["reason"]} if "reason" in info else {})}), self.s.event_qos)

    def _on_event(self, name: str, rev: ReceivedEvent) -> None:
        ev = rev.event
        at = rev.at.isoformat(timespec="milliseconds")
        if isinstance(ev, SampleEvent):
            labels = self.channels.get(name, [])
            values = dict(zip(labels, ev.values, strict=False))
            self._retain(self.topics.board(name, "state"), state_payload(at, values), qos=self.s.sample_qos)
            self._send("sample", self.topics.board(name, "telemetry"), sample_payload(at, ev.t_ms, values),
                       self.s.sample_qos)
        elif isinstance(ev, RuleEvent):
            self._send("event", self.topics.board(name, "event"),
                       dumps({"at": at, "type": "rule", "slot": ev.slot, "fired": bool(ev.fired),
                              "value": ev.value}), self.s.event_qos)

    def _count(self, group: str, key: str | None = None) -> None:
        """Counters are bumped from paho's thread, each board's event thread and the command worker."""
        with self._stats_lock:
            if key is None:
                self.stats[group] += 1
            else:
                self.stats[group][key] = self.stats[group].get(key, 0) + 1

    # ------------------------------------------------------------------ publishing
    def _send(self, kind: str, topic: str, payload: bytes, qos: int) -> None:
        c = self._client
        if c is not None and self.connected:
            info = c.publish(topic, payload, qos=qos)
            if info.rc == 0:
                self._count("published", "telemetry" if kind == "sample" else "event")
                return
        self.outbox.put(kind, topic, payload, qos)
        self._dirty.set()

    def _retain(self, topic: str, payload: bytes, qos: int = 1) -> None:
        with self._retained_lock:
            self.retained[topic] = payload
        c = self._client
        if c is not None and self.connected and c.publish(topic, payload, qos=qos, retain=True).rc == 0:
            self._count("published", "retained")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            err = connect_error(reason, self.s)
            if err != self.last_error:
                log.warning("mqtt: %s", err)
            self.last_error = err
            self.connected = False
            self._dirty.set()
            return
        self.since = now_iso()
        self.last_error = None
        self._count("connects")
        log.info("mqtt: connected to %s", self.s.broker)
        client.publish(self.topics.status, b"online", qos=1, retain=True)  # birth
        with self._retained_lock:
            retained = list(self.retained.items())
        for topic, payload in retained:
            client.publish(topic, payload, qos=1, retain=True)
        self._flush(client)  # what waited, in order, before anything new
        self.connected = True
        self._flush(client)  # and what was queued while the first flush ran
        if self.s.commands:
            from paho.mqtt.subscribeoptions import SubscribeOptions

            client.subscribe(self.topics.commands, options=SubscribeOptions(qos=1, retainAsPublished=True))
        self._dirty.set()

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        """No TCP/TLS connection at all (paho does not say why; `copa mqtt test` does)."""
        err = (f"cannot connect to the broker at {self.s.broker} (not running, unreachable, or a TLS "
               "problem); 'copa mqtt test' says which")
        if err != self.last_error:
            log.warning("mqtt: %s; retrying", err)
        self.last_error = err
        self._dirty.set()

    def _flush(self, client: Any) -> None:
        for topic, payload, qos in self.outbox.drain():
            client.publish(topic, payload, qos=qos)
            self._count("published", "telemetry" if topic.endswith("/telemetry") else "event")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if self.connected:
            self._count("disconnects")
            log.warning("mqtt: lost the broker at %s (%s); reconnecting", self.s.broker, reason)
        self.connected = False
        self._dirty.set()

    # ------------------------------------------------------------------ commands
    def _reject(self, reason: str, board: str, user: str, message: str, cid: str | None = None) -> None:
        self._count("rejected", reason)
        log.warning("mqtt: rejected a command for %s from %s: %s", board, user, message)
        self._result(board, {"id": cid, "user": user, "ok": False, "rejected": reason, "error": message})

    def _result(self, board: str, body: dict[str, Any]) -> None:
        self._send("event", self.topics.board(board, "result"), dumps({"at": now_iso(), **body}), 1)
        self._dirty.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        """On paho's thread: checks that need no board, then the command worker does the rest."""
        where = self.topics.parse_command_topic(msg.topic)
        if where is None:
            return
        board, user = where
        cid = peek_id(msg.payload)  # so that even a refused command's result can be matched
        if msg.retain:
            self._reject("retained", board, user, "retained commands are refused (they would run again "
                         "at every reconnect): publish without the retain flag", cid)
            return
        if user not in self.s.command_users:
            self._reject("user", board, user, f"broker user {user!r} is not in mqtt.command_users", cid)
            return
        try:
            rec = self.devices.get(board)
        except CopaError:
            self._reject("unknown_board", board, user, f"no paired board named {board!r}", cid)
            return
        try:
            cmd = parse_command(board, user, msg.payload, info=rec.info)
        except Rejected as e:
            self._reject(e.reason, board, user, e.message, cid)
            return
        if cmd.id is not None:
            key = (user, cmd.id)
            if key in self._seen_ids:  # QoS 1 may deliver twice; a rule must not be added twice
                self._count("rejected", "duplicate")
                return
            self._seen_ids[key] = None
            while len(self._seen_ids) > 1024:
                self._seen_ids.popitem(last=False)
        ok, why = approval(cmd.tool, self.config)
        if not ok:
            self._reject("approval", board, user, f"{cmd.describe()}: {why}", cmd.id)
            return
        try:
            self._commands.put_nowait(cmd)
        except queue.Full:
            self._reject("busy", board, user, "too many commands waiting; try again", cmd.id)

    def _command_loop(self) -> None:
        while not self._stop.is_set():
            cmd = self._commands.get()
            if cmd is None:
                return
            s = self.sessions.get(cmd.board)
            if s is None or not s.connected:
                self._reject("offline", cmd.board, cmd.user, f"{cmd.board} is offline; nothing was sent", cmd.id)
                continue
            try:
                out = self._run(cmd, s)
            except CopaError as e:
                self._count("commands", "failed")
                log.warning("mqtt: %s from %s on %s failed: %s", cmd.describe(), cmd.user, cmd.board, e.message)
                self._result(cmd.board, {"id": cmd.id, "user": cmd.user, "ok": False, "error": e.message})
                continue
            except Exception as e:  # a bug must not stop the worker
                log.exception("mqtt: command crashed")
                self._result(cmd.board, {"id": cmd.id, "user": cmd.user, "ok": False,
                                         "error": f"internal error: {type(e).__name__}"})
                continue
            self._count("commands", "done")
            log.info("mqtt: %s on %s by %s", cmd.describe(), cmd.board, cmd.user)
            self._result(cmd.board, {"id": cmd.id, "user": cmd.user, "ok": True, "action": cmd.action, **out})

    def _run(self, cmd: Command, s: DeviceSession) -> dict[str, Any]:
        a = cmd.args
        if cmd.action == "write":
            out = self.devices.write(cmd.board, a["pin"], a["value"])
            return {"pin": out["pin"], "value": out["value"]}
        if cmd.action == "pwm":
            out = self.devices.pwm(cmd.board, a["pin"], a["duty"])
            return {"pin": out["pin"], "duty": out["duty"]}
        if cmd.action == "rule_add":
            from copa.device.rules_syntax import format_rule, parse_rule

            rule = parse_rule(a["rule"])
            return {"slot": s.rule_add(rule), "rule": format_rule(rule)}
        if cmd.action == "rule_remove":
            s.rule_del(a["slot"])
            return {"slot": a["slot"]}
        s.rule_clear()
        return {}

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        with self._stats_lock:
            stats = json.loads(json.dumps(self.stats))  # a deep copy, taken while no counter moves
        return {"enabled": True, "broker": self.s.broker, "client_id": self.s.client_id,
                "username": self.s.username, "connected": self.connected, "since": self.since,
                "error": self.last_error, "boards": sorted(self.channels), "queued": len(self.outbox),
                "dropped": {"samples": self.outbox.dropped_samples, "events": self.outbox.dropped_events},
                "commands_enabled": self.s.commands, "command_users": self.s.command_users,
                **stats, "pid": os.getpid(), "updated_at": now_iso()}

    def _write_status(self) -> None:
        from copa.paths import atomic_write

        try:
            atomic_write(self.status_path, json.dumps(self.status(), indent=1).encode(), mode=0o600)
        except OSError:
            log.debug("mqtt: could not write %s", self.status_path, exc_info=True)

    def _status_loop(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait(STATUS_EVERY * 5)  # at least every 10 s: the file's age says the bridge is alive
            self._dirty.clear()
            self._write_status()
            self._stop.wait(STATUS_EVERY)


def read_status(state_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((state_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None


def bridge_for(config: Any, secrets: Any, devices: Any, sessions: dict[str, DeviceSession],
               state_dir: Path) -> MqttBridge | None:
    """The daemon's bridge when ``mqtt.enabled``; None when off. Raises CopaError when it cannot be
    built (paho-mqtt missing)."""
    if not config.get("mqtt.enabled"):
        return None
    name = config.get("mqtt.password_secret")
    password = secrets.resolve(name) if config.get("mqtt.username") and name else None
    return MqttBridge(config, password, devices, sessions, state_dir)


def probe(config: Any, secrets: Any, timeout: float = 5.0) -> tuple[bool, str]:
    """Connect once with the configured login (``copa mqtt test``, the doctor): (ok, one line)."""
    s = MqttSettings(config)
    name = s.password_secret
    password = secrets.resolve(name) if s.username and name else None
    c = make_client(s, password, client_id=f"{s.client_id}-probe-{os.getpid()}")
    done = threading.Event()
    result: dict[str, Any] = {}

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        result["reason"] = reason
        done.set()

    c.on_connect = on_connect
    try:
        c.connect(s.host, s.port, keepalive=10)
    except ssl.SSLCertVerificationError as e:
        return False, (f"the broker at {s.broker} has a certificate copa does not trust ({e.verify_message}): "
                       "set mqtt.ca_file to the CA that signed it")
    except ssl.SSLError as e:
        return False, f"TLS with the broker at {s.broker} failed ({e.reason}): is that port TLS (mqtt.tls)?"
    except (OSError, ValueError) as e:
        return False, f"cannot reach the broker at {s.broker}: {e}"
    c.loop_start()
    try:
        if not done.wait(timeout):
            return False, f"the broker at {s.broker} did not answer within {timeout:.0f} s"
        reason = result["reason"]
        if reason.is_failure:
            return False, connect_error(reason, s)
        return True, f"logged in to {s.broker} as {s.username or '(anonymous)'}"
    finally:
        with contextlib.suppress(Exception):
            c.disconnect()
        c.loop_stop()


STALE_STATUS = 30.0  # seconds: the bridge rewrites its status file at least every 10


def bridge_status(config: Any, state_dir: Path) -> dict[str, Any]:
    """What ``copa mqtt status`` and the doctor say: the daemon's last word on its bridge, and
    whether that word is current (the daemon alive, the file fresh)."""
    if not config.get("mqtt.enabled"):
        return {"enabled": False, "state": "off"}
    st = read_status(state_dir)
    if st is None:
        return {"enabled": True, "state": "not running",
                "error": "the bridge runs in the daemon, which has not published a status yet"}
    age = (datetime.now(UTC) - datetime.fromisoformat(st["updated_at"])).total_seconds()
    alive = _pid_alive(int(st.get("pid") or 0))
    st["age_s"] = round(age, 1)
    if not alive or age > STALE_STATUS:
        st["state"] = "not running"
        st["connected"] = False
        st["error"] = "the daemon is not running (its last bridge status is from " + st["updated_at"] + ")"
    else:
        st["state"] = "connected" if st["connected"] else "disconnected"
    return st


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
