"""Snapshots of every screen at 80x24 and 120x40 (pytest-textual-snapshot; update with
`pytest tests/tui/test_tui_snapshots.py --snapshot-update` and review the SVGs). Deterministic:
fixed data and times, UTC, skills from a test folder only, no clocks on screen."""

from __future__ import annotations

import textwrap

import pytest

from copa.tui.app import CopaApp
from copa.workstation import Workstation
from tests.agent.fake_servers import Answer
from tests.tui.conftest import SEED
from tests.tui.tui_helpers import no_blink, settle, wait_for

SIZES = [(80, 24), (120, 40)]
SKILL = '''
from copa.skills import skill


@skill(permissions=["net"])
def weather(city: str, days: int = 3, units: str = "metric") -> dict:
    """The forecast for a city.

    Args:
        city: the city's name.
        days: how many days ahead.
        units: metric or imperial.
    """
    return {"city": city, "days": days}
'''


class SnapshotWorkstation(Workstation):
    """The real workstation, with skills read from one test folder (not the built-in set, which grows)."""

    def __init__(self, skills_dir):
        super().__init__()
        self._skills_dir = skills_dir

    @property
    def skills(self):
        if "_skills" not in self.__dict__:
            from copa.skills import Skills

            self.__dict__["_skills"] = Skills(self.config, self.paths, self.secrets, dirs=[("user", self._skills_dir)],
                                              use_cache=False)
        return self.__dict__["_skills"]

    def close(self) -> None:
        if "_skills" in self.__dict__:
            self.__dict__.pop("_skills").close()
        super().close()


@pytest.fixture
def snap_ws(tmp_path):
    d = tmp_path / "skills"
    d.mkdir()
    (d / "weather.py").write_text(textwrap.dedent(SKILL))
    ws = SnapshotWorkstation(d)
    ws.memory.add_many(SEED)
    from copa.scheduler.jobs import add_job

    add_job(ws, "briefing", at="2030-01-01T08:00", tz="UTC", prompt="summarise my day")
    add_job(ws, "backup", at="2030-06-01T02:30", tz="UTC", skill="weather", args={"city": "Porto"}, paused=True)
    yield ws
    ws.close()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_chat_snapshot(snap_compare, fake_model, snap_ws, size):
    fake_model.add(Answer("You moved to **Porto** in March 2025.\n\n- before that: Lisbon", chunk=5))

    async def run_before(pilot):
        await wait_for(pilot, lambda: pilot.app.screen.ready is not None)
        for ch in "where do I live":
            await pilot.press("space" if ch == " " else ch)
        await pilot.press("enter")
        await wait_for(pilot, lambda: pilot.app.screen.turns == 1)
        await settle(pilot)
        no_blink(pilot.app)
        await pilot.pause(0.1)
        await pilot.pause(0.2)

    assert snap_compare(CopaApp(snap_ws), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_first_screen_without_a_model_snapshot(snap_compare, snap_ws, size):
    """What a new user sees first: what copa is, what it knows, how to set up a model, the keys."""
    async def run_before(pilot):
        await wait_for(pilot, lambda: pilot.app.screen.ready is False)
        await wait_for(pilot, lambda: "open task" in str(pilot.app.screen.query_one("Welcome").render()))
        await settle(pilot)
        no_blink(pilot.app)
        await pilot.pause(0.2)

    assert snap_compare(CopaApp(snap_ws), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_memory_snapshot(snap_compare, snap_ws, size):
    async def run_before(pilot):
        await wait_for(pilot, lambda: pilot.app.screen.searches)
        await settle(pilot)
        no_blink(pilot.app)
        await pilot.pause(0.1)
        pilot.app.screen.query_one("#memories").focus()
        await pilot.pause(0.1)

    assert snap_compare(CopaApp(snap_ws, mode="memory"), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_skills_snapshot(snap_compare, snap_ws, size):
    async def run_before(pilot):
        await wait_for(pilot, lambda: pilot.app.screen.query("#arg-city"), timeout=30)
        await settle(pilot)
        no_blink(pilot.app)
        await pilot.pause(0.1)
        await pilot.pause(0.1)

    assert snap_compare(CopaApp(snap_ws, mode="skills"), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_schedules_snapshot(snap_compare, snap_ws, size):
    async def run_before(pilot):
        await wait_for(pilot, lambda: pilot.app.screen.jobs)
        await settle(pilot)
        no_blink(pilot.app)
        await pilot.pause(0.1)
        await pilot.pause(0.1)

    assert snap_compare(CopaApp(snap_ws, mode="schedules"), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_devices_snapshot(snap_compare, snap_ws, size):
    async def run_before(pilot):
        await settle(pilot)
        no_blink(pilot.app)
        await pilot.pause(0.1)
        await pilot.pause(0.1)

    assert snap_compare(CopaApp(snap_ws, mode="devices"), terminal_size=size, run_before=run_before)


def test_light_theme_snapshot(snap_compare, snap_ws):
    async def run_before(pilot):
        await wait_for(pilot, lambda: pilot.app.screen.searches)
        await settle(pilot)
        no_blink(pilot.app)
        await pilot.pause(0.1)
        await pilot.pause(0.1)

    assert snap_compare(CopaApp(snap_ws, mode="memory", theme="textual-light"), terminal_size=(80, 24),
                        run_before=run_before)
