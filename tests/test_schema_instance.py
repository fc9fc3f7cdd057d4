"""Unit tests for the seeded JSON Schema instance generator (`mockllm._schema_instance`).

Every instance is validated by the `jsonschema` package (Draft 2020-12 unless the case says otherwise,
with a format checker whose missing optional checks are filled in from the standard library).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import random
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator, Draft7Validator, Draft202012Validator, FormatChecker

from mockllm import _schema_instance as schema_instance_module
from mockllm._schema_instance import DEFAULT_WORDS, SchemaError, check_schema, schema_instance

SEEDS = range(50)

# jsonschema checks date-time, time, duration, hostname and uri only with optional packages installed;
# these stand-ins keep the format checks on without them.
FORMATS = FormatChecker()
_OFFSET = r"(Z|[+-]\d{2}:\d{2})"


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return re.fullmatch(rf"\d{{4}}-\d{{2}}-\d{{2}}T\d{{2}}:\d{{2}}:\d{{2}}(\.\d+)?{_OFFSET}", value) is not None


@FORMATS.checks("time", raises=ValueError)
def _is_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    datetime.time.fromisoformat(value.replace("Z", "+00:00"))
    return re.fullmatch(rf"\d{{2}}:\d{{2}}:\d{{2}}(\.\d+)?{_OFFSET}", value) is not None


@FORMATS.checks("duration")
def _is_duration(value: object) -> bool:
    pattern = r"P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?"
    return not isinstance(value, str) or re.fullmatch(pattern, value) is not None


@FORMATS.checks("hostname")
def _is_hostname(value: object) -> bool:
    label = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    return not isinstance(value, str) or re.fullmatch(rf"{label}(\.{label})*", value) is not None


@FORMATS.checks("email")
def _is_email(value: object) -> bool:
    return not isinstance(value, str) or re.fullmatch(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}", value) is not None


@FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urllib.parse.urlsplit(value)
    return bool(parts.scheme and parts.netloc) and " " not in value


@FORMATS.checks("ipv4")
def _is_ipv4(value: object) -> bool:
    return not isinstance(value, str) or isinstance(ipaddress.ip_address(value), ipaddress.IPv4Address)


def _gemini_to_json_schema(schema: Any) -> Any:
    """A Gemini (OpenAPI-subset) schema as plain JSON Schema: lower-case types, nullable as a null type."""
    if isinstance(schema, list):
        return [_gemini_to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type":
            out[key] = value.lower() if isinstance(value, str) else [name.lower() for name in value]
        elif key in ("properties", "patternProperties", "$defs"):
            out[key] = {name: _gemini_to_json_schema(sub) for name, sub in value.items()}
        elif key in ("nullable", "propertyOrdering"):
            continue
        else:
            out[key] = _gemini_to_json_schema(value)
    if schema.get("nullable") is True and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
    return out


FORMAT_NAMES = (
    "date-time", "date", "time", "duration", "email", "idn-email", "hostname", "ipv4", "ipv6", "uuid", "uri",
    "uri-reference", "json-pointer", "regex",
)  # fmt: skip

# name -> schema; a case that needs another dialect to validate is listed in DRAFTS, one written in Gemini's
# spelling in GEMINI, and one whose every instance is the same value in SINGLE_VALUED.
CASES: dict[str, Any] = {
    "true schema": True,
    "empty schema": {},
    "string": {"type": "string"},
    "string bounds": {"type": "string", "minLength": 5, "maxLength": 12},
    "string exact length": {"type": "string", "minLength": 7, "maxLength": 7},
    "string long": {"type": "string", "minLength": 200},
    "string tiny": {"type": "string", "maxLength": 1},
    "string empty only": {"type": "string", "maxLength": 0},
    "integer": {"type": "integer"},
    "integer bounds": {"type": "integer", "minimum": -5, "maximum": 5},
    "integer exclusive": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3},
    "integer multipleOf": {"type": "integer", "minimum": 10, "maximum": 100, "multipleOf": 7},
    "integer fractional multipleOf": {"type": "integer", "multipleOf": 2.5},
    "integer high only": {"type": "integer", "maximum": -1000},
    "integer low only": {"type": "integer", "minimum": 1_000_000},
    "integer wide": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
    "number": {"type": "number"},
    "number bounds": {"type": "number", "minimum": 0.5, "maximum": 0.75},
    "number exclusive": {"type": "number", "exclusiveMinimum": 0.3, "exclusiveMaximum": 0.31},
    "number narrow": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.005},
    "number multipleOf": {"type": "number", "minimum": 0, "maximum": 10, "multipleOf": 0.1},
    "number multipleOf quarter": {"type": "number", "multipleOf": 0.25, "exclusiveMinimum": -1},
    "draft4 exclusive booleans": {
        "type": "number",
        "minimum": 1,
        "exclusiveMinimum": True,
        "maximum": 2,
        "exclusiveMaximum": True,
    },
    "boolean": {"type": "boolean"},
    "null": {"type": "null"},
    "type list": {"type": ["string", "integer", "boolean"]},
    "nullable type list": {"type": ["string", "null"], "minLength": 2},
    "enum": {"type": "string", "enum": ["red", "green", "blue"]},
    "enum mixed": {"enum": ["a", 1, None, True, {"k": [1, 2]}]},
    "enum filtered by type": {"type": "integer", "enum": ["1", 1, 2.5, 3]},
    "const": {"const": {"a": [1, "x"]}},
    "formats": {
        "type": "object",
        "properties": {name: {"type": "string", "format": name} for name in (*FORMAT_NAMES, "unknown-format")},
        "required": list(FORMAT_NAMES),
    },
    "format without type": {"format": "uuid"},
    "format with length": {"type": "string", "format": "email", "maxLength": 24},
    "pattern code": {"type": "string", "pattern": r"^[A-Z]{3}-\d{4}$"},
    "pattern alternation": {"type": "string", "pattern": r"^(foo|bar)+baz?$"},
    "pattern hex unanchored": {"type": "string", "pattern": "[a-f0-9]{8}"},
    "pattern email": {"type": "string", "pattern": r"^[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}$"},
    "pattern classes": {"type": "string", "pattern": r"^\w+\s\W\S\D[^a-z0-9]\.$"},
    "pattern negated literal": {"type": "string", "pattern": r"^[^,]{3,5}$"},
    "pattern optional groups": {"type": "string", "pattern": r"^(\+\d{1,3} )?\(?\d{3}\)?[- ]?\d{3}-\d{4}$"},
    "pattern backreference": {"type": "string", "pattern": r"^(ab|cd)-\1$"},
    "pattern lookahead": {"type": "string", "pattern": r"^(?=.*[A-Z])(?=.*\d)[A-Za-z\d]{8,12}$"},
    "pattern non-greedy dot": {"type": "string", "pattern": r"^.+?x.*$"},
    "pattern unicode range": {"type": "string", "pattern": "^[\u00e0-\u00ff\u4e00-\u4e10]{2,4}$"},
    "pattern with min length": {"type": "string", "pattern": "^[a-z]+$", "minLength": 30},
    "pattern with max length": {"type": "string", "pattern": "^[a-z]+[0-9]*$", "maxLength": 2},
    "object simple": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 14}},
        "required": ["city"],
    },
    "object nested": {
        "type": "object",
        "properties": {
            "user": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "address": {
                        "type": "object",
                        "properties": {"street": {"type": "string"}, "zip": {"type": "string", "pattern": r"^\d{5}$"}},
                        "required": ["zip"],
                    },
                    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                },
                "required": ["name", "address"],
            }
        },
        "required": ["user"],
    },
    "object closed": {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"}},
        "additionalProperties": False,
    },
    "object map": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
    "object min properties": {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "additionalProperties": {"type": "number"},
        "minProperties": 4,
        "maxProperties": 5,
    },
    "object max properties": {
        "type": "object",
        "properties": {key: {"type": "integer"} for key in "abcdefgh"},
        "required": ["a"],
        "maxProperties": 2,
    },
    "object pattern properties": {
        "type": "object",
        "patternProperties": {r"^x-[a-z]+$": {"type": "string"}},
        "additionalProperties": False,
        "minProperties": 2,
    },
    "object pattern and properties": {
        "type": "object",
        "properties": {"x-id": {"type": "string", "minLength": 3}},
        "patternProperties": {"^x-": {"type": "string", "maxLength": 6}},
        "required": ["x-id"],
    },
    "object free": {"type": "object"},
    "object no parameters": {"type": "object", "properties": {}, "additionalProperties": False},
    "object pattern map": {"type": "object", "patternProperties": {"^S_[a-z]{2}$": {"type": "string"}}},
    "object required without properties": {"type": "object", "required": ["anything"]},
    "array": {"type": "array", "items": {"type": "integer"}},
    "array bounds": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 4},
    "array empty only": {"type": "array", "maxItems": 0},
    "array unique": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 5}, "uniqueItems": True},
    "array unique enum exhausted": {
        "type": "array",
        "items": {"enum": ["a", "b", "c"]},
        "minItems": 3,
        "uniqueItems": True,
    },
    "array unique booleans": {"type": "array", "items": {"type": "boolean"}, "minItems": 2, "uniqueItems": True},
    "array unique any": {"type": "array", "minItems": 4, "uniqueItems": True},
    "array prefixItems": {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"}],
        "items": False,
    },
    "array prefixItems open": {"type": "array", "prefixItems": [{"const": "head"}], "minItems": 3},
    "array contains": {"type": "array", "items": {"type": "integer"}, "contains": {"const": 42}, "maxItems": 3},
    "array min contains": {
        "type": "array",
        "items": {"type": "integer", "minimum": 0, "maximum": 100},
        "contains": {"minimum": 90},
        "minContains": 2,
    },
    "array of objects": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"id": {"type": "string", "format": "uuid"}, "qty": {"type": "integer", "minimum": 1}},
            "required": ["id", "qty"],
            "additionalProperties": False,
        },
        "minItems": 1,
    },
    "tuple items (draft 7)": {
        "type": "array",
        "items": [{"type": "string"}, {"type": "number"}],
        "additionalItems": False,
    },
    "anyOf": {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "integer", "minimum": 100}]},
    "anyOf with siblings": {
        "type": "object",
        "properties": {"kind": {"type": "string"}, "a": {"type": "integer"}, "b": {"type": "integer"}},
        "anyOf": [{"required": ["a"]}, {"required": ["b"]}],
    },
    "anyOf conflicting branch": {"type": "string", "anyOf": [{"type": "integer"}, {"minLength": 3}]},
    "oneOf integer or number": {"oneOf": [{"type": "integer"}, {"type": "number"}]},
    "oneOf tagged": {
        "oneOf": [
            {
                "type": "object",
                "properties": {"kind": {"const": "circle"}, "radius": {"type": "number", "exclusiveMinimum": 0}},
                "required": ["kind", "radius"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {"kind": {"const": "square"}, "side": {"type": "number", "exclusiveMinimum": 0}},
                "required": ["kind", "side"],
                "additionalProperties": False,
            },
        ]
    },
    "allOf objects": {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"type": "integer"}, "a": {"maxLength": 4}}, "required": ["b"]},
        ]
    },
    "allOf closed branch": {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}, "b": {}}, "additionalProperties": False},
            {"properties": {"b": {"type": "string"}, "c": {"type": "string"}}, "required": ["b"]},
        ]
    },
    "allOf scalar bounds": {
        "allOf": [
            {"type": "integer", "minimum": 0, "maximum": 50, "multipleOf": 2},
            {"type": "number", "exclusiveMinimum": 10, "maximum": 40, "multipleOf": 3},
        ]
    },
    "allOf two patterns": {"allOf": [{"type": "string", "pattern": "^[a-c]{2,6}$"}, {"pattern": "a"}]},
    "allOf enums": {"allOf": [{"enum": [1, 2, 3, 4]}, {"enum": [3, 4, 5]}, {"not": {"const": 4}}]},
    "not": {"type": "integer", "minimum": 0, "maximum": 5, "not": {"enum": [2, 3]}},
    "not type": {"not": {"type": "string"}},
    "if then else": {
        "type": "object",
        "properties": {"country": {"enum": ["US", "NL"]}, "zip": {"type": "string"}},
        "required": ["country", "zip"],
        "if": {"properties": {"country": {"const": "US"}}},
        "then": {"properties": {"zip": {"pattern": r"^\d{5}$"}}},
        "else": {"properties": {"zip": {"pattern": r"^\d{4} [A-Z]{2}$"}}},
    },
    "ref to defs": {
        "type": "object",
        "properties": {"home": {"$ref": "#/$defs/address"}, "work": {"$ref": "#/definitions/address"}},
        "required": ["home"],
        "$defs": {"address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        "definitions": {"address": {"type": "object", "properties": {"zip": {"type": "integer"}}}},
    },
    "ref with siblings": {
        "$defs": {"positive": {"type": "integer", "minimum": 1}},
        "type": "object",
        "properties": {"n": {"$ref": "#/$defs/positive", "maximum": 3}},
        "required": ["n"],
    },
    "recursive tree": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#"}}},
        "required": ["name", "children"],
        "additionalProperties": False,
    },
    "recursive linked list": {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "next": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]},
                },
                "required": ["value", "next"],
                "additionalProperties": False,
            }
        },
        "$ref": "#/$defs/node",
    },
    "recursive nullable node": {
        "$defs": {
            "node": {
                "type": ["object", "null"],
                "properties": {"value": {"type": "string"}, "next": {"$ref": "#/$defs/node"}},
                "required": ["value", "next"],
            }
        },
        "$ref": "#/$defs/node",
    },
    "recursive expression": {
        "$defs": {
            "expr": {
                "oneOf": [
                    {"type": "number"},
                    {
                        "type": "object",
                        "properties": {
                            "op": {"enum": ["+", "-", "*"]},
                            "args": {"type": "array", "items": {"$ref": "#/$defs/expr"}, "minItems": 2, "maxItems": 2},
                        },
                        "required": ["op", "args"],
                        "additionalProperties": False,
                    },
                ]
            }
        },
        "$ref": "#/$defs/expr",
    },
    "annotations ignored": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://example.com/thing",
        "title": "Thing",
        "description": "A thing",
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "the name", "examples": ["widget"], "default": "gadget"},
            "size": {"type": "integer", "minimum": 10, "default": 3},
        },
        "required": ["name", "size"],
    },
    "openai strict tool": {
        "type": "object",
        "properties": {
            "location": {"type": "string", "description": "City and country e.g. Bogotá, Colombia"},
            "units": {"type": ["string", "null"], "enum": ["celsius", "fahrenheit", None]},
            "days": {"type": "integer"},
            "options": {
                "type": "object",
                "properties": {"hourly": {"type": "boolean"}, "lang": {"type": ["string", "null"]}},
                "required": ["hourly", "lang"],
                "additionalProperties": False,
            },
            "stops": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "at": {"type": "string", "format": "date-time"}},
                    "required": ["name", "at"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["location", "units", "days", "options", "stops"],
        "additionalProperties": False,
    },
    "openai strict structured output": {
        "type": "object",
        "properties": {
            "steps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"explanation": {"type": "string"}, "output": {"type": "string"}},
                    "required": ["explanation", "output"],
                    "additionalProperties": False,
                },
            },
            "final_answer": {"type": "string"},
            "shape": {"anyOf": [{"$ref": "#/$defs/circle"}, {"$ref": "#/$defs/box"}]},
        },
        "required": ["steps", "final_answer", "shape"],
        "additionalProperties": False,
        "$defs": {
            "circle": {
                "type": "object",
                "properties": {"r": {"type": "number", "minimum": 0}},
                "required": ["r"],
                "additionalProperties": False,
            },
            "box": {
                "type": "object",
                "properties": {"w": {"type": "number"}, "h": {"type": "number"}},
                "required": ["w", "h"],
                "additionalProperties": False,
            },
        },
        "strict": True,
    },
    "anthropic tool": {
        "type": "object",
        "properties": {
            "ticker": {"type": "string", "pattern": "^[A-Z]{1,5}$"},
            "range": {"type": "string", "enum": ["1d", "5d", "1mo"]},
            "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
        },
        "required": ["ticker"],
    },
    "gemini response schema": {
        "type": "OBJECT",
        "properties": {
            "recipe_name": {"type": "STRING"},
            "rating": {"type": "INTEGER", "minimum": 1, "maximum": 5},
            "score": {"type": "NUMBER", "format": "float", "nullable": True},
            "vegan": {"type": "BOOLEAN"},
            "course": {"type": "STRING", "format": "enum", "enum": ["starter", "main", "dessert"]},
            "ingredients": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": 1},
            "cooked_on": {"type": "STRING", "format": "date"},
        },
        "required": ["recipe_name", "rating", "ingredients"],
        "propertyOrdering": ["rating", "recipe_name", "ingredients", "vegan", "score", "course", "cooked_on"],
    },
    "gemini nullable nested": {
        "type": "ARRAY",
        "items": {
            "type": "OBJECT",
            "properties": {"id": {"type": "INTEGER", "format": "int64"}, "note": {"type": "STRING", "nullable": True}},
            "required": ["id", "note"],
        },
        "maxItems": 2,
    },
    "twenty properties": {
        "type": "object",
        "properties": {f"field_{n}": {"type": ("string", "integer", "number", "boolean")[n % 4]} for n in range(20)},
        "required": [f"field_{n}" for n in range(20)],
        "additionalProperties": False,
    },
}

DRAFTS: dict[str, type] = {"draft4 exclusive booleans": Draft4Validator, "tuple items (draft 7)": Draft7Validator}
GEMINI = {"gemini response schema", "gemini nullable nested"}
SINGLE_VALUED = {
    "const",
    "null",
    "object free",
    "object no parameters",
    "string empty only",
    "array empty only",
    "number narrow",
    "allOf enums",
}


def _validator(name: str) -> Any:
    schema = CASES[name]
    if name in GEMINI:
        schema = _gemini_to_json_schema(schema)
    cls = DRAFTS.get(name, Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema, format_checker=FORMATS)


def _draw(schema: Any, seed: int, **kwargs: Any) -> Any:
    return schema_instance(schema, random.Random(seed), **kwargs)


@pytest.mark.parametrize("name", list(CASES))
def test_every_instance_is_valid(name: str) -> None:
    validator = _validator(name)
    for seed in SEEDS:
        value = _draw(CASES[name], seed)
        errors = [error.message for error in validator.iter_errors(value)]
        assert not errors, f"seed {seed}: {value!r}: {errors}"
        json.dumps(value, allow_nan=False)


@pytest.mark.parametrize("name", list(CASES))
def test_same_seed_same_value_and_seeds_vary(name: str) -> None:
    dumps = [json.dumps(_draw(CASES[name], seed)) for seed in SEEDS]
    assert dumps == [json.dumps(_draw(CASES[name], seed)) for seed in SEEDS]
    if name not in SINGLE_VALUED:
        assert len(set(dumps)) > 1


@pytest.mark.parametrize("name", list(CASES))
def test_case_schemas_pass_check_schema(name: str) -> None:
    check_schema(CASES[name], "schema")


def test_successive_draws_from_one_generator_differ() -> None:
    rng = random.Random(7)
    values = [schema_instance(CASES["object nested"], rng) for _ in range(10)]
    assert len({json.dumps(value) for value in values}) > 5


def _decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text and "e" not in text else 0


def test_numbers_have_at_most_two_decimals_and_integers_are_ints() -> None:
    for seed in SEEDS:
        number = _draw({"type": "number", "minimum": -3, "maximum": 3}, seed)
        assert isinstance(number, float) and _decimals(number) <= 2
        integer = _draw({"type": "integer", "minimum": 0.5, "maximum": 9.5}, seed)
        assert type(integer) is int and 1 <= integer <= 9


def test_plain_strings_are_words() -> None:
    for seed in SEEDS:
        text = _draw({"type": "string"}, seed)
        assert text and all(word in DEFAULT_WORDS for word in text.split(" "))


def test_custom_words() -> None:
    words = ("alpha", "beta", "gamma")
    for seed in SEEDS:
        text = _draw({"type": "string", "minLength": 12}, seed, words=words)
        assert len(text) >= 12 and set(text.split(" ")) <= set(words)
    with pytest.raises(ValueError, match="words"):
        _draw({"type": "string"}, 0, words=())


def test_key_order_follows_properties_and_property_ordering() -> None:
    strict = CASES["openai strict tool"]
    for seed in SEEDS:
        assert list(_draw(strict, seed)) == list(strict["properties"])
    gemini = {
        "type": "OBJECT",
        "properties": {"b": {"type": "STRING"}, "a": {"type": "STRING"}, "c": {"type": "STRING"}},
        "required": ["a", "b", "c"],
        "propertyOrdering": ["c", "a", "b"],
    }
    for seed in SEEDS:
        assert list(_draw(gemini, seed)) == ["c", "a", "b"]


def test_optional_properties_are_sometimes_present() -> None:
    schema = CASES["object simple"]
    present = [("days" in _draw(schema, seed)) for seed in SEEDS]
    assert any(present) and not all(present)


def test_nullable_values_are_sometimes_null() -> None:
    schema = {"type": "STRING", "nullable": True}
    values = [_draw(schema, seed) for seed in SEEDS]
    assert None in values and any(isinstance(value, str) for value in values)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    return 0


@pytest.mark.parametrize(
    "name", ["recursive tree", "recursive linked list", "recursive nullable node", "recursive expression"]
)
def test_recursion_is_bounded(name: str) -> None:
    depths = [_depth(_draw(CASES[name], seed)) for seed in range(200)]
    assert 1 <= max(depths) <= 12


def test_default_is_sometimes_used_only_when_valid() -> None:
    names = [_draw({"type": "string", "default": "gadget"}, seed) for seed in SEEDS]
    assert "gadget" in names and len(set(names)) > 1
    sizes = [_draw({"type": "integer", "minimum": 10, "default": 3}, seed) for seed in SEEDS]
    assert 3 not in sizes


def test_gemini_proto_counts_as_strings() -> None:
    schema = {"type": "ARRAY", "items": {"type": "STRING", "maxLength": "4"}, "minItems": "2", "maxItems": "3"}
    for seed in SEEDS:
        value = _draw(schema, seed)
        assert 2 <= len(value) <= 3 and all(len(item) <= 4 for item in value)


def test_formats_each_produce_their_shape() -> None:
    value = _draw(CASES["formats"], 3)
    datetime.datetime.fromisoformat(value["date-time"].replace("Z", "+00:00"))
    datetime.date.fromisoformat(value["date"])
    ipaddress.IPv4Address(value["ipv4"])
    ipaddress.IPv6Address(value["ipv6"])
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", value["uuid"])
    assert value["uri"].startswith("https://")


def test_twenty_property_object_is_cheap() -> None:
    rng = random.Random(0)
    schema = CASES["twenty properties"]
    values = [schema_instance(schema, rng) for _ in range(500)]
    assert all(len(value) == 20 for value in values)


# (schema, the path check_schema is given, the path the error names, a phrase of the problem)
BAD_SCHEMAS = [
    (
        {"type": "object", "properties": {"city": {"type": "string", "minLength": 5, "maxLength": 2}}},
        "parameters.properties.city.minLength",
        "exceeds maxLength",
    ),
    (
        {"type": "object", "properties": {"home": {"$ref": "#/$defs/address"}}, "$defs": {}},
        "parameters.properties.home.$ref",
        "unresolvable reference",
    ),
    (
        {"type": "object", "properties": {"code": {"type": "string", "pattern": "(?<=x)y"}}},
        "parameters.properties.code.pattern",
        "lookbehind",
    ),
    (
        {"type": "object", "properties": {"name": {"type": "strnig"}}},
        "parameters.properties.name.type",
        "unknown type 'strnig'",
    ),
    ({"type": ["string", 3]}, "parameters.type", "type name"),
    ({"type": "string", "minLength": "five"}, "parameters.minLength", "non-negative integer"),
    ({"type": "string", "maxLength": -1}, "parameters.maxLength", "non-negative integer"),
    ({"type": "string", "pattern": "([a-z]"}, "parameters.pattern", "invalid pattern"),
    ({"type": "integer", "minimum": 10, "maximum": 2}, "parameters", "no integer"),
    ({"type": "integer", "exclusiveMinimum": 1, "exclusiveMaximum": 2}, "parameters", "no integer"),
    ({"type": "number", "minimum": 1, "maximum": 2, "multipleOf": 5}, "parameters", "no number"),
    ({"type": "number", "multipleOf": 0}, "parameters.multipleOf", "positive"),
    ({"type": "number", "minimum": "1"}, "parameters.minimum", "finite number"),
    ({"type": "array", "minItems": 3, "maxItems": 1}, "parameters.minItems", "exceeds maxItems"),
    (
        {"type": "array", "prefixItems": [{"type": "string"}], "items": False, "minItems": 2},
        "parameters.minItems",
        "exceeds",
    ),
    (
        {"type": "object", "properties": {"a": {}}, "required": ["a", "b"], "additionalProperties": False},
        "parameters.required",
        "'b' is not allowed",
    ),
    (
        {"type": "object", "properties": {"a": {}, "b": {}}, "required": ["a", "b"], "maxProperties": 1},
        "parameters.maxProperties",
        "exceed",
    ),
    ({"type": "object", "required": "a"}, "parameters.required", "list of strings"),
    ({"type": "object", "properties": []}, "parameters.properties", "must be an object"),
    ({"enum": []}, "parameters.enum", "non-empty"),
    ({"type": "string", "enum": [1, 2]}, "parameters.enum", "of type string"),
    ({"anyOf": []}, "parameters.anyOf", "non-empty list"),
    ({"oneOf": [{"type": "string"}, 5]}, "parameters.oneOf[1]", "object or a boolean"),
    ({"items": {"$ref": "other.json#/x"}}, "parameters.items.$ref", "only local references"),
    ({"patternProperties": {"([": {}}}, "parameters.patternProperties.([", "invalid pattern"),
    ({"type": "string", "format": 5}, "parameters.format", "must be a string"),
    ({"type": "STRING", "nullable": "yes"}, "parameters.nullable", "boolean"),
    ("not a schema", "parameters", "object or a boolean"),
]


@pytest.mark.parametrize(("schema", "path", "phrase"), BAD_SCHEMAS, ids=[case[1] for case in BAD_SCHEMAS])
def test_check_schema_names_the_path(schema: Any, path: str, phrase: str) -> None:
    with pytest.raises(SchemaError) as caught:
        check_schema(schema, "parameters")
    assert caught.value.where == path
    assert phrase in caught.value.problem
    assert str(caught.value) == f"{path}: {caught.value.problem}"
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ({"type": "string", "minLength": 3, "maxLength": 1}, "schema.minLength"),
        ({"properties": {"a": {"$ref": "#/$defs/missing"}}, "required": ["a"]}, "schema.properties.a.$ref"),
        ({"type": "string", "pattern": "(?<!a)b"}, "schema.pattern"),
        ({"type": "strnig"}, "schema.type"),
        (False, "schema"),
        ({"allOf": [{"type": "string"}, {"type": "integer"}]}, "schema.type"),
        ({"type": "array", "items": {"enum": [1, 2]}, "minItems": 3, "uniqueItems": True}, "schema.uniqueItems"),
        ({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}, "schema.$ref"),
        (
            {"$defs": {"n": {"type": "object", "properties": {"n": {"$ref": "#/$defs/n"}}, "required": ["n"]}}}
            | {"$ref": "#/$defs/n"},
            "schema",
        ),
        ({"type": "string", "pattern": "^[a-z]{3}$", "minLength": 5}, "schema.pattern"),
    ],
)
def test_generation_raises_schema_error(schema: Any, path: str) -> None:
    with pytest.raises(SchemaError) as caught:
        _draw(schema, 0)
    assert caught.value.where.startswith(path)


_STANDALONE = """
import importlib.util, json, random, sys
spec = importlib.util.spec_from_file_location("schema_instance_standalone", sys.argv[1])
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module
spec.loader.exec_module(module)
schemas = json.loads(sys.stdin.read())
print(json.dumps([module.schema_instance(schema, random.Random(seed)) for schema in schemas for seed in range(5)]))
"""


def test_leaf_module_is_deterministic_across_hash_seeds() -> None:
    """The module loads on its own (it imports nothing from mockllm) and its draws do not depend on str hashing."""
    path = Path(schema_instance_module.__file__)
    names = ["openai strict tool", "gemini response schema", "object pattern properties", "allOf closed branch"]
    schemas = json.dumps([CASES[name] for name in names])
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-c", _STANDALONE, str(path)], input=schemas, capture_output=True, text=True, env=env
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0]) == [_draw(CASES[name], seed) for name in names for seed in range(5)]
