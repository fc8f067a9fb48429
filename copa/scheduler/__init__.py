"""Scheduled jobs and automated reports: job definitions and history in the copa database,
triggers (cron, every, at), the runner shared by the daemon and `copa schedule run`, report
templates and delivery targets. The daemon (``copa.daemon``) owns the live APScheduler instance.
"""

from copa.scheduler.store import AlreadyRunning, Job, JobStore, Run

__all__ = ["AlreadyRunning", "Job", "JobStore", "Run"]
