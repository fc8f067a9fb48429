"""A form generated from a JSON Schema (the parameters of a skill): one field per property, typed
widgets (text, integer, number, yes/no, choice, JSON for lists and objects), defaults filled in,
required fields marked. ``values()`` turns what was typed into the arguments object."""

from __future__ import annotations

import json
from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Checkbox, Input, Label, Select

from copa.errors import UsageError


def field_type(prop: dict[str, Any]) -> str:
    """The one type a field edits: 'enum', 'boolean', 'integer', 'number', 'json' or 'string'."""
    if "enum" in prop:
        return "enum"
    t = prop.get("type")
    if t is None and "anyOf" in prop:  # Optional[X] is anyOf [X, null]
        types = [p for p in prop["anyOf"] if p.get("type") != "null"]
        return field_type(types[0]) if types else "string"
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    if t in ("boolean", "integer", "number"):
        return t
    if t in ("array", "object"):
        return "json"
    return "string"


def enum_values(prop: dict[str, Any]) -> list[Any]:
    if "enum" in prop:
        return list(prop["enum"])
    for p in prop.get("anyOf", []):
        if "enum" in p:
            return list(p["enum"])
    return []


class SchemaForm(Vertical):
    DEFAULT_CSS = """
    SchemaForm { height: auto; }
    SchemaForm Label { margin-top: 1; width: 100%; }
    SchemaForm .field-help { color: $text-muted; margin-top: 0; }
    SchemaForm Input, SchemaForm Select { width: 100%; }
    """

    def __init__(self, schema: dict[str, Any], **kwargs: Any):
        super().__init__(**kwargs)
        self.schema = schema or {}
        self.properties: dict[str, dict[str, Any]] = dict(self.schema.get("properties") or {})
        self.required = set(self.schema.get("required") or [])

    def compose(self) -> ComposeResult:
        if not self.properties:
            yield Label("[dim]This skill takes no arguments.[/dim]")
        for name, prop in self.properties.items():
            kind = field_type(prop)
            mark = " [b]*[/b]" if name in self.required else ""
            yield Label(f"[b]{escape(name)}[/b]{mark} [dim]{kind}[/dim]")
            if prop.get("description"):
                yield Label(escape(prop["description"]), classes="field-help")
            default = prop.get("default")
            wid = f"arg-{name}"
            if kind == "boolean":
                yield Checkbox(name, value=bool(default), id=wid, compact=True)
            elif kind == "enum":
                options = [(str(v), v) for v in enum_values(prop)]
                yield Select(options, value=default if default in enum_values(prop) else Select.BLANK,
                             allow_blank=name not in self.required or default is None, id=wid, compact=True)
            else:
                value = "" if default is None else (json.dumps(default) if kind == "json" else str(default))
                itype = {"integer": "integer", "number": "number"}.get(kind, "text")
                yield Input(value, placeholder=self._placeholder(kind), type=itype, id=wid, compact=True)

    @staticmethod
    def _placeholder(kind: str) -> str:
        return {"json": "JSON, e.g. [1, 2] or {\"k\": \"v\"}", "integer": "a whole number",
                "number": "a number"}.get(kind, "")

    def values(self) -> dict[str, Any]:
        """The arguments: typed values; empty optional fields are left out (the skill's default)."""
        out: dict[str, Any] = {}
        for name, prop in self.properties.items():
            kind = field_type(prop)
            widget = self.query_one(f"#arg-{name}")
            if kind == "boolean":
                out[name] = bool(widget.value)
                continue
            if kind == "enum":
                if widget.value is not Select.BLANK and not isinstance(widget.value, type(Select.BLANK)):
                    out[name] = widget.value
                elif name in self.required:
                    raise UsageError(f"{name} is required", hint="pick one of the choices")
                continue
            raw = widget.value.strip()
            if not raw:
                if name in self.required:
                    raise UsageError(f"{name} is required", hint="fill it in")
                continue
            try:
                if kind == "integer":
                    out[name] = int(raw)
                elif kind == "number":
                    out[name] = float(raw)
                elif kind == "json":
                    out[name] = json.loads(raw)
                else:
                    out[name] = widget.value
            except ValueError:
                raise UsageError(f"{name} must be {'JSON' if kind == 'json' else 'a ' + kind}, not {raw!r}",
                                 hint="fix the field") from None
        return out
