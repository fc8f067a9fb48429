"""Fixtures for skill tests: a folder of skills and a registry over it (real worker processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from copa.skills import Skills


@pytest.fixture
def skill_dir(tmp_path: Path) -> Path:
    d = tmp_path / "skills"
    d.mkdir()
    return d


@pytest.fixture
def registry(skill_dir: Path):
    reg = Skills(dirs=[("user", skill_dir)], min_interval=0)
    yield reg
    reg.close()
