"""`copa daemon`: the long-running face that owns the APScheduler 3.x scheduler.

Job definitions live in the database; the daemon mirrors them into an in-memory APScheduler
job store and re-reads them whenever the ``jobs_version`` counter moves (checked every
``scheduler.poll_interval`` seconds: one indexed read, so an idle daemon stays near 0 % CPU).
Each run gets its own database connection in a worker thread; a job can fail, hang in a delivery
retry or raise anything without taking the daemon down.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from copa.daemon.lock import DaemonLock
from copa.paths import Paths
from copa.scheduler import runner, triggers
from copa.scheduler.store import AlreadyRunning, Job, JobStore, iso
from copa.workstation import Workstation

log = logging.getLogger("copa.daemon")
HEARTBEAT_SECONDS = 10.0
_current = threading.local()  # the fire time APScheduler is running, for the run's "scheduled_for"


def _executor(max_workers: int) -> Any:
    """APScheduler's thread pool, but telling the job which fire time it is running (APScheduler 3
    passes it to its executor, not to the job function)."""
    from apscheduler.executors.base import run_job
    from apscheduler.executors.pool import ThreadPoolExecutor

    def run_with_time(job: Any, alias: str, run_times: list[datetime], logger_name: str) -> Any:
        _current.run_time = run_times[-1] if run_times else None
        try:
            return run_job(job, alias, run_times, logger_name)
        finally:
            _current.run_time = None

    class Executor(ThreadPoolExecutor):
        def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:  # same as the base, one line
            def callback(f: Any) -> None:
                exc = f.exception()
                if exc:
                    self._run_job_error(job.id, exc, exc.__traceback__)
                else:
                    self._run_job_success(job.id, f.result())

            f = self._pool.submit(run_with_time, job, job._jobstore_alias, run_times, self._logger.name)
            f.add_done_callback(callback)

    return Executor(max_workers=max_workers)


class Daemon:
    def __init__(self, paths: Paths | None = None):
        self.paths = paths or Paths.from_env()
        self.stopping = threading.Event()
        self.reload = threading.Event()
        self.active: dict[int, str] = {}  # run id -> job name
        self.active_lock = threading.Lock()
        self.signatures: dict[int, tuple[Any, ...]] = {}
        self.written_next: dict[int, datetime | None] = {}
        self.version = -1
        self.scheduler: Any = None
        self._skills: Any = None
        self._skills_lock = threading.Lock()
        self._skills_ws: Workstation | None = None

    # --- lifecycle --------------------------------------------------------------------------
    def run(self) -> int:
        self.paths.ensure()
        lock = DaemonLock(self.paths.daemon_lock_file).acquire()
        ws = Workstation(self.paths)
        try:
            return self._serve(ws, lock)
        finally:
            ws.close()
            lock.release()

    def _serve(self, ws: Workstation, lock: DaemonLock) -> int:
        from apscheduler.schedulers.background import BackgroundScheduler

        self._install_signals()  # first: a SIGTERM during start-up still ends in a clean shutdown
        cfg = ws.config
        self.store = JobStore(ws.db.conn)
        stale = self.store.mark_stale_interrupted()
        if stale:
            log.warning("marked %d run(s) interrupted: their process had stopped mid-run", stale)
        self.store.set_meta("daemon_pid", str(os.getpid()))
        self.store.set_meta("daemon_started", iso(lock.started))
        self.store.set_meta("daemon_stopped", None)
        self._heartbeat()
        self.default_grace = int(cfg.get("scheduler.misfire_grace"))
        self.scheduler = BackgroundScheduler(
            timezone=triggers.default_zone(cfg),
            executors={"default": _executor(max(1, int(cfg.get("scheduler.max_workers"))))},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": self.default_grace},
        )
        self.catch_up = bool(cfg.get("scheduler.catch_up"))
        from apscheduler.events import EVENT_JOB_MISSED

        self.scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        self.scheduler.start()
        # serial bridge (copa/device, issue 8): keep paired boards connected and logging; never raises
        try:
            from copa.device.service import DeviceService

            # its own Workstation: device threads must not share the scheduler's connection
            # (a transaction open in one would swallow the other's writes)
            self._devices_ws = Workstation(self.paths)
            self.devices = DeviceService(self._devices_ws)
            self._start_mqtt(self._devices_ws, self.devices)  # before start(): it sees every board attach
            self.devices.start()
        except Exception:  # the scheduler runs even if the device part cannot start
            log.exception("the device service could not start")
            self.devices = None
        self.sync(initial=True)
        say(f"copa daemon: running (pid {os.getpid()}), {len(self.scheduler.get_jobs())} job(s) scheduled")
        poll = max(0.05, float(cfg.get("scheduler.poll_interval")))
        last_beat = time.monotonic()
        while not self.stopping.wait(poll):
            try:
                if self.reload.is_set() or self.store.version() != self.version:
                    self.reload.clear()
                    self.sync()
                self._write_next_runs()
                if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                    self._heartbeat()
                    last_beat = time.monotonic()
            except Exception:  # a locked database, a bad row: log it and keep serving
                log.exception("daemon loop error")
        return self._shutdown(float(cfg.get("scheduler.stop_timeout")))

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: Any) -> None:
            log.info("received %s, stopping", signal.Signals(signum).name)
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, lambda *_: self.reload.set())

    def _start_mqtt(self, ws: Workstation, devices: Any) -> None:
        """The MQTT bridge (issue 19, copa/device/mqtt.py) when mqtt.enabled; never raises."""
        from copa.errors import CopaError

        self.mqtt = None
        try:
            from copa.device.mqtt import bridge_for

            self.mqtt = bridge_for(ws.config, ws.secrets, ws.devices, devices.sessions, self.paths.state_dir)
        except CopaError as e:
            log.error("the MQTT bridge cannot start: %s", e)
        except Exception:
            log.exception("the MQTT bridge could not start")
        if self.mqtt is not None:
            devices.observers.append(self.mqtt)
            self.mqtt.start()

    def _shutdown(self, timeout: float) -> int:
        self.scheduler.shutdown(wait=False)  # no new runs; running ones continue for now
        if getattr(self, "mqtt", None) is not None:  # issue 19: a clean "offline" before the boards close
            try:
                self.mqtt.stop()
            except Exception:
                log.exception("stopping the MQTT bridge failed")
        if getattr(self, "devices", None) is not None:  # issue 8: unsubscribe, close ports, flush readings
            try:
                self.devices.stop(timeout=2.0)
            except Exception:
                log.exception("stopping the device service failed")
        if getattr(self, "_devices_ws", None) is not None:
            self._devices_ws.close()
        deadline = time.monotonic() + max(0.0, timeout)
        while self._active_ids() and time.monotonic() < deadline:
            time.sleep(0.05)
        left = self._active_ids()
        if left:
            n = self.store.mark_interrupted(left, "the daemon was stopped before the run finished")
            log.warning("stopped with %d run(s) unfinished; marked interrupted", n)
        self._close_skills()  # after marking: a run whose worker dies now cannot overwrite "interrupted"
        self.store.set_meta("daemon_stopped", iso(datetime.now(UTC)))
        say(f"copa daemon: stopped ({len(left)} run(s) interrupted)")
        if left:  # worker threads cannot be killed; leave without waiting for them
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            self.store.conn.close()
            self.paths.daemon_lock_file.unlink(missing_ok=True)  # the finally in run() will not get to it
            os._exit(0)
        return 0

    def _active_ids(self) -> list[int]:
        with self.active_lock:
            return list(self.active)

    def _heartbeat(self) -> None:
        self.store.set_meta("daemon_heartbeat", iso(datetime.now(UTC)))

    # --- mirroring the database into APScheduler ---------------------------------------------
    @staticmethod
    def _signature(job: Job) -> tuple[Any, ...]:
        return (job.trigger_kind, job.trigger_spec, job.timezone, job.misfire_grace, job.paused, job.done,
                job.updated_at)

    def sync(self, initial: bool = False) -> None:
        self.version = self.store.version()
        jobs = {j.id: j for j in self.store.list()}
        for aps in self.scheduler.get_jobs():
            if aps.id.endswith("-catch-up"):
                continue
            jid = int(aps.id)
            job = jobs.get(jid)
            if job is None or self._signature(job) != self.signatures.get(jid):
                aps.remove()
                self.signatures.pop(jid, None)
                self.written_next.pop(jid, None)
        present = {a.id for a in self.scheduler.get_jobs()}
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
        grace = job.misfire_grace or self.default_grace
        now = datetime.now(UTC)
        missed = job.next_run_at is not None and job.next_run_at < now - timedelta(seconds=1)
        catch_up = missed and self.catch_up
        if catch_up:
            log.info("job %s missed its run at %s while the daemon was down; running it once now",
                     job.name, iso(job.next_run_at))
            self._catch_up_now(job.id, job.next_run_at)
        if job.trigger_kind == "at" and missed:
            self.store.set_next_run(job.id, None, done=True)
            if not catch_up:
                self.store.finish_run(self.store.begin_run(job, origin="schedule"), "skipped",
                                      error="missed while the daemon was down (scheduler.catch_up is off)")
            return
        trigger = triggers.build(job.trigger_kind, job.trigger_spec, job.timezone, anchor=job.created_at)
        self.scheduler.add_job(self._fire, trigger, args=[job.id, "schedule"], id=str(job.id), name=job.name,
                               misfire_grace_time=grace, coalesce=True, max_instances=1)
        self.signatures[job.id] = self._signature(job)

    def _catch_up_now(self, job_id: int, missed: datetime | None) -> None:
        self.scheduler.add_job(self._fire, "date", run_date=datetime.now(UTC), args=[job_id, "catch-up", missed],
                               id=f"{job_id}-catch-up", replace_existing=True, misfire_grace_time=None)

    def _on_missed(self, event: Any) -> None:
        """A run later than its misfire grace (the machine slept, the daemon was stopped with SIGSTOP,
        every worker was busy): with catch-up on it runs once now, else it is recorded as skipped,
        never dropped silently."""
        if event.job_id.endswith("-catch-up"):
            return
        try:
            jid = int(event.job_id)
            late = (datetime.now(UTC) - event.scheduled_run_time).total_seconds()
            if self.catch_up:
                log.warning("job %s missed its run at %s by %.0fs; running it once now", jid,
                            iso(event.scheduled_run_time), late)
                self._catch_up_now(jid, event.scheduled_run_time)
                return
            with Workstation(self.paths) as ws:
                store = JobStore(ws.db.conn)
                job = store.get_by_id(jid)
                if job is not None:
                    store.record_skipped(job, f"missed by {late:.0f}s (more than its misfire grace; "
                                              "scheduler.catch_up is off)", origin="schedule")
        except Exception:  # a listener must never break the scheduler thread
            log.exception("handling a missed run failed")

    def _write_next_runs(self) -> None:
        for aps in self.scheduler.get_jobs():
            if aps.id.endswith("-catch-up"):
                continue
            jid = int(aps.id)
            nxt = aps.next_run_time
            if self.written_next.get(jid, "unset") != nxt:
                self.store.set_next_run(jid, nxt)
                self.written_next[jid] = nxt

    # --- running ------------------------------------------------------------------------------
    def _fire(self, job_id: int, origin: str, missed: datetime | None = None) -> None:
        """Called by APScheduler in a worker thread. Never raises."""
        scheduled_for = missed if origin == "catch-up" else getattr(_current, "run_time", None)
        try:
            ws = Workstation(self.paths)  # fresh config and its own database connection for this run
            shared = self._shared_skills()
            if shared is not None:
                ws.__dict__["skills"] = shared  # see _shared_skills
            try:
                store = JobStore(ws.db.conn)
                job = store.get_by_id(job_id)
                if job is None or job.paused or (job.done and origin != "catch-up"):
                    return
                if job.trigger_kind == "at":
                    store.set_next_run(job.id, None, done=True)
                try:
                    run = runner.execute(ws, job, origin=origin, stop=self.stopping, scheduled_for=scheduled_for,
                                         on_start=lambda rid: self._track(rid, job.name),
                                         on_finish=self._untrack)
                    log.info("job %s: %s%s", job.name, run.status, f" ({run.error})" if run.error else "")
                except AlreadyRunning as e:
                    store.record_skipped(job, str(e.message), origin=origin)
                    log.info("job %s skipped: %s", job.name, e.message)
            finally:
                ws.__dict__.pop("skills", None)  # shared: not this run's to close
                ws.close()
        except BaseException:  # the daemon never dies of a job
            log.exception("job %s crashed in the daemon", job_id)

    def _shared_skills(self) -> Any:
        """One skills registry (and worker pool) for the daemon's life, shared by every run: a
        registry per run would leave its pool's atexit hook behind each time (a slow leak in a
        process that runs for months) and pay the discovery again. Its own Workstation keeps its
        database connection apart from the runs'. User skill files are still rescanned on use."""
        with self._skills_lock:
            if self._skills is None:
                try:
                    self._skills_ws = Workstation(self.paths)
                    self._skills = self._skills_ws.skills
                except Exception:  # no skills part: each run's ws.skills will say why
                    log.exception("skills are not available to scheduled runs")
                    self._skills = False
            return self._skills or None

    def _close_skills(self) -> None:
        if self._skills:
            with contextlib.suppress(Exception):
                self._skills.close()  # stops its sandboxed workers: no orphans after the daemon
        if self._skills_ws is not None:
            self._skills_ws.close()

    def _track(self, run_id: int, name: str) -> None:
        with self.active_lock:
            self.active[run_id] = name

    def _untrack(self, run_id: int) -> None:
        with self.active_lock:
            self.active.pop(run_id, None)


def say(text: str) -> None:
    """A line for the service manager's journal (stderr) and the log file."""
    log.info(text)


def _log_to_stderr() -> None:
    """Besides the log file, every daemon record goes to stderr: the journal of a service manager."""
    from copa.log import RedactingFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger("copa")
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    aps = logging.getLogger("apscheduler")  # misfires and executor errors, not every "Running job"
    aps.addHandler(handler)
    aps.setLevel(logging.WARNING)
    aps.propagate = False


def run_daemon() -> int:
    _log_to_stderr()
    return Daemon().run()
