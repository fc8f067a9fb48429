"""Boards as a plugin of copa: the device.* keys, the registry's tables, the toolchain and board checks."""

from __future__ import annotations

from typing import Any

from copa.config import Key
from copa.plugins import hookimpl


@hookimpl
def copa_config_keys() -> dict[str, Any]:
    return {
        "device.timeout": Key(float, 2.0, "Seconds to wait for a board's answer before a retry"),
        "device.baudrate": Key(int, 115200, "Serial speed of copa boards"),
        "device.hello_timeout": Key(float, 3.0, "Seconds to wait for HELLO after opening a port (an Uno resets)"),
        "device.extra_ports": Key(list, [], "Ports or pyserial URLs 'copa device scan' probes besides USB ones"),
        "device.sample_period_ms": Key(int, 1000, "How often a watched board samples its channels"),
        "device.telemetry_interval": Key(float, 10.0, "Seconds per stored reading (samples are averaged)"),
        "device.telemetry_retention_days": Key(int, 30, "Readings older than this are deleted"),
        "device.telemetry_max_rows": Key(int, 500_000, "Most readings kept (oldest deleted first)"),
        # the daemon's MQTT bridge (copa/device/mqtt.py; docs/remote.md)
        "mqtt.enabled": Key(bool, False, "Publish the daemon's boards on an MQTT broker (needs copa[mqtt])"),
        "mqtt.host": Key(str, "localhost", "The broker's host name or address"),
        "mqtt.port": Key(int, 1883, "The broker's port (8883 is the usual one with TLS)"),
        "mqtt.tls": Key(bool, False, "Connect with TLS (the server's certificate is verified)"),
        "mqtt.ca_file": Key(str, "", "CA bundle to verify the broker; empty = the system's"),
        "mqtt.username": Key(str, "", "Broker login; empty = anonymous"),
        "mqtt.password_secret": Key(str, "MQTT_PASSWORD", "Name of the secret holding the broker password"),
        "mqtt.client_id": Key(str, "", "MQTT client id; empty = copa-HOSTNAME"),
        "mqtt.topic": Key(str, "copa", "Base of copa's topic tree (BASE/BOARD/telemetry, ...)"),
        "mqtt.discovery": Key(bool, True, "Publish Home Assistant MQTT discovery configs"),
        "mqtt.discovery_prefix": Key(str, "homeassistant", "Home Assistant's discovery prefix"),
        "mqtt.commands": Key(bool, False, "Accept commands on BASE/BOARD/cmd/USER (pin writes, PWM, rules)"),
        "mqtt.command_users": Key(list, [], "Broker users whose commands are accepted (the ACL binds USER)"),
        "mqtt.sample_qos": Key(int, 0, "QoS of samples and retained state (0, 1 or 2)"),
        "mqtt.event_qos": Key(int, 1, "QoS of rule and link events and command results (0, 1 or 2)"),
        "mqtt.queue_samples": Key(int, 1000, "Samples kept while the broker is away (oldest dropped first)"),
        "mqtt.queue_events": Key(int, 10_000, "Events kept while the broker is away"),
        "mqtt.keepalive": Key(int, 30, "Seconds between keep-alives; the broker declares us gone after 1.5x"),
        "mqtt.reconnect_max": Key(int, 60, "Longest wait between reconnection attempts, in seconds"),
    }


@hookimpl
def copa_migrations() -> list:
    from copa.device.migrations import MIGRATIONS

    return MIGRATIONS


@hookimpl
def copa_doctor_checks() -> list:
    from copa.device.checks import check_devices, check_mqtt, check_toolchains

    return [check_toolchains, check_devices, check_mqtt]
