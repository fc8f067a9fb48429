"""Fixtures for the red-team suite: hostile skill files run through copa's real runner.

Every test here also runs as an unprivileged user (test_unprivileged.py re-runs this folder as
``nobody``), except those marked ``root_only``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.security.support import SECRETS, LocalServer


@pytest.fixture
def skill_dir(copa_home: Path) -> Path:
    d = copa_home / "config" / "skills"  # the user's own skills folder, inside copa's config folder
    d.mkdir(parents=True)
    return d


@pytest.fixture
def ws(copa_home: Path, monkeypatch: pytest.MonkeyPatch):
    """A real Workstation with a file secrets store holding a secret, and API keys in the environment."""
    from copa.workstation import Workstation

    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("COPA_SECRETS_BACKEND", "file")
    w = Workstation(interactive=False)
    w.paths.ensure()
    w.secrets.set("WEATHER_KEY", "w-secret-9911")
    (w.paths.config_file).write_text("# config\n")
    w.memory.add("the door code is 4711", kind="fact")
    yield w
    w.close()


@pytest.fixture
def registry(ws):
    return ws.skills


@pytest.fixture
def local_server():
    srv = LocalServer()
    yield srv
    srv.close()
