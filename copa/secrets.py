"""Secrets: API keys, SMTP passwords, device pairing keys.

Lookup order for a name: the environment variable of that name, then the store. The store is the
OS keyring when one works; otherwise (a headless Linux box has none) an encrypted file:
XSalsa20-Poly1305 (PyNaCl SecretBox) over a JSON map, keyed either by a 0600 key file or by a
passphrase stretched with Argon2id (``COPA_PASSPHRASE``, or a prompt). Values never touch disk or the
log in plaintext; the keyring backend keeps a list of *names only* so ``list`` works.
"""

from __future__ import annotations

import json
import os
import re
from typing import Protocol

from copa.errors import SecretsError, UsageError
from copa.log import redact_value
from copa.paths import Paths, atomic_write

SERVICE = "copa"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
_MAGIC = b"COPASEC1"
_MODE_KEYFILE, _MODE_PASSPHRASE = 0, 1


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise UsageError(
            f"invalid secret name {name!r}",
            hint="use letters, digits, '_', '.', '-' (e.g. OPENAI_API_KEY), starting with a letter",
        )
    return name


class Backend(Protocol):
    name: str

    def get(self, name: str) -> str | None: ...
    def set(self, name: str, value: str) -> None: ...
    def delete(self, name: str) -> bool: ...
    def names(self) -> list[str]: ...


class FileBackend:
    """An encrypted file, rewritten atomically on every change."""

    name = "file"

    def __init__(self, paths: Paths, passphrase: str | None = None, prompt: bool = False):
        self.paths = paths
        self._passphrase = passphrase if passphrase is not None else os.environ.get("COPA_PASSPHRASE")
        self._prompt = prompt

    @property
    def description(self) -> str:
        mode = self._file_mode()
        if mode == _MODE_PASSPHRASE or (mode is None and self._passphrase):
            return f"encrypted file {self.paths.secrets_file} (passphrase, Argon2id)"
        return f"encrypted file {self.paths.secrets_file} (key file {self.paths.secrets_key_file})"

    def _file_mode(self) -> int | None:
        try:
            with open(self.paths.secrets_file, "rb") as f:
                head = f.read(len(_MAGIC) + 1)
        except FileNotFoundError:
            return None
        if len(head) != len(_MAGIC) + 1 or not head.startswith(_MAGIC):
            raise SecretsError(
                f"{self.paths.secrets_file} is not a copa secrets file",
                hint="move it away; copa will create a new one",
            )
        return head[-1]

    def _passphrase_or_prompt(self) -> str:
        if self._passphrase:
            return self._passphrase
        if self._prompt and os.isatty(0):
            import getpass

            self._passphrase = getpass.getpass("copa secrets passphrase: ")
            if self._passphrase:
                return self._passphrase
        raise SecretsError(
            "the secrets file is protected by a passphrase",
            hint="set COPA_PASSPHRASE or run copa in a terminal to be asked",
        )

    def _key(self, mode: int, salt: bytes) -> bytes:
        from nacl import pwhash, secret, utils

        if mode == _MODE_PASSPHRASE:
            pw = self._passphrase_or_prompt().encode()
            return pwhash.argon2id.kdf(
                secret.SecretBox.KEY_SIZE, pw, salt,
                opslimit=pwhash.argon2id.OPSLIMIT_INTERACTIVE, memlimit=pwhash.argon2id.MEMLIMIT_INTERACTIVE,
            )
        keyfile = self.paths.secrets_key_file
        try:
            key = keyfile.read_bytes()
        except FileNotFoundError:
            if self.paths.secrets_file.exists():
                raise SecretsError(
                    f"the key file {keyfile} is missing, so {self.paths.secrets_file} cannot be opened",
                    hint="restore the key file, or delete the secrets file and set the secrets again",
                ) from None
            key = utils.random(secret.SecretBox.KEY_SIZE)
            atomic_write(keyfile, key, mode=0o600)
        if len(key) != secret.SecretBox.KEY_SIZE:
            raise SecretsError(f"the key file {keyfile} is damaged", hint="restore it from a backup")
        return key

    def _load(self) -> tuple[dict[str, str], int, bytes]:
        from nacl import exceptions, secret, utils

        mode = self._file_mode()
        if mode is None:
            mode = _MODE_PASSPHRASE if self._passphrase else _MODE_KEYFILE
            return {}, mode, utils.random(16)
        blob = self.paths.secrets_file.read_bytes()
        salt, box = blob[len(_MAGIC) + 1 : len(_MAGIC) + 17], blob[len(_MAGIC) + 17 :]
        try:
            plain = secret.SecretBox(self._key(mode, salt)).decrypt(box)
        except exceptions.CryptoError:
            what = "wrong passphrase" if mode == _MODE_PASSPHRASE else "wrong key file"
            raise SecretsError(
                f"{what} for {self.paths.secrets_file} (or the file was tampered with)",
                hint="set COPA_PASSPHRASE to the passphrase used when it was created"
                if mode == _MODE_PASSPHRASE else "restore the key file that goes with it",
            ) from None
        return json.loads(plain), mode, salt

    def _save(self, values: dict[str, str], mode: int, salt: bytes) -> None:
        from nacl import secret

        box = secret.SecretBox(self._key(mode, salt)).encrypt(json.dumps(values).encode())
        atomic_write(self.paths.secrets_file, _MAGIC + bytes([mode]) + salt + bytes(box), mode=0o600)

    def get(self, name: str) -> str | None:
        return self._load()[0].get(name)

    def set(self, name: str, value: str) -> None:
        values, mode, salt = self._load()
        values[name] = value
        self._save(values, mode, salt)

    def delete(self, name: str) -> bool:
        values, mode, salt = self._load()
        if name not in values:
            return False
        del values[name]
        self._save(values, mode, salt)
        return True

    def names(self) -> list[str]:
        return sorted(self._load()[0])


