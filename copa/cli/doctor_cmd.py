"""`copa doctor`: one line per check, with a fix for what is wrong."""

from __future__ import annotations

import typer

from copa.cli.output import emit_json, workstation

app = typer.Typer()

MARKS = {"ok": "✓", "warn": "!", "fail": "✗", "info": "·"}


@app.command()
def doctor(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Check config, data dir, database, secrets, models, skills, toolchains, ports and the daemon."""
    from copa.doctor import run_checks

    results = run_checks(workstation(interactive=False))
    failed = any(r.status == "fail" for r in results)
    if json_out:
        emit_json({"ok": not failed, "checks": [r.as_dict() for r in results]})
    else:
        width = max(len(r.name) for r in results)
        for r in results:
            line = f"{MARKS[r.status]} {r.name.ljust(width)}  {r.detail}"
            if r.fix and r.status != "ok":
                line += f"  -> {r.fix}"
            print(line)
    if failed:
        raise typer.Exit(1)
