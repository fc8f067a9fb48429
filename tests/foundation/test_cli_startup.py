"""Startup stays cheap: one-shot commands must not import the heavy modules they do not use."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from copa.cli.main import COMMANDS

HEAVY = ["textual", "apscheduler", "keyring", "nacl", "serial", "httpx", "sqlite_utils", "mcp",
         "numpy", "tokenizers", "safetensors", "wordllama"]  # the last four: the dense retriever

PROBE = """
import json, sys
from copa.cli.main import main
rc = main({args!r})
with open({out!r}, "w") as f:
    json.dump({{"rc": rc, "modules": sorted(m for m, mod in sys.modules.items() if mod is not None)}}, f)
"""


def imported_by(args: list[str], tmp_path) -> dict:
    out = tmp_path / "modules.json"
    subprocess.run([sys.executable, "-c", PROBE.format(args=args, out=str(out))], check=True,
                   capture_output=True, text=True, env=os.environ.copy(), timeout=60)
    return json.loads(out.read_text())


@pytest.mark.parametrize("args", [["--version"], ["--help"], []], ids=["version", "help", "no-args"])
def test_top_level_commands_import_nothing_heavy(args, tmp_path):
    result = imported_by(args, tmp_path)
    assert result["rc"] == 0
    heavy = [m for m in result["modules"] if m.split(".")[0] in HEAVY]
    assert heavy == []


def test_version_does_not_even_import_typer(tmp_path):
    result = imported_by(["--version"], tmp_path)
    assert not [m for m in result["modules"] if m.split(".")[0] == "typer"]


@pytest.mark.parametrize("group", sorted(COMMANDS))
def test_group_help_imports_nothing_heavy(group, tmp_path):
    result = imported_by([group, "--help"], tmp_path)
    assert result["rc"] == 0, f"copa {group} --help failed"
    heavy = sorted({m.split(".")[0] for m in result["modules"] if m.split(".")[0] in HEAVY})
    assert heavy == [], f"copa {group} --help imports {heavy}"


def test_help_reads_plugins_from_the_cache_only(tmp_path):
    """`copa --help` lists plugins' command groups from the entry-point cache: once it is written,
    neither importlib.metadata (~70 ms) nor, with no plugin installed, pluggy is imported."""
    imported_by(["config", "get", "general.log_level"], tmp_path)  # a command that writes the cache
    for args in (["--help"], ["--version"]):
        modules = set(imported_by(args, tmp_path)["modules"])
        assert "importlib.metadata" not in modules and "pluggy" not in modules, args


def test_version_output(run_copa):
    from copa import __version__

    for flag in ("--version", "-V"):
        proc = run_copa(flag)
        assert proc.returncode == 0
        assert proc.stdout.strip() == f"copa {__version__}"


def test_no_args_without_terminal_prints_help(run_copa):
    proc = run_copa(input="")
    assert proc.returncode == 0
    assert "Usage: copa" in proc.stdout
    for name in COMMANDS:
        assert name in proc.stdout


def test_every_registered_group_has_help(run_copa):
    for name, (_module, summary) in COMMANDS.items():
        proc = run_copa(name, "--help")
        assert proc.returncode == 0, proc.stderr
        assert "Usage: copa " + name in proc.stdout
        assert summary.endswith(".")


def test_shell_completion_script_is_offered(run_copa):
    proc = run_copa("--show-completion", "bash", env={"SHELL": "/bin/bash"})
    assert proc.returncode == 0
    assert "_COPA_COMPLETE" in proc.stdout


def test_group_help_is_plain_text_that_keeps_brackets(run_copa):
    """Rich markup would swallow "[models.NAME]"; sub-groups do not repeat completion options."""
    proc = run_copa("models", "add", "--help")
    assert proc.returncode == 0
    assert "[models.NAME]" in proc.stdout
    assert "╭" not in proc.stdout
    assert "--install-completion" not in run_copa("memory", "--help").stdout
    assert "--install-completion" in run_copa("--help").stdout


def test_opening_the_database_leaves_numpy_unimported(tmp_path):
    """sqlite_utils would import numpy (installed with copa[embeddings]) on every command that opens
    the database; copa.db hides it while sqlite_utils loads, and numpy still imports afterwards."""
    pytest.importorskip("numpy")
    probe = (f"import sys\nfrom copa.db import open_database\ndb = open_database({str(tmp_path / 'c.db')!r})\n"
             "db['t'].insert({'x': 1})\nassert db.execute('select x from t').fetchone() == (1,)\n"
             "assert 'numpy' not in sys.modules, 'numpy was imported'\n"
             "import numpy\nprint(numpy.float32(2) * 2)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "4.0"


def test_a_scheduler_command_leaves_the_dense_retriever_unloaded(tmp_path):
    result = imported_by(["schedule", "list"], tmp_path)
    assert result["rc"] == 0
    assert "sqlite_utils" in {m.split(".")[0] for m in result["modules"]}  # it did open the database
    assert not [m for m in result["modules"] if m.split(".")[0] in ("numpy", "tokenizers", "wordllama")]


def test_daemon_status_reads_the_database_without_sqlite_utils(tmp_path):
    """`copa daemon status` (and the TUI's Schedules screen, and doctor) read the lock, the heartbeat
    and the jobs through the plain connection: sqlite-utils (~50 ms) is only for a pending migration."""
    first = imported_by(["daemon", "status"], tmp_path)  # a fresh home: this one migrates
    assert first["rc"] == 0
    again = imported_by(["daemon", "status"], tmp_path)
    assert again["rc"] == 0
    assert "sqlite_utils" not in {m.split(".")[0] for m in again["modules"]}
