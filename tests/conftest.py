"""Shared fixtures: every test runs with its own COPA_HOME and no provider keys from the host."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Variables that would make a test depend on the machine it runs on.
HOST_VARIABLES = [
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
    "OLLAMA_HOST", "COPA_PASSPHRASE", "COPA_DEBUG", "EDITOR", "VISUAL",
]


@pytest.fixture(autouse=True)
def copa_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh COPA_HOME for every test (config, data, cache, state all under it)."""
    home = tmp_path / "copa-home"
    monkeypatch.setenv("COPA_HOME", str(home))
    for var in HOST_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    for var in [v for v in os.environ if v.startswith("COPA_") and v not in ("COPA_HOME", "COPA_REQUIRE_FIRMWARE",
                                                                             "COPA_REQUIRE_REAL_MODEL")]:
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def run_copa(copa_home: Path):
    """Run the real `copa` entry point in a subprocess: ``run_copa("doctor", "--json")``."""

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run([sys.executable, "-m", "copa", *args], input=input, capture_output=True,
                              text=True, env=full_env, timeout=timeout)

    return run


@pytest.fixture
def write_skill(skill_dir: Path):
    """Write a skill file (dedented) into ``skill_dir``, which each suite that uses skills defines."""

    def write(name: str, source: str, folder: Path | None = None) -> Path:
        path = (folder or skill_dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        return path

    return write
