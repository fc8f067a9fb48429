"""Keyboard-first and discoverable, pressed as a user would: the first screen and its keys, help on `?`
(copa's keys first, esc closes), approvals with y/n/a showing the whole call, focus back in the input,
a message kept when no model is configured, settings and input history across restarts, and the
small faults of issue 18 (screenshot without ~/Downloads, /model, resumed sessions)."""

from __future__ import annotations

import asyncio
import textwrap

from copa.tui.app import CopaApp
from copa.tui.chat_widgets import ApprovalBar, ChatInput, ToolBlock
from copa.tui.help import HelpScreen
from tests.agent.fake_servers import Answer
from tests.tui.tui_helpers import screen_text, type_text, wait_for

LONG = "rsync -av --delete " + " ".join(f"/home/ana/projects/part-{i:02d}/" for i in range(12)) + "/mnt/backup/END"
SHELL = '''
from copa.skills import skill


@skill(dangerous=True)
def shell(command: str) -> str:
    """Run a shell command (pretend).

    Args:
        command: the command line.
    """
    return "ran " + str(len(command))
'''


async def ready(pilot) -> None:
    await wait_for(pilot, lambda: pilot.app.screen.ready is not None, what="the model check")


def focused_id(app) -> str | None:
    return app.focused.id if app.focused is not None else None


def test_first_screen_says_what_copa_is_knows_and_the_keys(fake_model, ws, seeded):
    async def scenario():
        app = CopaApp(ws)
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            await wait_for(pilot, lambda: "open task" in screen_text(app), what="what copa knows")
            text = screen_text(app)
            assert "copa is your workstation in the terminal" in text
            assert "What copa knows about you: 1 fact, 1 preference, 1 note" in text and "1 open task" in text
            assert "Model: fake (/model to change)" in text
            for keys in ("enter send", "esc stop", "F1-F5 screens", "ctrl+p commands", "? help"):
                assert keys in text, keys
            footer = await wait_for(pilot, lambda: [line for line in screen_text(app).splitlines()
                                                    if "^p palette" in line], what="the footer")
            assert "^q Quit" in footer[0] and "^g Help" in footer[0] and "^n New chat" in footer[0]
            assert focused_id(app) == "chat-input"

    asyncio.run(scenario())


def test_without_a_model_the_first_screen_says_how_and_a_message_is_kept(ws, seeded):
    async def scenario():
        app = CopaApp(ws)
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            text = screen_text(app)
            assert "No model is configured" in text and "OPENAI_API_KEY" in text and "copa models add" in text
            await type_text(pilot, "remind me to call Ana")
            await pilot.press("enter")
            await wait_for(pilot, lambda: "Not sent" in screen_text(app), what="the refusal")
            assert app.screen.query_one(ChatInput).text == "remind me to call Ana"  # kept, not thrown away
            assert ws.memory.sessions() == []  # nothing went anywhere

    asyncio.run(scenario())


def test_help_lists_copas_keys_first_and_esc_closes_it(ws, seeded):
    async def scenario():
        app = CopaApp(ws)
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            await pilot.press("question_mark")  # on the empty input: help, not a "?" typed
            await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help")
            text = screen_text(app)
            assert [title for title, _ in app.screen.sections] == ["Chat screen", "Everywhere", "Moving and editing"]
            assert text.index("Chat screen") < text.index("ctrl+n") < text.index("y / n / a")  # ours, on top
            assert "New chat" in text
            await pilot.press("end")
            await wait_for(pilot, lambda: "Moving and editing" in screen_text(app), what="scrolled with a key")
            assert "ctrl+q" in screen_text(app)
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen), what="help closed")
            assert focused_id(app) == "chat-input"
            await type_text(pilot, "why?")  # in a sentence, ? is a character
            assert app.screen.query_one(ChatInput).text == "why?"
            # the Memory screen's own keys, from its list
            await pilot.press("f2")
            await wait_for(pilot, lambda: app.current_mode == "memory" and app.screen.searches, what="memory")
            app.screen.query_one("#memories").focus()
            await pilot.press("question_mark")
            await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="the memory help")
            text = screen_text(app)
            assert "Memory screen" in text and "Edit" in text and "Forget" in text
            await pilot.press("escape")
            # ctrl+g works from a text field too
            app.screen.query_one("#search").focus()
            await pilot.press("ctrl+g")
            await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help from a field")

    asyncio.run(scenario())


