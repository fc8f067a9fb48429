"""A user's mistake gets one line saying what is wrong and what to do, and a non-zero exit code."""

from __future__ import annotations


def assert_one_line_error(proc, *needles: str) -> None:
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("copa: error: ")
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_unknown_command(run_copa):
    proc = run_copa("frobnicate")
    assert_one_line_error(proc, "frobnicate", "copa --help")
    assert proc.returncode == 2


def test_unknown_option_names_the_command_help(run_copa):
    proc = run_copa("doctor", "--nope")
    assert_one_line_error(proc, "--nope", "copa doctor --help")


def test_missing_argument(run_copa):
    proc = run_copa("config", "get")
    assert_one_line_error(proc, "Missing argument 'key'")


def test_malformed_config_names_file_and_line(run_copa, copa_home):
    cfg = copa_home / "config" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('[general]\nlog_level = "info"\ntimezone = \n')
    proc = run_copa("config", "show")
    assert_one_line_error(proc, str(cfg), "line 3", "copa config edit")
    assert proc.returncode == 3


def test_debug_shows_the_traceback(run_copa, copa_home):
    cfg = copa_home / "config" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("[general\n")
    proc = run_copa("--debug", "config", "show")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


def test_unreadable_config_is_a_clear_error(run_copa, copa_home):
    copa_home.mkdir(parents=True, exist_ok=True)
    (copa_home / "config").write_text("not a directory")
    proc = run_copa("config", "set", "general.timezone", "UTC")
    assert_one_line_error(proc, "cannot read")


def test_internal_error_is_reported_as_a_bug_and_logged(monkeypatch, capsys, copa_home):
    """A bug (not a user error) says so on one line, exits 70 and leaves the traceback in the log."""
    import sys
    import types

    import typer

    from copa.cli import main as cli_main

    broken = types.ModuleType("copa_test_broken_cmd")
    broken.app = typer.Typer()

    @broken.app.command()
    def explode() -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setitem(sys.modules, "copa_test_broken_cmd", broken)
    monkeypatch.setitem(cli_main.COMMANDS, "explode", ("copa_test_broken_cmd", "Raise a bug."))
    rc = cli_main.main(["explode"])
    err = capsys.readouterr().err
    assert rc == 70
    assert err.startswith("copa: error: internal error: RuntimeError: kaboom")
    assert "--debug" in err and "Traceback" not in err
    import logging

    for h in logging.getLogger("copa").handlers:
        h.flush()
    log = (copa_home / "state" / "logs" / "copa.log").read_text()
    assert "Traceback" in log and "kaboom" in log


def test_a_database_locked_past_the_busy_timeout_is_not_a_bug(monkeypatch, capsys, copa_home):
    """Another process holding the write lock longer than the busy timeout: exit 75 (try again),
    one line that says nothing was changed, not exit 70; the memory is not half-written."""
    import json
    import sqlite3

    from copa import db
    from copa.cli import main as cli_main

    assert cli_main.main(["memory", "add", "the first note"]) == 0
    path = next(copa_home.rglob("copa.db"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # what a long writer in another process does
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 300)
    capsys.readouterr()
    try:
        rc = cli_main.main(["memory", "add", "the second note", "--json"])
    finally:
        holder.execute("ROLLBACK")
    out, err = capsys.readouterr()
    assert rc == 75, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("copa: error: the database is busy") and "again" in lines[0]
    assert json.loads(out)["error"]["code"] == "busy"
    texts = [r[0] for r in sqlite3.connect(path).execute("SELECT text FROM memories")]
    assert texts == ["the first note"]
