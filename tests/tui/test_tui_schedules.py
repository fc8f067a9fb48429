"""The Schedules screen tells the truth and manages jobs from the keyboard: the no-daemon banner and
overdue marks, add / edit / delete / test-run through the scheduler's own functions (the CLI's checks),
starting the real daemon in the background, the report scrolled with keys."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
from textual.widgets import DataTable

from copa.scheduler import JobStore
from copa.scheduler.jobs import add_job, edit_job, store
from copa.tui.app import CopaApp
from copa.tui.schedules import JobFormScreen, ReportScreen
from copa.tui.widgets import ConfirmScreen
from tests.tui.tui_helpers import screen_text, type_text, wait_for


def test_no_daemon_banner_and_overdue_jobs(ws):
    job = add_job(ws, "hourly", every="1h", tz="UTC", prompt="anything new?")
    JobStore(ws.conn).set_next_run(job.id, datetime.now(UTC) - timedelta(hours=2))  # it should have run

    async def scenario():
        app = CopaApp(ws, mode="schedules")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.screen.jobs and app.screen.daemon, what="the job list")
            def painted() -> str | None:  # one capture: two could straddle a relayout (seen in CI)
                text = screen_text(app)
                return text if "overdue" in text.split("Jobs", 1)[-1] and "Press D" in text else None

            text = await wait_for(pilot, painted, what="the banner and the overdue row painted")
            assert "The daemon is not running" in text and "Press D" in text and "copa daemon" in text
            assert "1 job is overdue" in text
            assert "overdue" in text.split("Jobs", 1)[1]  # marked on the job's row, not only in the banner
            assert isinstance(app.focused, DataTable) and app.focused.id == "jobs"

    asyncio.run(scenario())


def test_add_edit_delete_and_test_run_a_job_from_the_keyboard(ws):
    async def scenario():
        app = CopaApp(ws, mode="schedules")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.screen.daemon, what="the screen")
            await wait_for(pilot, lambda: "press a to add one" in screen_text(app), what="the empty list's hint")
            await pilot.press("a")
            form = await wait_for(pilot, lambda: isinstance(app.screen, JobFormScreen) and app.screen,
                                  what="the form")
            assert app.focused.id == "job-name"
            await type_text(pilot, "clock")
            await pilot.press("tab", "tab")  # the trigger kind (every), then its spec
            assert app.focused.id == "trigger-spec"
            await type_text(pilot, "every day")  # not an interval: the CLI's own check refuses it
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: "✗" in screen_text(app), what="the error in the form")
            assert store(ws).find("clock") is None  # nothing written
            assert isinstance(app.screen, JobFormScreen)
            form.query_one("#trigger-spec").value = "1d"
            form.query_one("#job-args").value = "timezone"  # not KEY=VALUE: refused as the CLI refuses --arg
            form.query_one("#action-kind").value = "skill"
            form.query_one("#action-target").value = "current_time"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: "is not KEY=VALUE" in screen_text(app), what="the args error")
            assert store(ws).find("clock") is None
            form.query_one("#action-target").value = "current_time"
            form.query_one("#job-args").value = "timezone=UTC"
            form.query_one("#job-tz").value = "UTC"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: not isinstance(app.screen, JobFormScreen), what="the form to close")
            job = store(ws).get("clock")
            assert (job.trigger_kind, job.trigger_spec, job.action_kind, job.action_target, job.action_args) == (
                "every", "1d", "skill", "current_time", {"timezone": "UTC"})
            table = app.screen.query_one("#jobs", DataTable)
            await wait_for(pilot, lambda: table.row_count == 1, what="the new row")
            assert app.focused is table
            # settings the form does not show (set with the CLI) survive an edit from the TUI
            edit_job(ws, "clock", every="1d", tz="UTC", skill="current_time", args={"timezone": "UTC"}, retries=2,
                     max_lateness=600)
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: app.screen.jobs and app.screen.jobs[0].retries == 2, what="the reload")
            # edit: the form comes filled in; a new interval is saved through edit_job
            await pilot.press("e")
            form = await wait_for(pilot, lambda: isinstance(app.screen, JobFormScreen) and app.screen,
                                  what="the edit form")
            assert form.query_one("#trigger-spec").value == "1d"
            assert form.query_one("#job-args").value == "timezone=UTC"
            assert form.query_one("#job-missed").value == "run-once"
            form.query_one("#trigger-spec").value = "12h"
            form.query_one("#job-missed").value = "skip"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: store(ws).get("clock").trigger_spec == "12h", what="the edit")
            await wait_for(pilot, lambda: "every 12h" in screen_text(app), what="the edited row")
            edited = store(ws).get("clock")
            assert edited.misfire_policy == "skip" and edited.retries == 2 and edited.max_lateness == 600
            # test-run: recorded in the history like `copa schedule run`
            await pilot.press("r")
            await wait_for(pilot, lambda: app.screen.completed == 1, timeout=30, what="the run")
            await wait_for(pilot, lambda: app.screen.runs and app.screen.runs[0].status == "ok", what="history")
            assert store(ws).runs("clock")[0].origin == "manual"
            # the report: keys scroll it
            await pilot.press("o")
            await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen), what="the report")
            assert app.focused.id == "report-body"
            await pilot.press("escape")
            # delete, confirmed
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
            assert "Delete the job clock" in screen_text(app)
            await pilot.press("y")
            await wait_for(pilot, lambda: store(ws).find("clock") is None, what="the deletion")
            await wait_for(pilot, lambda: table.row_count == 0, what="the row gone")

    asyncio.run(scenario())


def test_the_report_scrolls_with_keys(ws):
    async def scenario():
        app = CopaApp(ws, mode="schedules")
        long = "\n\n".join(f"line {i}" for i in range(80))
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.1)
            app.push_screen(ReportScreen("long", long))
            body = await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen) and app.screen.query(
                "#report-body") and app.screen.query_one("#report-body"), what="the report")
            await pilot.pause(0.1)
            assert body.scroll_y == 0
            await pilot.press("pagedown")
            await wait_for(pilot, lambda: body.scroll_y > 0, what="scrolled")
            assert "line 0" not in screen_text(app)
            await pilot.press("home")
            await wait_for(pilot, lambda: body.scroll_y == 0, what="scrolled back")

    asyncio.run(scenario())


@pytest.fixture
def stop_daemon(ws):
    yield
    from copa.scheduler import daemon_status as status

    st = status(ws.paths, ws.conn)
    if st["running"] and st["pid"]:
        os.kill(int(st["pid"]), signal.SIGTERM)
        deadline = time.monotonic() + 20
        while status(ws.paths, ws.conn)["running"] and time.monotonic() < deadline:
            time.sleep(0.1)


def test_start_the_daemon_from_the_banner(ws, stop_daemon):
    add_job(ws, "later", every="1d", tz="UTC", prompt="hello")

    async def scenario():
        app = CopaApp(ws, mode="schedules")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: "The daemon is not running" in screen_text(app), what="the banner")
            await pilot.press("D")
            await wait_for(pilot, lambda: "daemon running (pid" in screen_text(app), timeout=30,
                           what="the daemon running")
            assert "not running" not in screen_text(app)

    asyncio.run(scenario())


def test_banner_says_when_the_daemon_stopped_answering(ws, monkeypatch):
    """The status `copa daemon status` reports (here: a daemon that holds the lock but whose heartbeat is
    old) decides the banner; the stuck case says what to do. The status comes through the screen's own
    loading (setting the banner by hand raced with a reload that showed the real status, under load)."""
    import copa.tui.schedules as screen_module

    async def scenario():
        app = CopaApp(ws, mode="schedules")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: "The daemon is not running" in screen_text(app),  # the real status first
                           what="the screen")
            monkeypatch.setattr(screen_module, "daemon_status", lambda _ws: {
                "running": True, "state": "unresponsive", "pid": 4242, "heartbeat_age_s": 95.0})
            app.screen.load()
            text = await wait_for(pilot, lambda: "has not answered" in screen_text(app) and screen_text(app),
                                  what="the stuck daemon's banner")
            assert "The daemon (pid 4242) has not answered for 95s" in text and "copa daemon stop" in text

    asyncio.run(scenario())


def test_a_slow_earlier_load_does_not_overwrite_a_newer_one(ws, monkeypatch):
    """Two loads in flight (the screen loads on mount and on resume, and on every reload): the one
    asked for last decides what is shown, even when the earlier one finishes reading after it. The
    earlier one used to deliver its stale status over the newer (a flaky CI run of the test above)."""
    import threading

    import copa.tui.schedules as screen_module

    release, entered = threading.Event(), threading.Event()
    stuck = {"running": True, "state": "unresponsive", "pid": 4242, "heartbeat_age_s": 95.0}

    def status(_ws):
        if not entered.is_set():  # the first load reads "not running", slowly
            entered.set()
            release.wait(20)
            return {"running": False, "state": "stopped"}
        return stuck

    async def scenario():
        app = CopaApp(ws, mode="schedules")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.screen.daemon and not _loading(app), what="the screen")
            monkeypatch.setattr(screen_module, "daemon_status", status)
            app.screen.load()
            await wait_for(pilot, entered.is_set, what="the first load to read")
            app.screen.load()  # the newer one
            await wait_for(pilot, lambda: "has not answered" in screen_text(app), what="the newer status")
            release.set()
            await wait_for(pilot, lambda: not _loading(app), what="the earlier load to finish")
            await pilot.pause()
            assert "has not answered" in screen_text(app) and "not running" not in screen_text(app)

    asyncio.run(scenario())


def _loading(app) -> bool:
    return any(w.group == "schedules-load" and not w.is_finished for w in app.screen.workers)
