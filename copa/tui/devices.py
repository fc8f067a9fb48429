"""The Devices screen: paired boards and their connection state; for the selected board, live
readings with sparklines (a subscription whose events arrive on the session's thread and reach the
UI through ``call_from_thread``), pin toggles with confirmation, the event log and the board's rules.
Everything goes through ``ws.devices`` and the same helpers the `copa device` commands use."""

from __future__ import annotations

import contextlib
from collections import deque
from datetime import UTC, datetime
from typing import Any

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label, RichLog, Sparkline, Static

from copa.tui.base import CopaScreen
from copa.tui.widgets import ConfirmScreen

CHANNELS = ("a0", "a1")  # what the live view samples
HISTORY = 60  # points per sparkline


class PinScreen(ModalScreen[str | None]):
    """Ask which pin to toggle: 'd7'."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]
    DEFAULT_CSS = """
    PinScreen { align: center middle; }
    PinScreen > Vertical { width: 50; height: auto; border: thick $accent; background: $surface; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Toggle which digital pin? (e.g. d7; enter asks to confirm, esc cancels)")
            yield Input(placeholder="d7", id="pin")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)


class Channel(Horizontal):
    def __init__(self, name: str):
        super().__init__(classes="channel")
        self.channel = name
        self.values: deque[float] = deque(maxlen=HISTORY)

    def compose(self) -> ComposeResult:
        yield Label(f"{self.channel:>3}", classes="channel-name")
        yield Sparkline([], classes="channel-spark")
        yield Label("-", classes="channel-value")

    def add(self, value: float) -> None:
        self.values.append(value)
        self.query_one(Sparkline).data = list(self.values)
        self.query_one(".channel-value", Label).update(str(value))


