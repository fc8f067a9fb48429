"""`copa skills`: list, show, run, scaffold and check skills."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import typer

from copa.cli.output import emit_json, print_table, say, workstation

app = typer.Typer(help="Skills: Python files that become safe, typed tools (see docs/skills.md).",
                  no_args_is_help=True)

_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")


def _perm_text(info) -> str:
    if info.kind == "instructions":
        return "(instructions)"
    if info.kind == "mcp":
        return "(mcp server)"
    return ", ".join(info.permissions) or "none"


@app.command("list")
def list_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON."),
             mcp: bool = typer.Option(False, "--mcp", help="Also start configured MCP servers and list their tools."),
             ) -> None:
    """List every skill: where it comes from, what it may do, and load errors."""
    ws = workstation(interactive=False)
    infos = ws.skills.list(include_mcp=mcp)
    if json_out:
        emit_json([i.as_dict() for i in infos])
        return
    if not infos:
        print(f"no skills found; add one with 'copa skills new NAME' (in {ws.paths.user_skills_dir})")
        return
    rows = []
    for i in infos:
        status = "ok" if i.status == "ok" else "ERROR"
        what = i.description.split("\n")[0][:60] if i.status == "ok" else (i.error or "")[:90]
        flag = " (dangerous)" if i.dangerous else ""
        rows.append((i.name, i.location, status, _perm_text(i) + flag, what))
    print_table(rows, ["name", "from", "status", "permissions", "description"])


@app.command("show")
def show_cmd(name: str = typer.Argument(..., help="Skill name."),
             json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show a skill's description, parameters (JSON Schema), permissions and source."""
    info = workstation(interactive=False).skills.get(name)
    if json_out:
        d = info.as_dict()
        if info.kind == "instructions":
            d["instructions"] = info.instructions
        emit_json(d)
        return
    print(f"{info.name}  ({info.kind}, {info.location})")
    print(f"source:      {info.source}")
    if info.status != "ok":
        print(f"status:      ERROR: {info.error}")
    print(f"permissions: {_perm_text(info)}")
    print(f"dangerous:   {'yes (asks before each call)' if info.dangerous else 'no'}")
    if info.secrets:
        print(f"secrets:     {', '.join(info.secrets)}")
    if info.timeout:
        print(f"timeout:     {info.timeout:g} s")
    for s in info.shadows:
        print(f"overrides:   {s}")
    print()
    print(info.description)
    if info.kind == "instructions":
        print()
        print(info.instructions)
        if info.scripts:
            print("\nscripts: " + ", ".join(info.scripts))
        return
    props = info.parameters.get("properties", {})
    if props:
        print("\nparameters:")
        required = set(info.parameters.get("required", []))
        for pname, schema in props.items():
            kind = schema.get("type") or ("enum" if "enum" in schema else "any")
            if "anyOf" in schema:
                kind = "|".join(s.get("type", "?") for s in schema["anyOf"])
            extra = f" one of {schema['enum']}" if "enum" in schema else ""
            default = "" if pname in required else f" (default {json.dumps(schema.get('default'))})"
            desc = schema.get("description", "")
            print(f"  {pname}: {kind}{extra}{' (required)' if pname in required else default}  {desc}".rstrip())
    print("\nschema: " + json.dumps(info.parameters))


def _parse_args(pairs: list[str], args_json: str | None, info) -> dict:
    from copa.errors import UsageError

    out: dict = {}
    if args_json:
        try:
            out = json.loads(args_json)
        except json.JSONDecodeError as e:
            raise UsageError(f"--args-json is not valid JSON: {e.msg}", hint="e.g. --args-json '{\"x\": 1}'") from None
        if not isinstance(out, dict):
            raise UsageError("--args-json must be a JSON object", hint="e.g. --args-json '{\"x\": 1}'")
    props = info.parameters.get("properties", {})
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--arg {pair!r} must be KEY=VALUE", hint="e.g. --arg path=notes.md")
        schema = props.get(key, {})
        if schema.get("type") == "string" or (not schema.get("type") and "anyOf" not in schema
                                             and all(isinstance(v, str) for v in schema.get("enum", [""]))):
            out[key] = raw  # a string parameter takes the text as it is
            continue
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw  # e.g. an optional string: let the skill's schema judge
    return out


