"""What the scheduler is handed by a face: the parts of copa a job run uses, as a type.

The scheduler never imports ``copa.workstation`` (arrows point down): the CLI, the TUI and the
daemon pass their Workstation, which has these attributes, each built on first use.
"""

from __future__ import annotations

from typing import Any, Protocol


class Parts(Protocol):
    paths: Any  # copa.paths.Paths
    config: Any  # copa.config.Config
    db: Any  # the database (``.conn``: a sqlite3 connection)
    secrets: Any  # copa.secrets store
    memory: Any  # copa.memory.MemoryStore (reports: tasks, learned; stored reports)
    skills: Any  # copa.skills registry (skill jobs, calendar and skill sections)
    models: Any  # copa.providers.Models (a report summary's fast model)
    agent: Any  # copa.agent.Agent (prompt jobs, report summaries)
