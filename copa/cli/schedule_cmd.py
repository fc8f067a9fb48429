"""`copa schedule`: jobs the daemon runs (cron, every, at), their runs and their history.

Listing reads the database only; APScheduler is imported just to validate a new trigger and
compute its first run (add, resume) and never by list, history or --help.
"""

from __future__ import annotations

import typer

from copa.cli.output import emit_json, print_table, workstation

app = typer.Typer(help="Scheduled jobs: reports, skills or prompts on a cron, an interval or a date.",
                  no_args_is_help=True)


def _local(dt, zone=None) -> str:
    if dt is None:
        return "-"
    return dt.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z") if zone else dt.astimezone().strftime(
        "%Y-%m-%d %H:%M:%S")


def _zone(ws):
    from zoneinfo import ZoneInfo

    from copa.scheduler.triggers import default_zone

    return ZoneInfo(default_zone(ws.config))


def _action(job) -> str:
    if job.action_kind == "prompt":
        text = job.action_target if len(job.action_target) <= 30 else job.action_target[:29] + "…"
        return f'prompt "{text}"'
    args = " ".join(f"{k}={v}" for k, v in job.action_args.items())
    return f"{job.action_kind} {job.action_target}" + (f" {args}" if args else "")


@app.command("add")
def add_cmd(
    name: str = typer.Argument(..., help="A name for the job (letters, digits, - _ .)."),
    cron: str = typer.Option(None, "--cron", help="Crontab expression, e.g. '0 8 * * 1-5' (0 or 7 = Sunday)."),
    every: str = typer.Option(None, "--every", help="Interval, e.g. 30s, 5m, 1h30m, 1d."),
    at: str = typer.Option(None, "--at", help="Once, at an ISO date-time, e.g. 2026-12-01T09:00."),
    tz: str = typer.Option(None, "--tz", help="IANA time zone (default: scheduler.timezone, general.timezone, "
                                              "then the system's)."),
    report: str = typer.Option(None, "--report", help="Run this report (see 'copa report templates')."),
    skill: str = typer.Option(None, "--skill", help="Call this skill."),
    arg: list[str] = typer.Option(None, "--arg", help="KEY=VALUE argument for --skill (repeatable)."),
    prompt: str = typer.Option(None, "--prompt", help="Run an agent turn with this message (needs a model)."),
    to: list[str] = typer.Option(None, "--to", help="Delivery target (repeatable): file:PATH, stdout, notify, "
                                                    "email:ADDR, webhook:URL, slack:URL, discord:URL, ntfy:TOPIC, "
                                                    "telegram:CHAT_ID or a [delivery.NAME]."),
    retries: int = typer.Option(None, "--retries", help="Extra attempts after a failure (default scheduler.retries)."),
    misfire_grace: int = typer.Option(None, "--misfire-grace", help="Seconds a late run still counts as on time "
                                      "(default scheduler.misfire_grace)."),
    misfire: str = typer.Option(None, "--misfire", help="What a run later than that becomes: run-once (default: "
                                "missed times run once, the others recorded as coalesced), skip (recorded as "
                                "missed) or run-all (each one runs)."),
    max_lateness: int = typer.Option(None, "--max-lateness", help="Seconds after which a missed run never runs, "
                                     "whatever the policy (recorded as missed); default: no limit."),
    paused: bool = typer.Option(False, "--paused", help="Create it paused."),
    allow_dangerous: bool = typer.Option(False, "--allow-dangerous",
                                         help="Approve dangerous tools for unattended runs: a skill marked "
                                         "dangerous, or the agent's dangerous tool calls (--prompt); without "
                                         "it they are denied and the denial recorded."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Add a job: one trigger (--cron, --every or --at) and one action (--report, --skill or --prompt)."""
    from copa.scheduler.jobs import add_job, parse_args

    with workstation() as ws:
        job = add_job(ws, name, cron=cron, every=every, at=at, tz=tz, report=report, skill=skill,
                      args=parse_args(arg or []), prompt=prompt, deliver=list(to or []), retries=retries,
                      misfire_grace=misfire_grace, misfire=misfire, max_lateness=max_lateness, paused=paused,
                      allow_dangerous=allow_dangerous)
        zone = _zone(ws)
    if json_out:
        emit_json(job.as_dict())
        return
    nxt = "paused" if job.paused else f"next run {_local(job.next_run_at, zone)}"
    print(f"added {job.name}: {_action(job)}, {job.trigger_kind} {job.trigger_spec} ({job.timezone}); {nxt}")


@app.command("list")
def list_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List jobs with their next run (local time) and last status."""
    from datetime import UTC, datetime

    from copa.scheduler.jobs import store

    with workstation() as ws:
        jobs = store(ws).list()
        zone = _zone(ws)
    now = datetime.now(UTC)
    if json_out:
        emit_json([{**j.as_dict(), "next_run_local": _local(j.next_run_at, zone) if j.next_run_at else None}
                   for j in jobs])
        return
    if not jobs:
        print("no jobs; add one with 'copa schedule add NAME --every 1d --report daily-briefing'")
        return
    rows = []
    for j in jobs:
        nxt = j.state if j.state != "active" else _local(j.next_run_at, zone)
        if j.state == "active" and j.next_run_at and j.next_run_at < now:
            nxt += " (overdue: is the daemon running?)"
        last = f"{j.last_status} {_local(j.last_run_at, zone)}" if j.last_status else "-"
        rows.append((j.name, f"{j.trigger_kind} {j.trigger_spec}", j.timezone, _action(j), nxt, last))
    print_table(rows, ["name", "when", "zone", "action", "next run", "last run"])


@app.command("remove")
def remove_cmd(name: str = typer.Argument(..., help="The job to remove (its history stays).")) -> None:
    """Remove a job; a running daemon drops it within a second."""
    from copa.scheduler.jobs import remove

    with workstation() as ws:
        remove(ws, name)
    print(f"removed {name}")


@app.command("pause")
def pause_cmd(name: str = typer.Argument(...)) -> None:
    """Stop a job from firing until it is resumed."""
    from copa.scheduler.jobs import pause

    with workstation() as ws:
        pause(ws, name)
    print(f"paused {name}")


@app.command("resume")
def resume_cmd(name: str = typer.Argument(...)) -> None:
    """Let a paused job fire again (from its next time; missed times are not replayed)."""
    from copa.scheduler.jobs import resume

    with workstation() as ws:
        job = resume(ws, name)
        zone = _zone(ws)
    print(f"resumed {name}; next run {_local(job.next_run_at, zone)}")


@app.command("run")
def run_cmd(name: str = typer.Argument(..., help="The job to run now."),
            json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Run a job now, in the foreground, exactly as the daemon would (recorded in its history)."""
    from copa.errors import ExitCode
    from copa.scheduler import runner
    from copa.scheduler.jobs import store

    started: list[int] = []
    with workstation() as ws:
        st = store(ws)
        job = st.get(name)
        try:
            run = runner.execute(ws, job, origin="manual", on_start=started.append)
        except KeyboardInterrupt:
            st.mark_interrupted([r for r in started if st.run(r).status == "running"], "interrupted (Ctrl-C)")
            raise
    if json_out:
        emit_json(run.as_dict())
    else:
        where = f", output {run.output_path}" if run.output_path else ""
        print(f"{name}: {run.status} in {(run.duration_ms or 0) / 1000:.1f}s{where}")
        if run.error:
            print(f"error: {run.error}")
        if run.notes:
            print(f"note: {run.notes}")
    if run.status == "failed":
        raise typer.Exit(ExitCode.FAILURE)


@app.command("history")
def history_cmd(name: str = typer.Argument(..., help="The job (removed jobs keep their history)."),
                limit: int = typer.Option(20, "--limit", "-n", help="How many runs, newest first."),
                json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Each run of a job: start, duration, status, output location, error."""
    from copa.errors import NotFoundError
    from copa.scheduler.jobs import store
    from copa.scheduler.store import pid_alive

    with workstation() as ws:
        st = store(ws)
        runs = st.runs(name, limit=max(1, limit))
        if not runs and st.find(name) is None:
            raise NotFoundError(f"no job or history named {name!r}", hint="see 'copa schedule list'")
        zone = _zone(ws)
    if json_out:
        emit_json([r.as_dict() for r in runs])
        return
    if not runs:
        print(f"{name} has not run yet")
        return
    rows = []
    for r in runs:
        status = r.status
        if status == "running" and not pid_alive(r.pid):
            status = "running? (process gone)"
        dur = f"{r.duration_ms / 1000:.1f}s" if r.duration_ms is not None else "-"
        why = "; ".join(x for x in (r.error, r.notes) if x)
        rows.append((r.id, _local(r.started_at, zone), dur, status, r.origin, r.output_path or "-", why[:80]))
    print_table(rows, ["run", "started", "took", "status", "origin", "output", "error"])
