"""Skills, Schedules and Devices screens against the real core: a user skill run from its generated
form, a job run now / paused / resumed and its report opened, a host-firmware board on a pty whose
live reading appears and whose pin is toggled after confirmation."""

from __future__ import annotations

import asyncio
import textwrap

import pytest
from textual.widgets import DataTable, OptionList

from copa.tui.app import CopaApp
from copa.tui.schedules import ReportScreen
from copa.tui.widgets import ConfirmScreen
from tests.tui.tui_helpers import screen_text, wait_for

GREET = '''
from copa.skills import skill


@skill
def greet(name: str, times: int = 1, shout: bool = False) -> str:
    """Greet someone.

    Args:
        name: who to greet.
        times: how many times.
        shout: in capitals.
    """
    text = " ".join([f"hello {name}"] * times)
    return text.upper() if shout else text
'''


@pytest.fixture
def user_skills(ws):
    d = ws.paths.user_skills_dir
    d.mkdir(parents=True, exist_ok=True)
    (d / "greet.py").write_text(textwrap.dedent(GREET))
    (d / "broken.py").write_text("from copa.skills import skill\n\n@skill\ndef broken(:\n    pass\n")
    return d


def test_run_a_skill_from_its_form(ws, user_skills):
    async def scenario():
        app = CopaApp(ws, mode="skills")
        async with app.run_test(size=(100, 40)) as pilot:
            menu = app.screen.query_one("#skill-list", OptionList)
            await wait_for(pilot, lambda: menu.option_count > 0, timeout=30, what="the skill list")
            ids = [menu.get_option_at_index(i).id for i in range(menu.option_count)]
            assert "greet" in ids
            broken = [app.screen.infos[k] for k in ids if k.startswith("!")]
            assert broken and broken[0].status == "error"  # the load error is listed, not hidden
            menu.highlighted = ids.index(next(k for k in ids if k.startswith("!")))
            await wait_for(pilot, lambda: "failed to load" in screen_text(app), what="the load error")
            menu.highlighted = ids.index("greet")
            await wait_for(pilot, lambda: app.screen.query("#arg-name"), what="the generated form")
            text = await wait_for(pilot, lambda: "name * string" in screen_text(app) and screen_text(app),
                                  what="the form painted")
            assert "name * string" in text and "times integer" in text and "who to greet." in text
            app.screen.query_one("#arg-name").value = "Ana"
            app.screen.query_one("#arg-times").value = "2"
            app.screen.query_one("#arg-shout").value = True
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: app.screen.runs == 1, timeout=30, what="the skill's result")
            assert app.screen.last_result.ok and app.screen.last_result.content == "HELLO ANA HELLO ANA"
            await wait_for(pilot, lambda: "HELLO ANA HELLO ANA" in screen_text(app), what="the result on screen")
            # a required field left empty is refused before anything runs
            app.screen.query_one("#arg-name").value = ""
            await pilot.press("ctrl+r")
            await pilot.pause(0.2)
            assert app.screen.runs == 1 and "name is required" in screen_text(app)

    asyncio.run(scenario())


def test_run_a_job_now_pause_resume_and_open_its_report(ws):
    from copa.scheduler.jobs import add_job

    add_job(ws, "clock", at="2030-01-01T09:00", tz="UTC", skill="current_time", args={"timezone": "UTC"})

    async def scenario():
        app = CopaApp(ws, mode="schedules")
        async with app.run_test(size=(100, 30)) as pilot:
            table = app.screen.query_one("#jobs", DataTable)
            await wait_for(pilot, lambda: table.row_count == 1, what="the job list")
            assert "2030-01-01 09:00" in screen_text(app)  # next run, local time (UTC here)
            table.focus()
            await pilot.press("r")
            await wait_for(pilot, lambda: app.screen.completed == 1, timeout=30, what="the run")
            await wait_for(pilot, lambda: app.screen.runs and app.screen.runs[0].status == "ok", what="history")
            await wait_for(pilot, lambda: "History of clock: 1 run" in screen_text(app), what="the history title")
            await pilot.press("o")
            await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen), what="the report")
            assert "clock" in app.screen.title_text and "UTC" in app.screen.markdown  # the skill's output
            await pilot.press("escape")
            await pilot.press("p")
            await wait_for(pilot, lambda: "paused" in screen_text(app), what="paused")
            from copa.scheduler.jobs import store

            assert store(ws).get("clock").paused
            await pilot.press("u")
            await wait_for(pilot, lambda: not store(ws).get("clock").paused, what="resumed")

    asyncio.run(scenario())


class HostBoard:
    """The host build of the firmware serving the protocol on a pty (devkit.targets)."""

    def __init__(self, tmp_path):
        from devkit import targets

        missing = targets.missing_tools("host")
        if missing:
            pytest.skip(f"host firmware: missing {', '.join(missing)} (install firmware/apt-packages.txt)")
        r = targets.build("host")
        assert r.returncode == 0, (r.stdout + r.stderr)[-1500:]
        self.t = targets.start("host", store=tmp_path / "host-store.bin")
        self.link = self.t.path

    def control(self, line: str) -> str:
        return self.t.control(line)

    def pin(self, n: int) -> tuple[int, int, int]:
        _, _, mode, out, pwm = self.control(f"get {n}").split()
        return int(mode), int(out), int(pwm)


@pytest.fixture
def board(tmp_path):
    b = HostBoard(tmp_path)
    yield b
    b.t.stop()


def test_live_reading_and_pin_toggle_on_a_host_board(ws, board):
    ws.devices.pair(board.link, "greenhouse")
    board.control("adc 0 512")
    from copa.config import set_value

    set_value(ws.paths, "device.sample_period_ms", 100)
    ws.__dict__.pop("config", None)

    async def scenario():
        app = CopaApp(ws, mode="devices")
        async with app.run_test(size=(100, 30)) as pilot:
            table = app.screen.query_one("#boards", DataTable)
            await wait_for(pilot, lambda: table.row_count == 1, what="the board list")
            assert "greenhouse" in screen_text(app)
            table.focus()
            await pilot.press("w")
            await wait_for(pilot, lambda: app.screen.samples >= 2, timeout=20, what="live samples")
            await wait_for(pilot, lambda: " 512" in screen_text(app), what="the reading on screen")
            board.control("adc 0 700")
            await wait_for(pilot, lambda: " 700" in screen_text(app), timeout=10, what="the new reading")
            await pilot.press("t")
            await pilot.pause(0.1)
            for ch in "d7":
                await pilot.press(ch)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
            assert board.pin(7)[1] == 0
            await pilot.press("y")
            await wait_for(pilot, lambda: board.pin(7)[1] == 1, timeout=10, what="the pin high on the board")
            await wait_for(pilot, lambda: "d7 set to 1" in screen_text(app), what="the event log")
            await pilot.press("w")

    asyncio.run(scenario())
