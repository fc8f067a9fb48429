"""The daemon's MQTT bridge against a real Mosquitto on 127.0.0.1 (password file + ACL): a test
subscriber sees telemetry, events, presence and discovery; commands published with the real
mosquitto_pub by an allowed and a disallowed user; the broker restarted mid-stream and a refused
login, with copa recovering or saying why on its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from devkit.servers import Mosquitto, missing

from copa.device.mqtt import Outbox
from copa.device.mqtt_messages import Discovery, Rejected, Topics, approval, parse_command

needs_broker = pytest.mark.skipif(bool(missing("mosquitto", "mosquitto_pub", "mosquitto_passwd")),
                                  reason="mosquitto / mosquitto-clients are not installed (tests/apt-packages.txt)")
PASSWORDS = {"copa": "copa-broker-pw", "alice": "alice-pw", "mallory": "mallory-pw", "watcher": "watcher-pw"}
# pattern lines bind the last level of a command topic to the login: a user can only speak as herself
ACL = """pattern write copa/+/cmd/%u
pattern read copa/+/result

user copa
topic readwrite copa/#
topic readwrite homeassistant/#

user watcher
topic read #
"""


# ---------------------------------------------------------------- pure logic

def test_parse_command_checks_everything_before_a_board_sees_it():
    info = {"outputs": [2, 3, 7, 8], "pwm": [3], "adc_channels": 6}
    c = parse_command("lab", "alice", b'{"action":"write","pin":"d7","value":"on","id":"x1"}', info=info)
    assert (c.action, c.args, c.id, c.tool) == ("write", {"pin": "d7", "value": "high"}, "x1", "device_write")
    assert parse_command("lab", "alice", b'{"action":"pwm","pin":3,"duty":128}', info=info).args == \
        {"pin": "d3", "duty": 128}
    bad = {
        b"not json": "malformed", b"[1,2]": "malformed", b'{"action":"explode"}': "malformed",
        b'{"action":"write","pin":"d99","value":"high"}': "bad_pin",
        b'{"action":"write","pin":"a0","value":"high"}': "bad_pin",
        b'{"action":"write","pin":"d7","value":"maybe"}': "bad_value",
        b'{"action":"pwm","pin":"d7","duty":10}': "bad_pin",  # not a PWM pin
        b'{"action":"pwm","pin":"d3","duty":300}': "bad_value",
        b'{"action":"pwm","pin":"d3","duty":1.5}': "bad_value",
        b'{"action":"pwm","pin":"d3","duty":true}': "bad_value",
        b'{"action":"rule_add","rule":"a0 >> 5"}': "bad_value",
        b'{"action":"rule_remove","slot":-1}': "bad_value",
        b"{" + b" " * 2000 + b"}": "malformed",
    }
    for payload, reason in bad.items():
        with pytest.raises(Rejected) as e:
            parse_command("lab", "alice", payload, info=info)
        assert e.value.reason == reason, (payload, e.value.message)
        assert "\n" not in e.value.message


def test_approval_follows_the_agent_policy_with_nobody_to_ask():
    def cfg(**kw):
        values = {"agent.deny_tools": [], "agent.allow_tools": [], "agent.approval": "ask", **kw}
        return SimpleNamespace(get=values.__getitem__)

    assert approval("device_write", cfg())[0] is False  # "ask", and nobody can be asked
    assert "nobody can be asked over MQTT" in approval("device_write", cfg())[1]
    assert approval("device_write", cfg(**{"agent.allow_tools": ["device_write"]}))[0] is True
    assert approval("device_write", cfg(**{"agent.approval": "always"}))[0] is True
    assert approval("device_write", cfg(**{"agent.approval": "always", "agent.deny_tools": ["device_write"]}))[0] \
        is False
    assert approval("device_pwm", cfg(**{"agent.approval": "never"}))[0] is False


def test_outbox_drops_oldest_samples_first_and_keeps_events():
    box = Outbox(max_samples=3, max_events=100)
    for i in range(10):
        box.put("sample", "t", bytes([i]), 0)
    for i in range(5):
        box.put("event", "e", bytes([i]), 1)
    assert box.dropped_samples == 7 and box.dropped_events == 0
    out = box.drain()
    assert [p for t, p, q in out if t == "e"] == [bytes([i]) for i in range(5)]  # every event, in order
    assert [p for t, p, q in out if t == "t"] == [bytes([7]), bytes([8]), bytes([9])]  # the newest samples
    assert len(box) == 0


def test_discovery_configs():
    rec = SimpleNamespace(name="lab", device_id="00aa", board="host", firmware="1.0")
    cfgs = Discovery(Topics()).for_board(rec, ["a0", "d2"])
    a0 = json.loads(cfgs["homeassistant/sensor/copa_00aa/a0/config"])
    assert a0["state_topic"] == "copa/lab/state" and a0["unique_id"] == "copa_00aa_a0"
    assert a0["availability"] == [{"topic": "copa/status"}, {"topic": "copa/lab/availability"}]
    assert "binary_sensor" in "".join(cfgs) and "homeassistant/binary_sensor/copa_00aa/link/config" in cfgs


# ---------------------------------------------------------------- the real daemon, the real broker

class Watcher:
    """A paho subscriber on '#' as broker user 'watcher' (read-only), keeping every message."""

    def __init__(self, port: int):
        import paho.mqtt.client as mqtt

        self.msgs: list[tuple[float, str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"watcher-{os.getpid()}")
        self.c.username_pw_set("watcher", PASSWORDS["watcher"])
        self.c.reconnect_delay_set(0.2, 1)
        self.c.on_connect = lambda c, *a: c.subscribe("#", qos=1)
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.msgs.append((time.monotonic(), msg.topic, msg.payload, bool(msg.retain)))

    def on(self, topic: str, since: float = 0.0) -> list[bytes]:
        with self.lock:
            return [p for t0, t, p, _ in self.msgs if t == topic and t0 >= since]

    def wait(self, topic: str, pred=lambda p: True, timeout: float = 20.0, since: float = 0.0) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self.on(topic, since):
                if pred(p):
                    return p
            time.sleep(0.02)
        raise AssertionError(f"nothing on {topic} matched in {timeout} s; saw {sorted({m[1] for m in self.msgs})}")

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _pub(port: int, user: str, topic: str, payload: str, *extra: str) -> None:
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-u", user, "-P", PASSWORDS[user],
                    "-q", "1", "-t", topic, "-m", payload, *extra], check=True, timeout=10)


def _result(w: Watcher, cid: str, since: float = 0.0) -> dict:
    return json.loads(w.wait("copa/lab/result", lambda p: json.loads(p).get("id") == cid, since=since))


@needs_broker
def test_daemon_bridges_boards_to_mosquitto(run_copa, board, copa_home, tmp_path: Path):
    broker = Mosquitto(tmp_path, PASSWORDS, ACL)
    w = Watcher(broker.port)
    rec = json.loads(run_copa("device", "pair", board.link, "--name", "lab", "--json").stdout)
    board.control("adc 0 700")
    assert run_copa("device", "watch", "lab", "--save", "-c", "a0,d2", "--period", "50", "--count", "1").returncode == 0
    r = run_copa("secrets", "set", "MQTT_PASSWORD", input=PASSWORDS["copa"] + "\n")
    assert r.returncode == 0, r.stderr
    env = {**os.environ, "COPA_MQTT_ENABLED": "true", "COPA_MQTT_HOST": "127.0.0.1",
           "COPA_MQTT_PORT": str(broker.port), "COPA_MQTT_USERNAME": "copa", "COPA_MQTT_COMMANDS": "true",
           "COPA_MQTT_COMMAND_USERS": "alice", "COPA_MQTT_QUEUE_SAMPLES": "10", "COPA_MQTT_RECONNECT_MAX": "1",
           "COPA_AGENT_ALLOW_TOOLS": "device_write,device_rules_edit", "COPA_SCHEDULER_POLL_INTERVAL": "0.2"}
    log = open(copa_home / "daemon.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "copa", "daemon"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        # presence (birth), board availability, info, discovery, retained state, telemetry
        w.wait("copa/status", lambda p: p == b"online")
        w.wait("copa/lab/availability", lambda p: p == b"online")
        info = json.loads(w.wait("copa/lab/info"))
        assert info["device_id"] == rec["device_id"] and info["channels"] == ["a0", "d2"]
        a0 = json.loads(w.wait(f"homeassistant/sensor/copa_{rec['device_id']}/a0/config"))
        assert a0["state_topic"] == "copa/lab/state"
        w.wait(f"homeassistant/binary_sensor/copa_{rec['device_id']}/d2/config")
        sample = json.loads(w.wait("copa/lab/telemetry"))
        assert sample["values"] == {"a0": 700, "d2": 0} and sample["at"]
        assert json.loads(w.wait("copa/lab/state"))["values"]["a0"] == 700

        # commands: alice (listed, allowed by the policy) adds a rule -> it fires -> an event
        _pub(broker.port, "alice", "copa/lab/cmd/alice",
             '{"id":"r1","action":"rule_add","rule":"a0 > 612 -> d7 high, notify"}')
        assert _result(w, "r1")["ok"] is True
        ev = json.loads(w.wait("copa/lab/event", lambda p: json.loads(p)["type"] == "rule"))
        assert ev["fired"] is True and ev["value"] == 700 and ev["slot"] == 0
        _pub(broker.port, "alice", "copa/lab/cmd/alice", '{"id":"w1","action":"write","pin":"d8","value":"high"}')
        assert _result(w, "w1")["value"] == 1 and board.pin(8)[1] == 1
        # ... but PWM is not in agent.allow_tools and nobody can approve it: denied, logged, counted
        _pub(broker.port, "alice", "copa/lab/cmd/alice", '{"id":"p1","action":"pwm","pin":"d3","duty":100}')
        res = _result(w, "p1")
        assert res["ok"] is False and res["rejected"] == "approval" and board.pin(3)[2] == 0
        # mallory is a broker user, not a copa one; her own topic is refused, and the ACL keeps her off alice's
        _pub(broker.port, "mallory", "copa/lab/cmd/mallory", '{"id":"m1","action":"write","pin":"d8","value":"low"}')
        assert _result(w, "m1")["rejected"] == "user"
        _pub(broker.port, "mallory", "copa/lab/cmd/alice", '{"id":"m2","action":"write","pin":"d8","value":"low"}')
        # malformed commands: each a counted rejection with a reason, nothing else stops
        for cid, body in (("b1", '{"id":"b1","action":"write","pin":"d99","value":"high"}'),
                          ("b2", '{"id":"b2","action":"write","pin":"d8","value":"sideways"}'),
                          ("b3", '{"id":"b3","action":"pwm","pin":"d3","duty":300}')):
            _pub(broker.port, "alice", "copa/lab/cmd/alice", body)
            assert _result(w, cid)["ok"] is False
        t_bad = time.monotonic()
        _pub(broker.port, "alice", "copa/lab/cmd/alice", "this is not json")
        assert "not JSON" in json.loads(w.wait("copa/lab/result", since=t_bad))["error"]
        _pub(broker.port, "alice", "copa/lab/cmd/alice", '{"id":"k1","action":"write","pin":"d8","value":"low"}', "-r")
        assert _result(w, "k1")["rejected"] == "retained"
        assert board.pin(8)[1] == 1  # none of those touched the pin
        assert not [p for p in w.on("copa/lab/result") if json.loads(p).get("id") == "m2"]  # dropped by the broker

        # the broker restarts mid-stream: samples meanwhile are queued (bounded, oldest dropped), copa reconnects
        broker.restart(down=1.5)
        t_back = time.monotonic()
        w.wait("copa/lab/telemetry", since=t_back, timeout=30)
        w.wait("copa/status", lambda p: p == b"online", since=t_back)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            r = run_copa("mqtt", "status", "--json", env=env)
            st = json.loads(r.stdout)
            if st.get("connects", 0) >= 2 and st["state"] == "connected":
                break
            time.sleep(0.3)
        assert r.returncode == 0 and st["state"] == "connected" and st["connects"] >= 2, st
        assert st["dropped"]["samples"] > 0 and st["dropped"]["events"] == 0
        assert st["rejected"]["approval"] == 1 and st["rejected"]["user"] == 1 and st["rejected"]["retained"] == 1
        assert st["rejected"]["bad_pin"] == 1 and st["rejected"]["bad_value"] == 2 and st["rejected"]["malformed"] == 1
        r = run_copa("mqtt", "status", env=env)
        assert "connected to mqtt://127.0.0.1" in r.stdout and "rejected: approval 1" in r.stdout
        doc = run_copa("doctor", "--json", env=env)
        checks = json.loads(doc.stdout)["checks"]
        assert any(c["name"] == "mqtt" and c["status"] == "ok" for c in checks), doc.stdout[-2000:]

        # the board goes away: availability offline; a command for it is refused as offline
        board.kill()
        w.wait("copa/lab/availability", lambda p: p == b"offline", since=t_back)
        _pub(broker.port, "alice", "copa/lab/cmd/alice", '{"id":"o1","action":"write","pin":"d8","value":"low"}')
        assert _result(w, "o1")["rejected"] == "offline"

        t_stop = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        w.wait("copa/status", lambda p: p == b"offline", since=t_stop)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
        w.close()
        broker.stop()
    # no secret and no pairing key ever went out, on any topic
    from copa.workstation import Workstation

    with Workstation() as ws:
        key = ws.secrets.resolve(f"copa.device.{rec['device_id']}")
    assert key and len(key) == 32
    everything = b"".join(t.encode() + p for _, t, p, _ in w.msgs)
    for secret in (key, key.upper(), PASSWORDS["copa"], bytes.fromhex(key).hex()):
        assert secret.encode() not in everything
    assert bytes.fromhex(key) not in everything
    daemon_log = (copa_home / "daemon.log").read_text()
    assert PASSWORDS["copa"] not in daemon_log and key not in daemon_log
    assert "rejected a command for lab from mallory" in daemon_log


@needs_broker
def test_a_refused_login_is_one_clear_line(run_copa, tmp_path: Path):
    broker = Mosquitto(tmp_path, PASSWORDS, ACL)
    try:
        env = {"COPA_MQTT_ENABLED": "true", "COPA_MQTT_HOST": "127.0.0.1", "COPA_MQTT_PORT": str(broker.port),
               "COPA_MQTT_USERNAME": "copa", "MQTT_PASSWORD": "wrong"}
        r = run_copa("mqtt", "test", env=env)
        assert r.returncode not in (0, 70) and r.stderr.count("\n") == 1, r.stderr
        assert "refused the login as 'copa'" in r.stderr and "MQTT_PASSWORD" in r.stderr
        r = run_copa("mqtt", "test", env={**env, "MQTT_PASSWORD": PASSWORDS["copa"]})
        assert r.returncode == 0 and "logged in to mqtt://127.0.0.1" in r.stdout, r.stderr
        port = broker.port
    finally:
        broker.stop()
    r = run_copa("mqtt", "test", env={**env, "COPA_MQTT_PORT": str(port)})
    assert r.returncode not in (0, 70) and "cannot reach the broker" in r.stderr and r.stderr.count("\n") == 1


@needs_broker
def test_the_bridge_reports_a_refused_login_and_keeps_trying(tmp_path: Path, copa_home, monkeypatch):
    """In the daemon's bridge a refused login is a status with the reason (not a crash, not a log
    line per retry), and once the password is right on the broker's side it connects by itself."""
    from copa.device.mqtt import MqttBridge
    from copa.workstation import Workstation

    broker = Mosquitto(tmp_path, PASSWORDS, ACL)
    for k, v in {"COPA_MQTT_ENABLED": "true", "COPA_MQTT_HOST": "127.0.0.1", "COPA_MQTT_PORT": str(broker.port),
                 "COPA_MQTT_USERNAME": "copa", "COPA_MQTT_RECONNECT_MAX": "1"}.items():
        monkeypatch.setenv(k, v)
    try:
        with Workstation() as ws:
            b = MqttBridge(ws.config, "wrong", ws.devices, {}, ws.paths.state_dir)
            b.start()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not b.last_error:
                time.sleep(0.05)
            assert b.last_error and "refused the login as 'copa'" in b.last_error and not b.connected
            b.password = PASSWORDS["copa"]
            b._client.username_pw_set("copa", PASSWORDS["copa"])  # as after 'copa secrets set' + restart
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not b.connected:
                time.sleep(0.05)
            assert b.connected and b.last_error is None
            b.stop()
            st = json.loads((ws.paths.state_dir / "mqtt-status.json").read_text())
            assert st["connects"] == 1 and st["connected"] is False
    finally:
        broker.stop()


