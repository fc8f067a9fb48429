"""Fixtures for the TUI tests: a loopback model server configured in COPA_HOME, a workstation with a
few fixed memories (fixed times, UTC, so screens are deterministic), and the app under test."""

from __future__ import annotations

import time

import pytest

from tests.agent.fake_servers import FakeModelServer


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch):
    """Local time is UTC in these tests: the screens show local times and snapshots must not move."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def fake_model():
    with FakeModelServer("openai") as srv:
        srv.configure(name="fake")
        yield srv


@pytest.fixture
def ws():
    from copa.workstation import Workstation

    w = Workstation()
    yield w
    w.close()


SEED = [
    {"text": "I live in Lisbon", "kind": "fact", "subject": "user.home_city", "occurred_at": "2024-01-10T09:00:00Z",
     "source": "chat"},
    {"text": "I moved to Porto", "kind": "fact", "subject": "user.home_city", "occurred_at": "2025-03-01T09:00:00Z",
     "source": "chat"},
    {"text": "I prefer green tea in the afternoon", "kind": "preference", "subject": "user.drink",
     "occurred_at": "2025-02-01T16:00:00Z", "source": "chat"},
    {"text": "Renew the passport before June", "kind": "task", "occurred_at": "2025-04-02T10:00:00Z",
     "source": "tui"},
    {"text": "The greenhouse board reads soil moisture every 10 minutes", "kind": "note",
     "occurred_at": "2025-04-05T08:30:00Z", "source": "device:greenhouse"},
]


@pytest.fixture
def seeded(ws):
    ids = ws.memory.add_many(SEED)
    return dict(zip([r["text"] for r in SEED], ids, strict=True))
