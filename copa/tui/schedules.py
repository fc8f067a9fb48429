"""The Schedules screen: jobs with their next run in local time and last status, and whether anything
will actually run them (a banner when the daemon is not running, overdue jobs marked). Add, edit,
delete, run now (a test run, recorded in its history exactly like `copa schedule run`), pause,
resume; the history of the selected job, and a report opened from it rendered as Markdown.
Every change goes through ``copa.scheduler.jobs`` (the CLI's own functions and checks)."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, DataTable, Input, Label, Markdown, Select, Static

from copa.tui.base import CopaScreen
from copa.tui.widgets import ConfirmScreen, local_time

DAEMON_HINT = "press D to start it in the background, or run 'copa daemon' (or 'copa daemon install')"


def action_text(job: Any) -> str:
    if job.action_kind == "prompt":
        return f'prompt "{job.action_target}"'
    args = " ".join(f"{k}={v}" for k, v in (job.action_args or {}).items())
    return f"{job.action_kind} {job.action_target}" + (f" {args}" if args else "")


def trigger_text(job: Any) -> str:
    """'every 1d', 'cron 0 8 * * 1-5', or 'at 2030-01-01 08:00' (an --at time in local time)."""
    if job.trigger_kind == "at":
        try:
            return f"at {local_time(datetime.fromisoformat(job.trigger_spec))}"
        except ValueError:
            pass
    return f"{job.trigger_kind} {job.trigger_spec}"


def overdue(job: Any, now: datetime | None = None) -> bool:
    """An active job whose next run has passed: nothing ran it (the CLI says the same)."""
    return bool(job.state == "active" and job.next_run_at and job.next_run_at < (now or datetime.now(UTC)))


def daemon_status(ws: Any) -> dict[str, Any]:
    """What `copa daemon status` reports (running, pid, heartbeat)."""
    from copa.scheduler import daemon_status as status

    return status(ws.paths, ws.conn)


def start_daemon(ws: Any) -> int:
    """Start `copa daemon` in the background, detached from this terminal (its own session, output to
    the log folder), as `nohup copa daemon &` would; the pid."""
    import os
    import subprocess
    import sys

    log_dir = ws.paths.log_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "daemon.out", "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "copa", "daemon"], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, env=os.environ.copy())
    return proc.pid


class ReportScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "dismiss(None)", "Close")]
    DEFAULT_CSS = """
    ReportScreen { align: center middle; }
    ReportScreen > Vertical { width: 95%; height: 95%; border: thick $accent; background: $surface; }
    ReportScreen #report-body { height: 1fr; }
    """

    def __init__(self, title: str, markdown: str):
        super().__init__()
        self.title_text, self.markdown = title, markdown

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f" [b]{escape(self.title_text)}[/b]  (↑↓ pgup pgdn scroll · esc closes)")
            with VerticalScroll(id="report-body"):
                yield Markdown(self.markdown, id="report")

    def on_mount(self) -> None:
        self.query_one("#report-body").focus()  # the arrows and page keys scroll it at once


MISSED = [("if missed: run once", "run-once"), ("if missed: skip", "skip"), ("if missed: run each", "run-all")]
TRIGGERS = [("every (30m, 1h, 1d)", "every"), ("cron ('0 8 * * 1-5')", "cron"), ("at (2026-12-01T09:00)", "at")]
ACTIONS = [("report", "report"), ("skill", "skill"), ("prompt", "prompt")]


class JobFormScreen(ModalScreen[Any]):
    """Add a job, or edit one (``job`` given). Saving calls ``add_job``/``edit_job``: the same checks
    as `copa schedule add`; an error is shown in the form and nothing is written."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), Binding("ctrl+s", "save", "Save")]
    DEFAULT_CSS = """
    JobFormScreen { align: center middle; }
    JobFormScreen > VerticalScroll { width: 90%; max-width: 100; height: auto; max-height: 100%;
                                     border: thick $accent; background: $surface; padding: 0 1; }
    JobFormScreen Label { margin-top: 1; }
    JobFormScreen .row { height: auto; }
    JobFormScreen .row Select { width: 28; }
    JobFormScreen .row Input { width: 1fr; }
    JobFormScreen #form-error { color: $error; margin-top: 1; }
    JobFormScreen #buttons { height: auto; align-horizontal: right; margin-top: 1; }
    JobFormScreen Button { margin-left: 1; }
    """

    def __init__(self, job: Any = None):
        super().__init__()
        self.job = job

    def compose(self) -> ComposeResult:
        j = self.job
        with VerticalScroll():
            yield Label(f"[b]{'Edit job ' + escape(j.name) if j else 'Add a job'}[/b]  (ctrl+s saves, esc cancels)")
            if j is None:
                yield Input(placeholder="name, e.g. morning", id="job-name", compact=True)
            yield Label("When")
            with Horizontal(classes="row"):
                yield Select(TRIGGERS, value=j.trigger_kind if j else "every", allow_blank=False, id="trigger-kind",
                             compact=True)
                yield Input(j.trigger_spec if j else "", placeholder="1d", id="trigger-spec", compact=True)
            yield Input(j.timezone if j else "", placeholder="time zone (empty: the default), e.g. Europe/Lisbon",
                        id="job-tz", compact=True)
            yield Label("Does")
            with Horizontal(classes="row"):
                yield Select(ACTIONS, value=j.action_kind if j else "report", allow_blank=False, id="action-kind",
                             compact=True)
                yield Input(j.action_target if j else "", placeholder="daily-briefing", id="action-target",
                            compact=True)
            args = " ".join(shlex.quote(f"{k}={_arg_text(v)}") for k, v in (j.action_args or {}).items()) if j else ""
            yield Input(args, placeholder="skill arguments: KEY=VALUE ... (e.g. city=Porto days=3)", id="job-args",
                        compact=True)
            yield Input(" ".join(j.deliver) if j else "", placeholder="deliver to (space-separated): file:PATH notify "
                        "email:ADDR ...", id="job-deliver", compact=True)
            yield Label("When a run was missed (the daemon was not running)")
            yield Select(MISSED, value=(j.misfire_policy if j and j.misfire_policy else "run-once"),
                         allow_blank=False, id="job-missed", compact=True)
            yield Checkbox("allow a dangerous skill to run unattended", value=bool(j and j.allow_dangerous),
                           id="job-dangerous", compact=True)
            if j is None:
                yield Checkbox("create it paused", value=False, id="job-paused", compact=True)
            yield Static("", id="form-error")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Save (ctrl+s)", id="save", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query("Input").first().focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()

    def definition(self) -> dict[str, Any]:
        from copa.scheduler import parse_args

        def value(wid: str) -> str:
            return self.query_one(wid, Input).value.strip()

        trigger = str(self.query_one("#trigger-kind", Select).value)
        action = str(self.query_one("#action-kind", Select).value)
        fields: dict[str, Any] = {trigger: value("#trigger-spec"), action: value("#action-target")}
        fields["tz"] = value("#job-tz") or None
        fields["args"] = parse_args(shlex.split(value("#job-args"))) or None
        fields["deliver"] = value("#job-deliver").split() or None
        fields["allow_dangerous"] = self.query_one("#job-dangerous", Checkbox).value
        missed = str(self.query_one("#job-missed", Select).value)
        fields["misfire"] = None if missed == "run-once" and not (self.job and self.job.misfire_policy) else missed
        if self.job is not None:  # what the form does not show is kept as it was (the CLI's --retries etc.)
            fields.update(retries=self.job.retries, misfire_grace=self.job.misfire_grace,
                          max_lateness=self.job.max_lateness)
        return fields

    def action_save(self) -> None:
        """Read the form here (a malformed KEY=VALUE is refused at once), check and write in a worker
        (the skill check may load the skills)."""
        try:
            fields = self.definition()
        except Exception as e:
            self._failed(e)
            return
        name = self.job.name if self.job is not None else self.query_one("#job-name", Input).value.strip()
        paused = self.job is None and self.query_one("#job-paused", Checkbox).value
        self.save(name, paused, fields)

    @work(thread=True, exclusive=True, group="job-form")
    def save(self, name: str, paused: bool, fields: dict[str, Any]) -> None:
        from copa.scheduler import jobs

        ws = self.app.ws  # type: ignore[attr-defined]
        try:
            if self.job is not None:
                job = jobs.edit_job(ws, name, **fields)
            else:
                job = jobs.add_job(ws, name, paused=paused, **fields)
        except Exception as e:
            self.app.call_from_thread(self._failed, e)
            return
        self.app.call_from_thread(self.dismiss, job)

    def _failed(self, error: Exception) -> None:
        from copa.errors import CopaError

        if not isinstance(error, CopaError):  # a bug, not the user's to fix: logged with its traceback
            import logging

            logging.getLogger("copa.tui").exception("error saving a job", exc_info=error)
        self.query_one("#form-error", Static).update(f"✗ {escape(str(error))}")


