"""Creating and changing jobs: every check happens before anything is written."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from copa.errors import NotFoundError, UsageError
from copa.scheduler import triggers
from copa.scheduler.store import POLICIES, Job, JobStore

if TYPE_CHECKING:
    from copa.scheduler.parts import Parts

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def store(ws: Parts) -> JobStore:
    return JobStore(ws.conn)


def parse_args(pairs: list[str]) -> dict[str, Any]:
    """``["city=Paris", "days=3"]`` -> ``{"city": "Paris", "days": 3}`` (a value is JSON when it parses)."""
    import json

    out: dict[str, Any] = {}
    for p in pairs:
        k, sep, v = p.partition("=")
        if not sep or not k:
            raise UsageError(f"--arg {p!r} is not KEY=VALUE", hint="e.g. --arg city=Paris")
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


def add_job(ws: Parts, name: str, *, cron: str | None = None, every: str | None = None,
            at: str | None = None, tz: str | None = None, report: str | None = None, skill: str | None = None,
            args: dict[str, Any] | None = None, prompt: str | None = None, deliver: list[str] | None = None,
            retries: int | None = None, misfire_grace: int | None = None, misfire: str | None = None,
            max_lateness: int | None = None, paused: bool = False, allow_dangerous: bool = False) -> Job:
    fields = _definition(ws, name, cron=cron, every=every, at=at, tz=tz, report=report, skill=skill, args=args,
                         prompt=prompt, deliver=deliver, retries=retries, misfire_grace=misfire_grace,
                         misfire=misfire, max_lateness=max_lateness, allow_dangerous=allow_dangerous)
    created = datetime.now(UTC)
    kind, spec, zone = fields["trigger_kind"], fields["trigger_spec"], fields["timezone"]
    nxt = None if paused else triggers.next_fire(kind, spec, zone, anchor=created)
    st = store(ws)
    job = st.add(name=name, paused=paused, next_run_at=nxt, **fields)
    # the grid of --every starts at the stored creation time, so the daemon computes the same times
    if kind == "every" and job.created_at and not paused:
        st.set_next_run(job.id, triggers.next_fire(kind, spec, zone, anchor=job.created_at))
        job = st.get(name)
    return job


def edit_job(ws: Parts, name: str, *, cron: str | None = None, every: str | None = None,
             at: str | None = None, tz: str | None = None, report: str | None = None, skill: str | None = None,
             args: dict[str, Any] | None = None, prompt: str | None = None, deliver: list[str] | None = None,
             retries: int | None = None, misfire_grace: int | None = None, misfire: str | None = None,
             max_lateness: int | None = None, allow_dangerous: bool = False) -> Job:
    """Change a job's whole definition (same checks as add_job; nothing is written unless all pass). Its
    name, history and paused state stay; the next run is computed afresh from now."""
    st = store(ws)
    job = st.get(name)
    fields = _definition(ws, name, cron=cron, every=every, at=at, tz=tz, report=report, skill=skill, args=args,
                         prompt=prompt, deliver=deliver, retries=retries, misfire_grace=misfire_grace,
                         misfire=misfire, max_lateness=max_lateness, allow_dangerous=allow_dangerous)
    nxt = None if job.paused else triggers.next_fire(fields["trigger_kind"], fields["trigger_spec"],
                                                      fields["timezone"], anchor=datetime.now(UTC))
    return st.update(name, next_run_at=nxt, **fields)


def _definition(ws: Parts, name: str, *, cron: str | None, every: str | None, at: str | None,
                tz: str | None, report: str | None, skill: str | None, args: dict[str, Any] | None,
                prompt: str | None, deliver: list[str] | None, retries: int | None, misfire_grace: int | None,
                misfire: str | None, max_lateness: int | None, allow_dangerous: bool) -> dict[str, Any]:
    """Every check of a job definition, before anything is written; the stored fields."""
    if not NAME_RE.match(name):
        raise UsageError(f"invalid job name {name!r}", hint="letters, digits, '_', '.', '-' (up to 64), e.g. morning")
    given = {k: v for k, v in (("cron", cron), ("every", every), ("at", at)) if v is not None}
    if len(given) != 1:
        raise UsageError("give exactly one of --cron, --every or --at",
                         hint="e.g. --cron '0 8 * * 1-5', --every 30m or --at 2026-12-01T09:00")
    actions = {k: v for k, v in (("report", report), ("skill", skill), ("prompt", prompt)) if v is not None}
    if len(actions) != 1:
        raise UsageError("give exactly one action: --report NAME, --skill NAME or --prompt TEXT")
    if args and "skill" not in actions:
        raise UsageError("--arg goes with --skill")
    if retries is not None and retries < 0:
        raise UsageError("--retries cannot be negative")
    if misfire_grace is not None and misfire_grace < 1:
        raise UsageError("--misfire-grace must be at least 1 second")
    if misfire is not None and misfire not in POLICIES:
        raise UsageError(f"unknown misfire policy {misfire!r}", hint="use " + ", ".join(POLICIES))
    if max_lateness is not None and max_lateness < 1:
        raise UsageError("--max-lateness must be at least 1 second")
    kind, spec = next(iter(given.items()))
    zone = triggers.check_zone(tz) if tz else triggers.default_zone(ws.config)
    spec = triggers.validate(kind, spec, zone)
    action, target = next(iter(actions.items()))
    if not target.strip():
        raise UsageError(f"--{action} needs a value")
    if action == "report":
        from copa.scheduler.reports import check_name

        check_name(ws, target)
    elif action == "skill":
        info = _check_skill(ws, target)
        if info is not None and getattr(info, "dangerous", False) and not allow_dangerous:
            raise UsageError(f"skill {target!r} is marked dangerous; nobody will be there to approve each run",
                             hint="add --allow-dangerous to let the scheduler run it unattended with these args")
    from copa.scheduler.delivery import resolve_target

    for d in deliver or []:
        resolve_target(ws, d)
    return {"trigger_kind": kind, "trigger_spec": spec, "timezone": zone, "action_kind": action,
            "action_target": target, "action_args": args or {}, "deliver": list(deliver or []),
            "retries": retries, "misfire_grace": misfire_grace, "misfire_policy": misfire,
            "max_lateness": max_lateness, "allow_dangerous": allow_dangerous}


def _check_skill(ws: Parts, name: str) -> Any:
    """The skill's info, or None when the registry cannot load here (the run will report why); a
    clear error when it does not exist."""
    skills = ws.skills
    try:
        found = skills.get(name)
    except NotFoundError:
        found = None
    except Exception:  # the registry could not load: the run will report the real error
        return None
    if found is None:
        names = ", ".join(s.name for s in skills.list())
        raise NotFoundError(f"no skill named {name!r}", hint=f"skills: {names or 'none'} (copa skills list)")
    return found


def pause(ws: Parts, name: str) -> Job:
    return store(ws).set_paused(name, True)


def resume(ws: Parts, name: str) -> Job:
    st = store(ws)
    job = st.get(name)
    if job.done:
        raise UsageError(f"job {name!r} has already fired (it was --at {job.trigger_spec})",
                         hint="add a new job with another --at")
    nxt = triggers.next_fire(job.trigger_kind, job.trigger_spec, job.timezone, anchor=job.created_at)
    return st.set_paused(name, False, next_run_at=nxt)


def remove(ws: Parts, name: str) -> None:
    store(ws).remove(name)
