"""`copa config` and the Config class against real files and environment variables."""

from __future__ import annotations

import json
import tomllib

import pytest

from copa.config import Config
from copa.errors import ConfigError
from copa.paths import Paths


def test_set_get_show_roundtrip(run_copa, copa_home):
    assert run_copa("config", "set", "general.log_level", "debug").returncode == 0
    assert run_copa("config", "get", "general.log_level").stdout.strip() == "debug"
    shown = json.loads(run_copa("config", "show", "--json").stdout)
    assert shown["general.log_level"] == {"value": "debug", "source": "file"}
    assert shown["secrets.backend"] == {"value": "auto", "source": "default"}
    data = tomllib.loads((copa_home / "config" / "config.toml").read_text())
    assert data == {"general": {"log_level": "debug"}}


def test_environment_overrides_file(run_copa):
    run_copa("config", "set", "general.timezone", "Europe/Paris")
    proc = run_copa("config", "get", "general.timezone", "--json", env={"COPA_GENERAL_TIMEZONE": "Asia/Tokyo"})
    assert json.loads(proc.stdout) == {"key": "general.timezone", "value": "Asia/Tokyo", "source": "env"}


def test_bad_environment_value_names_the_variable(run_copa):
    proc = run_copa("config", "show", env={"COPA_SECRETS_BACKEND": "vault"})
    assert proc.returncode == 3
    assert "COPA_SECRETS_BACKEND" in proc.stderr and "auto, keyring, file" in proc.stderr


def test_wrong_choice_lists_valid_ones_and_writes_nothing(run_copa, copa_home):
    proc = run_copa("config", "set", "general.log_level", "loud")
    assert proc.returncode == 2  # a bad value on the command line is usage (docs/cli.md), not a broken config
    assert "debug, info, warning, error" in proc.stderr
    assert not (copa_home / "config" / "config.toml").exists()


def test_unknown_key_suggests_the_closest(run_copa):
    proc = run_copa("config", "set", "general.timezon", "UTC")
    assert proc.returncode == 2
    assert "did you mean 'general.timezone'" in proc.stderr


def test_unset_restores_default(run_copa):
    run_copa("config", "set", "general.log_level", "error")
    assert run_copa("config", "unset", "general.log_level").returncode == 0
    assert run_copa("config", "get", "general.log_level").stdout.strip() == "info"


def test_unknown_section_in_file_is_reported(copa_home):
    paths = Paths.from_env()
    paths.config_dir.mkdir(parents=True)
    paths.config_file.write_text("[genral]\nlog_level = 'info'\n")
    with pytest.raises(ConfigError) as e:
        Config.load(paths)
    assert "unknown section [genral]" in str(e.value) and "general" in str(e.value)


def test_wrong_type_in_file_is_reported(copa_home):
    paths = Paths.from_env()
    paths.config_dir.mkdir(parents=True)
    paths.config_file.write_text("[general]\nlog_level = 3\n")
    with pytest.raises(ConfigError) as e:
        Config.load(paths)
    assert "general.log_level must be text" in str(e.value)


def test_edit_refuses_a_broken_result_and_keeps_the_old_file(run_copa, copa_home, tmp_path):
    run_copa("config", "set", "general.log_level", "debug")
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\necho '[general' > \"$1\"\n")
    editor.chmod(0o755)
    proc = run_copa("config", "edit", env={"EDITOR": str(editor)})
    assert proc.returncode != 0
    assert "old config was kept" in proc.stderr
    assert run_copa("config", "get", "general.log_level").stdout.strip() == "debug"


def test_edit_saves_a_valid_result(run_copa, tmp_path):
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nprintf '[general]\\ntimezone = \"UTC\"\\n' > \"$1\"\n")
    editor.chmod(0o755)
    proc = run_copa("config", "edit", env={"EDITOR": str(editor)})
    assert proc.returncode == 0, proc.stderr
    assert run_copa("config", "get", "general.timezone").stdout.strip() == "UTC"


def test_path_lists_every_location_under_copa_home(run_copa, copa_home):
    paths = json.loads(run_copa("config", "path", "--json").stdout)
    assert paths["database"].startswith(str(copa_home))
    assert all(p.startswith(str(copa_home)) for p in paths.values())


def test_keys_documents_every_key(run_copa):
    keys = json.loads(run_copa("config", "keys", "--json").stdout)
    by_key = {k["key"]: k for k in keys}
    assert by_key["general.log_level"]["env"] == "COPA_GENERAL_LOG_LEVEL"
    assert all(k["help"] for k in keys)
