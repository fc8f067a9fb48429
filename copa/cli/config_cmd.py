"""`copa config`: where the file is, what is in effect, and safe edits."""

from __future__ import annotations

import os
import shlex
import subprocess

import typer

from copa.cli.output import emit_json, print_table

app = typer.Typer(help="Show and change the configuration (TOML; every key also COPA_SECTION_KEY).",
                  no_args_is_help=True)


def _paths():
    from copa.paths import Paths

    return Paths.from_env()


@app.command("path")
def path_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print where copa keeps its config, data, cache and logs."""
    paths = _paths().as_dict()
    if json_out:
        emit_json(paths)
    else:
        print_table(paths.items(), ["what", "path"])


@app.command("show")
def show_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show every key with its effective value and where it comes from (default, file, env)."""
    from copa.config import Config

    eff = Config.load(_paths()).effective()
    if json_out:
        emit_json(eff)
        return
    print_table(((k, _fmt(v["value"]), v["source"]) for k, v in eff.items()), ["key", "value", "source"])


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(value)
    return str(value)


@app.command("get")
def get_cmd(key: str = typer.Argument(..., help="e.g. general.log_level"),
            json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the effective value of KEY."""
    from copa.config import Config

    cfg = Config.load(_paths())
    value = cfg.get(key)
    if json_out:
        emit_json({"key": key, "value": value, "source": cfg.source(key)})
    else:
        print(_fmt(value))


@app.command("set")
def set_cmd(key: str = typer.Argument(..., help="e.g. general.timezone"),
            value: str = typer.Argument(..., help="the new value (lists: a,b,c)")) -> None:
    """Set KEY to VALUE in the config file (checked before anything is written)."""
    from copa.config import set_value

    stored = set_value(_paths(), key, value)
    print(f"{key} = {_fmt(stored)}")


@app.command("unset")
def unset_cmd(key: str = typer.Argument(..., help="the key to remove from the file")) -> None:
    """Remove KEY from the config file so its default applies again."""
    from copa.config import unset_value

    removed = unset_value(_paths(), key)
    print(f"{key} removed" if removed else f"{key} was not set in the file")


@app.command("edit")
def edit_cmd() -> None:
    """Open the config file in your editor; the result is checked and a broken file is refused."""
    from copa.config import Config, read_file
    from copa.errors import ConfigError, UsageError
    from copa.paths import atomic_write

    paths = _paths()
    paths.config_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    before = paths.config_file.read_bytes() if paths.config_file.exists() else b""
    editor = os.environ.get("COPA_GENERAL_EDITOR") or os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        raise UsageError("no editor is set", hint="set $EDITOR (e.g. export EDITOR=nano)")
    draft = paths.config_dir / ".config.toml.edit"
    atomic_write(draft, before or b"# copa configuration: see 'copa config show' for every key\n")
    try:
        while True:
            rc = subprocess.call([*shlex.split(editor), str(draft)])
            if rc != 0:
                raise UsageError(f"the editor exited with status {rc}; nothing was changed")
            try:
                data = read_file(draft)
                from copa.config import validate

                validate(data, paths.config_file)
                break
            except ConfigError as e:
                typer.echo(f"copa: error: {e}", err=True)
                if not (os.isatty(0) and typer.confirm("Edit again?", default=True)):
                    raise UsageError("the edited file is not valid; the old config was kept") from None
        atomic_write(paths.config_file, draft.read_bytes())
        Config.load(paths)
    finally:
        draft.unlink(missing_ok=True)
    print(f"saved {paths.config_file}")


@app.command("keys")
def keys_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List every known key with its type, default and meaning."""
    from copa.config import env_var_for, keys

    SCHEMA, TABLES = keys()  # noqa: N806 - the two tables of declared keys
    rows = [{"key": k, "type": s.type.__name__, "default": s.default, "env": env_var_for(k),
             "choices": list(s.choices) if s.choices else None, "help": s.help} for k, s in sorted(SCHEMA.items())]
    rows += [{"key": f"{p}.NAME.{f}", "type": s.type.__name__, "default": s.default, "env": None,
              "choices": list(s.choices) if s.choices else None, "help": s.help}
             for p, fields in sorted(TABLES.items()) for f, s in fields.items()]
    if json_out:
        emit_json(rows)
    else:
        print_table(((r["key"], r["type"], _fmt(r["default"]), r["help"]) for r in rows),
                    ["key", "type", "default", "meaning"])
