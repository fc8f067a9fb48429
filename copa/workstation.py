"""The service layer: one object that opens what a face needs, lazily, and shares it.

Faces (CLI commands, the TUI, the daemon) create a ``Workstation`` and ask it for the config, the
secrets store, the database and, as they land, the memory store, skills, providers and devices.
Nothing is opened until it is asked for, so a command pays only for what it uses.
"""

from __future__ import annotations

import threading
import weakref
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
        self._db_open_lock = threading.Lock()
        self._db_migrated = False
        # weak: a thread's connection goes (and closes) with its thread; close() closes the rest
        self._db_connections: weakref.WeakSet[sqlite_utils.Database] = weakref.WeakSet()

    @cached_property
    def config(self) -> Config:
        return Config.load(self.paths)

    @cached_property
    def secrets(self) -> SecretStore:
        from copa.secrets import SecretStore

        return SecretStore(self.paths, self.config.get("secrets.backend"), prompt=self.interactive)

    @property
    def db(self) -> sqlite_utils.Database:
        """The database, one connection per thread.

        Faces share a workstation across threads (device sessions, telemetry, TUI workers, the
        daemon's jobs). A sqlite3 connection carries its transaction and savepoint state, so two
        threads interleaving statements on one connection corrupt each other's transactions
        ("no such savepoint"); WAL and the busy timeout make separate connections cheap and safe.
        """
        conn = getattr(self._db_local, "db", None)
        if conn is None:
            conn = self._open_db()
            self._db_local.db = conn
        return conn

    @cached_property
    def _db_local(self) -> threading.local:
        return threading.local()

    def _open_db(self) -> sqlite_utils.Database:
        from copa.db import connect, load_sqlite_utils, open_database

        with self._db_open_lock:
            if not self._db_migrated:  # the first connection migrates
                self.paths.ensure()
                db = open_database(self.paths.db_file)
                self._db_migrated = True
            else:
                db = load_sqlite_utils().Database(connect(self.paths.db_file))
            self._db_connections.add(db)
        return db

    @cached_property
    def models(self) -> Models:
        from copa.providers import Models

        return Models(self)

    @cached_property
    def memory(self) -> MemoryStore:
        from copa.memory import MemoryStore

        self.paths.ensure()
        return MemoryStore(self.paths.db_file, embeddings=self.config.get("memory.embeddings"))

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
        with self._db_open_lock:
            connections = list(self._db_connections)
            self._db_connections = weakref.WeakSet()
            self._db_migrated = False
        for db in connections:
            db.conn.close()
        self.__dict__.pop("_db_local", None)

    def __enter__(self) -> Workstation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
