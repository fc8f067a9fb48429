"""Discovery: folders, import errors kept apart, live re-discovery, Agent Skills folders, the cache."""

from __future__ import annotations

import os
import time

import pytest

from copa.skills import Skills, discovery

GOOD = '''
from copa.skills import skill

@skill
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b
'''


def _names(reg):
    return {i.name: i for i in reg.list()}


def test_import_error_is_shown_and_others_work(write_skill, registry):
    write_skill("good.py", GOOD)
    write_skill("broken.py", "import no_such_module_here\n")
    write_skill("syntax.py", "def (:\n")
    write_skill("plain.py", "def helper():\n    return 1\n")
    write_skill("crashy.py", "import os\nos._exit(3)\n")
    infos = _names(registry)
    assert infos["add"].status == "ok" and registry.call("add", {"a": 2, "b": 3}).content == 5
    assert infos["broken"].status == "error" and "no_such_module_here" in infos["broken"].error
    assert "SyntaxError" in infos["syntax"].error
    assert "no @skill function" in infos["plain"].error
    assert "stopped the inspector" in infos["crashy"].error
    r = registry.call("broken")
    assert not r.ok and r.error_type == "load"


def test_hanging_import_is_bounded(write_skill, skill_dir):
    write_skill("good.py", GOOD)
    write_skill("hang.py", "import time\ntime.sleep(60)\n")
    reg = Skills(dirs=[("user", skill_dir)], min_interval=0)
    orig = discovery.inspect_files
    try:
        discovery.inspect_files = lambda paths, limits: orig(paths, limits, per_file_timeout=2)
        infos = _names(reg)
    finally:
        discovery.inspect_files = orig
        reg.close()
    assert "longer than 2 s" in infos["hang"].error and infos["add"].status == "ok"


def test_new_and_edited_files_are_picked_up_live(write_skill, registry):
    assert registry.list() == []
    path = write_skill("live.py", GOOD)
    assert registry.call("add", {"a": 1, "b": 1}).content == 2
    write_skill("live.py", GOOD.replace("a + b", "a * b + 100"))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new mtime even on coarse clocks
    assert registry.call("add", {"a": 3, "b": 3}).content == 109  # the old worker was replaced
    write_skill("other.py", GOOD.replace("def add", "def sub").replace("Add two", "Subtract two"))
    assert set(_names(registry)) == {"add", "sub"}
    path.unlink()
    assert set(_names(registry)) == {"sub"}


def test_package_folder_and_helpers(write_skill, skill_dir):
    write_skill("__init__.py", "from .impl import double\n", folder=skill_dir / "mathpkg")
    write_skill("impl.py", '''
        from copa.skills import skill
        from .consts import K

        @skill
        def double(x: float) -> float:
            """Double a number."""
            return x * K
    ''', folder=skill_dir / "mathpkg")
    write_skill("consts.py", "K = 2\n", folder=skill_dir / "mathpkg")
    reg = Skills(dirs=[("user", skill_dir)], min_interval=0)
    try:
        infos = _names(reg)
        assert infos["double"].status == "ok" and infos["double"].function == "double"
        assert reg.call("double", {"x": 2.5}).content == 5.0
    finally:
        reg.close()


def test_agent_skills_folder(write_skill, registry, skill_dir):
    write_skill("SKILL.md", """\
        ---
        name: release-notes
        description: Write release notes from a git log. Use when asked for a changelog.
        ---
        # Release notes
        1. Run `git log --oneline` since the last tag.
        2. Group the commits by area.
    """, folder=skill_dir / "release-notes")
    write_skill("collect.sh", "git log --oneline\n", folder=skill_dir / "release-notes" / "scripts")
    write_skill("SKILL.md", "no front matter\n", folder=skill_dir / "broken-md")
    infos = _names(registry)
    rn = infos["release-notes"]
    assert rn.kind == "instructions" and rn.status == "ok" and "changelog" in rn.description
    assert rn.scripts == ["scripts/collect.sh"]
    assert "front matter" in infos["broken-md"].error
    r = registry.call("release-notes")
    assert r.ok and "Group the commits" in r.content["instructions"]
    assert rn.spec.description.startswith("Read the instructions")


