"""Type hints and docstrings to JSON Schema, JSON arguments to Python values, results to JSON.

Supported parameter types: str, int, float, bool, Literal[...], Enum subclasses, list[T] / tuple[T, ...]
/ set[T], dict[str, T], Optional[T] / T | None, dataclasses (nested), datetime/date (ISO strings),
pathlib.Path (strings) and Any. Anything else is a definition error reported when the skill loads.
Pure stdlib: this runs inside the skill worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import inspect
import re
import types
import typing
from pathlib import Path, PurePath
from typing import Any

_NONE = type(None)


class SchemaError(TypeError):
    """A skill's signature cannot be described (reported as a load error)."""


class ArgumentError(ValueError):
    """The caller's arguments do not match the schema."""


# ---- docstrings -------------------------------------------------------------------------------

_SECTION_RE = re.compile(r"^\s*(Args|Arguments|Parameters|Params|Returns?|Raises|Yields|Examples?|Notes?)\s*:?\s*$")
_PARAM_LINE_RE = re.compile(r"^(\s*)(\*{0,2}[A-Za-z_][A-Za-z0-9_]*)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
_SPHINX_RE = re.compile(r"^\s*:param\s+(?:[^:]*\s)?([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(description, {param: description}) from a Google, numpy-ish or Sphinx style docstring."""
    if not doc:
        return "", {}
    lines = inspect.cleandoc(doc).splitlines()
    desc: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    base_indent: int | None = None
    for line in lines:
        sph = _SPHINX_RE.match(line)
        if sph:
            current, section = sph.group(1), "sphinx"
            params[current] = sph.group(2).strip()
            continue
        if line.strip().startswith(":") and section == "sphinx":
            current = None
            continue
        m = _SECTION_RE.match(line)
        if m:
            section = m.group(1).lower()
            current, base_indent = None, None
            continue
        if section in ("args", "arguments", "parameters", "params"):
            if set(line.strip()) <= {"-"} and line.strip():
                continue  # numpy underline
            pm = _PARAM_LINE_RE.match(line)
            indent = len(line) - len(line.lstrip())
            if pm and (base_indent is None or indent <= base_indent):
                base_indent = indent
                current = pm.group(2).lstrip("*")
                params[current] = pm.group(4).strip()
            elif line.strip() and current:
                params[current] = (params[current] + " " + line.strip()).strip()
            elif not line.strip():
                current = None
            continue
        if section is None:
            desc.append(line)
        elif section == "sphinx" and current and line.strip():
            params[current] = (params[current] + " " + line.strip()).strip()
    text = "\n".join(desc).strip()
    return text, params


# ---- schema -----------------------------------------------------------------------------------

def type_schema(tp: Any, where: str) -> dict[str, Any]:
    """JSON Schema for one annotation."""
    if tp is inspect.Parameter.empty or tp is Any or tp is object:
        return {}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        inner = type_schema(args[0], where)
        for extra in args[1:]:
            if isinstance(extra, str):
                inner["description"] = extra
        return inner
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not _NONE]
        if len(non_none) == 1:
            inner = type_schema(non_none[0], where)
            if _NONE in args:
                return {"anyOf": [inner, {"type": "null"}]} if inner else {}
            return inner
        schemas = [type_schema(a, where) for a in args]
        return {"anyOf": schemas}
    if origin is typing.Literal:
        values = list(args)
        out: dict[str, Any] = {"enum": values}
        kinds = {type(v) for v in values}
        if len(kinds) == 1:
            out["type"] = _scalar_name(kinds.pop(), where)
        return out
    if origin in (list, set, frozenset) or getattr(origin, "__name__", "") in ("Sequence", "Iterable"):
        item = type_schema(args[0], where) if args else {}
        return {"type": "array", "items": item}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": type_schema(args[0], where)}
        return {"type": "array", "prefixItems": [type_schema(a, where) for a in args],
                "minItems": len(args), "maxItems": len(args)}
    if origin is dict or (origin is not None and getattr(origin, "__name__", "") == "Mapping"):
        if args and args[0] is not str:
            raise SchemaError(f"{where}: dict keys must be str")
        return {"type": "object", "additionalProperties": type_schema(args[1], where) if args else {}}
    if tp in (list, tuple, set):
        return {"type": "array"}
    if tp is dict:
        return {"type": "object"}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        values = [m.value for m in tp]
        out = {"enum": values}
        kinds = {type(v) for v in values}
        if len(kinds) == 1 and kinds <= {str, int, float, bool}:
            out["type"] = _scalar_name(next(iter(kinds)), where)
        if tp.__doc__ and tp.__doc__ != enum.Enum.__doc__ and "An enumeration" not in tp.__doc__:
            out["description"] = inspect.cleandoc(tp.__doc__)
        return out
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass_schema(tp, where)
    if tp in (dt.datetime,):
        return {"type": "string", "format": "date-time"}
    if tp is dt.date:
        return {"type": "string", "format": "date"}
    if isinstance(tp, type) and issubclass(tp, PurePath):
        return {"type": "string"}
    if tp in (str, int, float, bool):
        return {"type": _scalar_name(tp, where)}
    if tp is _NONE or tp is None:
        return {"type": "null"}
    raise SchemaError(f"{where}: unsupported type {getattr(tp, '__name__', tp)!r} "
                      "(use str, int, float, bool, Literal, Enum, list, dict, Optional or a dataclass)")


def _scalar_name(tp: type, where: str) -> str:
    names = {str: "string", int: "integer", float: "number", bool: "boolean", _NONE: "null"}
    if tp not in names:
        raise SchemaError(f"{where}: unsupported literal type {tp.__name__}")
    return names[tp]


def _dataclass_schema(cls: type, where: str) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, include_extras=True)
    desc, field_docs = parse_docstring(cls.__doc__ if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "(")
                                       else None)
    props: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        s = type_schema(hints.get(f.name, Any), f"{where}.{f.name}")
        if f.name in field_docs:
            s = {**s, "description": field_docs[f.name]}
        if f.default is not dataclasses.MISSING:
            s = {**s, "default": to_json(f.default)}
        elif f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            required.append(f.name)
        props[f.name] = s
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    if desc:
        out["description"] = desc
    return out


