"""Fixtures for skill tests: a folder of skills and a registry over it (real worker processes)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from copa.skills import Skills


@pytest.fixture
def skill_dir(tmp_path: Path) -> Path:
    d = tmp_path / "skills"
    d.mkdir()
    return d


@pytest.fixture
def write_skill(skill_dir: Path):
    def write(name: str, source: str, folder: Path | None = None) -> Path:
        path = (folder or skill_dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        return path

    return write


@pytest.fixture
def registry(skill_dir: Path):
    reg = Skills(dirs=[("user", skill_dir)], min_interval=0)
    yield reg
    reg.close()
