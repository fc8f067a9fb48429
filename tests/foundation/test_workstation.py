"""The shared Workstation across threads: each thread gets its own database connection."""

from __future__ import annotations

import threading

from copa.workstation import Workstation


def test_each_thread_has_its_own_connection_and_close_closes_all(copa_home):
    ws = Workstation()
    main = ws.db
    assert ws.db is main  # stable within a thread
    seen: list[object] = []
    t = threading.Thread(target=lambda: seen.append(ws.db))
    t.start()
    t.join()
    assert seen[0] is not main
    ws.close()
    import sqlite3

    import pytest

    with pytest.raises(sqlite3.ProgrammingError):
        main.conn.execute("SELECT 1")


def test_threads_writing_in_savepoints_do_not_corrupt_each_other(copa_home):
    """sqlite-utils wraps queries in a savepoint; on one shared connection two threads tangled
    them ("no such savepoint"). With a connection per thread they cannot."""
    ws = Workstation()
    ws.db.execute("CREATE TABLE IF NOT EXISTS t (k TEXT, v INTEGER)")
    errors: list[Exception] = []

    def work(k: str) -> None:
        try:
            for i in range(300):
                ws.db.execute("INSERT INTO t VALUES (?, ?)", [k, i])
                list(ws.db.query("SELECT count(*) AS n FROM t WHERE k = ?", [k]))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert ws.db.execute("SELECT count(*) FROM t").fetchone()[0] == 1200
    ws.close()
