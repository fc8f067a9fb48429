"""Memory screen against the real store: search as you type, filters, detail with history, edit,
forget with confirmation, pin as preference."""

from __future__ import annotations

import asyncio

from textual.widgets import DataTable, Select

from copa.tui.app import CopaApp
from copa.tui.memory import KNOWLEDGE
from copa.tui.memory_views import EditMemoryScreen, MemoryDetailScreen
from copa.tui.widgets import ConfirmScreen
from tests.tui.tui_helpers import screen_text, type_text, wait_for


def rows(app) -> list[str]:
    table = app.screen.query_one("#memories", DataTable)
    return [" ".join(str(table.get_row_at(i)[2]).split()) for i in range(table.row_count)]


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
            text = await wait_for(pilot, lambda: "History of" in screen_text(app) and screen_text(app),
                                  what="the detail view painted")
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
            # the row goes; the search may still list other memories by meaning ("I live in Lisbon"
            # is current again, and MiniLM puts it near "Porto")
            await wait_for(pilot, lambda: "I moved to Porto, near the river" not in rows(app), what="the row gone")

    asyncio.run(scenario())


def test_knowledge_apart_from_conversation_with_a_toggle(ws, seeded):
    ws.memory.add_turn("s-1", "user", "decaf or regular this morning?", occurred_at="2025-05-01T08:00:00Z")
    ws.memory.add_turn("s-1", "assistant", "Decaf: you slept badly.", occurred_at="2025-05-01T08:00:02Z")

    async def scenario():
        app = CopaApp(ws, mode="memory")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.screen.searches, what="the first listing")
            assert len(rows(app)) == 4 and not any("decaf" in r.lower() for r in rows(app))  # knowledge only
            await wait_for(pilot, lambda: "(knowledge)" in screen_text(app), what="the knowledge label painted")
            await pilot.press("down")  # from the search into the results
            assert app.focused.id == "memories"
            await pilot.press("v")
            await wait_for(pilot, lambda: rows(app) == ["Decaf: you slept badly.", "decaf or regular this morning?"],
                           what="the conversation view")
            await wait_for(pilot, lambda: "(conversation)" in screen_text(app), what="the conversation label")
            await pilot.press("v")
            await wait_for(pilot, lambda: len(rows(app)) == 6, what="everything")

    asyncio.run(scenario())


def test_arrows_between_search_and_results_and_letters_never_edit(ws, seeded):
    porto = seeded["I moved to Porto"]

    async def scenario():
        app = CopaApp(ws, mode="memory")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.screen.searches, what="the first listing")
            assert app.focused.id == "search"
            await pilot.press("down")
            assert app.focused.id == "memories"
            await pilot.press("up")  # on the first row: back to the search
            assert app.focused.id == "search"
            await pilot.press("down")
            # the "decaf" bug: letters typed on the list go to the search, never to e/f/p on a memory
            before = search_count = app.screen.searches
            for ch in "decaf":
                await pilot.press(ch)
            assert app.focused.id == "search" and app.screen.query_one("#search").value == "decaf"
            assert not isinstance(app.screen, (EditMemoryScreen, MemoryDetailScreen))
            await wait_for(pilot, lambda: app.screen.searches > search_count, what="the search ran")
            assert ws.memory.get(porto).text == "I moved to Porto" and before is not None
            # in the search box e/f/p are letters, and enter opens the top result at once
            app.screen.query_one("#search").value = ""
            await search_for(pilot, "porto")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, MemoryDetailScreen), what="the detail (one enter)")
            assert app.screen.memory_id == porto

    asyncio.run(scenario())


def test_subject_prefix_as_of_and_show_replaced_match_the_cli(ws, seeded):
    async def scenario():
        app = CopaApp(ws, mode="memory")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.screen.searches, what="the first listing")
            subject = app.screen.query_one("#subject")
            subject.focus()
            await type_text(pilot, "user.")
            await wait_for(pilot, lambda: sorted(rows(app)) == ["I moved to Porto",
                                                                "I prefer green tea in the afternoon"],
                           what="the subject prefix")
            app.screen.query_one("#replaced").value = True
            await wait_for(pilot, lambda: "I live in Lisbon" in rows(app), what="the replaced value")
            await wait_for(pilot, lambda: "I live in Lisbon" in screen_text(app)
                           and "replaced" in screen_text(app).split("I live in Lisbon", 1)[1][:200],
                           what="the replaced mark painted on its row")
            app.screen.query_one("#replaced").value = False
            subject.value = ""
            asof = app.screen.query_one("#as-of")
            asof.focus()
            await type_text(pilot, "2024-06-01")
            await wait_for(pilot, lambda: rows(app) == ["I live in Lisbon"], what="as of mid 2024")
            await search_for(pilot, "where do I live")
            cli = [h.text for h in ws.memory.search("where do I live", limit=50, kinds=list(KNOWLEDGE),
                                                    as_of="2024-06-01")]
            assert rows(app) == cli and "I live in Lisbon" in cli and "I moved to Porto" not in cli

    asyncio.run(scenario())


def test_at_80_columns_memory_text_wraps_and_labels_fit(ws, seeded):
    long = ("The plumber comes on Thursday between nine and eleven to fix the boiler in the cellar, "
            "bring the warranty card")
    ws.memory.add(long, kind="note", occurred_at="2025-06-01T10:00:00Z")

    async def scenario():
        app = CopaApp(ws, mode="memory")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.screen.searches, what="the first listing")
            app.screen.query_one("#since", Select).value = "7d"
            await wait_for(pilot, lambda: "last week" in screen_text(app), what="the label")
            app.screen.query_one("#since", Select).value = ""
            await wait_for(pilot, lambda: long in rows(app)[0] if rows(app) else False, what="the long row")
            text = await wait_for(pilot, lambda: "bring the warranty card" in screen_text(app) and screen_text(app),
                                  what="the long row painted")
            assert "The plumber comes on Thursday" in text and "bring the warranty card" in text  # wrapped, whole
            assert "last week" not in text

    asyncio.run(scenario())


def test_a_database_locked_by_another_process_is_not_reported_as_a_bug(ws, seeded, monkeypatch):
    """Forgetting while another process keeps the write lock past the busy timeout: the screen says
    the database is busy and to try again (not 'internal error'), and the memory is still there."""
    import sqlite3

    from copa import db

    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 200)

    async def scenario():
        app = CopaApp(ws, mode="memory")
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.screen.searches, what="the first listing")
            holder = sqlite3.connect(ws.paths.db_file, isolation_level=None, timeout=0)
            holder.execute("BEGIN IMMEDIATE")
            ws.memory.conn.execute(f"PRAGMA busy_timeout = {db.BUSY_TIMEOUT_MS}")  # opened with 30 s
            try:
                ws.memory.forget(seeded["I prefer green tea in the afternoon"])
            except sqlite3.OperationalError as e:
                app.screen.report_error(e)
            finally:
                holder.execute("ROLLBACK")
            await pilot.pause(0.1)
            said = [n.message for n in app._notifications]
            assert any(m.startswith("the database is busy") and "again" in m for m in said), said
            assert not any("internal error" in m for m in said)
        assert ws.memory.get(seeded["I prefer green tea in the afternoon"]) is not None

    asyncio.run(scenario())
