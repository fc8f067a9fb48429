"""A long-lived process (daemon, TUI) that opens and closes many skill registries leaks no pools."""

from __future__ import annotations

import gc
import weakref

from copa.skills.runner import _OPEN_POOLS, Limits, WorkerPool


def test_closed_pools_are_released():
    refs = []
    for _ in range(50):
        pool = WorkerPool(Limits())
        refs.append(weakref.ref(pool))
        pool.close()
        del pool
    gc.collect()
    assert sum(r() is not None for r in refs) == 0
    assert not any(r() in _OPEN_POOLS for r in refs if r() is not None)


def test_open_pools_are_tracked_for_exit_until_closed():
    pool = WorkerPool(Limits())
    assert pool in _OPEN_POOLS
    pool.close()
    assert pool not in _OPEN_POOLS