def _arg_text(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


class SchedulesScreen(CopaScreen):
    MODE = "schedules"
    BINDINGS = [
        Binding("a", "add", "Add"),
        Binding("e", "edit", "Edit"),
        Binding("d", "delete", "Delete"),
        Binding("r", "run_now", "Run"),
        Binding("p", "pause", "Pause"),
        Binding("u", "resume", "Resume", show=False),
        Binding("o", "open_report", "Open the report (or enter on a run)", show=False),
        Binding("D", "start_daemon", "Daemon"),
        Binding("ctrl+r", "reload", "Refresh", show=False),
    ]
    HELP_KEYS = [("r", "run the job now, as a test (recorded in its history like 'copa schedule run')"),
                 ("p", "pause the job, or resume it when it is paused"),
                 ("D", "start the daemon in the background (as 'copa daemon'), when it is not running"),
                 ("tab", "from the jobs to their history and back"),
                 ("ctrl+s / esc", "in the job form: save (the CLI's checks) / cancel")]

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[Any] = []
        self.runs: list[Any] = []
        self.running: set[str] = set()
        self.completed = 0
        self.daemon: dict[str, Any] | None = None

    def compose_body(self) -> ComposeResult:
        yield Static("", id="daemon-banner")
        yield Label(" Jobs", classes="section-title", id="jobs-title")
        jobs = DataTable(id="jobs", cursor_type="row")
        for col, width in (("job", 12), ("when", 14), ("does", 18), ("next run", 16), ("last", 7)):
            jobs.add_column(col, width=width, key=col)
        yield jobs
        yield Label(" History (enter or o opens a report)", classes="section-title", id="history-title")
        runs = DataTable(id="runs", cursor_type="row")
        for col, width in (("started", 16), ("took", 7), ("status", 9), ("origin", 9), ("output", 14)):
            runs.add_column(col, width=width, key=col)
        yield runs
        yield Label("", id="schedule-status")

    def on_mount(self) -> None:
        self.query_one("#jobs", DataTable).focus()
        self.load()

    def on_screen_resume(self) -> None:
        self.load()

    def on_resize(self, _event: object = None) -> None:
        """'does' takes the width the other columns leave, and wraps there (nothing is cut)."""
        table = self.query_one("#jobs", DataTable)
        column = table.columns.get("does")
        width = max(14, self.size.width - (12 + 14 + 16 + 7) - 2 * 5 - 2)
        if column is not None and column.width != width:
            column.width = width
            if self.jobs:
                self._show_jobs(self.jobs, self.daemon)

    def action_reload(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="schedules-load")
    def load(self) -> None:
        from copa.scheduler import job_store as store

        try:
            jobs = store(self.ws).list()
            daemon = daemon_status(self.ws)
        except Exception as e:
            self.app.call_from_thread(self.report_error, e)
            return
        self.show_latest(self._show_jobs, jobs, daemon)

    def _show_banner(self, daemon: dict[str, Any], late: int) -> None:
        banner = self.query_one("#daemon-banner", Static)
        if daemon.get("state") == "unresponsive":
            age = daemon.get("heartbeat_age_s") or 0
            banner.update(f"[b]⚠ The daemon (pid {daemon.get('pid')}) has not answered for {age:.0f}s:[/b] it may be "
                          "stuck and jobs may not run. Run [b]copa daemon stop[/b], then press [b]D[/b].")
            banner.set_class(True, "warning")
            return
        if daemon.get("running"):
            banner.update(f"[green]●[/] daemon running (pid {daemon.get('pid')}): jobs run on time")
            banner.set_class(False, "warning")
            return
        jobs = f" {late} job{'s are' if late != 1 else ' is'} overdue." if late else ""
        banner.update(f"[b]⚠ The daemon is not running: no job runs on its own.[/b]{jobs} "
                      f"Press [b]D[/b] to start it in the background, or run [b]copa daemon[/b].")
        banner.set_class(True, "warning")

    def _show_jobs(self, jobs: list[Any], daemon: dict[str, Any] | None = None) -> None:
        table = self.query_one("#jobs", DataTable)
        keep = table.cursor_row
        self.jobs = jobs
        if daemon is not None:
            self.daemon = daemon
        now = datetime.now(UTC)
        late = sum(1 for j in jobs if overdue(j, now))
        if self.daemon is not None:
            self._show_banner(self.daemon, late)
        wrap = table.columns["does"].width
        table.clear()
        for j in jobs:
            state = "running" if j.name in self.running else (j.state if j.state != "active" else "")
            nxt: Any = local_time(j.next_run_at) if j.state == "active" else j.state
            if overdue(j, now):
                nxt = Text.assemble(nxt, "\n", ("overdue", "bold red"))
            cells = [Text(j.name, overflow="fold"), Text(trigger_text(j), overflow="fold"),
                     Text(action_text(j), overflow="fold")]
            widths = (table.columns["job"].width, table.columns["when"].width, wrap)
            height = max([len(c.wrap(table.app.console, w)) for c, w in zip(cells, widths, strict=True)]
                         + [2 if overdue(j, now) else 1])
            table.add_row(*cells, nxt, state or (j.last_status or "-"), key=j.name, height=height)
        if jobs:
            table.move_cursor(row=min(keep, len(jobs) - 1))
            self.load_runs(self.selected_job().name)
            self.query_one("#schedule-status", Label).update(
                f" {len(jobs)} job{'s' if len(jobs) != 1 else ''} · tab: their history · ? all keys")
        else:
            self.runs = []
            self.query_one("#runs", DataTable).clear()
            self.query_one("#schedule-status", Label).update(
                " No jobs yet: press a to add one (or 'copa schedule add NAME --every 1d --report daily-briefing')")

    def selected_job(self) -> Any:
        table = self.query_one("#jobs", DataTable)
        if not self.jobs or table.cursor_row >= len(self.jobs):
            return None
        return self.jobs[table.cursor_row]

    @on(DataTable.RowHighlighted, "#jobs")
    def _job_highlighted(self, event: DataTable.RowHighlighted) -> None:
        job = self.selected_job()
        if job is not None:
            self.load_runs(job.name)

    @work(thread=True, exclusive=True, group="schedules-runs")
    def load_runs(self, name: str) -> None:
        from copa.scheduler import job_store as store

        runs = store(self.ws).runs(name, limit=20)
        self.show_latest(self._show_runs, name, runs)  # not when another job was highlighted meanwhile

    def _show_runs(self, name: str, runs: list[Any]) -> None:
        self.runs = runs
        table = self.query_one("#runs", DataTable)
        table.clear()
        for r in runs:
            took = f"{r.duration_ms / 1000:.1f}s" if r.duration_ms is not None else "-"
            out = Path(r.output_path).name if r.output_path else ("report" if r.report_id else "-")
            table.add_row(local_time(r.started_at), took, r.status, r.origin, out, key=str(r.id))
        self.query_one("#history-title", Label).update(
            f" History of {escape(name)}: {len(runs)} run{'s' if len(runs) != 1 else ''} (enter or o opens a report)")

    # ---- actions ------------------------------------------------------------------------------
    def action_add(self) -> None:
        self.app.push_screen(JobFormScreen(), self._saved)

    def action_edit(self) -> None:
        job = self.selected_job()
        if job is None:
            self.notify("No job to edit: press a to add one")
            return
        self.app.push_screen(JobFormScreen(job), self._saved)

    def _saved(self, job: Any) -> None:
        if job is not None:
            nxt = "paused" if job.paused else f"next run {local_time(job.next_run_at)}"
            self.notify(f"saved {job.name}: {action_text(job)}; {nxt}")
            self.load()
            self.query_one("#jobs", DataTable).focus()

    @work
    async def action_delete(self) -> None:
        job = self.selected_job()
        if job is None:
            return
        if not await self.app.push_screen_wait(ConfirmScreen(
                f"Delete the job {job.name}? Its history stays.\n\n{action_text(job)}", yes="Delete")):
            return
        from copa.scheduler import remove_job as remove

        try:
            remove(self.ws, job.name)
        except Exception as e:
            self.report_error(e)
            return
        self.notify(f"deleted {job.name}")
        self.load()

    def action_run_now(self) -> None:
        job = self.selected_job()
        if job is None or job.name in self.running:
            return
        self.running.add(job.name)
        self.notify(f"Running {job.name}…")
        self._show_jobs(self.jobs)
        self.run_job(job)

    @work(thread=True, group="schedules-run")
    def run_job(self, job: Any) -> None:
        from copa.scheduler import runner

        try:
            run = runner.execute(self.ws, job, origin="manual")
        except Exception as e:
            run = None
            self.app.call_from_thread(self.report_error, e)
        self.app.call_from_thread(self._job_done, job.name, run)

    def _job_done(self, name: str, run: Any) -> None:
        self.running.discard(name)
        self.completed += 1
        if run is not None:
            sev = "error" if run.status == "failed" else "information"
            self.notify(f"{name}: {run.status}" + (f" ({run.error})" if run.error else ""), severity=sev)
        self.load()

    def _change(self, fn_name: str) -> None:
        from copa.scheduler import jobs as jobs_mod

        job = self.selected_job()
        if job is None:
            return
        try:
            getattr(jobs_mod, fn_name)(self.ws, job.name)
        except Exception as e:
            self.report_error(e)
            return
        self.notify(f"{job.name}: {fn_name}d")
        self.load()

    def action_pause(self) -> None:
        """p pauses a job, or resumes it when it is paused."""
        job = self.selected_job()
        self._change("resume" if job is not None and job.paused else "pause")

    def action_resume(self) -> None:
        self._change("resume")

    def action_start_daemon(self) -> None:
        if self.daemon and self.daemon.get("running"):
            self.notify(f"The daemon is already running (pid {self.daemon.get('pid')})")
            return
        try:
            pid = start_daemon(self.ws)
        except OSError as e:
            self.notify(f"could not start the daemon: {e}; run 'copa daemon' in a terminal", severity="error")
            return
        self.notify(f"Starting the daemon (pid {pid}); its output goes to {self.ws.paths.log_dir / 'daemon.out'}")
        self.wait_for_daemon()

    @work(thread=True, exclusive=True, group="schedules-daemon")
    def wait_for_daemon(self, timeout: float = 15.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if daemon_status(self.ws).get("running"):
                break
            time.sleep(0.2)
        else:
            self.app.call_from_thread(self.notify, "The daemon did not start: see its output in "
                                      f"{self.ws.paths.log_dir / 'daemon.out'}", severity="error")
        self.app.call_from_thread(self.load)

    @on(DataTable.RowSelected, "#runs")
    def action_open_report(self, _event: object = None) -> None:
        table = self.query_one("#runs", DataTable)
        if not self.runs:
            self.notify("No run to open yet: press r to run the job now")
            return
        run = self.runs[min(table.cursor_row, len(self.runs) - 1)]
        text = None
        if run.output_path and Path(run.output_path).is_file():
            text = Path(run.output_path).read_text(encoding="utf-8", errors="replace")
        elif run.report_id:
            m = self.ws.memory.get(run.report_id)
            text = m.text if m else None
        if text is None:
            self.notify(f"That run left no report ({run.status}" + (f": {run.error})" if run.error else ")"),
                        severity="warning")
            return
        self.app.push_screen(ReportScreen(f"{run.job_name} · {local_time(run.started_at)}", text))