def test_approval_shows_the_whole_command_and_takes_y_n_a(fake_model, ws):
    d = ws.paths.user_skills_dir
    d.mkdir(parents=True, exist_ok=True)
    (d / "shell.py").write_text(textwrap.dedent(SHELL))
    fake_model.add(Answer(tool_calls=[("shell", {"command": LONG})]), Answer("Backed up."),
                   Answer(tool_calls=[("shell", {"command": "ls"})]), Answer("Listed, denied."),
                   Answer(tool_calls=[("shell", {"command": "df -h"})]), Answer("Always now."),
                   Answer(tool_calls=[("shell", {"command": "uptime"})]), Answer("No question asked."))

    async def scenario():
        app = CopaApp(ws)
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            await type_text(pilot, "back up")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen.query(ApprovalBar), timeout=20, what="the approval")
            text = await wait_for(pilot, lambda: "Allow (y)" in screen_text(app) and screen_text(app),
                                  what="the approval painted")
            assert "Allow shell to run with" in text
            flat = "".join(line.strip() for line in text.splitlines())
            assert "/mnt/backup/END" in text and "part-11/" in flat  # the whole command, wrapped, not cut
            assert "Allow (y)" in text and "Deny (n)" in text and "(a)" in text
            await pilot.press("y")
            await wait_for(pilot, lambda: app.screen.turns == 1, timeout=20, what="the end of the turn")
            assert focused_id(app) == "chat-input"  # typing goes to the input at once
            assert app.screen.query(ToolBlock).first().state == "ok"
            await type_text(pilot, "list")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen.query(ApprovalBar), timeout=20, what="the 2nd approval")
            await pilot.press("n")
            await wait_for(pilot, lambda: app.screen.turns == 2, timeout=20, what="the 2nd turn")
            assert list(app.screen.query(ToolBlock))[-1].state == "denied"
            assert focused_id(app) == "chat-input"
            await type_text(pilot, "disk")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen.query(ApprovalBar), timeout=20, what="the 3rd approval")
            await pilot.press("a")
            await wait_for(pilot, lambda: app.screen.turns == 3, timeout=20, what="the 3rd turn")
            await type_text(pilot, "uptime")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen.turns == 4, timeout=20, what="the 4th turn, unasked")
            assert [b.state for b in app.screen.query(ToolBlock)] == ["ok", "denied", "ok", "ok"]

    asyncio.run(scenario())


def test_ctrl_n_from_the_transcript_returns_to_the_input(fake_model, ws):
    fake_model.add(Answer("Hello."))

    async def scenario():
        app = CopaApp(ws)
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            await type_text(pilot, "hi")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen.turns == 1, what="the answer")
            app.screen.query_one("#chat-log").focus()
            await pilot.press("ctrl+n")
            await wait_for(pilot, lambda: "copa is your workstation" in screen_text(app), what="the welcome")
            assert focused_id(app) == "chat-input"
            await type_text(pilot, "typed")
            assert app.screen.query_one(ChatInput).text == "typed"

    asyncio.run(scenario())


def test_theme_and_input_history_persist_across_restarts(ws):
    async def first():
        app = CopaApp(ws)
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            await pilot.press("ctrl+t")
            assert app.theme == "textual-light"
            await type_text(pilot, "/tasks")
            await pilot.press("enter")
            await pilot.pause(0.1)

    async def second():
        app = CopaApp(ws)
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            assert app.theme == "textual-light"
            await pilot.press("up")
            assert app.screen.query_one(ChatInput).text == "/tasks"

    asyncio.run(first())
    assert (ws.paths.state_dir / "tui.json").stat().st_mode & 0o777 == 0o600
    asyncio.run(second())


