"""The Schedules screen: jobs with their next run in local time and last status; run one now (in a
worker thread, recorded in its history exactly like `copa schedule run`), pause, resume; the history
of the selected job, and a report opened from it rendered as Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Markdown

from copa.tui.base import CopaScreen
from copa.tui.widgets import Unavailable, local_time


def scheduler_parts() -> tuple[Any, Any] | None:
    """(copa.scheduler.jobs, copa.scheduler.runner) when the scheduler part is installed."""
    try:
        from copa.scheduler import jobs, runner

        return jobs, runner
    except ImportError:
        return None


def action_text(job: Any) -> str:
    if job.action_kind == "prompt":
        return f'prompt "{job.action_target}"'
    args = " ".join(f"{k}={v}" for k, v in (job.action_args or {}).items())
    return f"{job.action_kind} {job.action_target}" + (f" {args}" if args else "")


class ReportScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "dismiss(None)", "Close")]
    DEFAULT_CSS = """
    ReportScreen { align: center middle; }
    ReportScreen > Vertical { width: 95%; height: 95%; border: thick $accent; background: $surface; }
    ReportScreen #report-body { height: 1fr; overflow-y: auto; }
    """

    def __init__(self, title: str, markdown: str):
        super().__init__()
        self.title_text, self.markdown = title, markdown

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f" [b]{escape(self.title_text)}[/b]  (esc closes)")
            with Vertical(id="report-body"):
                yield Markdown(self.markdown, id="report")


class SchedulesScreen(CopaScreen):
    MODE = "schedules"
    BINDINGS = [
        Binding("r", "run_now", "Run now"),
        Binding("p", "pause", "Pause"),
        Binding("u", "resume", "Resume"),
        Binding("o", "open_report", "Open report"),
        Binding("ctrl+r", "reload", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[Any] = []
        self.runs: list[Any] = []
        self.running: set[str] = set()
        self.completed = 0

    def compose_body(self) -> ComposeResult:
        if scheduler_parts() is None:
            yield Unavailable("Schedules", "This build has no scheduler part (copa.scheduler).")
            return
        yield Label(" Jobs", classes="section-title")
        jobs = DataTable(id="jobs", cursor_type="row")
        for col, width in (("job", 12), ("when", 14), ("does", 18), ("next run", 16), ("last", 7)):
            jobs.add_column(col, width=width, key=col)
        yield jobs
        yield Label(" History (enter or o opens a report)", classes="section-title", id="history-title")
        runs = DataTable(id="runs", cursor_type="row")
        for col, width in (("started", 16), ("took", 7), ("status", 9), ("origin", 9), ("output", 30)):
            runs.add_column(col, width=width, key=col)
        yield runs
        yield Label("", id="schedule-status")

    def on_mount(self) -> None:
        if scheduler_parts() is not None:
            self.load()

    def on_screen_resume(self) -> None:
        if scheduler_parts() is not None:
            self.load()

    def action_reload(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="schedules-load")
    def load(self) -> None:
        jobs_mod, _ = scheduler_parts()
        try:
            jobs = jobs_mod.store(self.ws).list()
        except Exception as e:
            self.app.call_from_thread(self.report_error, e)
            return
        self.app.call_from_thread(self._show_jobs, jobs)

    def _show_jobs(self, jobs: list[Any]) -> None:
        table = self.query_one("#jobs", DataTable)
        keep = table.cursor_row
        self.jobs = jobs
        table.clear()
        for j in jobs:
            state = "running" if j.name in self.running else (j.state if j.state != "active" else "")
            nxt = local_time(j.next_run_at) if j.state == "active" else j.state
            table.add_row(j.name, f"{j.trigger_kind} {j.trigger_spec}", action_text(j), nxt,
                          state or (j.last_status or "-"), key=j.name)
        if jobs:
            table.move_cursor(row=min(keep, len(jobs) - 1))
            self.load_runs(self.selected_job().name)
        else:
            self.query_one("#schedule-status", Label).update(
                " No jobs yet: add one with 'copa schedule add NAME --every 1d --report daily-briefing'")

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
        jobs_mod, _ = scheduler_parts()
        runs = jobs_mod.store(self.ws).runs(name, limit=20)
        self.app.call_from_thread(self._show_runs, name, runs)

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
        _, runner = scheduler_parts()
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
        job = self.selected_job()
        if job is None:
            return
        jobs_mod, _ = scheduler_parts()
        try:
            getattr(jobs_mod, fn_name)(self.ws, job.name)
        except Exception as e:
            self.report_error(e)
            return
        self.notify(f"{job.name}: {fn_name}d")
        self.load()

    def action_pause(self) -> None:
        self._change("pause")

    def action_resume(self) -> None:
        self._change("resume")

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
