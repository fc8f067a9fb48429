"""The one SQLite database: connection settings and numbered migrations.

Each part of copa that owns tables (and any plugin) gives its migrations through the
``copa_migrations`` hook: an ordered list of ``(name, function(db))``. Names are recorded in
``_migrations`` once applied; a landed migration is never edited, only followed by a new one.
Applying runs under ``BEGIN IMMEDIATE`` so two processes starting at once cannot both migrate.
"""

from __future__ import annotations

import importlib
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite_utils

    from copa.errors import CopaError

Migration = tuple[str, Callable[["sqlite_utils.Database"], None]]



def registered_migrations() -> list[Migration]:
    """Every plugin's migrations, copa's own parts first (in ``copa.plugins.BUILTIN`` order: order
    matters only where a later part references an earlier one's tables)."""
    from copa.plugins import collect

    return [m for group in collect("copa_migrations") for m in group]

BUSY_TIMEOUT_MS = 30_000


def as_busy(error: BaseException) -> CopaError | None:
    """The user's error for SQLite giving up on another process's write lock after the busy timeout
    ('database is locked'), or None for any other error. Not a bug: nothing was written (the
    transaction rolled back) and the same command can simply run again."""
    if not (isinstance(error, sqlite3.OperationalError) and "locked" in str(error)):
        return None
    from copa.errors import CopaError, ExitCode

    return CopaError(f"the database is busy: another copa process kept it locked for {BUSY_TIMEOUT_MS // 1000} s, "
                     "so nothing was changed", exit_code=ExitCode.BUSY,
                     hint="run the command again; if it keeps happening, see which copa processes are running")


class Connection(sqlite3.Connection):
    """A plain sqlite3 connection that can be weakly referenced (the workstation tracks its
    per-thread connections weakly, so a connection goes with its thread)."""


def connect(path: Path | str) -> sqlite3.Connection:
    """A connection with the house settings: WAL, a busy timeout, foreign keys, secure delete."""
    from copa.textio import guard_sqlite

    guard_sqlite()  # no lone surrogate ever reaches the file (docs/cli.md, "Text and encodings")
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False, factory=Connection)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if str(path) != ":memory:":
        _enable_wal(conn)
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA secure_delete = ON")  # forgotten text must not linger in free pages
    return conn


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL once per file (it persists). Changing the journal mode needs an exclusive lock
    and SQLite answers SQLITE_BUSY at once, without the busy handler, when two processes create the
    same new database together: retry for up to the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def load_sqlite_utils():
    """Import sqlite_utils without numpy and pandas. It imports both when they are installed (numpy
    comes with copa[embeddings]: +0.1 s to every command that opens the database) only to map their
    scalar types to column types, and copa never inserts numpy or pandas values."""
    if "sqlite_utils" in sys.modules:
        return sys.modules["sqlite_utils"]
    hidden = [m for m in ("numpy", "pandas") if m not in sys.modules]
    for m in hidden:
        sys.modules[m] = None  # type: ignore[assignment]  # 'import m' raises ImportError meanwhile
    try:
        import sqlite_utils
    finally:
        for m in hidden:
            if sys.modules.get(m, 0) is None:
                del sys.modules[m]
    return sqlite_utils


def open_database(path: Path | str, modules: list[str] | None = None) -> sqlite_utils.Database:
    """Open (creating if needed) and migrate the database at ``path``: with every registered
    migration, or those of the named modules (each exposing ``MIGRATIONS``)."""
    db = load_sqlite_utils().Database(connect(path))
    migrate(db, registered_migrations() if modules is None else modules)
    return db


def open_connection(path: Path | str) -> sqlite3.Connection:
    """Open (creating if needed) and migrate the database at ``path`` with every registered
    migration, as a plain connection: sqlite_utils is imported only when a migration is pending
    (it costs ~50 ms, which one-shot commands on the hot path such as ``copa ask`` do not pay)."""
    conn = connect(path)
    try:
        wanted = registered_migrations()
        if pending(conn, wanted):
            migrate(load_sqlite_utils().Database(conn), wanted)
    except BaseException:
        conn.close()
        raise
    return conn


def pending(conn: sqlite3.Connection, migrations: list[Migration]) -> list[str]:
    """The names among ``migrations`` not applied yet (read only; no table is created)."""
    try:
        done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    except sqlite3.OperationalError:  # a new database: no _migrations table yet
        done = set()
    return [name for name, _ in migrations if name not in done]


def rows(conn: sqlite3.Connection, sql: str, args: Any = ()) -> list[dict[str, Any]]:
    """The rows of a query as dicts (the row factory is set on this cursor only: a shared
    connection's other users keep their tuples)."""
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row
    return [dict(r) for r in cur.execute(sql, args)]


def migrate(db: sqlite_utils.Database, migrations: list[Migration] | list[str]) -> list[str]:
    """Apply the pending ones of ``migrations`` (or of the modules so named); returns the names applied now."""
    conn = db.conn
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    wanted: list[Migration] = []
    for m in migrations:
        wanted += importlib.import_module(m).MIGRATIONS if isinstance(m, str) else [m]
    pending = [m for m in wanted if m[0] not in done]
    if not pending:
        return []
    applied = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}  # another process?
        for name, fn in pending:
            if name in done:
                continue
            fn(db)
            conn.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat(timespec="seconds")),
            )
            applied.append(name)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return applied


def integrity(path: Path | str) -> str:
    """``PRAGMA integrity_check`` of an existing database file ('ok' when healthy)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()
    return "; ".join(r[0] for r in rows[:5])
