"""`copa`: the entry point.

Startup is kept cheap on purpose: command groups live in their own modules, listed in ``COMMANDS``
with their one-line help, and are imported only when invoked. ``copa --version`` does not even
import typer. Errors a user can cause are printed on one line (``copa: error: ...``) with a non-zero
exit code; ``--debug`` (or ``COPA_DEBUG=1``) shows the traceback instead.
"""

import importlib
import os
import sys

# name -> (module defining `app`, one-line help shown by `copa --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "device": ("copa.cli.device_cmd", "Boards over USB serial: scan, pair, read, write, watch, rules, flash."),
    "mqtt": ("copa.cli.mqtt_cmd", "The daemon's MQTT bridge: status, and a test of the broker login."),
    "config": ("copa.cli.config_cmd", "Show and change the configuration."),
    "secrets": ("copa.cli.secrets_cmd", "Keep API keys and passwords, encrypted or in the OS keyring."),
    "ask": ("copa.cli.ask_cmd", "Ask a question: the answer streams to stdout, with your memory and tools."),
    "models": ("copa.cli.models_cmd", "List, add and test the models copa can use."),
    "doctor": ("copa.cli.doctor_cmd", "Check that copa and its parts work, and say how to fix what does not."),
    "memory": ("copa.cli.memory_cmd", "What copa remembers: add, search, forget, export, import, embed."),
    "tasks": ("copa.cli.tasks_cmd", "Your tasks: list, add, start, done, cancel."),
    "daemon": ("copa.cli.daemon_cmd", "Run scheduled jobs and reports in the background; status, install."),
    "schedule": ("copa.cli.schedule_cmd", "Scheduled jobs: reports, skills or prompts on a cron, interval or date."),
    "report": ("copa.cli.report_cmd", "Run, list and show reports (daily briefing, weekly review, your own)."),
    "skills": ("copa.cli.skills_cmd", "Skills: list, show, run, create and check the tools copa can use."),
    "mcp": ("copa.cli.mcp_cmd", "Model Context Protocol: serve copa's skills and memory, list configured servers."),
    "plugins": ("copa.cli.plugins_cmd", "Plugins: copa's own parts and installed packages that extend it."),
}


def _plugin_commands() -> dict[str, tuple[str, str]]:
    """Command groups of installed plugins (the ``copa_commands`` hook). The entry-point list is
    cached (copa/plugins.py): with no plugin installed this costs a stat per sys.path folder and
    never imports pluggy; a plugin's module is imported only when its group is used."""
    from copa.plugins import entry_points

    if not entry_points() or os.environ.get("COPA_NO_PLUGINS", "") not in ("", "0"):
        return {}
    from copa.plugins import merged

    found = merged("copa_commands", "command group")
    clash = sorted(set(found) & set(COMMANDS))
    if clash:
        import logging

        logging.getLogger("copa.plugins").warning("plugin command groups %s ignored: copa has them", clash)
    return {k: v for k, v in found.items() if k not in COMMANDS}


def _version() -> str:
    from copa import __version__

    return f"copa {__version__}"