class DevicesScreen(CopaScreen):
    MODE = "devices"
    BINDINGS = [
        Binding("w", "watch", "Watch/stop"),
        Binding("t", "toggle_pin", "Toggle pin"),
        Binding("ctrl+r", "reload", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.records: list[Any] = []
        self.watching: str | None = None
        self.samples = 0
        self._session: Any = None

    def compose_body(self) -> ComposeResult:
        table = DataTable(id="boards", cursor_type="row")
        for col, width in (("board", 12), ("type", 10), ("state", 10), ("port", 24), ("firmware", 8)):
            table.add_column(col, width=width, key=col)
        yield table
        with Vertical(id="live"):
            yield Label(" Live readings (w starts/stops)", id="live-title", classes="section-title")
            for ch in CHANNELS:
                yield Channel(ch)
        with Horizontal(id="device-bottom"):
            yield RichLog(id="events", max_lines=500, markup=True)
            yield Static("", id="rules")

    def on_mount(self) -> None:
        self.load()

    def on_unmount(self) -> None:
        self._stop_watch()

    def action_reload(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="devices-load")
    def load(self) -> None:
        try:
            records = self.ws.devices.list()
            sessions = self.ws.devices.open_sessions()
        except Exception as e:
            self.app.call_from_thread(self.report_error, e)
            return
        states = {r.name: ("connected" if r.name in sessions and sessions[r.name].connected
                           else "open" if r.name in sessions else "idle") for r in records}
        self.show_latest(self._show, records, states)

    def _show(self, records: list[Any], states: dict[str, str]) -> None:
        self.records = records
        table = self.query_one("#boards", DataTable)
        table.clear()
        for r in records:
            table.add_row(r.name, r.board, states.get(r.name, "?"), r.port, r.firmware or "-", key=r.name)
        if not records:
            self.query_one("#live-title", Label).update(
                " No boards paired: plug one in and run 'copa device pair PORT --name NAME'")

    def selected(self) -> Any:
        table = self.query_one("#boards", DataTable)
        if not self.records:
            return None
        return self.records[min(table.cursor_row, len(self.records) - 1)]

    def log_event(self, text: str) -> None:
        self.query_one("#events", RichLog).write(text)

    # ---- live readings ------------------------------------------------------------------------
    def action_watch(self) -> None:
        rec = self.selected()
        if rec is None:
            return
        if self.watching:
            self._stop_watch()
            self.log_event(f"stopped watching {escape(rec.name)}")
            return
        self.watching = rec.name
        self.query_one("#live-title", Label).update(f" Live readings of {escape(rec.name)} (w stops)")
        self.start_watch(rec.name)

    @work(thread=True, exclusive=True, group="devices-watch")
    def start_watch(self, name: str) -> None:
        from copa.device import Rule

        try:
            s = self.ws.devices.session(name)
            s.add_listener(lambda kind, info: self.app.call_from_thread(
                self.log_event, f"link {escape(kind)} {escape(str(info))}"))
            s.subscribe_events(self._event_from_thread)
            items = [(Rule.ADC if c.startswith("a") else Rule.PIN, int(c[1:])) for c in CHANNELS]
            s.set_subscription(int(self.ws.config.get("device.sample_period_ms")), items)
            self._session = s
            rules = s.rules()
        except Exception as e:
            self.watching = None
            self.app.call_from_thread(self.report_error, e)
            return
        self.app.call_from_thread(self._show_rules, rules)
        self.app.call_from_thread(self.log_event, f"watching {escape(name)}: {', '.join(CHANNELS)}")
        self.load()

    def _event_from_thread(self, rev: Any) -> None:
        if self.watching is None:
            return
        with contextlib.suppress(RuntimeError):  # the app is closing
            self.app.call_from_thread(self.on_device_event, rev)

    def on_device_event(self, rev: Any) -> None:
        from copa.device import RuleEvent, SampleEvent

        ev = rev.event
        if isinstance(ev, SampleEvent):
            self.samples += 1
            for ch, value in zip(self.query(Channel), ev.values, strict=False):
                ch.add(value)
        elif isinstance(ev, RuleEvent):
            when = rev.at.astimezone().strftime("%H:%M:%S")
            self.log_event(f"{when} rule {ev.slot} {'fired' if ev.fired else 'cleared'} at {ev.value}")

    def _stop_watch(self) -> None:
        s, self._session, self.watching = self._session, None, None
        if s is not None:
            with contextlib.suppress(Exception):
                s.set_subscription(0, [])

    def _show_rules(self, entries: list[Any]) -> None:
        from copa.device import format_rule

        state = ("idle", "pending", "active")
        lines = ["[b]Rules on the board[/b]"] + [f"{e.slot}: {escape(format_rule(e.rule))} [dim]"
                                                 f"{state[min(e.state, 2)]}[/dim]" for e in entries]
        self.query_one("#rules", Static).update("\n".join(lines) if entries else "[b]Rules[/b]\nnone on the board")

    # ---- pins ---------------------------------------------------------------------------------
    @work
    async def action_toggle_pin(self) -> None:
        rec = self.selected()
        if rec is None:
            return
        pin = await self.app.push_screen_wait(PinScreen())
        if not pin:
            return
        try:
            current = await self._in_thread(self.ws.devices.read, rec.name, pin)
        except Exception as e:
            self.report_error(e)
            return
        new = 0 if current["value"] else 1
        if not await self.app.push_screen_wait(ConfirmScreen(
                f"Set {current['channel']} of {rec.name} {'high' if new else 'low'}?", yes="Set")):
            return
        try:
            out = await self._in_thread(self.ws.devices.write, rec.name, pin, new)
        except Exception as e:
            self.report_error(e)
            return
        stamp = datetime.now(UTC).astimezone().strftime("%H:%M:%S")
        self.log_event(f"{stamp} {escape(rec.name)} {out['pin']} set to {out['value']}")

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    @on(DataTable.RowHighlighted, "#boards")
    def _board_changed(self, _event: DataTable.RowHighlighted) -> None:
        rec = self.selected()
        if rec is not None and self.watching and self.watching != rec.name:
            self._stop_watch()