@app.command("run")
def run_cmd(name: str = typer.Argument(..., help="Skill name."),
            arg: list[str] = typer.Option([], "--arg", "-a", help="An argument, KEY=VALUE (JSON for non-strings)."),
            args_json: str | None = typer.Option(None, "--args-json", help="All arguments as one JSON object."),
            yes: bool = typer.Option(False, "--yes", "-y", help="Run a dangerous skill without asking."),
            json_out: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Run a skill in its isolated worker, exactly as the agent would."""
    from copa.errors import UsageError

    ws = workstation()
    info = ws.skills.get(name)
    arguments = _parse_args(arg, args_json, info)
    if info.dangerous and not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"'{name}' is dangerous and needs approval", hint="add --yes to run it")
        typer.confirm(f"'{name}' is marked dangerous. Run it with {json.dumps(arguments)}?", abort=True)
    result = ws.skills.call(name, arguments)
    printed = ws.skills.last_output
    if printed and not json_out:  # the skill's own print()s: handy while writing one
        say("".join(f"| {line}\n" for line in printed.rstrip("\n").splitlines()), err=True, end="")
    if json_out:
        emit_json(result.as_dict() | {"duration_ms": result.duration_ms})
    elif result.ok:
        content = result.content
        say(content if isinstance(content, str) else json.dumps(content, indent=2, ensure_ascii=False))
    else:
        say(f"copa: skill '{name}' failed ({result.error_type}): {result.error}", err=True)
    if not result.ok:
        raise typer.Exit(1)


_TEMPLATE = '''"""{title}: what this skill does, in a sentence."""

from copa.skills import skill


@skill(permissions=[])  # e.g. ["net:api.example.org", "fs.read:~/Documents"]
def {name}(text: str, times: int = 1) -> dict:
    """Say what the tool does; the model reads this to decide when to call it.

    Args:
        text: what each argument means, for the model.
        times: how many times to repeat it.
    """
    return {{"result": " ".join([text] * times)}}
'''

_TEST_TEMPLATE = '''"""Tests for the {name} skill: run with `python -m pytest {test_file}`.

They call the skill the way copa's agent does: in its own confined worker process.
"""

from pathlib import Path

from copa.skills import Skills


def test_{name}():
    skills = Skills(dirs=[("user", Path(__file__).parent)])
    try:
        result = skills.call("{name}", {{"text": "hi", "times": 2}})
        assert result.ok, result.error
        assert result.content == {{"result": "hi hi"}}
    finally:
        skills.close()
'''


@app.command("new")
def new_cmd(name: str = typer.Argument(..., help="Name of the skill (a Python identifier, e.g. weather)."),
            folder: Path | None = typer.Option(None, "--dir", help="Where to create it; default: your skills folder."),
            ) -> None:
    """Create a skill from a template, with a test next to it."""
    from copa.errors import UsageError
    from copa.paths import atomic_write

    if not _NAME_RE.match(name):
        raise UsageError(f"invalid skill name {name!r}", hint="use lowercase letters, digits and _ (e.g. weather)")
    ws = workstation(interactive=False)
    target = folder or ws.paths.user_skills_dir
    path, test = target / f"{name}.py", target / f"test_{name}.py"
    for p in (path, test):
        if p.exists():
            raise UsageError(f"{p} already exists", hint="choose another name or edit that file")
    atomic_write(path, _TEMPLATE.format(name=name, title=name.replace("_", " ").capitalize()).encode(), mode=0o644)
    atomic_write(test, _TEST_TEMPLATE.format(name=name, test_file=test).encode(), mode=0o644)
    print(f"created {path}")
    print(f"created {test}")
    print(f"try it: copa skills run {name} --arg text=hello --arg times=2")


@app.command("install")
def install_cmd(source: str = typer.Argument(..., help="A .py file, a skill folder, an archive (.zip, .tar.gz) "
                                                       "or a git URL."),
                name: str | None = typer.Option(None, "--name", help="Install under this name."),
                force: bool = typer.Option(False, "--force", help="Replace a skill of the same name.")) -> None:
    """Install a skill into your skills folder, recording its source and the SHA-256 of each file.

    If a file of it changes later, copa stops offering it to the agent until 'copa skills trust NAME'."""
    from copa.skills import install_skill as install
    from copa.skills import lint_skills as lint

    ws = workstation(interactive=False)
    target, described = install(source, ws.paths.user_skills_dir, name=name, force=force)
    rec = ws.skills.trust.record(target, described, name=target.stem)
    ws.skills.refresh(force=True)
    infos = [i for i in ws.skills.list() if i.source == str(target)]
    say(f"installed {target.name} from {described}")
    say(f"  {len(rec['files'])} file(s), SHA-256 recorded ({ws.skills.trust.file})")
    for i in infos:
        state = "ok" if i.status == "ok" else f"ERROR: {i.error}"
        say(f"  {i.name}: {_perm_text(i)}{' (dangerous)' if i.dangerous else ''}  [{state}]")
    for p in lint(infos):
        if p["level"] != "info":
            say(f"  {p['level']}: {p['skill']}: {p['message']}", err=True)


@app.command("trust")
def trust_cmd(name: str = typer.Argument(..., help="Skill name (as in 'copa skills list').")) -> None:
    """Approve a skill as its files are now (after you have read a change); copa offers it again."""
    ws = workstation(interactive=False)
    info = ws.skills.get(name)
    if info.kind == "mcp":
        from copa.errors import UsageError

        raise UsageError(f"'{name}' is an MCP server's tool", hint="MCP servers are configured, not installed")
    entry = Path(info.source)
    old = ws.skills.trust.entries().get(str(entry), {})
    rec = ws.skills.trust.record(entry, old.get("source") or str(entry), name=name)
    ws.skills.refresh(force=True)
    say(f"trusted {name}: {len(rec['files'])} file(s) of {entry} as they are now")


@app.command("check")
def check_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Lint every skill: import errors, schemas, permissions, descriptions, and risky patterns
    (encoded payloads run with exec or a shell, instructions to fetch and run code, /proc or / read
    wholesale)."""
    from copa.skills import lint_skills as lint

    ws = workstation(interactive=False)
    problems = lint(ws.skills.list())
    errors = [p for p in problems if p["level"] == "error"]
    if json_out:
        emit_json({"ok": not errors, "problems": problems})
    else:
        for p in problems:
            say(f"{p['level']:7} {p['skill']}: {p['message']}  ({p['source']})")
        n = len(ws.skills.list())
        warnings = sum(p["level"] == "warning" for p in problems)
        notes = len(problems) - len(errors) - warnings
        print(f"{n} skill(s) checked: {len(errors)} error(s), {warnings} warning(s), {notes} note(s)")
    if errors:
        raise typer.Exit(1)
