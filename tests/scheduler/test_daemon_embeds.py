"""The daemon gives new memories their dense vectors in the background (issue 14): writing never
loads the model, so without the daemon the next search would have to."""

from __future__ import annotations

import pytest
from sched_helpers import query, wait_for

from copa.memory import embeddings

pytestmark = pytest.mark.skipif(not embeddings.available(), reason="copa[embeddings] is not installed")


def test_daemon_embeds_memories_written_by_other_processes(copa_home, run_copa, daemons):
    env = {"COPA_MEMORY_EMBEDDINGS": "static", "COPA_MEMORY_EMBED_INTERVAL": "0.3"}
    for i in range(4):
        assert run_copa("memory", "add", f"the greenhouse needs new glass, pane {i}", env=env).returncode == 0
    assert query(copa_home, "SELECT count(*) FROM memory_vectors")[0][0] == 0  # writing embedded nothing
    daemons.start(**env)
    wait_for(lambda: query(copa_home, "SELECT count(*) FROM memory_vectors")[0][0] == 4, 60,
             what="the daemon to embed the four memories")
    assert run_copa("memory", "add", "one more pane of glass", env=env).returncode == 0
    wait_for(lambda: query(copa_home, "SELECT count(*) FROM memory_vectors")[0][0] == 5, 60,
             what="the daemon to embed the new memory")
