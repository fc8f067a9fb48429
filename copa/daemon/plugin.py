"""The daemon as a plugin of copa: its doctor check (is it running, is its heartbeat fresh)."""

from __future__ import annotations

from copa.plugins import hookimpl


@hookimpl
def copa_doctor_checks() -> list:
    from copa.scheduler import check_daemon

    return [check_daemon]
