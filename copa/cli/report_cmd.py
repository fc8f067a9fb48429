"""`copa report`: render a report now, deliver it, list and show stored reports."""

from __future__ import annotations

import sys

import typer

from copa.cli.output import emit_json, print_table, workstation

app = typer.Typer(help="Reports: daily briefing, weekly review and your own templates.", no_args_is_help=True)


@app.command("run")
def run_cmd(
    name: str = typer.Argument(..., help="Template name (see 'copa report templates') or skill:NAME."),
    to: list[str] = typer.Option(None, "--to", help="Deliver to these targets too (repeatable; see "
                                                    "'copa schedule add --help')."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Gather the report now, store it (database, Markdown file, memory) and print or deliver it."""
    from copa.errors import ExitCode
    from copa.scheduler import deliver_all, reports, resolve_target

    with workstation() as ws:
        for t in to or []:
            resolve_target(ws, t)  # refuse a bad target before doing the work
        rep = reports.create(ws, name)
        results = deliver_all(ws, list(to), rep.title, rep.body, report_id=rep.id) if to else []
    if json_out:
        emit_json({**rep.as_dict(), "deliveries": [r.as_dict() for r in results]})
    else:
        if not to:
            sys.stdout.write(rep.body)
        for r in results:
            print(f"{r.target}: " + ("delivered" if r.ok else f"FAILED after {r.attempts} attempt(s): {r.error}"),
                  file=sys.stderr)
        print(f"report {rep.id} saved to {rep.path}", file=sys.stderr)
    if any(not r.ok for r in results):
        raise typer.Exit(ExitCode.FAILURE)


@app.command("list")
def list_cmd(name: str = typer.Option(None, "--name", help="Only reports of this template."),
             limit: int = typer.Option(20, "--limit", "-n", help="How many, newest first."),
             json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Stored reports, newest first."""
    from copa.scheduler import reports

    with workstation() as ws:
        items = reports.recent(ws, name, reports.check_limit(limit))
        zone = reports.zone(ws)
    if json_out:
        emit_json([{k: v for k, v in r.as_dict().items() if k != "body"} for r in items])
        return
    if not items:
        print("no reports yet; try 'copa report run daily-briefing'")
        return
    print_table([(r.id, r.name, r.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"), r.title, r.path)
                 for r in items], ["id", "name", "created", "title", "file"])


@app.command("templates")
def templates_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Report templates: built-in ones and yours (<config dir>/reports/NAME.md)."""
    from copa.scheduler import reports

    with workstation() as ws:
        items = reports.templates(ws)
        where = reports.templates_dir(ws)
    if json_out:
        emit_json(items)
        return
    print_table([(t["name"], t["source"]) for t in items], ["name", "source"])
    print(f"\nadd your own as {where}/NAME.md (placeholders: see docs/scheduler.md), or use skill:NAME")


@app.command("show")
def show_cmd(report_id: str = typer.Argument(..., help="A report id (or a unique prefix, or 'last')."),
             json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print a stored report."""
    from copa.scheduler import reports

    with workstation() as ws:
        rep = reports.get(ws, report_id)
    if json_out:
        emit_json(rep.as_dict())
    else:
        sys.stdout.write(rep.body)
