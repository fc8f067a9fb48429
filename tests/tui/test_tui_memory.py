"""Memory screen against the real store: search as you type, filters, detail with history, edit,
forget with confirmation, pin as preference."""

from __future__ import annotations

import asyncio

from textual.widgets import DataTable, Select

from copa.tui.app import CopaApp
from copa.tui.memory_views import EditMemoryScreen, MemoryDetailScreen
from copa.tui.widgets import ConfirmScreen
from tests.tui.tui_helpers import screen_text, wait_for


def rows(app) -> list[str]:
    table = app.screen.query_one("#memories", DataTable)
    return [str(table.get_row_at(i)[2]) for i in range(table.row_count)]


async def search_for(pilot, text: str) -> None:
    app = pilot.app
    before = app.screen.searches
    app.screen.query_one("#search").focus()
    for ch in text:
        await pilot.press("space" if ch == " " else ch)
    await wait_for(pilot, lambda: app.screen.searches > before and not app.screen.workers, what="search results")
    await pilot.pause(0.05)


def test_search_as_you_type_and_filters(ws, seeded):
    async def scenario():
        app = CopaApp(ws, mode="memory")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.screen.searches, what="the first listing")
            assert len(rows(app)) == 4  # current memories, newest first; Lisbon is superseded by Porto
            assert rows(app)[0].startswith("The greenhouse board")
            await search_for(pilot, "tea")
            assert rows(app) == ["I prefer green tea in the afternoon"]
            app.screen.query_one("#search").value = ""
            await wait_for(pilot, lambda: len(rows(app)) == 4, what="the listing again")
            app.screen.query_one("#kind", Select).value = "task"
            await wait_for(pilot, lambda: rows(app) == ["Renew the passport before June"], what="kind filter")
            app.screen.query_one("#kind", Select).clear()
            app.screen.query_one("#source").value = "device"
            await wait_for(pilot, lambda: len(rows(app)) == 1 and "greenhouse" in rows(app)[0], what="source filter")
            app.screen.query_one("#source").value = ""
            app.screen.query_one("#subject").value = "user.home_city"
            await wait_for(pilot, lambda: rows(app) == ["I moved to Porto"], what="subject filter")
            app.screen.query_one("#subject").value = ""
            app.screen.query_one("#since", Select).value = "30d"  # everything seeded is older than that
            await wait_for(pilot, lambda: rows(app) == [], what="time filter")

    asyncio.run(scenario())


def test_detail_history_edit_pin_and_forget(ws, seeded):
    porto = seeded["I moved to Porto"]

    async def scenario():
        app = CopaApp(ws, mode="memory")
        async with app.run_test(size=(100, 30)) as pilot:
            await search_for(pilot, "Porto")
            assert rows(app) == ["I moved to Porto"]
            app.screen.query_one("#memories").focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, MemoryDetailScreen), what="the detail view")
            text = screen_text(app)
            assert "History of user.home_city" in text
            assert "I live in Lisbon" in text and "until 2025-03-01 09:00" in text  # the superseded value
            # edit
            await pilot.press("e")
            await wait_for(pilot, lambda: isinstance(app.screen, EditMemoryScreen), what="the editor")
            area = app.screen.query_one("#text")
            area.text = "I moved to Porto, near the river"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: rows(app) == ["I moved to Porto, near the river"], what="the edited row")
            assert ws.memory.get(porto).text == "I moved to Porto, near the river"
            # pin as preference
            await pilot.press("p")
            await wait_for(pilot, lambda: ws.memory.get(porto).kind == "preference", what="the pin")
            # forget, saying no first, then yes
            await pilot.press("f")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
            await pilot.press("n")
            await pilot.pause(0.1)
            assert ws.memory.get(porto) is not None
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen.__class__.__name__ == "MemoryScreen")
            app.screen.query_one("#memories").focus()
            await pilot.press("f")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
            await pilot.press("y")
            await wait_for(pilot, lambda: ws.memory.get(porto) is None, what="the forgetting")
            await wait_for(pilot, lambda: rows(app) == [], what="the row gone")

    asyncio.run(scenario())
