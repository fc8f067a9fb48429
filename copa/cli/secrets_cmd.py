"""`copa secrets`: set, list and delete secrets; values are never printed."""

from __future__ import annotations

import sys

import typer

from copa.cli.output import emit_json, workstation

app = typer.Typer(help="Keep API keys and passwords: OS keyring, or an encrypted file where there is none.",
                  no_args_is_help=True)


@app.command("set")
def set_cmd(name: str = typer.Argument(..., help="e.g. OPENAI_API_KEY")) -> None:
    """Store a secret: asked for with a hidden prompt, or read from stdin when piped."""
    from copa.errors import UsageError
    from copa.secrets import check_name

    check_name(name)
    if sys.stdin.isatty():
        value = typer.prompt(f"Value for {name}", hide_input=True, confirmation_prompt=True)
    else:
        from copa.textio import read_stdin

        value = read_stdin(where="the secret read from stdin", show=False).rstrip("\r\n")
        if not value:
            raise UsageError("nothing was read from stdin", hint=f"pipe the value: echo KEY | copa secrets set {name}")
    ws = workstation()
    ws.secrets.set(name, value)
    print(f"stored {name} ({ws.secrets.backend.name})")


@app.command("list")
def list_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the names of stored secrets and the backend (never the values)."""
    ws = workstation()
    names = ws.secrets.names()
    if json_out:
        emit_json({"backend": ws.secrets.backend.name, "description": ws.secrets.description, "names": names})
        return
    print(f"backend: {ws.secrets.description}")
    for n in names:
        print(n)
    if not names:
        print("(no secrets stored; add one with 'copa secrets set NAME')")


@app.command("delete")
def delete_cmd(name: str = typer.Argument(..., help="the secret to delete")) -> None:
    """Delete a stored secret."""
    from copa.errors import NotFoundError

    if not workstation().secrets.delete(name):
        raise NotFoundError(f"no secret named {name}", hint="see 'copa secrets list'")
    print(f"deleted {name}")