def _build_app():
    import typer
    from typer.core import TyperGroup

    extra: dict[str, tuple[str, str]] = {}

    def groups() -> dict[str, tuple[str, str]]:
        if not extra:
            extra.update(COMMANDS, **_plugin_commands())
        return extra

    class LazyGroup(TyperGroup):
        """Imports a command group's module only when that group is used."""

        def list_commands(self, ctx):
            return sorted(set(super().list_commands(ctx)) | set(groups()))

        def get_command(self, ctx, name):
            cmd = super().get_command(ctx, name)
            if cmd is not None:
                return cmd
            known = COMMANDS if name in COMMANDS else groups()
            if name not in known:
                return None
            module = importlib.import_module(known[name][0])
            cmd = typer.main.get_command(module.app)
            cmd.name = name
            _plain_help(cmd)
            self.add_command(cmd, name)
            return cmd

        def invoke(self, ctx):
            # typer turns Ctrl-C into a silent exit 130; re-raised as Abort, main() says "interrupted"
            try:
                return super().invoke(ctx)
            except KeyboardInterrupt:
                raise typer.Abort() from None

        def format_commands(self, ctx, formatter):
            rows = [(name, help_) for name, (_, help_) in sorted(groups().items())]
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    app = typer.Typer(
        cls=LazyGroup,
        name="copa",
        help="copa: a personal AI workstation for the terminal.\n\n"
        "Run 'copa' in a terminal for the workstation, or a command below for one-shot use.",
        rich_markup_mode=None,
        invoke_without_command=True,
        context_settings={"help_option_names": ["-h", "--help"]},
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def main(
        ctx: typer.Context,
        version: bool = typer.Option(False, "--version", "-V", help="Print the version and exit."),
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks and log at debug level."),
    ) -> None:
        if version:
            print(_version())
            raise typer.Exit()
        from copa.log import setup_logging
        from copa.paths import Paths

        setup_logging(Paths.from_env(), "debug" if debug else os.environ.get("COPA_GENERAL_LOG_LEVEL", "info"))
        if ctx.invoked_subcommand is None:
            if sys.stdin.isatty() and sys.stdout.isatty():
                from copa.tui import run_tui

                run_tui()
            else:
                print(ctx.get_help())

    return app


def _plain_help(cmd) -> None:
    """Plain help everywhere: rich markup would eat text such as "[models.NAME]" in docstrings,
    and rendering through rich costs startup time. Completion options belong to `copa` alone."""
    if hasattr(cmd, "rich_markup_mode"):
        cmd.rich_markup_mode = None
    cmd.params = [p for p in cmd.params if p.name not in ("install_completion", "show_completion")]
    for sub in getattr(cmd, "commands", {}).values():
        _plain_help(sub)


def _click_exceptions():
    try:
        from typer._click import exceptions  # typer >= 0.2x vendors click
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click import exceptions
    return exceptions


_CODE_NAMES = {1: "failure", 2: "usage", 3: "config", 4: "provider", 5: "not_found", 6: "secrets",
               70: "internal", 75: "busy", 130: "interrupted"}


def _fail(message: str, code: int, *, hint: str | None = None, json_out: bool = False) -> int:
    """The one error path of every command: a line on stderr, and with --json also the error as a
    JSON document on stdout, so a script reading stdout always gets something to parse."""
    from copa.termsafe import safe
    from copa.textio import scrub

    message = safe(scrub(message))  # a message may quote a skill or a model: shown, never obeyed
    line = f"{message}; {hint}" if hint else message
    print(f"copa: error: {line}", file=sys.stderr)
    if json_out:
        _fail_json(message, code, hint)
    return code


def _fail_json(message: str, code: int, hint: str | None) -> None:
    import json

    from copa.textio import scrub

    doc = {"error": {"code": _CODE_NAMES.get(code, "error"), "exit_code": code, "message": message,
                     "hint": scrub(hint) if hint else None}}
    try:
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):  # stdout closed: the exit code still says it
        pass


def _wants_json(args: list[str]) -> bool:
    """--json among the options (not after a `--`, which makes the rest plain arguments)."""
    head = args[:args.index("--")] if "--" in args else args
    return "--json" in head


def _fork_search_early(args: list[str]) -> bool:
    """Whether this is a ``copa ask`` that will search its memory (not its help, not --no-memory)."""
    command = next((a for a in args if not a.startswith("-")), None)
    return command == "ask" and not {"--help", "-h", "--no-memory"}.intersection(args)


