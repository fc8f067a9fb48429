"""`copa ask`: one question, answered by the agent with memory and tools, streamed to stdout."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(help="Ask the model a question (with your memory and tools); the answer streams to stdout.")

STDIN_LIMIT = 2_000_000  # bytes read from a pipe


def _message(prompt: list[str] | None) -> str:
    from copa.errors import UsageError

    text = " ".join(prompt or []).strip()
    piped = ""
    if not sys.stdin.isatty():
        from copa.textio import read_stdin

        piped = read_stdin(STDIN_LIMIT)
        if len(piped) > STDIN_LIMIT:
            raise UsageError(f"the piped input is longer than {STDIN_LIMIT} bytes",
                             hint="pipe a smaller part (e.g. head -c 500000)")
    if piped.strip():
        return f"{text}\n\n<input>\n{piped.rstrip()}\n</input>" if text else piped.strip()
    if not text:
        raise UsageError("nothing to ask", hint='give a question (copa ask "...") or pipe text into copa ask')
    return text


def _approver(yes: bool):
    """--yes approves everything; otherwise ask on the terminal if there is one, else nobody can approve."""
    if yes:
        return lambda spec, args: True
    if not (sys.stdin.isatty() or sys.stderr.isatty()):
        return None
    import json

    def approve(spec, args) -> bool:
        import os

        shown = json.dumps(args, ensure_ascii=False)[:300]
        question = f"\ncopa: allow {spec.name} ({spec.source or 'tool'}) with {shown}? [y/N] "
        try:  # the terminal itself: stdin may be a pipe holding the prompt text
            fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
        except OSError:
            return False
        try:
            os.write(fd, question.encode())
            line = b""
            while not line.endswith(b"\n") and len(line) < 100:
                chunk = os.read(fd, 1)
                if not chunk:
                    break
                line += chunk
        finally:
            os.close(fd)
        return line.decode(errors="replace").strip().lower() in ("y", "yes")

    return approve


def _printer(json_out: bool, err_tty: bool):
    from copa.cli.output import say

    state = {"text": False, "ends_nl": True}

    def on_event(e) -> None:
        if e.type == "text" and not json_out:
            if state.pop("gap", False) and state["text"]:  # a new step after tool calls: a new paragraph
                sys.stdout.write("\n" if state["ends_nl"] else "\n\n")
            say(e.text, end="", flush=True)  # a model's answer is data: no escape sequence reaches the terminal
            state["text"], state["ends_nl"] = True, e.text.endswith("\n")
        elif e.type == "retry":
            print(f"copa: {e.data['reason']}; retrying in {e.data['delay']:.1f} s", file=sys.stderr)
        elif e.type == "fallback":
            print(f"copa: falling back to {e.name}", file=sys.stderr)
        elif e.type == "notice":  # something was cut or left out to fit the model's window
            print(f"copa: note: {e.text}", file=sys.stderr)
        elif e.type == "tool_result":
            state["gap"] = True
            if not (err_tty and not json_out):
                return
            mark = "✓" if e.data["ok"] else "✗ " + str(e.data.get("error", ""))[:120]
            say(f"  [{e.name} {mark}]", err=True)

    return on_event, state


@app.command()
def ask(
    prompt: list[str] = typer.Argument(None, help="The question; piped stdin is added to it."),
    model: str = typer.Option(None, "--model", "-m", help="A [models.NAME] name or provider:model."),
    no_memory: bool = typer.Option(False, "--no-memory", help="Do not recall or store anything."),
    cont: bool = typer.Option(False, "--continue", "-c", help="Continue the last conversation."),
    session: str = typer.Option(None, "--session", "-s", help="Continue (or start) the conversation NAME."),
    system: str = typer.Option(None, "--system", help="Extra instructions for this question."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Approve dangerous tool calls without asking."),
    no_stream: bool = typer.Option(False, "--no-stream", help="Send plain requests: the answer is printed when "
                                   "complete (for servers or proxies that buffer or break streams)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON: answer, tool calls, memories, usage, timing."),
) -> None:
    """Ask a question. Exit codes: 0 ok, 2 usage, 3 no model configured, 4 provider failed, 130 interrupted."""
    from copa.cli.output import emit_json, workstation
    from copa.errors import ConfigError, ExitCode, UsageError
    from copa.providers import CONFIGURE_HINT

    if cont and session:
        raise UsageError("--continue and --session cannot be used together", hint="pick one")
    message = _message(prompt)
    ws = workstation(interactive=False)
    try:
        if not no_memory:  # first, before the store is opened: a child loads the model meanwhile
            from copa.agent import get_ready

            get_ready(lambda: ws.config, lambda: ws.memory, ws.paths.state_dir)
        if not model and ws.agent.available_model() is None:
            raise ConfigError("no model is configured", hint=CONFIGURE_HINT)
        if cont:
            session = ws.memory.last_session()
            if session is None:
                raise UsageError("there is no earlier conversation to continue", hint="drop --continue")
        if no_stream:
            ws.models.stream = False
        on_event, state = _printer(json_out, sys.stderr.isatty())
        result = ws.agent.run_turn(message, session_id=session, model=model, system=system,
                                   use_memory=not no_memory, on_event=on_event, approve=_approver(yes))
    finally:
        ws.close()
    if json_out:
        emit_json(result.as_dict())
    elif state["text"] and not state["ends_nl"]:
        sys.stdout.write("\n")
        sys.stdout.flush()
    if result.cancelled:
        print("copa: interrupted; the partial answer was kept", file=sys.stderr)
        raise typer.Exit(ExitCode.INTERRUPTED)
    if result.interrupted:
        from copa.cli.output import say

        say(f"copa: error: {result.error}; the partial answer was kept (retry with 'copa ask --continue')",
            err=True)
        raise typer.Exit(ExitCode.PROVIDER)