def test_precedence_project_over_user_over_builtin(write_skill, tmp_path):
    dirs = []
    for loc in ("builtin", "user", "project"):
        d = tmp_path / loc
        write_skill("s.py", GOOD.replace("a + b", f"'{loc}'").replace("-> int", "-> str"), folder=d)
        dirs.append((loc, d))
    write_skill("dup.py", GOOD, folder=tmp_path / "project")
    reg = Skills(dirs=dirs, min_interval=0)
    try:
        infos = reg.list()
        ok = [i for i in infos if i.name == "add" and i.status == "ok"]
        assert len(ok) == 1 and ok[0].location == "project" and len(ok[0].shadows) == 2
        dup = [i for i in infos if i.status == "error"]
        assert len(dup) == 1 and "duplicate skill name" in dup[0].error
    finally:
        reg.close()


def test_warm_list_uses_the_cache_and_starts_no_process(write_skill, skill_dir, monkeypatch):
    from copa.workstation import Workstation

    ws = Workstation()
    write_skill("good.py", GOOD, folder=ws.paths.user_skills_dir)
    first = Skills(ws.config, ws.paths, ws.secrets, dirs=[("user", ws.paths.user_skills_dir)])
    assert [i.name for i in first.list()] == ["add"]
    first.close()
    assert (ws.paths.cache_dir / "skills-index.json").exists()

    def no_process(*a, **k):
        raise AssertionError("a warm list must not inspect again")

    monkeypatch.setattr(discovery, "inspect_files", no_process)
    second = Skills(ws.config, ws.paths, ws.secrets, dirs=[("user", ws.paths.user_skills_dir)])
    assert [i.name for i in second.list()] == ["add"]
    second.close()


def test_builtin_dir_is_found():
    d = discovery.builtin_dir()
    assert d is not None and d.is_dir()


@pytest.mark.parametrize("name", ["test_x.py", "_private.py", "x_test.py", "conftest.py"])
def test_tests_and_private_files_are_not_skills(write_skill, registry, name):
    write_skill(name, GOOD)
    assert registry.list() == []


def test_inspector_failures_are_not_cached(write_skill, monkeypatch):
    from copa.workstation import Workstation

    ws = Workstation()
    folder = ws.paths.user_skills_dir
    write_skill("good.py", GOOD, folder=folder)
    real = discovery.inspect_files
    monkeypatch.setattr(discovery, "inspect_files", lambda paths, limits: {
        str(p): {"skills": [], "error": "cannot confine the worker: test", "transient": True} for p in paths})
    first = Skills(ws.config, ws.paths, ws.secrets, dirs=[("user", folder)])
    assert first.list()[0].error == "cannot confine the worker: test"
    first.close()
    monkeypatch.setattr(discovery, "inspect_files", real)
    second = Skills(ws.config, ws.paths, ws.secrets, dirs=[("user", folder)])
    assert [(i.name, i.status) for i in second.list()] == [("add", "ok")]
    second.close()


def test_config_keys_drive_folders_and_limits(write_skill, tmp_path, monkeypatch):
    from copa.workstation import Workstation

    project, extra = tmp_path / "proj", tmp_path / "extra"
    write_skill("p.py", GOOD.replace("def add", "def in_project"), folder=project / ".copa" / "skills")
    write_skill("e.py", GOOD.replace("def add", "def in_extra"), folder=extra)
    monkeypatch.setenv("COPA_SKILLS_DIRS", str(extra))
    monkeypatch.setenv("COPA_SKILLS_MEMORY_MB", "300")
    monkeypatch.setenv("COPA_SKILLS_TIMEOUT", "7.5")
    ws = Workstation()
    reg = Skills(ws.config, ws.paths, ws.secrets, cwd=str(project))
    try:
        locs = {i.name: i.location for i in reg.list()}
        assert locs["in_project"] == "project" and locs["in_extra"] == "extra" and locs["read_file"] == "builtin"
        assert reg.limits.memory_mb == 300 and reg.limits.timeout == 7.5
    finally:
        reg.close()
    monkeypatch.setenv("COPA_SKILLS_PROJECT", "false")
    ws2 = Workstation()
    reg2 = Skills(ws2.config, ws2.paths, ws2.secrets, cwd=str(project))
    try:
        assert "in_project" not in {i.name for i in reg2.list()}
    finally:
        reg2.close()
