"""Running one job: the same code path for the daemon and for `copa schedule run NAME`.

A run is recorded before it starts (status ``running`` with the pid), then finished as ``ok``,
``partial`` (the action worked, a delivery did not), ``failed`` or ``interrupted``. A failed action
is retried per the job's policy, each attempt its own row; nothing a job does can raise out of
``execute`` except a refusal to start (``AlreadyRunning``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from copa.errors import CopaError
from copa.scheduler.store import Job, JobStore, Run

if TYPE_CHECKING:
    from copa.scheduler.parts import Parts

log = logging.getLogger("copa.scheduler")


class JobFailed(Exception):
    """The action failed in a way the user can read (recorded as the run's error)."""


STOPPED = "the daemon was stopped before the run finished"


@dataclass
class Output:
    title: str
    body: str
    path: str | None = None
    report_id: str | None = None
    notes: str | None = None  # e.g. dangerous tool calls that were denied


def execute(ws: Parts, job: Job, *, origin: str, scheduled_for: datetime | None = None,
            slot: str | None = None, stop: threading.Event | None = None,
            on_start: Callable[[int], None] | None = None, on_finish: Callable[[int], None] | None = None) -> Run:
    """Run ``job`` with retries; returns the last attempt's run. ``slot`` (the fire time's key) makes
    the run exactly-once: :class:`~copa.scheduler.store.SlotTaken` if it was served already."""
    store = JobStore(ws.conn)
    retries = job.retries if job.retries is not None else int(ws.config.get("scheduler.retries"))
    delay = float(ws.config.get("scheduler.retry_delay"))
    attempt = 0
    while True:
        attempt += 1
        run_id = store.begin_run(job, origin=origin if attempt == 1 else "retry", attempt=attempt,
                                 scheduled_for=scheduled_for, slot=slot)
        if on_start:
            on_start(run_id)
        try:
            run = _attempt(ws, store, job, run_id, stop)
        finally:
            if on_finish:
                on_finish(run_id)
        if run.status != "failed" or attempt > retries:
            return run
        if stop is not None and stop.is_set():
            return run  # stopping: no further attempt (and no promise of one in the log)
        log.info("job %s failed (attempt %d of %d), retrying in %.0fs: %s", job.name, attempt, retries + 1,
                 delay, run.error)
        if (stop or threading.Event()).wait(delay):
            return run  # stopping: the failure stands, no further attempt


def _stopping(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


def _attempt(ws: Parts, store: JobStore, job: Job, run_id: int, stop: threading.Event | None) -> Run:
    from copa.scheduler.delivery import deliver_all

    try:
        out = perform(ws, job, run_id)
    except (JobFailed, CopaError) as e:
        if _stopping(stop):  # the stop the user asked for ended it (a worker closed, a wait cut short)
            return store.finish_run(run_id, "interrupted", error=f"{STOPPED} ({e})")
        return store.finish_run(run_id, "failed", error=str(e))
    except Exception as e:  # a bug in a part: record it, never crash the caller
        if _stopping(stop):
            return store.finish_run(run_id, "interrupted", error=f"{STOPPED} ({type(e).__name__}: {e})")
        log.exception("job %s crashed", job.name)
        return store.finish_run(run_id, "failed", error=f"{type(e).__name__}: {e}")
    if out.notes:
        store.set_notes(run_id, out.notes)
    errors = []
    if job.deliver:
        results = deliver_all(ws, job.deliver, out.title, out.body, run_id=run_id, report_id=out.report_id,
                              stop=stop)
        errors = [f"delivery to {r.target} failed after {r.attempts} attempt(s): {r.error}"
                  for r in results if not r.ok]
    return store.finish_run(run_id, "partial" if errors else "ok", output_path=out.path,
                            report_id=out.report_id, error="; ".join(errors) or None)


def perform(ws: Parts, job: Job, run_id: int | None = None) -> Output:
    """Do the job's action and return its output (a report, a skill's result, an agent's answer)."""
    if job.action_kind == "report":
        from copa.scheduler import reports

        rep = reports.create(ws, job.action_target, run_id=run_id)
        return Output(rep.title, rep.body, rep.path, rep.id)
    notes = None
    if job.action_kind == "skill":
        body = _skill(ws, job.action_target, job.action_args, allow_dangerous=job.allow_dangerous)
    elif job.action_kind == "prompt":
        body, notes = _prompt(ws, job.action_target, allow_dangerous=job.allow_dangerous)
    else:
        raise JobFailed(f"unknown action {job.action_kind!r}")
    title = f"copa: {job.name}"
    return Output(title, body, _save_output(ws, job, run_id, body), notes=notes)


def _skill(ws: Parts, name: str, args: dict, *, allow_dangerous: bool = False) -> str:
    skills = ws.skills
    info = skills.get(name)
    if getattr(info, "dangerous", False) and not allow_dangerous:
        # nobody is there to approve it: denied, and the denial is the run's recorded error
        raise JobFailed(f"denied: skill {name} is marked dangerous and the job was not created with "
                        "--allow-dangerous (re-add the job with it to approve unattended runs)")
    result = skills.call(name, dict(args))
    if not result.ok:
        raise JobFailed(f"skill {name} failed ({result.error_type or 'error'}): {result.error}")
    content = result.content
    if isinstance(content, dict) and (content.get("timed_out") or content.get("exit_code") not in (0, None)):
        # a command-like result (run_command): a non-zero exit is the job failing, not a result
        detail = str(content.get("stderr") or content.get("stdout") or "").strip()[-300:]
        why = "timed out" if content.get("timed_out") else f"exit code {content.get('exit_code')}"
        raise JobFailed(f"skill {name}: {why}" + (f": {detail}" if detail else ""))
    return content if isinstance(content, str) else json.dumps(content, indent=2, ensure_ascii=False, default=str)


def _prompt(ws: Parts, prompt: str, *, allow_dangerous: bool = False) -> tuple[str, str | None]:
    """One agent turn; (answer, notes). Unattended: a dangerous tool call never waits for an approval.
    It is denied, and recorded in the run's notes, unless the job was created with --allow-dangerous."""
    if ws.agent.available_model() is None:
        raise JobFailed("no model is configured, and a --prompt job needs one (set OPENAI_API_KEY or another "
                        "provider key, or run 'copa models add')")
    decided: list[str] = []

    def approve(spec: Any, _args: Any) -> bool:
        decided.append(spec.name)
        return allow_dangerous

    result = ws.agent.run_turn(prompt, approve=approve)
    notes = None
    if decided:
        how = "allowed (the job was created with --allow-dangerous)" if allow_dangerous else \
            "denied (nobody is there to approve; re-add the job with --allow-dangerous to allow them)"
        notes = f"dangerous tool call(s) {how}: {', '.join(decided)}"
    return result.text or "", notes


def _save_output(ws: Parts, job: Job, run_id: int | None, body: str) -> str:
    from copa.paths import atomic_write

    stamp = datetime.now().strftime("%Y-%m-%d_%H%M%S")
    path = ws.paths.data_dir / "runs" / job.name / f"{stamp}-{run_id or 0}.md"
    atomic_write(path, body.encode("utf-8"), mode=0o600)
    return str(path)
