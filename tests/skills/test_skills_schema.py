"""Schema generation and argument coercion (pure logic: no processes)."""

from __future__ import annotations

import dataclasses
import enum
from typing import Literal

import pytest

from copa.skills import skill
from copa.skills.decorator import meta_of
from copa.skills.schema import ArgumentError, SchemaError, coerce_arguments, function_schema, parse_docstring, to_json


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


@dataclasses.dataclass
class Place:
    """A place.

    Args:
        city: the city name.
    """

    city: str
    country: str | None = None


@skill(permissions=["net:api.example.org"], timeout=5, secrets=["API_KEY"])
def forecast(place: Place, days: int = 3, unit: Unit = Unit.C, detail: Literal["short", "long"] = "short",
             hours: list[int] | None = None, ratio: float = 0.5, verbose: bool = False) -> dict:
    """Weather forecast for a place.

    Longer text that is part of the description.

    Args:
        place: where.
        days: how many days ahead,
            between 1 and 7.
        unit: temperature unit.
    """
    return {}


def test_decorator_records_metadata():
    meta = meta_of(forecast)
    assert meta.name == "forecast" and meta.permissions == ("net:api.example.org",)
    assert meta.timeout == 5.0 and meta.secrets == ("API_KEY",) and not meta.dangerous

    @skill
    def bare(x: int) -> int:
        """Bare."""
        return x

    assert meta_of(bare).name == "bare" and bare(2) == 2  # still a plain function


def test_schema_from_hints_and_docstring():
    desc, schema = function_schema(forecast)
    assert desc.startswith("Weather forecast for a place.") and "Longer text" in desc
    props = schema["properties"]
    assert schema["required"] == ["place"] and schema["additionalProperties"] is False
    assert props["days"] == {"type": "integer", "description": "how many days ahead, between 1 and 7.", "default": 3}
    assert props["unit"]["enum"] == ["celsius", "fahrenheit"] and props["unit"]["default"] == "celsius"
    assert props["detail"] == {"enum": ["short", "long"], "type": "string", "default": "short"}
    assert props["hours"]["anyOf"][0] == {"type": "array", "items": {"type": "integer"}}
    assert props["ratio"]["type"] == "number" and props["verbose"]["type"] == "boolean"
    place = props["place"]
    assert place["type"] == "object" and place["required"] == ["city"]
    assert place["properties"]["city"]["description"] == "the city name."


def test_sphinx_docstring():
    desc, params = parse_docstring("Do it.\n\n:param x: the x\n:param y: the y\n    continued\n:returns: z")
    assert desc == "Do it." and params == {"x": "the x", "y": "the y continued"}


def test_unsupported_types_are_reported():
    def bad(x: complex) -> None:
        """Bad."""

    def untyped(x) -> None:
        """Untyped."""

    with pytest.raises(SchemaError, match="unsupported type"):
        function_schema(bad)
    with pytest.raises(SchemaError, match="needs a type hint"):
        function_schema(untyped)


def test_coercion_builds_python_values():
    args = coerce_arguments(forecast, {"place": {"city": "Lisbon"}, "unit": "fahrenheit", "hours": [1, 2.0],
                                       "ratio": 1})
    assert args["place"] == Place("Lisbon") and args["unit"] is Unit.F
    assert args["hours"] == [1, 2] and args["ratio"] == 1.0 and isinstance(args["ratio"], float)


@pytest.mark.parametrize("arguments,message", [
    ({}, "missing required argument 'place'"),
    ({"place": {"city": "x"}, "days": "3"}, "days: must be an integer"),
    ({"place": {"city": "x"}, "unit": "kelvin"}, "unit: must be one of"),
    ({"place": {"city": "x"}, "detail": "medium"}, "detail: must be one of"),
    ({"place": {"city": 1}}, "place.city: must be a string"),
    ({"place": {"city": "x", "zip": 1}}, "unknown field"),
    ({"place": {"city": "x"}, "verbose": "yes"}, "must be true or false"),
    ({"place": {"city": "x"}, "nope": 1}, "unknown argument"),
])
def test_bad_arguments_name_the_field(arguments, message):
    with pytest.raises(ArgumentError, match=message):
        coerce_arguments(forecast, arguments)


def test_results_to_json():
    import datetime as dt
    from pathlib import Path

    out = to_json({"p": Place("x"), "u": Unit.C, "when": dt.date(2026, 1, 2), "s": {3, 1}, "path": Path("/a")})
    assert out == {"p": {"city": "x", "country": None}, "u": "celsius", "when": "2026-01-02", "s": [1, 3],
                   "path": "/a"}
    with pytest.raises(TypeError, match="cannot turn"):
        to_json(object())


def test_custom_name_and_private_parameters():
    @skill(name="lookup-city", description="Find a city.")
    def find(city: str, _cache: dict | None = None) -> str:
        """Docstring that the explicit description overrides."""
        return city

    meta = meta_of(find)
    assert meta.name == "lookup-city" and meta.description == "Find a city."
    _, schema = function_schema(find)
    assert list(schema["properties"]) == ["city"]
    assert coerce_arguments(find, {"city": "Porto"}) == {"city": "Porto"}
    with pytest.raises(ArgumentError, match="unknown argument"):
        coerce_arguments(find, {"city": "Porto", "_cache": {}})


def test_generated_schemas_are_valid_json_schema():
    jsonschema = pytest.importorskip("jsonschema")
    _, schema = function_schema(forecast)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate({"place": {"city": "Lisbon"}, "unit": "celsius", "hours": [1, 2]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"place": {"city": "Lisbon"}, "unit": "kelvin"}, schema)
