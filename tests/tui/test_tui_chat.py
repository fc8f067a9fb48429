"""Chat screen against the real agent loop, memory store and a loopback OpenAI-wire model server."""

from __future__ import annotations

import asyncio

from copa.tui.app import CopaApp
from copa.tui.chat_widgets import ApprovalBar, AssistantMessage, MemoryItem, ToolBlock
from copa.tui.memory_views import MemoryDetailScreen
from copa.tui.widgets import ConfirmScreen
from tests.agent.fake_servers import Answer
from tests.tui.tui_helpers import screen_text, wait_for

ANSWER = "You live in **Porto** since March 2025; before that, Lisbon."


async def type_text(pilot, text: str) -> None:
    for ch in text:
        await pilot.press({" ": "space", "/": "slash", "?": "question_mark", ".": "full_stop"}.get(ch, ch))


async def ready(pilot) -> None:
    await wait_for(pilot, lambda: pilot.app.screen.ready is not None, what="the model check")


def answers(app) -> list[AssistantMessage]:
    return list(app.screen.query(AssistantMessage))


def test_ask_streams_the_answer_and_shows_recalled_memories(fake_model, ws, seeded):
    fake_model.add(Answer(ANSWER, chunk=2, delay=0.03))

    async def scenario():
        app = CopaApp(ws)
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            assert app.screen.ready is True
            await type_text(pilot, "where do I live?")
            await pilot.press("enter")
            # mid-stream: part of the answer is on screen while the rest is still coming
            partial = await wait_for(pilot, lambda: answers(app) and 0 < len(answers(app)[0].text) < len(ANSWER)
                                     and answers(app)[0].text, what="a partial answer")
            assert ANSWER.startswith(partial)
            assert app.screen.busy
            await wait_for(pilot, lambda: app.screen.turns == 1, what="the end of the turn")
            text = await wait_for(pilot, lambda: "19 tokens" in screen_text(app) and screen_text(app),
                                  what="the finished turn painted")
            assert "You live in Porto since March 2025" in text  # Markdown rendered (no ** on screen)
            assert "memor" in text and "I moved to Porto" in text  # the recalled memory beside the answer
            assert "19 tokens (12 in, 7 out)" in text
            # the turn was stored by the real agent: the store has both sides of the conversation
            sid = app.screen.session_id
            assert [t.role for t in ws.memory.turns(sid)] == ["user", "assistant"]
            assert "Porto" in fake_model.requests[0].text()  # the model was shown the recalled memory

    asyncio.run(scenario())


def test_dangerous_tool_is_approved_inline(fake_model, ws, seeded):
    lisbon = seeded["I live in Lisbon"]
    fake_model.add(Answer(tool_calls=[("forget", {"id": lisbon})]), Answer("Done: I forgot it."))

    async def scenario():
        app = CopaApp(ws)
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            await type_text(pilot, "forget that I lived in Lisbon")
            await pilot.press("enter")
            bar = await wait_for(pilot, lambda: app.screen.query(ApprovalBar).first() if app.screen.query(
                ApprovalBar) else None, what="the approval bar")
            await wait_for(pilot, lambda: "Allow forget" in screen_text(app), what="the question on screen")
            assert ws.memory.get(lisbon) is not None  # nothing ran before the user said yes
            await pilot.click("#allow")
            await wait_for(pilot, lambda: app.screen.turns == 1, what="the end of the turn")
            await pilot.pause(0.1)
            assert not bar.is_attached
            block = app.screen.query_one(ToolBlock)
            assert block.state == "ok" and block.arguments == {"id": lisbon}
            assert ws.memory.get(lisbon) is None
            assert "Done: I forgot it." in screen_text(app)

    asyncio.run(scenario())


def test_denied_tool_does_not_run(fake_model, ws, seeded):
    porto = seeded["I moved to Porto"]
    fake_model.add(Answer(tool_calls=[("forget", {"id": porto})]), Answer("All right, I kept it."))

    async def scenario():
        app = CopaApp(ws)
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            await type_text(pilot, "forget Porto")
            await pilot.press("enter")
            await wait_for(pilot, lambda: "Allow forget" in screen_text(app), what="the approval bar")
            await pilot.click("#deny")
            await wait_for(pilot, lambda: app.screen.turns == 1, what="the end of the turn")
            assert app.screen.query_one(ToolBlock).state == "denied"
            assert ws.memory.get(porto) is not None
            assert "refused by the user" in fake_model.requests[1].text()

    asyncio.run(scenario())