class KeyringBackend:
    """The OS keyring (Secret Service, macOS Keychain, Windows Credential Locker)."""

    name = "keyring"

    def __init__(self, paths: Paths, keyring_module):
        self.paths = paths
        self._kr = keyring_module
        self.description = f"OS keyring ({type(keyring_module.get_keyring()).__name__})"

    def _index(self) -> list[str]:
        try:
            return json.loads(self.paths.secrets_index_file.read_text())
        except (FileNotFoundError, ValueError):
            return []

    def _write_index(self, names: list[str]) -> None:
        atomic_write(self.paths.secrets_index_file, json.dumps(sorted(set(names))).encode(), mode=0o600)

    def get(self, name: str) -> str | None:
        return self._kr.get_password(SERVICE, name)

    def set(self, name: str, value: str) -> None:
        self._kr.set_password(SERVICE, name, value)
        self._write_index(self._index() + [name])

    def delete(self, name: str) -> bool:
        try:
            self._kr.delete_password(SERVICE, name)
            found = True
        except self._kr.errors.PasswordDeleteError:
            found = False
        self._write_index([n for n in self._index() if n != name])
        return found

    def names(self) -> list[str]:
        return self._index()


def _working_keyring():
    """The keyring module if a real backend is available, else None (headless Linux, CI)."""
    try:
        import keyring
        from keyring.backends import fail
    except Exception:  # keyring missing or broken: the file backend still works
        return None
    kr = keyring.get_keyring()
    if isinstance(kr, fail.Keyring):
        return None
    try:
        from keyring.backends import chainer

        if isinstance(kr, chainer.ChainerBackend) and not kr.backends:
            return None
    except ImportError:
        pass
    return keyring


class SecretStore:
    """Names to values, in the backend chosen by ``secrets.backend`` (auto, keyring or file)."""

    def __init__(self, paths: Paths, backend: str = "auto", prompt: bool = False):
        self.paths = paths
        if backend not in ("auto", "keyring", "file"):
            raise SecretsError(f"unknown secrets backend {backend!r}", hint="use auto, keyring or file")
        if backend == "file":
            self.backend: Backend = FileBackend(paths, prompt=prompt)
            return
        kr = _working_keyring()
        if kr is not None:
            self.backend = KeyringBackend(paths, kr)
        elif backend == "keyring":
            raise SecretsError(
                "no OS keyring is available on this machine",
                hint="set secrets.backend to 'file' or 'auto' (copa config set secrets.backend auto)",
            )
        else:
            self.backend = FileBackend(paths, prompt=prompt)

    @property
    def description(self) -> str:
        return self.backend.description

    def get(self, name: str) -> str | None:
        value = self.backend.get(check_name(name))
        redact_value(value)
        return value

    def set(self, name: str, value: str) -> None:
        if not value:
            raise UsageError("a secret cannot be empty", hint=f"use 'copa secrets delete {name}' to remove it")
        redact_value(value)
        self.backend.set(check_name(name), value)

    def delete(self, name: str) -> bool:
        return self.backend.delete(check_name(name))

    def names(self) -> list[str]:
        return self.backend.names()

    def resolve(self, name: str) -> str | None:
        """The environment variable ``name`` if set, else the stored secret, else None."""
        value = os.environ.get(name) or self.get(name)
        redact_value(value)
        return value
