"""A real plugin package, built and installed into a fresh virtual environment, extends copa through
every hook: config key, migration, doctor check, model provider, skill source, delivery channel,
report section and command group. Offline: pip builds tests/plugins/demo_plugin with the hatchling
of the dev extra (no build isolation, no index)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

DEMO = Path(__file__).parent / "demo_plugin"


def _site(python: Path) -> str:
    return subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A venv that sees copa and its dependencies (through a .pth) plus the demo plugin, installed."""
    root = tmp_path_factory.mktemp("plugin-venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    py = root / "bin" / "python"
    site = _site(py)
    Path(site, "copa-dev.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    proc = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--disable-pip-version-check", "--quiet", str(DEMO)],
                          capture_output=True, text=True, env={**os.environ, "TMPDIR": str(root)})
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture
def copa(venv, copa_home):
    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(venv / "bin" / "python"), "-m", "copa", *args], capture_output=True,
                              text=True, env={**os.environ, "COPA_HOME": str(copa_home)}, timeout=120)
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc
    return run


def test_the_plugin_is_listed_with_every_hook(copa):
    plugins = {p["name"]: p for p in json.loads(copa("plugins", "list", "--json").stdout)}
    demo = plugins["demo"]
    assert demo["package"] == "copa-demo-plugin" and demo["version"] == "0.3.0" and not demo["error"]
    assert set(demo["hooks"]) == {"copa_config_keys", "copa_migrations", "copa_doctor_checks",
                                  "copa_model_providers", "copa_skill_sources", "copa_delivery_channels",
                                  "copa_report_sections", "copa_commands"}
    assert plugins["memory"]["package"] == "copa"  # copa's own parts register the same way


def test_config_key_migration_and_doctor_check(copa, copa_home):
    copa("config", "set", "demo.greeting", "ahoy")
    assert copa("config", "get", "demo.greeting").stdout.strip() == "ahoy"
    checks = {c["name"]: c for c in json.loads(copa("doctor", "--json", check=False).stdout)["checks"]}
    assert checks["demo"]["status"] == "ok" and "'ahoy'" in checks["demo"]["detail"]
    conn = sqlite3.connect(copa_home / "data" / "copa.db")
    try:
        assert conn.execute("SELECT text FROM demo_notes").fetchall() == [("made by demo_001",)]
        assert conn.execute("SELECT 1 FROM _migrations WHERE name = 'demo_001_notes'").fetchone()
    finally:
        conn.close()


def test_model_provider(copa):
    copa("config", "set", "models.parrot.provider", "echo")
    copa("config", "set", "models.parrot.model", "parrot-1")
    out = copa("ask", "--model", "parrot", "--no-memory", "--json", "polly wants a cracker").stdout
    assert json.loads(out)["answer"] == "echo: polly wants a cracker"
    bad = copa("config", "set", "models.x.provider", "nonesuch", check=False)
    assert bad.returncode != 0 and "echo" in bad.stderr  # the plugin's wire is among the valid choices


def test_skill_source(copa):
    skills = {s["name"]: s for s in json.loads(copa("skills", "list", "--json").stdout)}
    assert skills["demo_shout"]["status"] == "ok"
    out = copa("skills", "run", "demo_shout", "--arg", "text=hi", "--json").stdout
    assert "HI!" in out


def test_report_section_delivery_channel_and_command_group(copa, copa_home, tmp_path):
    templates = copa_home / "config" / "reports"
    templates.mkdir(parents=True)
    (templates / "plug.md").write_text("# Plug\n\n{{demo mood=happy}}\n")
    copa("config", "set", "reports.summary_model", "")
    target = tmp_path / "delivered.md"
    copa("report", "run", "plug", "--to", f"demofile:{target}")
    text = target.read_text()
    assert text.startswith("hello: ") and "demo section for plug (happy)" in text
    assert "demo" in copa("--help").stdout
    assert copa("demo", "hello", "--name", "Ana").stdout.strip() == "demo says hello to Ana"


def test_a_broken_plugin_is_reported_not_fatal(copa, venv):
    site = _site(venv / "bin" / "python")
    dist = next(Path(site).glob("copa_demo_plugin-*.dist-info"))
    eps = dist / "entry_points.txt"
    original = eps.read_text()
    eps.write_text(original + "broken = copa_demo_missing_module\n")
    os.utime(site)  # what an install does to the folder: the entry-point cache is rescanned
    try:
        plugins = {p["name"]: p for p in json.loads(copa("plugins", "list", "--json").stdout)}
        assert "ModuleNotFoundError" in plugins["broken"]["error"] and not plugins["demo"]["error"]
    finally:
        eps.write_text(original)
        os.utime(site)
