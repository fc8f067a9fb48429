"""The secrets store on a headless machine: encrypted file, never plaintext on disk or in logs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from copa.errors import SecretsError
from copa.paths import Paths
from copa.secrets import FileBackend, SecretStore

SECRET = "sk-test-4f9c2a7d1e8b6c3a5f0d9e2b7c4a1f8e"


def all_bytes_under(root: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in root.rglob("*") if p.is_file()]


def test_set_from_stdin_list_and_delete(run_copa):
    proc = run_copa("secrets", "set", "OPENAI_API_KEY", input=SECRET + "\n")
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    listed = json.loads(run_copa("secrets", "list", "--json").stdout)
    assert listed["names"] == ["OPENAI_API_KEY"]
    assert listed["backend"] in ("file", "keyring")
    assert SECRET not in json.dumps(listed)
    assert run_copa("secrets", "delete", "OPENAI_API_KEY").returncode == 0
    assert json.loads(run_copa("secrets", "list", "--json").stdout)["names"] == []
    proc = run_copa("secrets", "delete", "OPENAI_API_KEY")
    assert proc.returncode == 5 and "no secret named OPENAI_API_KEY" in proc.stderr


def test_plaintext_never_reaches_any_file(run_copa, copa_home):
    """After `secrets set` (and commands that log at debug level), scan the bytes of every file."""
    run_copa("config", "set", "secrets.backend", "file")
    assert run_copa("--debug", "secrets", "set", "ANTHROPIC_API_KEY", input=SECRET).returncode == 0
    assert run_copa("--debug", "secrets", "list").returncode == 0
    assert run_copa("--debug", "doctor").returncode in (0, 1)
    files = all_bytes_under(copa_home)
    assert any(p.name == "secrets.bin" for p, _ in files)
    for path, data in files:
        assert SECRET.encode() not in data, f"plaintext secret found in {path}"
        assert SECRET[8:24].encode() not in data, f"part of the secret found in {path}"


def test_values_round_trip_and_files_are_private(copa_home):
    store = SecretStore(Paths.from_env(), "file")
    store.set("SMTP_PASSWORD", "correct horse battery staple")
    store.set("OTHER", "x" * 5)
    assert store.get("SMTP_PASSWORD") == "correct horse battery staple"
    assert store.names() == ["OTHER", "SMTP_PASSWORD"]
    paths = Paths.from_env()
    assert oct(paths.secrets_file.stat().st_mode & 0o777) == "0o600"
    assert oct(paths.secrets_key_file.stat().st_mode & 0o777) == "0o600"
    assert not [p for p in paths.data_dir.iterdir() if p.name.endswith(".tmp")]


def test_passphrase_mode_and_wrong_passphrase(copa_home, monkeypatch):
    paths = Paths.from_env()
    FileBackend(paths, passphrase="right one").set("TOKEN", "value-1234")
    assert not paths.secrets_key_file.exists()
    assert FileBackend(paths, passphrase="right one").get("TOKEN") == "value-1234"
    with pytest.raises(SecretsError) as e:
        FileBackend(paths, passphrase="wrong one").get("TOKEN")
    assert "wrong passphrase" in str(e.value) and "COPA_PASSPHRASE" in str(e.value)
    with pytest.raises(SecretsError) as e:
        FileBackend(paths, passphrase="").get("TOKEN")
    assert "COPA_PASSPHRASE" in str(e.value)
    # the file was not touched by the failed attempts
    assert FileBackend(paths, passphrase="right one").names() == ["TOKEN"]


def test_wrong_passphrase_from_cli_is_one_line(run_copa):
    run_copa("config", "set", "secrets.backend", "file")
    assert run_copa("secrets", "set", "K1", input="abcdef", env={"COPA_PASSPHRASE": "pw"}).returncode == 0
    proc = run_copa("secrets", "list", env={"COPA_PASSPHRASE": "not-pw"})
    assert proc.returncode == 6
    assert proc.stderr.count("\n") == 1 and "wrong passphrase" in proc.stderr


def test_tampered_file_is_detected_not_misread(copa_home):
    paths = Paths.from_env()
    FileBackend(paths).set("A", "value-a")
    blob = bytearray(paths.secrets_file.read_bytes())
    blob[-1] ^= 0x01
    paths.secrets_file.write_bytes(bytes(blob))
    with pytest.raises(SecretsError) as e:
        FileBackend(paths).get("A")
    assert "tampered" in str(e.value)


def test_missing_key_file_is_explained(copa_home):
    paths = Paths.from_env()
    FileBackend(paths).set("A", "value-a")
    paths.secrets_key_file.unlink()
    with pytest.raises(SecretsError) as e:
        FileBackend(paths).get("A")
    assert "key file" in str(e.value) and "missing" in str(e.value)
    assert paths.secrets_file.exists()  # nothing was overwritten


def test_environment_variable_wins(copa_home, monkeypatch):
    store = SecretStore(Paths.from_env(), "file")
    store.set("GEMINI_API_KEY", "from-the-store")
    assert store.resolve("GEMINI_API_KEY") == "from-the-store"
    monkeypatch.setenv("GEMINI_API_KEY", "from-the-env")
    assert store.resolve("GEMINI_API_KEY") == "from-the-env"
    assert store.resolve("NOT_SET_ANYWHERE") is None


def test_bad_names_are_refused(run_copa):
    proc = run_copa("secrets", "set", "bad name!", input="x")
    assert proc.returncode == 2 and "invalid secret name" in proc.stderr


def test_keyring_backend_refused_clearly_when_absent(run_copa):
    if os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        pytest.skip("a desktop session may offer a real keyring here")
    run_copa("config", "set", "secrets.backend", "keyring")
    proc = run_copa("secrets", "list")
    assert proc.returncode == 6 and "no OS keyring" in proc.stderr
