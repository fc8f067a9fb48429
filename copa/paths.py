"""Where copa keeps things.

Config, data (the SQLite database), cache, state and logs live in the platform's directories
(platformdirs). ``COPA_HOME=/some/dir`` puts all of them under one folder, which is what tests use
and what a user wants for a portable or throw-away setup.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

APP_NAME = "copa"


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    data_dir: Path
    cache_dir: Path
    state_dir: Path
    log_dir: Path

    @classmethod
    def from_env(cls, environ: os._Environ[str] | dict[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        home = env.get("COPA_HOME")
        if home:
            root = Path(home).expanduser().resolve()
            return cls(
                config_dir=root / "config",
                data_dir=root / "data",
                cache_dir=root / "cache",
                state_dir=root / "state",
                log_dir=root / "state" / "logs",
            )
        import platformdirs  # only when COPA_HOME is not set: it is cheap but not free

        dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
        return cls(
            config_dir=Path(dirs.user_config_dir),
            data_dir=Path(dirs.user_data_dir),
            cache_dir=Path(dirs.user_cache_dir),
            state_dir=Path(dirs.user_state_dir),
            log_dir=Path(dirs.user_log_dir),
        )

    # Files with a fixed place. Keep every path copa writes listed here so `copa config path`
    # and `copa doctor` can show them.
    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def db_file(self) -> Path:
        return self.data_dir / "copa.db"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "copa.log"

    @property
    def secrets_file(self) -> Path:
        return self.data_dir / "secrets.bin"

    @property
    def secrets_key_file(self) -> Path:
        return self.config_dir / "secrets.key"

    @property
    def secrets_index_file(self) -> Path:
        return self.data_dir / "secrets-index.json"

    @property
    def user_skills_dir(self) -> Path:
        return self.config_dir / "skills"

    @property
    def daemon_lock_file(self) -> Path:
        return self.state_dir / "daemon.lock"

    def as_dict(self) -> dict[str, str]:
        return {
            "config_file": str(self.config_file),
            "config_dir": str(self.config_dir),
            "data_dir": str(self.data_dir),
            "database": str(self.db_file),
            "cache_dir": str(self.cache_dir),
            "state_dir": str(self.state_dir),
            "log_file": str(self.log_file),
            "skills_dir": str(self.user_skills_dir),
        }

    def ensure(self) -> None:
        """Create the directories (private to the user: they hold memories and secrets)."""
        for d in (self.config_dir, self.data_dir, self.cache_dir, self.state_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)


@contextlib.contextmanager
def atomic_writer(path: Path, mode: int = 0o600) -> Iterator[BinaryIO]:
    """A file to write ``path`` through: a crash or an exception leaves the old file (or none),
    never half a new one. The temporary file is fsynced, renamed over ``path``, and the rename made
    durable."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so a crash leaves either the old file or the new one, never half."""
    with atomic_writer(path, mode) as f:
        f.write(data)
