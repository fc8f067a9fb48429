"""The service layer: one object that opens what a face needs, lazily, and shares it.

Faces (CLI commands, the TUI, the daemon) create a ``Workstation`` and ask it for the config, the
secrets store, the database and, as they land, the memory store, skills, providers and devices.
Nothing is opened until it is asked for, so a command pays only for what it uses.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from copa.config import Config
from copa.paths import Paths

if TYPE_CHECKING:
    import sqlite_utils

    from copa.device.devices import Devices
    from copa.memory import MemoryStore
    from copa.providers import Models
    from copa.secrets import SecretStore
    from copa.skills import Skills


class Workstation:
    def __init__(self, paths: Paths | None = None, *, interactive: bool = False):
        self.paths = paths or Paths.from_env()
        self.interactive = interactive  # may prompt (passphrase, approvals)

    @cached_property
    def config(self) -> Config:
        return Config.load(self.paths)

    @cached_property
    def secrets(self) -> SecretStore:
        from copa.secrets import SecretStore

        return SecretStore(self.paths, self.config.get("secrets.backend"), prompt=self.interactive)

    @cached_property
    def db(self) -> sqlite_utils.Database:
        from copa.db import open_database

        self.paths.ensure()
        return open_database(self.paths.db_file)

    @cached_property
    def models(self) -> Models:
        from copa.providers import Models

        return Models(self)

    @cached_property
    def memory(self) -> MemoryStore:
        from copa.memory import MemoryStore

        self.paths.ensure()
        return MemoryStore(self.paths.db_file)

    @cached_property
    def skills(self) -> Skills:
        from copa.skills import Skills

        return Skills(self)

    @cached_property
    def devices(self) -> Devices:
        from copa.device.devices import Devices

        return Devices(self)

    def close(self) -> None:
        """Close what was opened, users of the database before the database itself."""
        # "_agent_turn_log" is the agent's own connection for its turn log (copa/agent/loop.py)
        for part in ("_agent_turn_log", "devices", "skills", "models", "memory"):
            opened = self.__dict__.pop(part, None)
            if opened is not None:
                opened.close()
        db = self.__dict__.pop("db", None)
        if db is not None:
            db.conn.close()

    def __enter__(self) -> Workstation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
