"""The service layer: the one place that builds the core parts and wires them together, lazily.

Faces (CLI commands, the TUI, the daemon) create a ``Workstation`` and ask it for the config, the
secrets store, the database, the memory store, models, skills, devices and the agent. Each part is
constructed with exactly what it uses (``Models(config, secrets)``, ``Agent(models, memory, config,
tool_sources)``...), never with the workstation, so a part can be built and tested alone. Nothing is
opened until it is asked for, so a command pays only for what it uses.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from copa.config import Config
from copa.paths import Paths

if TYPE_CHECKING:
    import sqlite_utils

    from copa.agent import Agent
    from copa.device.devices import Devices
    from copa.memory import MemoryStore
    from copa.providers import Models
    from copa.secrets import SecretStore
    from copa.skills import Skills


class _Deferred:
    """Stands for a part that is built on its first use: the secrets store imports keyring and may
    ask for a passphrase, the memory store opens the database; a part that is merely handed one of
    them must not pay for it (most models need no stored key, most turns no new connection)."""

    __slots__ = ("_build",)

    def __init__(self, build: Callable[[], Any]):
        self._build = build

    def __getattr__(self, name: str) -> Any:
        return getattr(self._build(), name)

    def __getitem__(self, key: Any) -> Any:  # db["table"]
        return self._build()[key]


class Workstation:
    def __init__(self, paths: Paths | None = None, *, interactive: bool = False):
        self.paths = paths or Paths.from_env()
        self.interactive = interactive  # may prompt (passphrase, approvals)
        self._db_open_lock = threading.Lock()
        self._db_migrated = False

    @cached_property
    def config(self) -> Config:
        return Config.load(self.paths)

    @cached_property
    def secrets(self) -> SecretStore:
        from copa.secrets import SecretStore

        return SecretStore(self.paths, self.config.get("secrets.backend"), prompt=self.interactive)

    @property
    def conn(self) -> sqlite3.Connection:
        """The database as a plain sqlite3 connection, one per thread.

        Faces share a workstation across threads (device sessions, telemetry, TUI workers, the
        daemon's jobs). A sqlite3 connection carries its transaction and savepoint state, so two
        threads interleaving statements on one connection corrupt each other's transactions
        ("no such savepoint"); WAL and the busy timeout make separate connections cheap and safe.
        """
        local = self._db_local
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = self._open_conn()
        return conn

    @property
    def db(self) -> sqlite_utils.Database:
        """The calling thread's connection (``conn``) wrapped by sqlite-utils, for the parts that
        build tables with it. Its import costs ~50 ms: the hot path of one-shot commands uses ``conn``."""
        local = self._db_local
        db = getattr(local, "db", None)
        if db is None:
            from copa.db import load_sqlite_utils

            db = local.db = load_sqlite_utils().Database(self.conn)
        return db

    @cached_property
    def _db_local(self) -> threading.local:
        return threading.local()

    def _open_conn(self) -> sqlite3.Connection:
        from copa.db import connect, open_connection

        with self._db_open_lock:
            if not self._db_migrated:  # the first connection migrates
                self.paths.ensure()
                conn = open_connection(self.paths.db_file)
                self._db_migrated = True
            else:
                conn = connect(self.paths.db_file)
        return conn

    @cached_property
    def models(self) -> Models:
        from copa.providers import Models

        return Models(self.config, _Deferred(lambda: self.secrets), cache_dir=self.paths.cache_dir)

    @cached_property
    def memory(self) -> MemoryStore:
        from copa.memory import MemoryStore

        self.paths.ensure()
        # warm_dir: where the daemon serves recall with its model loaded (one-shot commands ask it first)
        return MemoryStore(self.paths.db_file, embeddings=self.config.get("memory.embeddings"),
                           warm_dir=self.paths.state_dir, cache_dir=self.paths.cache_dir)

    @cached_property
    def skills(self) -> Skills:
        from copa.skills import Skills

        # memory: what a skill with the 'memory' permission reaches, through copa (never the files)
        return Skills(self.config, self.paths, _Deferred(lambda: self.secrets),
                      memory=_Deferred(lambda: self.memory))

    @cached_property
    def agent(self) -> Agent:
        from copa.agent import Agent

        # the tool sources are asked at each turn, through the workstation: a face (or a test) that
        # replaces the skills part is seen by the agent too
        return Agent(self.models, _Deferred(lambda: self.memory), self.config,
                     tool_sources=[("skills", lambda: self.skills.as_tools()),
                                   ("device tools", lambda: self.devices.as_tools())])

    @cached_property
    def devices(self) -> Devices:
        from copa.device.devices import Devices

        # the database through a deferral: each use gets the calling thread's connection
        return Devices(_Deferred(lambda: self.conn), _Deferred(lambda: self.secrets), _Deferred(lambda: self.memory),
                       self.config)

    def close(self) -> None:
        """Close what was opened, users of the database before the database itself.

        The calling thread's connection is closed here. Another thread's may be running a statement
        at this moment (a TUI worker when the app exits): closing it under that thread crashed the
        interpreter (SIGSEGV inside sqlite3, seen in a test run), so it is let go instead: dropping
        the thread-local closes each such connection as soon as nothing uses it any more."""
        for part in ("agent", "devices", "skills", "models", "memory"):
            opened = self.__dict__.pop(part, None)
            if opened is not None:
                opened.close()
        own = getattr(self.__dict__.get("_db_local"), "conn", None)
        with self._db_open_lock:
            self._db_migrated = False
        self.__dict__.pop("_db_local", None)
        if own is not None:
            own.close()

    def __enter__(self) -> Workstation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
