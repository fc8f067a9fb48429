"""`copa daemon`: the long-running face. It holds the lock (one daemon per COPA_HOME), handles
signals, writes the heartbeat and hosts the device service; the scheduling itself is
:class:`copa.scheduler.engine.Scheduler`, driven from the loop here.

The loop checks ``jobs_version`` every ``scheduler.poll_interval`` seconds (one indexed read, so an
idle daemon stays near 0 % CPU). Each run gets its own Workstation and database connection in a
worker thread; a job can fail, hang in a delivery retry or raise anything without taking the daemon
down.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from copa.paths import Paths
from copa.scheduler import DaemonLock, JobStore, Scheduler
from copa.timeutil import iso
from copa.workstation import Workstation

log = logging.getLogger("copa.daemon")
HEARTBEAT_SECONDS = 10.0


class Daemon:
    def __init__(self, paths: Paths | None = None):
        self.paths = paths or Paths.from_env()
        self.stopping = threading.Event()
        self.engine: Scheduler | None = None
        self._skills: Any = None
        self._skills_lock = threading.Lock()
        self._skills_ws: Workstation | None = None
        self.devices: Any = None
        self._devices_ws: Workstation | None = None

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
        self._install_signals()  # first: a SIGTERM during start-up still ends in a clean shutdown
        cfg = ws.config
        self.store = JobStore(ws.conn)
        stale = self.store.mark_stale_interrupted()
        if stale:
            log.warning("marked %d run(s) interrupted: their process had stopped mid-run", stale)
        self.store.set_meta("daemon_pid", str(os.getpid()))
        self.store.set_meta("daemon_started", iso(lock.started))
        self.store.set_meta("daemon_stopped", None)
        self._heartbeat()
        self.engine = Scheduler(cfg, self.store, self._run_context, stopping=self.stopping)
        self._start_devices()
        self._start_memory_upkeep()
        self._start_recall()
        n = self.engine.start()
        say(f"copa daemon: running (pid {os.getpid()}), {n} job(s) scheduled")
        poll = max(0.05, float(cfg.get("scheduler.poll_interval")))
        last_beat = time.monotonic()
        while not self.stopping.wait(poll):
            try:
                self.engine.poll()
                if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                    self._heartbeat()
                    last_beat = time.monotonic()
            except Exception:  # a locked database, a bad row: log it and keep serving
                log.exception("daemon loop error")
        return self._shutdown(float(cfg.get("scheduler.stop_timeout")))

    def _start_devices(self) -> None:
        """The serial bridge (copa/device, issue 8): paired boards stay connected and logging; a
        failure here never stops the scheduler."""
        try:
            from copa.device import DeviceService

            # its own Workstation: device threads must not share the scheduler's connection
            # (a transaction open in one would swallow the other's writes)
            self._devices_ws = Workstation(self.paths)
            self.devices = DeviceService(self._devices_ws.devices)
            self._start_mqtt(self._devices_ws, self.devices)  # before start(): it sees every board attach
            self.devices.start()
        except Exception:
            log.exception("the device service could not start")
            self.devices = None

    def _start_memory_upkeep(self) -> None:
        """With the dense retriever on, memories are written without vectors (writing never loads the
        model); the daemon fills them in the background so searches do not have to, and gives the
        model's memory back after ``memory.keep_warm`` seconds without a search or an embedding."""
        threading.Thread(target=self._memory_upkeep, name="copa-memory-upkeep", daemon=True).start()

    def _start_recall(self) -> None:
        """Serve recall to one-shot commands with the model and the vectors loaded here
        (copa/memory/warm.py); with the dense retriever off they have nothing to gain."""
        self.recall = None
        try:
            from copa.memory import warm

            self._recall_ws = Workstation(self.paths)  # its own connection, like the device service
            if (not self._recall_ws.config.get("memory.serve_recall") or self._recall_ws.memory.vectors is None
                    or not warm.available()):
                return
            self.recall = warm.RecallServer(self._recall_ws.memory, self.paths.state_dir)
            self.recall.start()
        except OSError as e:  # a state folder whose path is too long for a UNIX socket (107 bytes)
            log.warning("recall is not served to other commands (they search themselves): %s", e)
            self.recall = None
        except Exception:  # a missing model: commands search themselves
            log.exception("recall cannot be served to other commands")
            self.recall = None

    def _memory_upkeep(self) -> None:
        """Embeds new memories every ``memory.embed_interval`` seconds and releases the model and the
        vectors once unused for ``memory.keep_warm`` seconds (checked four times a spell)."""
        from copa.memory import release_idle

        ws = Workstation(self.paths)  # its own connection, like the device service
        try:
            every = max(0.1, float(ws.config.get("memory.embed_interval")))
            keep = float(ws.config.get("memory.keep_warm"))
            tick = min(every, max(0.1, keep / 4)) if keep > 0 else every
            last_pass = time.monotonic()
            while not self.stopping.wait(tick):
                if keep > 0 and release_idle(keep):
                    give_memory_back()
                    log.info("released the embedding model and the vectors (unused for %g s)", keep)
                if time.monotonic() - last_pass < every:
                    continue
                last_pass = time.monotonic()
                try:
                    memory = ws.memory
                    if memory.vectors is None or not memory.missing_vectors():
                        continue
                    n = memory.embed_missing()
                    log.info("embedded %d new memories", n)
                except Exception:  # a locked database, a missing model: log it, try again later
                    log.exception("embedding new memories failed")
        finally:
            ws.close()

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: Any) -> None:
            log.info("received %s, stopping", signal.Signals(signum).name)
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, lambda *_: self.engine is not None and self.engine.reload.set())

    def _start_mqtt(self, ws: Workstation, devices: Any) -> None:
        """The MQTT bridge (issue 19, copa/device/mqtt.py) when mqtt.enabled; never raises."""
        from copa.errors import CopaError

        self.mqtt = None
        try:
            from copa.device import mqtt_bridge_for as bridge_for

            self.mqtt = bridge_for(ws.config, ws.secrets, ws.devices, devices.sessions, self.paths.state_dir)
        except CopaError as e:
            log.error("the MQTT bridge cannot start: %s", e)
        except Exception:
            log.exception("the MQTT bridge could not start")
        if self.mqtt is not None:
            devices.observers.append(self.mqtt)
            self.mqtt.start()

    def _shutdown(self, timeout: float) -> int:
        if getattr(self, "mqtt", None) is not None:  # issue 19: a clean "offline" before the boards close
            try:
                self.mqtt.stop()
            except Exception:
                log.exception("stopping the MQTT bridge failed")
        if self.devices is not None:  # issue 8: unsubscribe, close ports, flush readings
            try:
                self.devices.stop(timeout=2.0)
            except Exception:
                log.exception("stopping the device service failed")
        if self._devices_ws is not None:
            self._devices_ws.close()
        if getattr(self, "recall", None) is not None:
            with contextlib.suppress(Exception):
                self.recall.stop()
        if getattr(self, "_recall_ws", None) is not None:
            self._recall_ws.close()
        left = self.engine.stop(timeout) if self.engine is not None else []
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

    def _heartbeat(self) -> None:
        self.store.set_meta("daemon_heartbeat", iso(datetime.now(UTC)))

    # --- what the engine gets for each run ---------------------------------------------------
    @contextlib.contextmanager
    def _run_context(self) -> Iterator[Workstation]:
        """A fresh Workstation (config and its own database connection) for one run, sharing the
        daemon's skills registry."""
        ws = Workstation(self.paths)
        shared = self._shared_skills()
        if shared is not None:
            ws.__dict__["skills"] = shared  # see _shared_skills
        try:
            yield ws
        finally:
            ws.__dict__.pop("skills", None)  # shared: not this run's to close
            ws.close()

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


def give_memory_back() -> None:
    """Return freed memory to the system: Python's objects first, then the C heap, which glibc keeps
    for reuse after large frees (a released model's tokenizer left ~14 MB resident without this)."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # malloc_trim is glibc's; elsewhere nothing to do
        ctypes.CDLL(None).malloc_trim(0)


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
