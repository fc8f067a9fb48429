"""The scheduling engine: the job definitions in the database, mirrored into an in-memory
APScheduler 3.x scheduler, and the policy that decides what happens to every fire time.

The daemon (a face) owns the process: the lock, signals and heartbeat. This module owns the rest:
which jobs are scheduled, when they fire, what a late or missed fire time becomes, and what happens
to running jobs when the daemon stops. It is built with what it uses: the config, a job store on
the daemon's connection, and a way to open a run context (a workstation with its own database
connection, per run).

Every fire time (a *slot*) ends in exactly one history row, keyed by ``(job, slot, attempt)`` in
the database (a unique index): a run, or a row saying why it did not run (``skipped``: another run
held the job; ``missed``: later than the job's policy allows; ``coalesced``: folded into another
run). APScheduler is told never to drop or merge fire times itself (no coalescing, no misfire
grace, no instance limit): they all reach :meth:`Scheduler.fire`, which applies the job's policy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from copa.scheduler import runner, triggers
from copa.scheduler.store import AlreadyRunning, Job, JobStore, SlotTaken, iso, slot_key

log = logging.getLogger("copa.daemon")
MAX_SLOTS = 1000  # missed fire times enumerated after a long downtime; the rest are summed up in one row
CATCH_UP = "-catch-up"  # id suffix of the one-off APScheduler jobs that replay missed fire times

RunContext = Callable[[], AbstractContextManager[Any]]  # opens a workstation-like object for one run


def _executor(engine: Scheduler, max_workers: int) -> Any:
    """APScheduler's thread pool, handing every due fire time of a job to :meth:`Scheduler.fire`
    (APScheduler 3 gives them to its executor, not to the job function)."""
    from apscheduler.executors.pool import ThreadPoolExecutor

    class Executor(ThreadPoolExecutor):
        def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:  # the executor's extension point
            def done(f: Any) -> None:
                exc = f.exception()
                if exc:
                    self._run_job_error(job.id, exc, exc.__traceback__)
                else:
                    self._run_job_success(job.id, [])

            self._pool.submit(engine.fire, *job.args, run_times=list(run_times), **job.kwargs).add_done_callback(done)

    return Executor(max_workers=max_workers)


class Scheduler:
    """The live scheduler of one daemon. ``start()``, then ``poll()`` from the daemon's loop; ``stop()``."""

    def __init__(self, config: Any, store: JobStore, run_context: RunContext, *,
                 stopping: threading.Event | None = None):
        self.config = config
        self.store = store
        self.run_context = run_context
        self.stopping = stopping or threading.Event()  # the daemon's: set by its signal handler
        self.reload = threading.Event()
        self.active: dict[int, str] = {}  # run id -> job name
        self.active_lock = threading.Lock()
        self.signatures: dict[int, tuple[Any, ...]] = {}
        self.written_next: dict[int, datetime | None] = {}
        self.version = -1
        self.default_grace = int(config.get("scheduler.misfire_grace"))
        self.catch_up = bool(config.get("scheduler.catch_up"))
        self.aps: Any = None

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> int:
        """Start APScheduler and schedule every job; returns how many jobs are scheduled."""
        from apscheduler.schedulers.background import BackgroundScheduler

        self.aps = BackgroundScheduler(
            timezone=triggers.default_zone(self.config),
            executors={"default": _executor(self, max(1, int(self.config.get("scheduler.max_workers"))))},
            # every fire time reaches fire(), which applies the job's own policy (see the module doc)
            job_defaults={"coalesce": False, "max_instances": 1_000_000, "misfire_grace_time": None},
        )
        self.aps.start()
        self.sync(initial=True)
        return self.scheduled_count()

    def scheduled_count(self) -> int:
        """Jobs on a schedule (one-off catch-up replays are not jobs of their own)."""
        return sum(1 for a in self.aps.get_jobs() if not a.id.endswith(CATCH_UP))

    def poll(self) -> None:
        """Called from the daemon's loop: reload on a change, write next run times back."""
        if self.reload.is_set() or self.store.version() != self.version:
            self.reload.clear()
            self.sync()
        self._write_next_runs()

    def stop(self, timeout: float) -> list[int]:
        """No new runs start; running ones get ``timeout`` seconds, then are marked ``interrupted``.
        Returns the ids of the runs that were still going. The worker threads stay alive (paused, not
        shut down) while runs finish: a thread that ends takes with it any child process it started
        with PR_SET_PDEATHSIG (a skill worker), which would kill a run that still had time."""
        self.stopping.set()
        if self.aps is not None:
            self.aps.pause()
        deadline = time.monotonic() + max(0.0, timeout)
        while self.active_ids() and time.monotonic() < deadline:
            time.sleep(0.05)
        left = self.active_ids()
        if left:
            n = self.store.mark_interrupted(left, runner.STOPPED)
            log.warning("stopped with %d run(s) unfinished; marked interrupted", n)
        if self.aps is not None:
            self.aps.shutdown(wait=False)
        return left

    def active_ids(self) -> list[int]:
        with self.active_lock:
            return list(self.active)

    # --- mirroring the database into APScheduler ---------------------------------------------
    @staticmethod
    def _signature(job: Job) -> tuple[Any, ...]:
        return (job.trigger_kind, job.trigger_spec, job.timezone, job.misfire_grace, job.misfire_policy,
                job.max_lateness, job.paused, job.done, job.updated_at)

    def sync(self, initial: bool = False) -> None:
        self.version = self.store.version()
        jobs = {j.id: j for j in self.store.list()}
        for aps in self.aps.get_jobs():
            if aps.id.endswith(CATCH_UP):
                continue
            jid = int(aps.id)
            job = jobs.get(jid)
            if job is None or self._signature(job) != self.signatures.get(jid):
                aps.remove()
                self.signatures.pop(jid, None)
                self.written_next.pop(jid, None)
        present = {a.id for a in self.aps.get_jobs()}
        for job in jobs.values():
            if job.paused or job.done or str(job.id) in present:
                continue
            try:
                self._schedule(job)
            except Exception as e:  # a row the trigger code rejects: skip it, say why
                log.error("cannot schedule job %s: %s", job.name, e)
        if not initial:
            log.info("reloaded %d job(s) (version %d)", len(jobs), self.version)

    def _schedule(self, job: Job) -> None:
        now = datetime.now(UTC)
        missed = job.next_run_at is not None and job.next_run_at < now - timedelta(seconds=1)
        if missed:
            slots = self.missed_slots(job, now)
            log.info("job %s missed %d run(s) from %s while the daemon was down", job.name, len(slots),
                     iso(job.next_run_at))
            self._replay(job.id, slots)
        if job.trigger_kind == "at" and missed:
            self.store.set_next_run(job.id, None, done=True)
            return
        trigger = triggers.build(job.trigger_kind, job.trigger_spec, job.timezone, anchor=job.created_at)
        self.aps.add_job(self.fire, trigger, args=[job.id], id=str(job.id), name=job.name)
        self.signatures[job.id] = self._signature(job)

    def missed_slots(self, job: Job, now: datetime) -> list[datetime]:
        """Fire times from the stored next run up to now (at most MAX_SLOTS, the latest kept)."""
        first = job.next_run_at
        assert first is not None
        if job.trigger_kind == "at":
            return [first]
        trigger = triggers.build(job.trigger_kind, job.trigger_spec, job.timezone, anchor=job.created_at)
        slots = [first]
        cur = first
        for _ in range(100_000):
            nxt = trigger.get_next_fire_time(cur, cur + timedelta(microseconds=1))
            if nxt is None or nxt > now:
                break
            nxt = nxt.astimezone(UTC)
            if nxt <= cur:
                break
            slots.append(nxt)
            cur = nxt
        return slots[-MAX_SLOTS:] if len(slots) > MAX_SLOTS else slots

    def _replay(self, job_id: int, slots: list[datetime]) -> None:
        """Hand missed fire times to fire() now, in a worker thread, as one APScheduler date job."""
        self.aps.add_job(self.fire, "date", run_date=datetime.now(UTC), args=[job_id], kwargs={"missed": slots},
                         id=f"{job_id}{CATCH_UP}", replace_existing=True)

    def _write_next_runs(self) -> None:
        for aps in self.aps.get_jobs():
            if aps.id.endswith(CATCH_UP):
                continue
            jid = int(aps.id)
            nxt = aps.next_run_time
            if self.written_next.get(jid, "unset") != nxt:
                self.store.set_next_run(jid, nxt)
                self.written_next[jid] = nxt

    # --- deciding and running ----------------------------------------------------------------
    def plan(self, job: Job, slots: list[datetime], now: datetime,
             replay: bool = False) -> tuple[list[tuple[datetime, str]], list[tuple[datetime, str, str]]]:
        """Apply the job's misfire policy to its due fire times: (runs as (slot, origin), records as
        (slot, status, reason)). A pure function of its inputs."""
        grace = job.misfire_grace or self.default_grace
        policy = job.misfire_policy or "run-once"
        if policy == "run-once" and not self.catch_up:
            policy = "skip"  # scheduler.catch_up = false: late runs are recorded, never run
        runs: list[tuple[datetime, str]] = []
        records: list[tuple[datetime, str, str]] = []
        late_ok: list[datetime] = []
        on_time: list[datetime] = []
        for slot in sorted(slots):
            late = (now - slot).total_seconds()
            if job.max_lateness is not None and late > job.max_lateness:
                records.append((slot, "missed", f"{late:.0f}s late, more than its max lateness "
                                                f"({job.max_lateness}s)"))
            elif late > grace or replay:
                late_ok.append(slot)
            else:
                on_time.append(slot)
        if policy == "run-all":
            runs = [(s, "catch-up") for s in late_ok] + [(s, "schedule") for s in on_time]
        elif policy == "skip":
            why = "scheduler.catch_up is off" if job.misfire_policy in (None, "run-once") else "misfire policy skip"
            records += [(s, "missed", f"missed by {(now - s).total_seconds():.0f}s ({why})") for s in late_ok]
            runs = [(s, "schedule") for s in on_time]
        else:  # run-once: the latest due fire time runs; earlier ones are folded into it
            due = [(s, "catch-up") for s in late_ok] + [(s, "schedule") for s in on_time]
            if due:
                runs = [due[-1]]
                records += [(s, "coalesced", f"coalesced into the run for {iso(due[-1][0])}") for s, _ in due[:-1]]
        return runs, records

    def fire(self, job_id: int, run_times: list[datetime] | None = None,
             missed: list[datetime] | None = None) -> None:
        """Called in a worker thread with the job's due fire times (``missed`` for a replay after
        downtime). Never raises: the daemon never dies of a job."""
        try:
            with self.run_context() as ws:
                self._fire(ws, job_id, [t.astimezone(UTC) for t in (missed or run_times or [])], missed is not None)
        except BaseException:
            log.exception("job %s crashed in the daemon", job_id)

    def _fire(self, ws: Any, job_id: int, slots: list[datetime], replay: bool) -> None:
        store = JobStore(ws.conn)
        job = store.get_by_id(job_id)
        if job is None or job.paused or (job.done and not replay) or not slots:
            return
        if job.trigger_kind == "at":
            store.set_next_run(job.id, None, done=True)
        now = datetime.now(UTC)
        runs, records = self.plan(job, slots, now, replay)
        for slot, status, reason in records:
            if store.record_skipped(job, reason, origin="schedule", status=status, scheduled_for=slot,
                                    slot=slot_key(slot)):
                log.warning("job %s: fire time %s %s: %s", job.name, iso(slot), status, reason)
        for slot, origin in runs:
            if self.stopping.is_set():
                store.record_skipped(job, "the daemon was stopping", origin=origin, status="missed",
                                     scheduled_for=slot, slot=slot_key(slot))
                continue
            if origin == "catch-up":
                log.warning("job %s missed its run at %s by %.0fs; running it once now", job.name, iso(slot),
                            (now - slot).total_seconds())
            self._run(ws, store, job, slot, origin)

    def _run(self, ws: Any, store: JobStore, job: Job, slot: datetime, origin: str) -> None:
        key = slot_key(slot)
        try:
            run = runner.execute(ws, job, origin=origin, stop=self.stopping, scheduled_for=slot, slot=key,
                                 on_start=lambda rid: self._track(rid, job.name), on_finish=self._untrack)
            log.info("job %s: %s%s", job.name, run.status, f" ({run.error})" if run.error else "")
        except AlreadyRunning as e:  # recorded now, while it happens (not at the next restart)
            store.record_skipped(job, str(e.message), origin=origin, scheduled_for=slot, slot=key)
            log.info("job %s skipped: %s", job.name, e.message)
        except SlotTaken:
            log.info("job %s: the run for %s was already served", job.name, iso(slot))

    def _track(self, run_id: int, name: str) -> None:
        with self.active_lock:
            self.active[run_id] = name

    def _untrack(self, run_id: int) -> None:
        with self.active_lock:
            self.active.pop(run_id, None)

