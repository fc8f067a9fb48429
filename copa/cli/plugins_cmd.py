"""`copa plugins`: what extends copa (its own parts and installed packages) and through which hooks."""

from __future__ import annotations

import typer

from copa.cli.output import emit_json, print_table

app = typer.Typer(help="Plugins: copa's own parts and installed packages that extend it.", no_args_is_help=True)


@app.callback()
def plugins() -> None:
    """Plugins: copa's own parts and installed packages that extend it (entry-point group 'copa')."""


@app.command("list")
def list_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON."),
             builtin: bool = typer.Option(True, "--builtin/--no-builtin", help="Also copa's own parts.")) -> None:
    """Every plugin with its package, version and the hooks it answers; a plugin that failed to
    load is listed with the error (copa runs without it)."""
    from copa.plugins import manager

    infos = [i for i in manager().infos if builtin or i.package != "copa"]
    if json_out:
        emit_json([i.as_dict() for i in infos])
        return
    print_table(((i.name, i.package, i.version, ", ".join(h.removeprefix("copa_") for h in i.hooks)
                  if not i.error else f"NOT LOADED: {i.error}") for i in infos),
                ["plugin", "package", "version", "hooks"])