def _fork_search() -> None:
    """Fork ``copa ask``'s search child now. The child builds its own workstation, after the fork:
    importing copa.workstation here (its configuration's modules: ~30 ms) would delay the child."""
    import functools

    from copa.agent import fork_early
    from copa.paths import Paths

    @functools.cache
    def workstation():  # in the child
        from copa.workstation import Workstation

        return Workstation(interactive=False)

    fork_early(lambda: workstation().config, lambda: workstation().memory, Paths.from_env().state_dir)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code (never raises for a user's mistake)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args in (["--version"], ["-V"]):  # the fast path: no typer import at all
        print(_version())
        return 0
    debug = "--debug" in args or os.environ.get("COPA_DEBUG", "") not in ("", "0")
    json_out = _wants_json(args)
    from copa.errors import CopaError, ExitCode
    from copa.textio import check_argv, describe_unicode_error, safe_streams

    safe_streams()
    try:
        check_argv(args)
    except CopaError as e:
        return _fail(e.message, e.exit_code, hint=e.hint, json_out=json_out)

    if not args and sys.stdin.isatty() and sys.stdout.isatty():  # the workstation: skip typer
        from copa.log import setup_logging
        from copa.paths import Paths
        from copa.tui import run_tui

        setup_logging(Paths.from_env(), os.environ.get("COPA_GENERAL_LOG_LEVEL", "info"))
        try:
            run_tui()
        except CopaError as e:
            return _fail(str(e), e.exit_code)
        return 0

    if _fork_search_early(args):  # before typer is imported: see copa/agent/ahead.py
        _fork_search()
    exc = _click_exceptions()
    command = _build_app()
    import typer

    try:
        rv = typer.main.get_command(command).main(args=args, prog_name="copa", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except CopaError as e:
        if debug:
            raise
        return _fail(e.message, e.exit_code, hint=e.hint, json_out=json_out)
    except exc.UsageError as e:
        if debug:
            raise
        where = e.ctx.command_path if e.ctx else "copa"
        return _fail(e.format_message().rstrip("."), ExitCode.USAGE, hint=f"see '{where} --help'",
                     json_out=json_out)
    except exc.ClickException as e:  # e.g. a file that cannot be opened
        return _fail(e.format_message(), e.exit_code or ExitCode.USAGE, json_out=json_out)
    except (typer.Abort, KeyboardInterrupt):
        print("copa: interrupted", file=sys.stderr)
        if json_out:
            _fail_json("interrupted", ExitCode.INTERRUPTED, None)
        return ExitCode.INTERRUPTED
    except typer.Exit as e:
        return e.exit_code
    except BrokenPipeError:  # `copa ... | head`
        sys.stderr.close()
        return 0
    except UnicodeError as e:  # text that slipped past the boundary checks: still the user's input
        import logging

        logging.getLogger("copa").warning("unicode error reached the CLI", exc_info=True)
        if debug:
            raise
        return _fail(describe_unicode_error(e), ExitCode.USAGE, hint="pass UTF-8 text (iconv -f latin1 -t utf-8)",
                     json_out=json_out)
    except Exception as e:
        import logging

        from copa.db import as_busy

        busy = as_busy(e)  # not a bug: another process kept the write lock past the busy timeout
        if busy is not None:
            logging.getLogger("copa").warning("the database stayed locked: %s", e)
            if debug:
                raise
            return _fail(busy.message, busy.exit_code, hint=busy.hint, json_out=json_out)
        logging.getLogger("copa").exception("internal error")
        if debug:
            raise
        return _fail(f"internal error: {type(e).__name__}: {e}", ExitCode.INTERNAL,
                     hint="this is a bug; rerun with --debug for the traceback and report it", json_out=json_out)


def run() -> None:
    code = main()
    # The interpreter's last garbage collections walk every object the command left (~30 ms of a
    # one-shot `copa ask` on this project's VM, docs/benchmarks.md round 10); frozen, they are skipped.
    # Exit still flushes the streams and runs the atexit handlers (logging's among them); only
    # objects caught in reference cycles are not finalized, and the OS reclaims what they hold.
    import gc

    gc.freeze()
    sys.exit(code)
