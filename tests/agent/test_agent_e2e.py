"""End to end: separate `copa ask` processes, one loopback model server, one memory.

A fact told in one session is recalled and used in a later, separate session; a changed fact
("I moved to Lyon") supersedes the old one in what the model is shown (checked on the request body
the server received)."""

from __future__ import annotations

from tests.agent.fake_servers import Answer, FakeModelServer


def system_of(req) -> str:
    msgs = req.body["messages"]
    return msgs[0]["content"] if msgs and msgs[0]["role"] == "system" else ""


def test_fact_recalled_in_later_session_and_move_supersedes(run_copa):
    with FakeModelServer("openai") as srv:
        srv.configure("fake")
        # session 1: the user states facts; the model saves one with a subject, the other only lives in the turn
        srv.add(Answer("Noted.", tool_calls=[("remember", {"text": "The user lives in Paris.", "kind": "fact",
                                                           "subject": "user.home_city"})], arg_chunk=4),
                Answer("Paris, lovely. And genmaicha is a fine tea."))
        r = run_copa("ask", "I live in Paris, and my favourite tea is genmaicha.", input="")
        assert r.returncode == 0, r.stderr
        # session 2, a new process and a new conversation: both facts reach the model unasked
        srv.add(Answer("You live in Paris."))
        r = run_copa("ask", "Which city do I live in, and what tea do I like?", input="")
        assert r.returncode == 0 and r.stdout == "You live in Paris.\n"
        shown = system_of(srv.requests[-1])
        assert "The user lives in Paris." in shown  # the saved fact, recalled automatically
        assert "genmaicha" in shown  # the earlier conversation itself, recalled without any tool call
        assert len(srv.requests[-1].body["messages"]) == 2  # a new session: no replayed turns
        # session 3: the user moves; the model saves the new city under the same subject
        srv.add(Answer(tool_calls=[("remember", {"text": "The user lives in Lyon.", "kind": "fact",
                                                 "subject": "user.home_city"})]),
                Answer("Congratulations on the move!"))
        r = run_copa("ask", "I moved to Lyon last week.", input="")
        assert r.returncode == 0, r.stderr
        # session 4: only the new city is shown as what is true now
        srv.add(Answer("You live in Lyon."))
        r = run_copa("ask", "--json", "Where do I live?", input="")
        assert r.returncode == 0, r.stderr
        shown = system_of(srv.requests[-1])
        assert "The user lives in Lyon." in shown
        assert "Paris" not in shown  # neither the superseded fact nor the outdated conversation
        r = run_copa("memory", "history", "user.home_city", "--json", input="")
        assert r.returncode == 0, r.stderr  # the memory CLI's view of the chain: both cities, in order
        assert "Paris" in r.stdout and "Lyon" in r.stdout and r.stdout.index("Paris") < r.stdout.index("Lyon")
