"""`copa memory`: add, search, list, show, edit, history, forget, export, import, embed, stats."""

from __future__ import annotations

import os
import sys

import typer

from copa.cli.output import emit_json, print_table, say

app = typer.Typer(help="What copa remembers: preferences, facts, tasks, conversations, events, reports.",
                  no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print JSON.")


def _store():
    from copa.cli.output import workstation

    return workstation().memory


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _when(dt) -> str:
    return dt.astimezone().strftime("%Y-%m-%d %H:%M") if dt else ""


@app.command("add")
def add_cmd(text: str = typer.Argument(..., help="What to remember."),
            kind: str = typer.Option("note", "--kind", "-k", help="preference, fact, task, episode, event, note, "
                                                                   "report (or your own word)"),
            subject: str = typer.Option(None, "--subject", "-s", help="A key like user.home_city: a new memory "
                                        "on the same subject supersedes the old one"),
            at: str = typer.Option(None, "--at", help="When it happened (ISO 8601, 'yesterday', '3d ago'); "
                                   "default now"),
            source: str = typer.Option("cli", "--source", help="Where it comes from."),
            json_out: bool = JSON) -> None:
    """Remember TEXT."""
    store = _store()
    mid = store.add(text, kind=kind, subject=subject, source=source, occurred_at=at)
    m = store.get(mid)
    if json_out:
        emit_json(m)
    elif m.corroborations:
        print(f"{mid} (already known; corroborated {m.corroborations}x)")
    else:
        print(mid)


@app.command("search")
def search_cmd(query: str = typer.Argument(..., help="A question or keywords."),
               limit: int = typer.Option(10, "--limit", "-n", min=1, max=1000, help="How many results."),
               kind: list[str] = typer.Option(None, "--kind", "-k", help="Only these kinds (repeatable)."),
               as_of: str = typer.Option(None, "--as-of", help="What was true at this time."),
               asked_at: str = typer.Option(None, "--asked-at", help="When the question is asked: 'last week' "
                                            "in it counts from here (default: now)."),
               all_: bool = typer.Option(False, "--all", help="Include superseded (old) values."),
               sessions: bool = typer.Option(False, "--sessions", help="Rank earlier conversations as wholes "
                                             "(which conversation was it in?), each with its best turn."),
               json_out: bool = JSON) -> None:
    """Recall the memories that best answer QUERY.

    With the dense retriever on, memories get their vectors lazily (a search embeds up to 256 new
    ones first); until then keywords alone find them. --json reports how many still lack one."""
    store = _store()
    if sessions:
        from copa.errors import UsageError

        if kind or all_:
            raise UsageError("--sessions ranks conversations: --kind and --all do not apply",
                             hint="drop them, or search without --sessions")
        _print_sessions(store, store.search_sessions(query, limit=limit, as_of=as_of, asked_at=asked_at), json_out)
        return
    hits = store.search(query, limit=limit, kinds=kind or None, as_of=as_of, include_superseded=all_,
                        asked_at=asked_at)
    if json_out:
        emit_json({"hits": hits, "dense": store.vectors is not None, "vectors_missing": store.missing_vectors()})
        return
    if not hits:
        print("no memories match", file=sys.stderr)
        return
    print_table([(h.id, h.kind, _when(h.occurred_at), f"{h.score:.2f}",
                  _short(h.text) + ("" if h.current else " [superseded]")) for h in hits],
                ["id", "kind", "when", "score", "text"])


def _print_sessions(store, found, json_out: bool) -> None:
    if json_out:
        emit_json({"sessions": found, "dense": store.vectors is not None, "vectors_missing": store.missing_vectors()})
        return
    if not found:
        print("no conversation matches", file=sys.stderr)
        return
    print_table([(s.session_id, _when(s.first_at), _when(s.last_at), str(s.turns), f"{s.score:.3f}",
                  _short(s.hits[0].text, 50) if s.hits else "") for s in found],
                ["session", "from", "to", "turns", "score", "best turn"])


@app.command("list")
def list_cmd(kind: list[str] = typer.Option(None, "--kind", "-k", help="Only these kinds (repeatable)."),
             since: str = typer.Option(None, "--since", help="Only from this time on ('7d', '2024-03-01')."),
             limit: int = typer.Option(50, "--limit", "-n", min=0, help="How many (0 = all)."),
             all_: bool = typer.Option(False, "--all", help="Include superseded values."),
             json_out: bool = JSON) -> None:
    """List memories, newest first."""
    items = _store().list(kinds=kind or None, since=since, limit=limit or None, include_superseded=all_)
    if json_out:
        emit_json(items)
        return
    print_table([(m.id, m.kind, _when(m.occurred_at), m.subject or "", _short(m.text, 60)) for m in items],
                ["id", "kind", "when", "subject", "text"])


@app.command("show")
def show_cmd(id: str = typer.Argument(..., help="A memory id (a unique prefix is enough)."),
             json_out: bool = JSON) -> None:
    """Show every field of one memory."""
    store = _store()
    m = store.get(store.resolve(id))
    if json_out:
        emit_json(m)
        return
    for k, v in m.as_dict().items():
        if v not in (None, {}, ""):
            say(f"{k:>14}: {v}")


@app.command("edit")
def edit_cmd(id: str = typer.Argument(..., help="A memory id (a unique prefix is enough)."),
             text: str = typer.Option(None, "--text", help="New text (skips the editor)."),
             kind: str = typer.Option(None, "--kind", help="New kind."),
             subject: str = typer.Option(None, "--subject", help="New subject."),
             importance: float = typer.Option(None, "--importance", min=0.0, max=1.0, help="0..1"),
             json_out: bool = JSON) -> None:
    """Change a memory: the given options, or its text in your editor."""
    from copa.errors import UsageError

    store = _store()
    mid = store.resolve(id)
    fields = {k: v for k, v in {"text": text, "kind": kind, "subject": subject, "importance": importance}.items()
              if v is not None}
    if not fields:
        old = store.get(mid).text
        new = _edit_in_editor(old)
        if new is None or new == old:
            print("no change")
            return
        if not new:
            raise UsageError("the text is empty; nothing was changed", hint="use 'copa memory forget' to delete")
        fields["text"] = new
    m = store.update(mid, **fields)
    emit_json(m) if json_out else print(f"updated {mid}")


def _edit_in_editor(text: str) -> str | None:
    import shlex
    import subprocess
    import tempfile

    from copa.errors import UsageError

    editor = os.environ.get("COPA_GENERAL_EDITOR") or os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor:
        from copa.cli.output import workstation

        editor = workstation().config.get("general.editor")
    if not editor:
        raise UsageError("no editor is set", hint="set $EDITOR, or use --text")
    fd, name = tempfile.mkstemp(prefix="copa-memory-", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        rc = subprocess.call([*shlex.split(editor), name])
        if rc != 0:
            raise UsageError(f"the editor exited with status {rc}; nothing was changed")
        with open(name, encoding="utf-8") as f:
            return f.read().strip()
    finally:
        os.unlink(name)


@app.command("history")
def history_cmd(subject: str = typer.Argument(..., help="e.g. user.home_city"), json_out: bool = JSON) -> None:
    """Every value SUBJECT has had, oldest first."""
    from copa.errors import NotFoundError

    chain = _store().history(subject)
    if json_out:
        emit_json(chain)
        return
    if not chain:
        raise NotFoundError(f"nothing remembered about {subject!r}", hint="see 'copa memory list --all'")
    print_table([(m.id, _when(m.valid_from), _when(m.valid_to) or "now", _short(m.text, 60)) for m in chain],
                ["id", "from", "until", "text"])


@app.command("forget")
def forget_cmd(id: str = typer.Argument(None, help="A memory id (a unique prefix is enough)."),
               subject: str = typer.Option(None, "--subject", help="Every value of this subject."),
               match: str = typer.Option(None, "--match", help="Memories containing all these words."),
               kind: str = typer.Option(None, "--kind", help="Only this kind."),
               source: str = typer.Option(None, "--source", help="Only from this source."),
               since: str = typer.Option(None, "--since", help="Only from this time on."),
               until: str = typer.Option(None, "--until", help="Only before this time."),
               history: bool = typer.Option(False, "--history", help="With an id: also every other value of "
                                            "its subject."),
               dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be forgotten; change nothing."),
               yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before a bulk forget."),
               json_out: bool = JSON) -> None:
    """Delete memories for good (the text is wiped from the database file)."""
    from copa.errors import UsageError

    store = _store()
    if id is not None:
        if any(v is not None for v in (subject, match, kind, source, since, until)):
            raise UsageError("give either an id or filters, not both")
        mid = store.resolve(id)
        m = store.get(mid)
        targets = store.history(m.subject) if history and m.subject else [m]
    else:
        targets = store.select_for_forget(subject=subject, kind=kind, source=source, since=since, until=until,
                                          query=match)
    if dry_run:
        if json_out:
            emit_json({"would_forget": len(targets), "memories": targets})
        else:
            print_table([(m.id, m.kind, _when(m.occurred_at), _short(m.text, 60)) for m in targets],
                        ["id", "kind", "when", "text"])
            print(f"would forget {len(targets)} memories (dry run: nothing changed)")
        return
    confirmed = yes or id is not None or not targets
    if not confirmed and not (sys.stdin.isatty() and typer.confirm(f"Forget {len(targets)} memories for good?")):
        raise UsageError(f"not forgetting {len(targets)} memories without confirmation",
                         hint="check with --dry-run, then add --yes")
    n = store.forget_many([m.id for m in targets])
    emit_json({"forgotten": n}) if json_out else print(f"forgot {n} memories")


@app.command("export")
def export_cmd(file: str = typer.Argument(..., help="Where to write (JSON Lines); '-' for stdout.")) -> None:
    """Write every memory and session to FILE as JSON Lines (lossless)."""
    from copa.memory import export_jsonl

    n = export_jsonl(_store(), file)
    if file != "-":
        print(f"exported {n} memories to {file}", file=sys.stderr)


@app.command("import")
def import_cmd(file: str = typer.Argument(..., help="A JSON Lines file (from export, or one {\"text\": ...} "
                                          "per line)."),
               skip_bad: bool = typer.Option(False, "--skip-bad", help="Import the valid lines and list the "
                                             "bad ones (default: a bad line stops the import, nothing written)."),
               progress: bool = typer.Option(None, "--progress/--no-progress",
                                             help="Show progress (default: when stderr is a terminal)."),
               json_out: bool = JSON) -> None:
    """Import memories from FILE, all or nothing: every line is checked first, then all are written in
    one transaction. Importing the same file twice changes nothing."""
    from copa.memory import import_jsonl

    show = sys.stderr.isatty() if progress is None else progress

    def report(done: int, total: int) -> None:
        pct = 100 * done / total if total else 100
        end = "\r" if sys.stderr.isatty() else "\n"
        print(f"importing {file}: {pct:5.1f}% ({done // 1024} of {total // 1024} KiB)", end=end, file=sys.stderr,
              flush=True)

    counts = import_jsonl(_store(), file, skip_bad=skip_bad, progress=report if show else None)
    if show and sys.stderr.isatty():
        print(file=sys.stderr)
    if json_out:
        emit_json(counts)
        return
    print(f"imported {counts['added']} memories ({counts['skipped']} already present, "
          f"{counts['sessions']} sessions)")
    if counts.get("bad"):
        print(f"skipped {counts['bad']} bad line(s):", file=sys.stderr)
        for b in counts["bad_lines"][:50]:
            print(f"  {b['error']}", file=sys.stderr)
        if counts["bad"] > 50:
            print(f"  ... and {counts['bad'] - 50} more (--json lists them all)", file=sys.stderr)


@app.command("embed")
def embed_cmd(progress: bool = typer.Option(None, "--progress/--no-progress",
                                            help="Show progress (default: when stderr is a terminal)."),
              json_out: bool = JSON) -> None:
    """Give every memory a vector for the dense retriever now (after installing copa[embeddings] on a
    store that already holds memories, or switching memory.embeddings). Otherwise new memories get
    theirs at the next searches or from the daemon. Safe to interrupt: what is done is kept. Other
    commands can write meanwhile."""
    show = sys.stderr.isatty() if progress is None else progress

    def report(done: int, total: int) -> None:
        end = "\r" if sys.stderr.isatty() else "\n"
        print(f"embedding: {done} of {total} memories", end=end, file=sys.stderr, flush=True)

    n = _store().embed_missing(progress=report if show else None)
    if show and sys.stderr.isatty():
        print(file=sys.stderr)
    if json_out:
        emit_json({"embedded": n})
    else:
        print(f"embedded {n} {'memory' if n == 1 else 'memories'}" if n else "every memory already has a vector")


@app.command("stats")
def stats_cmd(json_out: bool = JSON) -> None:
    """How much is remembered, by kind, and how big the store is."""
    st = _store().stats()
    if json_out:
        emit_json(st)
        return
    rows = [("memories", st["memories"]), ("current", st["current"]), ("superseded", st["superseded"]),
            ("sessions", st["sessions"]), ("open tasks", st["open_tasks"]),
            ("dense retriever", f"{st['embeddings']}: {st['vectors']} of {st['memories']} memories have vectors"
             if st["embeddings"] else "off")]
    rows += [(f"  {k}", v) for k, v in st["by_kind"].items()]
    rows += [("oldest", st["oldest"] or "-"), ("newest", st["newest"] or "-"),
             ("size", f"{st['db_bytes'] / 2**20:.1f} MB"), ("file", st["path"])]
    print_table(rows, ["what", "value"])
