"""Slash commands of the chat input: their names, help and completion (pure functions, unit-tested)."""

from __future__ import annotations

COMMANDS: dict[str, str] = {
    "/model": "show the models, or use one for this conversation: /model NAME",
    "/new": "start a new conversation",
    "/sessions": "pick an earlier conversation to resume",
    "/remember": "save a note to memory: /remember TEXT",
    "/forget": "forget a memory: /forget ID or /forget words that find it",
    "/tasks": "list open tasks",
    "/skills": "open the Skills screen",
    "/schedule": "open the Schedules screen",
    "/device": "open the Devices screen",
    "/compact": "summarise this conversation so far to save context",
    "/help": "list these commands and the keys",
}


def matches(text: str) -> list[str]:
    """Commands that start with what was typed (only while the command word is being typed)."""
    if not text.startswith("/") or " " in text or "\n" in text:
        return []
    return [c for c in COMMANDS if c.startswith(text.lower())]


def complete(text: str) -> str:
    """Tab: the whole command when one matches, else the longest common prefix of the matches."""
    found = matches(text)
    if not found:
        return text
    if len(found) == 1:
        return found[0] + " "
    prefix = found[0]
    for c in found[1:]:
        while not c.startswith(prefix):
            prefix = prefix[:-1]
    return prefix if len(prefix) > len(text) else text


def parse(text: str) -> tuple[str, str] | None:
    """'/rem buy milk' -> ('/remember', 'buy milk'); None when it is not a slash command.
    A unique prefix is accepted; an unknown or ambiguous word returns (word, args) for an error."""
    if not text.startswith("/") or text.startswith("//"):
        return None
    word, _, rest = text.partition(" ")
    word = word.lower()
    if word in COMMANDS:
        return word, rest.strip()
    found = matches(word)
    return (found[0] if len(found) == 1 else word), rest.strip()


def help_markdown() -> str:
    rows = "\n".join(f"| `{c}` | {h} |" for c, h in COMMANDS.items())
    return ("| command | what it does |\n|---|---|\n" + rows +
            "\n\nKeys: **enter** sends, **ctrl+j** new line, **up/down** earlier inputs, **tab** completes, "
            "**esc** stops an answer, **y/n/a** answer a tool approval, **F1-F5** screens, **ctrl+p** command "
            "palette, **?** or **ctrl+g** all keys, **ctrl+t** light/dark, **ctrl+q** quit.")