def function_schema(func: Any) -> tuple[str, dict[str, Any]]:
    """(description, parameters JSON Schema) for a skill function."""
    where = getattr(func, "__qualname__", "skill")
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as e:  # a name in an annotation that does not exist
        raise SchemaError(f"{where}: cannot resolve type hints: {e}") from None
    description, param_docs = parse_docstring(func.__doc__)
    props: dict[str, Any] = {}
    required: list[str] = []
    for p in inspect.signature(func).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise SchemaError(f"{where}: *args/**kwargs cannot be described; name each parameter")
        if p.name.startswith("_"):
            continue  # private parameters are not offered to the model
        if p.name not in hints:
            raise SchemaError(f"{where}: parameter '{p.name}' needs a type hint")
        s = dict(type_schema(hints[p.name], f"{where}({p.name})"))
        if p.name in param_docs:
            s["description"] = param_docs[p.name]
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
        else:
            with contextlib.suppress(TypeError):
                s["default"] = to_json(p.default)
        props[p.name] = s
    schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = required
    return description, schema


# ---- arguments: JSON to Python --------------------------------------------------------------

def coerce_arguments(func: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """Check and convert JSON ``arguments`` for ``func``; ArgumentError names the bad field."""
    if not isinstance(arguments, dict):
        raise ArgumentError("arguments must be a JSON object")
    hints = typing.get_type_hints(func, include_extras=True)
    params = {n: p for n, p in inspect.signature(func).parameters.items() if not n.startswith("_")}
    unknown = set(arguments) - set(params)
    if unknown:
        raise ArgumentError(f"unknown argument(s): {', '.join(sorted(unknown))}; "
                            f"expected: {', '.join(params) or 'none'}")
    out: dict[str, Any] = {}
    for name, p in params.items():
        if name in arguments:
            out[name] = coerce_value(hints.get(name, Any), arguments[name], name)
        elif p.default is inspect.Parameter.empty:
            raise ArgumentError(f"missing required argument '{name}'")
    return out


def coerce_value(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any or tp is inspect.Parameter.empty or tp is object:
        return value
    if origin is typing.Annotated:
        return coerce_value(args[0], value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and _NONE in args:
            return None
        errors = []
        for a in args:
            if a is _NONE:
                continue
            try:
                return coerce_value(a, value, where)
            except ArgumentError as e:
                errors.append(str(e))
        raise ArgumentError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of the types")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ArgumentError(f"{where}: must be one of {', '.join(map(repr, args))}, not {value!r}")
    if origin in (list, set, frozenset) or tp in (list, set) or (
            origin is not None and getattr(origin, "__name__", "") in ("Sequence", "Iterable")):
        if not isinstance(value, list):
            raise ArgumentError(f"{where}: must be a list, not {type(value).__name__}")
        item = args[0] if args else Any
        items = [coerce_value(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return set(items) if origin in (set, frozenset) or tp is set else items
    if origin is tuple or tp is tuple:
        if not isinstance(value, list):
            raise ArgumentError(f"{where}: must be a list, not {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce_value(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ArgumentError(f"{where}: must have {len(args)} items")
        return tuple(coerce_value(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=False)))
    if origin is dict or tp is dict or (origin is not None and getattr(origin, "__name__", "") == "Mapping"):
        if not isinstance(value, dict):
            raise ArgumentError(f"{where}: must be an object, not {type(value).__name__}")
        vt = args[1] if args else Any
        return {k: coerce_value(vt, v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for m in tp:
            if m.value == value or (isinstance(value, str) and m.name == value):
                return m
        raise ArgumentError(f"{where}: must be one of {', '.join(repr(m.value) for m in tp)}, not {value!r}")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ArgumentError(f"{where}: must be an object, not {type(value).__name__}")
        hints = typing.get_type_hints(tp, include_extras=True)
        names = {f.name for f in dataclasses.fields(tp)}
        extra = set(value) - names
        if extra:
            raise ArgumentError(f"{where}: unknown field(s) {', '.join(sorted(extra))}")
        kwargs = {k: coerce_value(hints.get(k, Any), v, f"{where}.{k}") for k, v in value.items()}
        try:
            return tp(**kwargs)
        except TypeError as e:
            raise ArgumentError(f"{where}: {e}") from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ArgumentError(f"{where}: must be true or false, not {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ArgumentError(f"{where}: must be an integer, not {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ArgumentError(f"{where}: must be a number, not {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ArgumentError(f"{where}: must be a string, not {type(value).__name__}")
    if tp is dt.datetime or tp is dt.date:
        if not isinstance(value, str):
            raise ArgumentError(f"{where}: must be an ISO 8601 string")
        try:
            return tp.fromisoformat(value)
        except ValueError:
            raise ArgumentError(f"{where}: {value!r} is not an ISO 8601 {tp.__name__}") from None
    if isinstance(tp, type) and issubclass(tp, PurePath):
        if not isinstance(value, str):
            raise ArgumentError(f"{where}: must be a path string")
        return tp(value)
    return value


# ---- results: Python to JSON ------------------------------------------------------------------

def to_json(value: Any, _depth: int = 0) -> Any:
    """A JSON-able copy of a skill's return value (dataclasses, enums, dates, paths, sets, bytes)."""
    if _depth > 50:
        raise TypeError("value nested too deeply")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, enum.Enum):
        return to_json(value.value, _depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name), _depth + 1) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_json(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        if isinstance(value, set | frozenset):
            with contextlib.suppress(TypeError):
                items = sorted(items)
        return [to_json(v, _depth + 1) for v in items]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Path | PurePath):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if hasattr(value, "as_dict"):
        return to_json(value.as_dict(), _depth + 1)
    raise TypeError(f"cannot turn a {type(value).__name__} into JSON (return str, dict, list or a dataclass)")