def test_screenshot_from_the_palette_without_a_downloads_folder(ws, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # no ~/Downloads here
    monkeypatch.delenv("XDG_DOWNLOAD_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))

    async def scenario():
        app = CopaApp(ws)
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            await pilot.press("ctrl+p")
            await pilot.pause(0.2)
            await type_text(pilot, "screenshot")
            await wait_for(pilot, lambda: "Save an SVG picture" in screen_text(app), what="the command")
            await pilot.press("enter")
            shots = ws.paths.data_dir / "screenshots"
            await wait_for(pilot, lambda: shots.is_dir() and list(shots.glob("*.svg")), what="the file")
            await wait_for(pilot, lambda: any("Screenshot saved to" in n.message for n in app._notifications),
                           what="the notice")

    asyncio.run(scenario())
    shots = list((ws.paths.data_dir / "screenshots").glob("*.svg"))
    assert len(shots) == 1 and shots[0].read_text().startswith("<svg")
    assert not (home / "Downloads").exists()


def test_model_command_prints_no_raw_markdown(fake_model, ws):
    async def scenario():
        app = CopaApp(ws)
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            await type_text(pilot, "/model")
            await pilot.press("enter")
            await wait_for(pilot, lambda: "Configured:" in screen_text(app), what="the model note")
            text = screen_text(app)
            assert "Model: fake. Configured: fake." in text
            assert "**" not in text and "`" not in text

    asyncio.run(scenario())


def test_a_resumed_session_counts_turns_and_keeps_its_tool_calls(fake_model, ws, seeded):

    fake_model.add(Answer("Hi."), Answer(tool_calls=[("recall", {"query": "home"})]), Answer("You live in Porto."),
                   Answer("Bye."))
    sid = ws.agent.run_turn("hello").session_id
    ws.agent.run_turn("where do I live?", session_id=sid)
    ws.agent.run_turn("thanks", session_id=sid)

    async def scenario():
        app = CopaApp(ws)
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            await pilot.press("ctrl+o")
            await wait_for(pilot, lambda: "6 messages" in screen_text(app), what="the session list")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen.session_id == sid, what="the resumed session")
            text = await wait_for(pilot, lambda: "Resumed a conversation" in screen_text(app) and screen_text(app),
                                  what="the resumed turns")
            assert "Resumed a conversation of 3 turns" in text and "3 turns" in text.rstrip().splitlines()[-5]
            blocks = list(app.screen.query(ToolBlock))
            assert [(b.tool_name, b.state, b.arguments) for b in blocks] == [("recall", "ok", {"query": "home"})]
            assert "⚙ recall(query=\"home\") ✓" in text
            assert focused_id(app) == "chat-input"

    asyncio.run(scenario())


def test_page_keys_scroll_the_conversation_while_typing(ws, seeded):
    async def scenario():
        app = CopaApp(ws)
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            for i in range(12):
                app.screen.note(f"note number {i}")
            log = app.screen.query_one("#chat-log")
            await wait_for(pilot, lambda: log.max_scroll_y > 0 and log.scroll_y == log.max_scroll_y,
                           what="a long conversation, at its end")
            await type_text(pilot, "half a sen")
            await pilot.press("pageup")
            await wait_for(pilot, lambda: log.scroll_y < log.max_scroll_y, what="scrolled up")
            assert focused_id(app) == "chat-input" and app.screen.query_one(ChatInput).text == "half a sen"
            await pilot.press("pagedown", "pagedown")
            await wait_for(pilot, lambda: log.scroll_y == log.max_scroll_y, what="back at the end")

    asyncio.run(scenario())


def test_arrows_move_between_the_input_and_the_command_menu(ws):
    async def scenario():
        app = CopaApp(ws)
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            await type_text(pilot, "/s")
            menu = app.screen.query_one("#completions")
            await wait_for(pilot, lambda: menu.display and menu.option_count == 3, what="the menu")
            await pilot.press("down")
            assert focused_id(app) == "completions"
            await pilot.press("down")
            picked = menu.get_option_at_index(menu.highlighted).id
            assert picked in ("/sessions", "/skills")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen.query_one(ChatInput).text == f"{picked} ", what="the pick")
            assert focused_id(app) == "chat-input"
            app.screen.query_one(ChatInput).clear()
            await type_text(pilot, "/s")
            await wait_for(pilot, lambda: menu.display, what="the menu again")
            await pilot.press("down")
            menu.highlighted = 0
            await pilot.press("up")  # on the first command: back to the input, text kept
            assert focused_id(app) == "chat-input" and app.screen.query_one(ChatInput).text == "/s"

    asyncio.run(scenario())