def test_open_a_recalled_memory_and_forget_it(fake_model, ws, seeded):
    fake_model.add(Answer("You prefer green tea."))

    async def scenario():
        app = CopaApp(ws)
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            await type_text(pilot, "what do I like to drink?")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen.turns == 1)
            items = [i for i in app.screen.query(MemoryItem) if "green tea" in i.text]
            assert items, screen_text(app)
            item = items[0]
            await pilot.click(item)
            await wait_for(pilot, lambda: isinstance(app.screen, MemoryDetailScreen), what="the detail view")
            assert "I prefer green tea in the afternoon" in screen_text(app)
            await pilot.press("f")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation")
            await pilot.press("y")
            await wait_for(pilot, lambda: item.disabled, what="the item marked forgotten")
            assert ws.memory.get(item.memory_id) is None
            assert "(forgotten)" in screen_text(app)

    asyncio.run(scenario())


def test_no_model_says_how_to_add_one_and_other_screens_work(ws, seeded):
    async def scenario():
        app = CopaApp(ws)
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            assert app.screen.ready is False
            text = screen_text(app)
            assert "No model is configured" in text and "OPENAI_API_KEY" in text
            await type_text(pilot, "hello")
            await pilot.press("enter")
            await pilot.pause(0.1)
            assert not app.screen.query(AssistantMessage)  # nothing was sent anywhere
            await pilot.press("f2")
            await wait_for(pilot, lambda: app.current_mode == "memory" and app.screen.searches, timeout=30,
                           what="memory")
            assert "I moved to Porto" in screen_text(app)

    asyncio.run(scenario())


def test_slash_commands_completion_and_history(ws, seeded):
    async def scenario():
        app = CopaApp(ws)
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            box = app.screen.query_one("#chat-input")
            await type_text(pilot, "/rem")
            assert "/remember" in screen_text(app)  # the completion menu
            await pilot.press("tab")
            assert box.text == "/remember "
            await type_text(pilot, "the wifi password is on the fridge")
            await pilot.press("enter")
            await pilot.pause(0.1)
            hits = ws.memory.search("wifi password fridge", limit=3)
            assert hits and hits[0].text == "the wifi password is on the fridge" and hits[0].source == "tui"
            assert "Remembered" in screen_text(app)
            await type_text(pilot, "/tasks")
            await pilot.press("enter")
            await pilot.pause(0.1)
            assert "Renew the passport before June" in screen_text(app)
            await pilot.press("up")
            assert box.text == "/tasks"
            await pilot.press("up")
            assert box.text.startswith("/remember the wifi")
            await pilot.press("down", "down")
            assert box.text == ""
            await type_text(pilot, "two")
            await pilot.press("ctrl+j")
            await type_text(pilot, "lines")
            assert box.text == "two\nlines"  # multi-line entry
            box.clear()
            await type_text(pilot, "/frobnicate")
            await pilot.press("enter")
            await pilot.pause(0.1)
            assert "unknown command /frobnicate" in screen_text(app)

    asyncio.run(scenario())


def test_resume_an_earlier_session(fake_model, ws, seeded):
    ws.memory.add_turn("s-earlier", "user", "plan the garden", occurred_at="2025-04-01T10:00:00Z")
    ws.memory.add_turn("s-earlier", "assistant", "Start with tomatoes.", occurred_at="2025-04-01T10:00:05Z")
    fake_model.add(Answer("Then basil."))

    async def scenario():
        app = CopaApp(ws)
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            await pilot.press("ctrl+o")
            await wait_for(pilot, lambda: "plan the garden" in screen_text(app), what="the session list")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen.session_id == "s-earlier", what="the resumed session")
            await wait_for(pilot, lambda: "Start with tomatoes." in screen_text(app), what="the earlier turns")
            await type_text(pilot, "and then?")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen.turns == 2)
            assert [t.text for t in ws.memory.turns("s-earlier")][-1] == "Then basil."
            assert "Start with tomatoes." in fake_model.requests[0].text()  # earlier turns went to the model

    asyncio.run(scenario())


def test_escape_stops_a_streaming_answer_and_keeps_what_came(fake_model, ws, seeded):
    fake_model.add(Answer("word " * 400, chunk=5, delay=0.02))

    async def scenario():
        app = CopaApp(ws)
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            await type_text(pilot, "talk")
            await pilot.press("enter")
            await wait_for(pilot, lambda: answers(app) and len(answers(app)[0].text) > 20, what="some text")
            await pilot.press("escape")
            await wait_for(pilot, lambda: not app.screen.busy, timeout=15, what="the stop")
            kept = answers(app)[0].text
            assert 0 < len(kept) < len("word " * 400)
            assert "(stopped)" in screen_text(app)
            stored = ws.memory.turns(app.screen.session_id)[-1]
            assert stored.role == "assistant" and stored.metadata.get("interrupted") is True

    asyncio.run(scenario())
