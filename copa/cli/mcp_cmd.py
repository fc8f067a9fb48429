"""`copa mcp`: serve copa's skills over MCP (stdio), and look at the MCP servers copa uses."""

from __future__ import annotations

import typer

from copa.cli.output import emit_json, print_table, workstation

app = typer.Typer(help="Model Context Protocol: serve copa's skills and memory; list configured servers.",
                  no_args_is_help=True)


@app.command("serve")
def serve_cmd(allow_dangerous: bool = typer.Option(False, "--allow-dangerous",
                                                   help="Also offer skills marked dangerous (e.g. run_command)."),
              only: list[str] = typer.Option([], "--only", help="Offer only these skills (repeatable).")) -> None:
    """Serve copa's skills (memory included) to another agent over stdio."""
    from copa.errors import UsageError

    try:
        import mcp  # noqa: F401

        from copa.skills import serve_stdio
    except ImportError:
        raise UsageError("the MCP SDK is not installed", hint="pip install 'copa[mcp]'") from None
    ws = workstation(interactive=False)
    try:
        serve_stdio(ws.skills, ws.memory, allow_dangerous=allow_dangerous, only=only or None)
    finally:
        ws.close()


@app.command("list")
def list_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Start each [mcp.servers.NAME] and list the tools it offers to copa's agent."""
    ws = workstation(interactive=False)
    try:
        servers = ws.skills.mcp
        tools = servers.tools()
        errors = servers.errors()
        if json_out:
            emit_json({"tools": [{"name": t.spec.name, "server": t.server, "tool": t.tool,
                                  "description": t.spec.description, "dangerous": t.spec.dangerous,
                                  "parameters": t.spec.parameters} for t in tools], "errors": errors})
            return
        if not tools and not errors:
            print("no MCP servers configured; add one with 'copa config set mcp.servers.NAME.command PROGRAM'")
            return
        print_table([(t.spec.name, t.server, t.spec.description.split("\n")[0][:70]) for t in tools],
                    ["tool", "server", "description"])
        for name, err in errors.items():
            print(f"server {name}: ERROR {err}")
    finally:
        ws.close()
