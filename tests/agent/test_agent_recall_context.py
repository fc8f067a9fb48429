"""What recall puts in the prompt: a recalled turn of an earlier conversation brings the short turns
around it (the reply to a question is often the turn after the one that matched), each turn once."""

from __future__ import annotations

from copa.agent.context import assemble
from copa.memory import MemoryStore

OLD_CHAT = [("user", "Can you suggest a name for my new kitten?"),
            ("assistant", "How about Miso? It suits a small grey cat."),
            ("user", "Perfect, thanks!")]
OTHER_CHAT = [("user", "My car needs new tyres before winter."),
              ("assistant", "Winter tyres grip better below seven degrees.")]


def _store(path):
    store = MemoryStore(path)
    for sid, month, turns in (("kitten", 3, OLD_CHAT), ("car", 4, OTHER_CHAT)):
        store.add_many([{"text": t, "kind": "episode", "session_id": sid, "role": role,
                         "occurred_at": f"2025-{month:02d}-01T09:{i:02d}:00Z"} for i, (role, t) in enumerate(turns)])
    return store


def test_a_recalled_turn_brings_the_reply_next_to_it_once(tmp_path):
    with _store(tmp_path / "m.db") as store:
        ctx = assemble(store, "Which name did you suggest for my kitten?", session_id="today", window=4096,
                       answer_tokens=512, tools=[])
    section = ctx.system.split("From earlier conversations", 1)[1]
    lines = section.splitlines()
    asked = next(i for i, line in enumerate(lines) if "Can you suggest a name for my new kitten?" in line)
    reply = next(i for i, line in enumerate(lines) if "How about Miso?" in line)
    # the question and its reply travel together: one is the hit, the other indented right under it
    hit, ctx_line = sorted((asked, reply))
    assert lines[hit].startswith("- [2025-03-01] ") and ctx_line == hit + 1
    assert lines[ctx_line].startswith("    (same conversation) ")
    # ... and no turn is shown twice, as a hit and as another hit's context
    for text in (t for _, t in OLD_CHAT):
        assert section.count(text) <= 1, text
    assert "tyres" not in section  # the other conversation shares no word with the question


def test_the_current_conversations_turns_are_not_recalled_as_earlier_ones(tmp_path):
    with _store(tmp_path / "m.db") as store:
        ctx = assemble(store, "Which name did you suggest for my kitten?", session_id="kitten", window=4096,
                       answer_tokens=512, tools=[])
    assert "From earlier conversations" not in ctx.system


def test_earlier_turns_fill_their_token_share_not_a_fixed_count(tmp_path):
    """Twelve earlier conversations each mention the garden: with room in the window, more than five
    of them reach the prompt (the old cap), and never more than EPISODE_TOKENS of them, however large
    the window; a relative date in the message is read against the time the message is asked (before,
    against the real now: a turn of January led here)."""
    from datetime import UTC, datetime

    from copa.agent.context import EPISODE_TOKENS
    from copa.providers.tokens import estimate_tokens

    with MemoryStore(tmp_path / "m.db") as store:
        for i in range(12):
            store.add_many([{"text": f"In the garden today I planted row {i} of {'tomatoes' if i % 2 else 'beans'}, "
                             + "and the soil was heavy after the rain. " * (1 + i % 3),
                             "kind": "episode", "session_id": f"garden-{i}", "role": "user",
                             "occurred_at": f"2025-0{1 + i % 9}-1{i % 10}T09:00:00Z"}])
        shown = {}
        for window in (8192, 131072):
            ctx = assemble(store, "What did I plant in the garden?", session_id="today", window=window,
                           answer_tokens=512, tools=[])
            section = ctx.system.split("From earlier conversations", 1)[1]
            shown[window] = section.count("In the garden today")
            assert estimate_tokens(section) <= EPISODE_TOKENS + 50  # the header line aside
        assert shown[8192] > 5 and shown[131072] == shown[8192]

        # "last month", asked on 2025-04-20: a turn of the weeks before leads (asked today, none would)
        ctx = assemble(store, "What did I plant in the garden last month?", session_id="today", window=8192,
                       answer_tokens=512, tools=[], now=datetime(2025, 4, 20, tzinfo=UTC))
        first = ctx.system.split("From earlier conversations", 1)[1].splitlines()[1]
        assert first.startswith(("- [2025-03-", "- [2025-04-")), first
