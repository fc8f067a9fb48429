"""Fixtures for the scheduler tests (helpers live in sched_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sched_helpers import DaemonProcs, Receiver


@pytest.fixture
def daemons(copa_home: Path):
    """Start real `copa daemon` processes; every one is SIGKILLed at teardown, pass or fail."""
    copa_home.mkdir(parents=True, exist_ok=True)
    d = DaemonProcs(copa_home)
    yield d
    d.kill_all()


@pytest.fixture
def receiver():
    """A real HTTP server on 127.0.0.1 recording requests."""
    r = Receiver()
    yield r
    r.close()
