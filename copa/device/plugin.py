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
    }


@hookimpl
def copa_migrations() -> list:
    from copa.device.migrations import MIGRATIONS

    return MIGRATIONS


@hookimpl
def copa_doctor_checks() -> list:
    from copa.device.checks import check_devices, check_toolchains

    return [check_toolchains, check_devices]
