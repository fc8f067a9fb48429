"""Parsing of the prompt-level tool protocol (pure logic: unit tests)."""

from __future__ import annotations

from copa.providers.prompt_tools import filter_events, parse_calls, prepare
from copa.providers.types import ChatRequest, Event, Message, ToolCall
from copa.tools import ToolSpec

NAMES = {"recall", "remember"}


def test_tagged_call_with_prose_before():
    prose, calls = parse_calls('Sure.\n<tool_call>{"name": "recall", "arguments": {"query": "x"}}</tool_call>')
    assert prose == "Sure." and [(c.name, c.arguments) for c in calls] == [("recall", {"query": "x"})]


def test_missing_closing_tag_and_braces_single_quotes_and_alias_keys():
    _, calls = parse_calls("<tool_call>{'tool': 'remember', 'parameters': {'text': 'I like tea'}")
    assert [(c.name, c.arguments) for c in calls] == [("remember", {"text": "I like tea"})]


def test_several_calls_and_string_arguments():
    text = ('<tool_call>{"name": "recall", "arguments": "{\\"query\\": \\"a\\"}"}</tool_call>\n'
            '<tool_call>{"name": "recall", "arguments": {"query": "b"}}</tool_call> trailing words')
    _, calls = parse_calls(text)
    assert [c.arguments for c in calls] == [{"query": "a"}, {"query": "b"}]


def test_fenced_and_bare_json_only_for_known_tools():
    _, calls = parse_calls('```json\n{"name": "recall", "arguments": {"query": "q"}}\n```', NAMES)
    assert calls and calls[0].name == "recall"
    prose, calls = parse_calls('{"name": "Alice", "arguments": "none"}', NAMES)  # JSON that is not a call
    assert not calls and prose.startswith("{")


def test_plain_answer_is_not_a_call():
    assert parse_calls("Lyon is in France. {not json}", NAMES) == ("Lyon is in France. {not json}", [])


def test_history_becomes_text_and_tools_move_to_system():
    req = ChatRequest([Message("user", "q"), Message("assistant", "", [ToolCall("c1", "recall", {"query": "q"})]),
                       Message("tool", '"Lyon"', tool_call_id="c1", name="recall")], system="S",
                      tools=[ToolSpec("recall", "Search memory")])
    out = prepare(req)
    assert out.tools == [] and out.system.startswith("S\n\n") and "- recall: Search memory" in out.system
    assert [m.role for m in out.messages] == ["user", "assistant", "user"]
    assert out.messages[1].content.startswith("<tool_call>") and '<tool_result name="recall"' in out.messages[2].content


def test_streaming_filter_holds_back_a_split_opening_tag():
    pieces = ["Let me ", "check <tool", '_call>{"name": "recall", ', '"arguments": {"query": "z"}}</tool_call>']
    events = list(filter_events(iter([Event("text", text=p) for p in pieces] + [Event("stop", text="end")]), NAMES))
    text = "".join(e.text for e in events if e.type == "text")
    assert text.strip() == "Let me check" and "<" not in text
    assert [e.type for e in events][-1] == "stop" and events[-1].text == "tool_use"


def test_unparseable_markup_is_not_shown_to_the_user():
    """What SmolLM2-135M did in tests/realmodel: it echoed the protocol's own example."""
    pieces = ["To use the tools, reply by saying:\n<tool", '_call>{"name": "TOOL_NAME", "arguments": {...}}',
              "</tool_call>\nThen wait.", " And <tool_call>never closed"]
    events = list(filter_events(iter([Event("text", text=p) for p in pieces] + [Event("stop", text="end")]), NAMES))
    shown = "".join(e.text for e in events if e.type == "text")
    assert "<tool_call>" not in shown and "TOOL_NAME" not in shown and "</tool_call>" not in shown
    assert shown.startswith("To use the tools, reply by saying:") and "Then wait." in shown
    assert [e.type for e in events if e.type != "text"] == ["stop"]