def test_mqtt_help_imports_neither_paho_nor_serial():
    code = ("import sys; from copa.cli.main import main; rc = main(['mqtt', '--help']); "
            "bad = [m for m in ('paho', 'serial', 'nacl') if m in sys.modules]; "
            "print('BAD', bad) if bad else None; sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "status" in r.stdout and "test" in r.stdout


def test_status_without_a_daemon(run_copa):
    r = run_copa("mqtt", "status")
    assert r.returncode == 0 and "off" in r.stdout
    r = run_copa("mqtt", "status", "--json", env={"COPA_MQTT_ENABLED": "true"})
    assert r.returncode == 1 and json.loads(r.stdout)["state"] == "not running"


@needs_broker
def test_last_will_says_offline_when_the_daemon_dies(copa_home, tmp_path: Path):
    """SIGKILL leaves no chance for a goodbye: the broker publishes the will (retained "offline")."""
    broker = Mosquitto(tmp_path, PASSWORDS, ACL)
    w = Watcher(broker.port)
    env = {**os.environ, "COPA_MQTT_ENABLED": "true", "COPA_MQTT_HOST": "127.0.0.1",
           "COPA_MQTT_PORT": str(broker.port), "COPA_MQTT_USERNAME": "copa", "MQTT_PASSWORD": PASSWORDS["copa"]}
    proc = subprocess.Popen([sys.executable, "-m", "copa", "daemon"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        w.wait("copa/status", lambda p: p == b"online", timeout=30)
        t_kill = time.monotonic()
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        w.wait("copa/status", lambda p: p == b"offline", since=t_kill, timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        w.close()
        broker.stop()


@needs_broker
def test_tls_to_the_broker(run_copa, tmp_path: Path):
    from devkit.servers import self_signed_cert

    cert, key = self_signed_cert(tmp_path)
    broker = Mosquitto(tmp_path, PASSWORDS, ACL, tls=(cert, key))
    try:
        env = {"COPA_MQTT_HOST": "127.0.0.1", "COPA_MQTT_PORT": str(broker.port), "COPA_MQTT_USERNAME": "copa",
               "MQTT_PASSWORD": PASSWORDS["copa"], "COPA_MQTT_TLS": "true", "COPA_MQTT_CA_FILE": str(cert)}
        r = run_copa("mqtt", "test", env=env)
        assert r.returncode == 0 and f"logged in to mqtts://127.0.0.1:{broker.port} as copa" in r.stdout, r.stderr
        # the system's CAs do not know this certificate: refused, on one line, saying what to set
        r = run_copa("mqtt", "test", env={**env, "COPA_MQTT_CA_FILE": ""})
        assert r.returncode not in (0, 70) and r.stderr.count("\n") == 1, r.stderr
        assert "does not trust" in r.stderr and "mqtt.ca_file" in r.stderr
    finally:
        broker.stop()


@needs_broker
def test_the_bridge_waits_for_a_broker_that_is_not_there_yet(tmp_path: Path, copa_home, monkeypatch):
    from devkit.servers import free_port

    from copa.device.mqtt import MqttBridge
    from copa.workstation import Workstation

    port = free_port()
    for k, v in {"COPA_MQTT_ENABLED": "true", "COPA_MQTT_HOST": "127.0.0.1", "COPA_MQTT_PORT": str(port),
                 "COPA_MQTT_USERNAME": "copa", "COPA_MQTT_RECONNECT_MAX": "1"}.items():
        monkeypatch.setenv(k, v)
    with Workstation() as ws:
        b = MqttBridge(ws.config, PASSWORDS["copa"], ws.devices, {}, ws.paths.state_dir)
        b.start()
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not b.last_error:
                time.sleep(0.05)
            assert b.last_error and "cannot connect to the broker" in b.last_error
            broker = Mosquitto(tmp_path, PASSWORDS, ACL, port=port)
            try:
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and not b.connected:
                    time.sleep(0.05)
                assert b.connected and b.last_error is None
            finally:
                broker.stop()
        finally:
            b.stop()


@needs_broker
@pytest.mark.skipif(bool(missing("ser2net")), reason="ser2net is not installed")
def test_daemon_bridges_a_board_behind_ser2net_across_restarts(run_copa, board, copa_home, tmp_path: Path):
    """The whole chain: board -> ser2net (RFC 2217) -> daemon -> Mosquitto -> subscriber; ser2net
    and then the broker restart, and telemetry comes back each time with nobody's help."""
    from devkit.servers import Ser2net

    broker = Mosquitto(tmp_path, PASSWORDS, ACL)
    srv = Ser2net(board.link, tmp_path, chardelay=False)
    w = Watcher(broker.port)
    assert run_copa("device", "pair", srv.url, "--name", "lab").returncode == 0
    board.control("adc 0 321")
    assert run_copa("device", "watch", "lab", "--save", "-c", "a0", "--period", "50", "--count", "1").returncode == 0
    env = {**os.environ, "COPA_MQTT_ENABLED": "true", "COPA_MQTT_HOST": "127.0.0.1",
           "COPA_MQTT_PORT": str(broker.port), "COPA_MQTT_USERNAME": "copa", "MQTT_PASSWORD": PASSWORDS["copa"],
           "COPA_MQTT_RECONNECT_MAX": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "copa", "daemon"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert json.loads(w.wait("copa/lab/telemetry", timeout=30))["values"] == {"a0": 321}
        t0 = time.monotonic()
        srv.restart(down=0.5)
        w.wait("copa/lab/availability", lambda p: p == b"offline", since=t0)
        w.wait("copa/lab/availability", lambda p: p == b"online", since=t0)
        board.control("adc 0 654")
        w.wait("copa/lab/telemetry", lambda p: json.loads(p)["values"] == {"a0": 654}, since=t0, timeout=30)
        links = [json.loads(p)["state"] for p in w.on("copa/lab/event", t0) if json.loads(p)["type"] == "link"]
        assert links[:2] == ["lost", "reconnected"], links
        t1 = time.monotonic()
        broker.restart(down=1.0)
        w.wait("copa/lab/telemetry", since=t1 + 1.0, timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        w.close()
        srv.stop()
        broker.stop()
