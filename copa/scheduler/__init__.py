"""Scheduled jobs and automated reports: job definitions and history in the copa database,
triggers (cron, every, at), the engine the daemon runs (``Scheduler``), the runner shared by the
daemon and `copa schedule run`, report templates and delivery targets.

The public API, imported lazily (``copa schedule --help`` must not pay for APScheduler):

- the store: ``JobStore``, ``Job``, ``Run``, ``AlreadyRunning``, ``pid_alive`` (is a recorded run's
  process still there);
- jobs as the faces edit them: ``job_store`` (the store over a database), ``add_job``, ``parse_args``
  (KEY=VALUE arguments), ``remove_job``, ``pause_job``, ``resume_job``; ``default_zone``;
- ``Scheduler``: the engine (APScheduler 3, misfire policies, one run per slot);
- delivery: ``resolve_target``, ``deliver_all``;
- the daemon's lock and what it says: ``DaemonLock``, ``DaemonRunning``, ``lock_holder``,
  ``daemon_status``, ``check_daemon`` (the daemon face holds the lock; any face may read it).

The rest is private to the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from copa.exports import lazy

if TYPE_CHECKING:
    from copa.scheduler.delivery import deliver_all, resolve_target
    from copa.scheduler.engine import Scheduler
    from copa.scheduler.jobs import add_job, parse_args
    from copa.scheduler.jobs import pause as pause_job
    from copa.scheduler.jobs import remove as remove_job
    from copa.scheduler.jobs import resume as resume_job
    from copa.scheduler.jobs import store as job_store
    from copa.scheduler.lock import DaemonLock, DaemonRunning
    from copa.scheduler.lock import holder as lock_holder
    from copa.scheduler.status import check_daemon, daemon_status
    from copa.scheduler.store import AlreadyRunning, Job, JobStore, Run, pid_alive
    from copa.scheduler.triggers import default_zone

_EXPORTS = {
    "AlreadyRunning": "copa.scheduler.store",
    "Job": "copa.scheduler.store",
    "JobStore": "copa.scheduler.store",
    "Run": "copa.scheduler.store",
    "pid_alive": "copa.scheduler.store",
    "job_store": "copa.scheduler.jobs:store",
    "add_job": "copa.scheduler.jobs",
    "parse_args": "copa.scheduler.jobs",
    "remove_job": "copa.scheduler.jobs:remove",
    "pause_job": "copa.scheduler.jobs:pause",
    "resume_job": "copa.scheduler.jobs:resume",
    "default_zone": "copa.scheduler.triggers",
    "Scheduler": "copa.scheduler.engine",
    "resolve_target": "copa.scheduler.delivery",
    "deliver_all": "copa.scheduler.delivery",
    "DaemonLock": "copa.scheduler.lock",
    "DaemonRunning": "copa.scheduler.lock",
    "lock_holder": "copa.scheduler.lock:holder",
    "daemon_status": "copa.scheduler.status",
    "check_daemon": "copa.scheduler.status",
}

__all__ = ["AlreadyRunning", "DaemonLock", "DaemonRunning", "Job", "JobStore", "Run", "Scheduler", "add_job",
           "check_daemon", "daemon_status", "default_zone", "deliver_all", "job_store", "lock_holder", "parse_args",
           "pause_job", "pid_alive", "remove_job", "resolve_target", "resume_job"]

__getattr__ = lazy(__name__, _EXPORTS)
