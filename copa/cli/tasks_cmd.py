"""`copa tasks`: the to-do list kept in memory (kind=task)."""

from __future__ import annotations

import typer

from copa.cli.output import emit_json, print_table, say

app = typer.Typer(help="Your tasks: list, add, start, done, cancel.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print JSON.")


def _store():
    from copa.cli.output import workstation

    return workstation().memory


def _when(dt) -> str:
    return dt.astimezone().strftime("%Y-%m-%d %H:%M") if dt else ""


@app.command("list")
def list_cmd(all_: bool = typer.Option(False, "--all", help="Also done and cancelled tasks."),
             status: list[str] = typer.Option(None, "--status", help="Only these statuses (repeatable): "
                                              "open, in_progress, done, cancelled."),
             json_out: bool = JSON) -> None:
    """Open tasks (due ones first)."""
    from copa.memory import TASK_STATUSES

    statuses = status or (TASK_STATUSES if all_ else ("open", "in_progress"))
    tasks = _store().tasks(statuses=statuses)
    if json_out:
        emit_json(tasks)
        return
    if not tasks:
        print("no tasks")
        return
    print_table([(t.id, t.status, _when(t.due_at), t.text) for t in tasks], ["id", "status", "due", "task"])


@app.command("add")
def add_cmd(text: str = typer.Argument(..., help="The task."),
            due: str = typer.Option(None, "--due", help="When it is due (ISO 8601, e.g. 2024-05-01T17:00)."),
            subject: str = typer.Option(None, "--subject", help="Optional key; a new task on it replaces the old."),
            json_out: bool = JSON) -> None:
    """Add a task."""
    store = _store()
    tid = store.add_task(text, due=due, subject=subject)
    emit_json(store.get(tid)) if json_out else print(tid)


def _set(id: str, status: str, json_out: bool) -> None:
    store = _store()
    m = store.set_task_status(store.resolve(id), status)
    emit_json(m) if json_out else say(f"{m.id} {status.replace('_', ' ')}: {m.text}")


@app.command("start")
def start_cmd(id: str = typer.Argument(..., help="Task id (a unique prefix is enough)."), json_out: bool = JSON):
    """Mark a task in progress."""
    _set(id, "in_progress", json_out)


@app.command("done")
def done_cmd(id: str = typer.Argument(..., help="Task id (a unique prefix is enough)."), json_out: bool = JSON):
    """Mark a task done."""
    _set(id, "done", json_out)


@app.command("cancel")
def cancel_cmd(id: str = typer.Argument(..., help="Task id (a unique prefix is enough)."), json_out: bool = JSON):
    """Cancel a task."""
    _set(id, "cancelled", json_out)
