"""The Skills screen: every skill with its status (ok, or the error that stopped it loading), its
permissions and schema; run one from a form generated from its schema (in a worker thread, through
``ws.skills.call`` exactly as the agent calls it) and see the result."""

from __future__ import annotations

import json
from typing import Any

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Collapsible, OptionList, Static
from textual.widgets.option_list import Option

from copa.tui.base import CopaScreen
from copa.tui.schema_form import SchemaForm
from copa.tui.widgets import ConfirmScreen, call_text


class SkillsScreen(CopaScreen):
    MODE = "skills"
    BINDINGS = [Binding("ctrl+r", "run", "Run"), Binding("ctrl+l", "reload", "Reload")]

    def __init__(self) -> None:
        super().__init__()
        self.infos: dict[str, Any] = {}
        self.selected: Any = None
        self.runs = 0
        self.last_result: Any = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="skills-main"):
            yield OptionList(id="skill-list")
            with VerticalScroll(id="skill-detail"):
                yield Static("Loading skills…", id="skill-info")
                yield Static("", id="skill-form-box")
                yield Button("Run (ctrl+r)", id="run-skill", variant="primary", compact=True)
                yield Static("", id="skill-result")

    def on_mount(self) -> None:
        self.query_one("#run-skill", Button).display = False
        self.load()

    @work(thread=True, exclusive=True, group="skills-load")
    def load(self) -> None:
        try:
            infos = self.ws.skills.list()
        except Exception as e:
            self.app.call_from_thread(self.report_error, e)
            return
        self.show_latest(self._show_list, infos)

    def action_reload(self) -> None:
        self.load()

    def _show_list(self, infos: list[Any]) -> None:
        self.infos = {}
        menu = self.query_one("#skill-list", OptionList)
        menu.clear_options()
        for i, info in enumerate(infos):
            key = info.name if info.status == "ok" else f"!{i}"
            self.infos[key] = info
            mark = "[green]✓[/]" if info.status == "ok" else "[red]✗[/]"
            danger = " [yellow]![/]" if info.dangerous else ""
            menu.add_option(Option(f"{mark} {escape(info.name)}{danger}", id=key))
        if not infos:
            self.query_one("#skill-info", Static).update("No skills found.")
        elif self.selected is None:
            menu.highlighted = 0
        menu.focus()

    @on(OptionList.OptionHighlighted, "#skill-list")
    async def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        info = self.infos.get(event.option.id or "")
        if info is None or info is self.selected:
            return
        self.selected = info
        self.query_one("#skill-info", Static).update(describe(info))
        box = self.query_one("#skill-form-box", Static)
        await box.remove_children()
        old = self.query("#skill-form")
        await old.remove()
        self.query_one("#skill-result", Static).update("")
        ok = info.status == "ok"
        await self.query("#skill-schema").remove()
        if ok:
            detail = self.query_one("#skill-detail")
            await detail.mount(SchemaForm(info.parameters, id="skill-form"), after=self.query_one("#skill-info"))
            schema = Static(escape(json.dumps(info.parameters, indent=2, ensure_ascii=False)), classes="schema-json")
            await detail.mount(Collapsible(schema, title="schema (JSON)", collapsed=True, id="skill-schema"),
                               after=self.query_one("#skill-info"))
        self.query_one("#run-skill", Button).display = ok

    @on(OptionList.OptionSelected, "#skill-list")
    def _selected(self, _event: OptionList.OptionSelected) -> None:
        forms = self.query("#skill-form Input, #skill-form Select, #skill-form Checkbox")
        if forms:
            forms.first().focus()

    @on(Button.Pressed, "#run-skill")
    def _run_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_run()

    def on_input_submitted(self, event) -> None:
        self.action_run()

    @work
    async def action_run(self) -> None:
        info = self.selected
        if info is None or info.status != "ok":
            return
        try:
            args = self.query_one("#skill-form", SchemaForm).values()
        except Exception as e:
            self.query_one("#skill-result", Static).update(f"[red]✗[/] {escape(str(e))}")
            self.report_error(e)
            return
        if info.dangerous and not await self.app.push_screen_wait(ConfirmScreen(
                f"Run {info.name}? It is marked dangerous. It will be called with:", yes="Run",
                detail=call_text(args))):
            return
        self.query_one("#skill-result", Static).update(f"[dim]running {escape(info.name)}…[/dim]")
        self.call_skill(info.name, args)

    @work(thread=True, exclusive=True, group="skills-run")
    def call_skill(self, name: str, args: dict[str, Any]) -> None:
        try:
            result = self.ws.skills.call(name, args)
        except Exception as e:
            self.app.call_from_thread(self.report_error, e)
            return
        self.app.call_from_thread(self._show_result, name, result)

    def _show_result(self, name: str, result: Any) -> None:
        self.runs += 1
        self.last_result = result
        if result.ok:
            body = result.content if isinstance(result.content, str) else json.dumps(
                result.content, indent=2, ensure_ascii=False, default=str)
            text = f"[green b]✓ {escape(name)}[/]\n{escape(body)}"
        else:
            text = f"[red b]✗ {escape(name)}[/] {escape(str(result.error_type))}: {escape(str(result.error))}"
        self.query_one("#skill-result", Static).update(text)
        self.query_one("#skill-detail", VerticalScroll).scroll_end(animate=False)


def describe(info: Any) -> str:
    lines = [f"[b]{escape(info.name)}[/b]" + (" [yellow](dangerous: asks before running)[/]" if info.dangerous
                                             else "")]
    if info.description:
        lines.append(escape(info.description))
    if info.status != "ok":
        lines.append(f"[red]failed to load:[/] {escape(str(info.error))}")
    perms = ", ".join(info.permissions) if info.permissions else "none (no files, no network)"
    lines.append(f"[dim]permissions[/dim] {escape(perms)}")
    from pathlib import Path

    lines.append(f"[dim]source[/dim] {escape(str(info.location or ''))} {escape(Path(str(info.source)).name)}")
    return "\n".join(lines)
