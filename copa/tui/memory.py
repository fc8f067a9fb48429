"""The Memory screen: search as you type (in a worker thread, so typing never waits for SQLite),
filters by kind, subject, source and time, a detail view with the subject's history, edit, forget
(confirmed) and pin as preference. Every read and write is a ``ws.memory`` call."""

from __future__ import annotations

import time
from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Input, Label, Select
from textual.worker import get_current_worker

from copa.tui.base import CopaScreen
from copa.tui.memory_views import KIND_CHOICES, MemoryDetailScreen
from copa.tui.widgets import local_time, one_line

TIME_CHOICES = [("any time", ""), ("last day", "1d"), ("last week", "7d"), ("last month", "30d"),
                ("last year", "365d")]
LIMIT = 50  # rows shown: more than a screen holds, few enough to redraw at once


@dataclass(frozen=True)
class Query:
    text: str = ""
    kind: str = ""
    subject: str = ""
    source: str = ""
    since: str = ""


@dataclass
class Row:
    id: str
    kind: str
    subject: str
    text: str
    when: str


class MemoryScreen(CopaScreen):
    MODE = "memory"
    BINDINGS = [
        Binding("slash", "focus_search", "Search"),
        Binding("enter", "open", "Open", show=True),
        Binding("e", "edit", "Edit"),
        Binding("f", "forget", "Forget"),
        Binding("p", "pin", "Pin"),
        Binding("ctrl+r", "refresh", "Refresh"),
    ]

    class Results(Message):
        def __init__(self, query: Query, rows: list[Row], total: int, ms: float):
            super().__init__()
            self.query, self.rows, self.total, self.ms = query, rows, total, ms

    def compose_body(self) -> ComposeResult:
        yield Input(placeholder="search memories (type to search; empty = newest)", id="search")
        with Horizontal(id="filters"):
            yield Select([(k, k) for k in KIND_CHOICES], prompt="any kind", id="kind")
            yield Input(placeholder="subject", id="subject")
            yield Input(placeholder="source", id="source")
            yield Select(TIME_CHOICES, value="", allow_blank=False, id="since")
        table = DataTable(id="memories", cursor_type="row", zebra_stripes=True)
        table.add_column("kind", width=10, key="kind")
        table.add_column("subject", width=16, key="subject")
        table.add_column("memory", width=30, key="text")
        table.add_column("when", width=16, key="when")
        yield table
        yield Label("", id="memory-status")

    def on_resize(self, _event: object = None) -> None:
        """The memory column takes the width the others leave (a fixed width: auto widths follow
        whatever rows were there first)."""
        table = self.query_one("#memories", DataTable)
        column = table.columns.get("text")
        width = max(20, self.size.width - 10 - 16 - 16 - 8 - 2)
        if column is not None and column.width != width:
            column.width = width
            table.refresh(layout=True)

    def on_mount(self) -> None:
        self.last_ms = 0.0
        self.searches = 0
        self.refresh_results()

    def on_screen_resume(self) -> None:
        if self.searches:
            self.refresh_results()

    # ---- searching ------------------------------------------------------------------------------
    def current_query(self) -> Query:
        kind = self.query_one("#kind", Select).value
        return Query(text=self.query_one("#search", Input).value.strip(),
                     kind=kind if isinstance(kind, str) else "",
                     subject=self.query_one("#subject", Input).value.strip(),
                     source=self.query_one("#source", Input).value.strip(),
                     since=str(self.query_one("#since", Select).value or ""))

    @on(Input.Changed)
    @on(Select.Changed)
    def refresh_results(self, _event: object = None) -> None:
        self.search(self.current_query())

    def action_refresh(self) -> None:
        self.refresh_results()

    @work(thread=True, exclusive=True, group="memory-search")
    def search(self, q: Query) -> None:
        try:
            self._search(q)
        except Exception as e:  # a bad filter is the user's to fix; the screen stays up
            self.app.call_from_thread(self.report_error, e)

    def _search(self, q: Query) -> None:
        t0 = time.perf_counter()
        store = self.ws.memory
        kinds = [q.kind] if q.kind else None
        if q.text:
            found = store.search(q.text, limit=LIMIT * (3 if (q.subject or q.source or q.since) else 1), kinds=kinds)
        elif q.subject:
            found = [m for m in store.history(q.subject) if m.current and (not kinds or m.kind in kinds)]
            found.reverse()
        else:
            found = store.list(kinds=kinds, since=q.since or None, limit=LIMIT * (5 if q.source else 1))
        since = None
        if q.since:
            from copa.memory import to_utc

            since = to_utc(q.since)
        rows = []
        for m in found:
            if q.subject and (m.subject or "") != q.subject.lower() and q.subject.lower() not in (m.subject or ""):
                continue
            if q.source and q.source.lower() not in (m.source or "").lower():
                continue
            if since and m.occurred_at and m.occurred_at < since:
                continue
            rows.append(Row(m.id, m.kind, m.subject or "", m.text, local_time(m.occurred_at)))
            if len(rows) >= LIMIT:
                break
        total = store.stats()["memories"] if not self.searches else getattr(self, "_total", 0)
        if get_current_worker().is_cancelled:
            return
        self.post_message(self.Results(q, rows, total, (time.perf_counter() - t0) * 1000))

    def on_memory_screen_results(self, msg: Results) -> None:
        self.searches += 1
        self._total = msg.total
        self.last_ms = msg.ms
        table = self.query_one("#memories", DataTable)
        table.clear()
        for r in msg.rows:
            table.add_row(r.kind, one_line(r.subject, 16), one_line(r.text, 300), r.when, key=r.id)
        what = "matching" if msg.query.text else "newest"
        self.query_one("#memory-status", Label).update(
            f" {len(msg.rows)} {what} shown · {msg.total} memories in all · enter opens one")

    # ---- acting on the selected memory --------------------------------------------------------
    def selected_id(self) -> str | None:
        table = self.query_one("#memories", DataTable)
        if not table.row_count:
            return None
        key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return key.value

    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    @on(DataTable.RowSelected)
    def action_open(self, _event: object = None) -> None:
        mid = self.selected_id()
        if mid:
            self.app.push_screen(MemoryDetailScreen(mid), self._after)

    def _open_then(self, action: str) -> None:
        mid = self.selected_id()
        if mid:
            screen = MemoryDetailScreen(mid)
            self.app.push_screen(screen, self._after)
            self.call_after_refresh(screen.run_action, action)

    def action_edit(self) -> None:
        self._open_then("edit")

    def action_forget(self) -> None:
        self._open_then("forget")

    def action_pin(self) -> None:
        self._open_then("pin")

    def _after(self, result: str | None) -> None:
        if result:
            self._total = self.ws.memory.stats()["memories"]
            self.refresh_results()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one("#memories", DataTable).focus()
