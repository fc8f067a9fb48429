"""`copa daemon`: run the scheduler in the foreground; status, stop and install as a service."""

from __future__ import annotations

import typer

from copa.cli.output import emit_json, print_table, workstation

app = typer.Typer(help="Run the daemon (scheduled jobs and reports) in the foreground; status, stop, install.",
                  invoke_without_command=True)


@app.callback()
def main(ctx: typer.Context) -> None:
    """Run the daemon in the foreground (what a service manager wants); one per COPA_HOME.

    Job changes made with 'copa schedule' reach it within a second; SIGTERM stops it cleanly.
    """
    if ctx.invoked_subcommand is None:
        from copa.daemon.service import run_daemon

        raise typer.Exit(run_daemon())


@app.command("run")
def run_cmd() -> None:
    """Run the daemon in the foreground (same as plain 'copa daemon')."""
    from copa.daemon.service import run_daemon

    raise typer.Exit(run_daemon())


def _local(text: str | None) -> str:
    if not text:
        return "-"
    from datetime import datetime

    return datetime.fromisoformat(text).astimezone().strftime("%Y-%m-%d %H:%M:%S")


@app.command("status")
def status_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Is the daemon running, since when, its last heartbeat, the next runs and runs in progress."""
    from copa.scheduler import daemon_status as status

    with workstation() as ws:
        st = status(ws.paths, ws.conn)
    if json_out:
        emit_json(st)
        return
    if st["state"] == "unresponsive":
        print(f"not responding: pid {st['pid']} holds the lock, but its last heartbeat was "
              f"{st['heartbeat_age_s']:.0f}s ago (stop it with 'copa daemon stop' or kill {st['pid']})")
    elif st["running"]:
        print(f"running: pid {st['pid']}, since {_local(st['since'])}")
    elif st["state"] == "stale":
        print(f"not running (stale lock from PID {st['stale_pid']})")
    else:
        print("not running" + (f" (stopped {_local(st['stopped_at'])})" if st["stopped_at"] else ""))
    if st["heartbeat"]:
        print(f"last heartbeat: {_local(st['heartbeat'])} ({st['heartbeat_age_s']:.0f}s ago)")
    print(f"jobs: {st['jobs']}")
    if st["next_runs"]:
        print("next runs:" if st["running"] else "due (they run when the daemon does):")
        print_table([(r["job"], _local(r["at"])) for r in st["next_runs"]], ["job", "at"])
    if st["active_runs"]:
        print("running now:")
        print_table([(r["job"], r["run"], _local(r["started_at"]), r["pid"]) for r in st["active_runs"]],
                    ["job", "run", "started", "pid"])


@app.command("stop")
def stop_cmd(timeout: float = typer.Option(30.0, "--timeout", help="Seconds to wait for it to exit.")) -> None:
    """Ask the running daemon to stop (SIGTERM) and wait until it has."""
    import os
    import signal
    import time

    from copa.errors import CopaError, ExitCode
    from copa.paths import Paths
    from copa.scheduler import lock_holder as holder

    lock = Paths.from_env().daemon_lock_file
    info = holder(lock)
    if info is None:
        print("the daemon is not running")
        return
    pid = info.get("pid")
    if not pid:
        raise CopaError("the daemon lock is held but names no pid", hint="stop it with your service manager")
    os.kill(int(pid), signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while holder(lock) is not None:
        if time.monotonic() > deadline:
            raise CopaError(f"the daemon (pid {pid}) has not stopped after {timeout:.0f}s",
                            hint=f"kill it: kill -9 {pid}", exit_code=ExitCode.FAILURE)
        time.sleep(0.1)
    print(f"stopped the daemon (pid {pid})")


@app.command("install")
def install_cmd(
    print_only: bool = typer.Option(False, "--print", help="Show the unit instead of writing it."),
    system: str = typer.Option("", "--system", help="systemd or launchd (default: this platform's)."),
) -> None:
    """Write a systemd user unit (launchd agent on macOS) that runs the daemon, and say how to enable it."""
    from copa.daemon import install
    from copa.errors import UsageError

    system = system or install.default_system()
    if system not in ("systemd", "launchd"):
        raise UsageError(f"unknown service system {system!r}", hint="use systemd or launchd")
    with workstation() as ws:
        stop_timeout = float(ws.config.get("scheduler.stop_timeout"))
        log_dir = ws.paths.log_dir
    if print_only:
        path, text, how = install.render(system, stop_timeout=stop_timeout, log_dir=log_dir)
        print(f"# {path}")
        print(text, end="")
        return
    path, how = install.install(system, stop_timeout=stop_timeout, log_dir=log_dir)
    print(f"wrote {path}")
    print(f"enable it with:\n  {how}")
