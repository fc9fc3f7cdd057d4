"""Seeded JSON instances valid against a JSON Schema.

The mock answers tool calls and structured-output requests with values it makes up itself. A real model
fills in the schema the request sent (a tool's ``parameters`` or ``input_schema``, OpenAI's
``response_format`` JSON schema, Gemini's ``responseSchema`` or ``responseJsonSchema``), and the client under
test parses and validates what comes back. So the mock's values must be valid against the request's own
schema, and reproducible: the same schema and the same generator state give the same value, and a seeded
run replays byte for byte.

This module is that generator. It is pure (no I/O; its only state is a cache of compiled pattern
generators) and a leaf (it imports nothing from the rest of ``mockllm``).

- ``schema_instance(schema, rng)`` draws one instance from ``rng``.
- ``check_schema(schema, where)`` rejects, up front, a schema the generator cannot honour (a bad keyword
  type, an unknown type name, min above max, an unresolvable ``$ref``, a pattern it cannot generate from),
  with a ``SchemaError`` that names the path of the offending keyword.

Keywords honoured: ``type`` (a name or a list; Gemini's upper-case names too), ``nullable``, ``enum``,
``const``, ``format``; objects: ``properties``, ``required``, ``additionalProperties``, ``patternProperties``,
``minProperties``, ``maxProperties``, ``propertyOrdering``; arrays: ``items`` (a schema, or the older list
form with ``additionalItems``), ``prefixItems``, ``minItems``, ``maxItems``, ``uniqueItems``, ``contains``,
``minContains``; strings: ``minLength``, ``maxLength``, ``pattern``; numbers: ``minimum``, ``maximum``,
``exclusiveMinimum``, ``exclusiveMaximum`` (number and draft-4 boolean forms), ``multipleOf``; and
``allOf``, ``anyOf``, ``oneOf``, ``not``, ``if``/``then``/``else``, local ``$ref`` with ``$defs`` and
``definitions``. Annotations (``title``, ``description``, ``default``, ``examples``, ``$schema``, ...) are
ignored, except that a valid ``default`` or first example is sometimes returned as is.

Recursion is bounded: past a nesting depth of 4 the generator takes whatever ends the value (optional
properties left out, arrays at ``minItems``, a branch without ``$ref``, null where allowed).

Limits: ``$ref`` resolves only local JSON pointers (``#``, ``#/$defs/...``), not remote documents or
``$anchor``; patterns cannot use lookbehind (lookaheads are honoured by redrawing); character categories
and negated classes draw from printable ASCII; with both ``pattern`` and ``format`` the pattern is followed
and the format is not; ``maxContains``, ``dependentRequired``, ``dependentSchemas`` and ``unevaluated*`` are
not generated for. Numbers have at most two decimals unless ``multipleOf`` or very narrow bounds need more.
"""

from __future__ import annotations

import base64
import bisect
import copy
import functools
import math
import random
import re
import re._parser as sre_parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from urllib.parse import unquote

__all__ = ["DEFAULT_WORDS", "SchemaError", "check_schema", "schema_instance"]

# fmt: off
DEFAULT_WORDS: tuple[str, ...] = (
    "apple", "river", "stone", "cloud", "green", "quick", "table", "light", "music", "paper",
    "garden", "window", "silver", "orange", "yellow", "happy", "bright", "simple", "little", "golden",
    "forest", "ocean", "summer", "winter", "city", "road", "house", "bread", "coffee", "tea",
    "blue", "red", "small", "large", "early", "late", "north", "south", "east", "west",
    "cat", "dog", "bird", "fish", "tree", "leaf", "star", "moon", "sun", "rain",
    "book", "door", "chair", "lamp", "clock", "phone", "train", "ship", "bridge", "market",
)

_TYPES = frozenset({"string", "number", "integer", "boolean", "null", "object", "array"})
# Keywords that constrain nothing (a schema of only these accepts every value).
_ANNOTATIONS = frozenset({
    "title", "description", "default", "examples", "example", "$schema", "$id", "$anchor", "$comment",
    "$defs", "definitions", "strict", "deprecated", "readOnly", "writeOnly", "propertyOrdering",
})
# fmt: on
_OBJECT_KEYS = frozenset(
    {"properties", "required", "additionalProperties", "patternProperties", "minProperties", "maxProperties"}
)
_ARRAY_KEYS = frozenset(
    {"items", "prefixItems", "additionalItems", "minItems", "maxItems", "uniqueItems", "contains", "minContains"}
)
_STRING_KEYS = frozenset({"minLength", "maxLength", "pattern"})
_NUMBER_KEYS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"})
_COUNT_PAIRS = (
    ("minLength", "maxLength"),
    ("minItems", "maxItems"),
    ("minProperties", "maxProperties"),
    ("minContains", "maxContains"),
)
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_KEYS = ("additionalProperties", "additionalItems", "contains", "not", "propertyNames", "if", "then", "else")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")

_SOFT_DEPTH = 4  # past this nesting depth, prefer whatever ends the value
_HARD_DEPTH = 48  # past this, the schema's recursion does not end
_MAX_REF_HOPS = 32
_TRIES = 12  # seeded redraws before a constraint is declared unsatisfiable
_PATTERN_TRIES = 24
_UNIQUE_TRIES = 48
_NULL_SHARE = 0.2  # how often a nullable value is null (above the soft depth: always)
_OPTIONAL_SHARE = 0.5  # how often an optional property is present
_DEFAULT_SHARE = 0.25  # how often a valid default (or first example) is returned as is
_ALSO = "\x00also"  # merged-schema key: constraints a merge could not fold in, checked after drawing

_MISSING: Any = object()


class SchemaError(ValueError):
    """A schema the generator cannot honour; ``where`` is the path of the offending keyword."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


class _PatternProblem(ValueError):
    """A pattern the generator cannot generate from (raised inside the cached compiler, without a path)."""


class _NoMatch(Exception):
    """A pattern draw that cannot match (a back-reference to a group the draw did not set)."""


@dataclass(slots=True)
class _Ctx:
    rng: random.Random
    words: Sequence[str]
    root: Any
    ref_free: dict[int, tuple[Any, bool]] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- public API


def schema_instance(
    schema: Mapping[str, Any] | bool, rng: random.Random, *, words: Sequence[str] = DEFAULT_WORDS
) -> Any:
    """Draw from ``rng`` one JSON value valid against ``schema``; same schema and rng state, same value."""
    if not words:
        raise ValueError("words must not be empty")
    try:
        return _gen(schema, _Ctx(rng, words, schema), "schema", 0, 0)
    except RecursionError:
        raise SchemaError("schema", "recursion does not terminate") from None


def check_schema(schema: Any, where: str) -> None:
    """Raise ``SchemaError(path, problem)`` if ``schema`` is one the generator cannot honour."""
    _check(schema, where, schema)


# ------------------------------------------------------------------------------------- keyword accessors


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count(schema: Mapping[str, Any], key: str, where: str) -> int | None:
    """A non-negative integer keyword (Gemini's proto JSON may spell int64 as a digit string)."""
    value = schema.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if _is_number(value) and value >= 0 and float(value).is_integer():
        return int(value)
    raise SchemaError(f"{where}.{key}", f"must be a non-negative integer, not {value!r}")


def _number(schema: Mapping[str, Any], key: str, where: str) -> Fraction | None:
    value = schema.get(key)
    if value is None:
        return None
    if not _is_number(value):
        raise SchemaError(f"{where}.{key}", f"must be a finite number, not {value!r}")
    return Fraction(value)


def _mapping(schema: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = schema.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SchemaError(f"{where}.{key}", "must be an object")
    return value


def _str_list(schema: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = schema.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SchemaError(f"{where}.{key}", "must be a list of strings")
    return value


def _schema_list(schema: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = schema.get(key)
    if not isinstance(value, list) or not value:
        raise SchemaError(f"{where}.{key}", "must be a non-empty list of schemas")
    return value


def _types(schema: Mapping[str, Any], where: str) -> tuple[str, ...] | None:
    """The lower-cased type names (``null`` added for ``nullable: true``), or None when ``type`` is absent."""
    raw = schema.get("type")
    if raw is None:
        names: tuple[str, ...] | None = None
    elif isinstance(raw, str):
        names = (raw.lower(),)
    elif isinstance(raw, list) and raw and all(isinstance(name, str) for name in raw):
        names = tuple(dict.fromkeys(name.lower() for name in raw))
    else:
        raise SchemaError(f"{where}.type", "must be a type name or a non-empty list of type names")
    if names is None:
        return None
    for name in names:
        if name not in _TYPES:
            raise SchemaError(f"{where}.type", f"unknown type {name!r}")
    if schema.get("nullable") is True and "null" not in names:
        names = (*names, "null")
    return names


def _infer_types(schema: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The type a schema without ``type`` implies by its keywords, if any."""
    for keys, name in (
        (_OBJECT_KEYS, "object"),
        (_ARRAY_KEYS, "array"),
        (_STRING_KEYS, "string"),
        (_NUMBER_KEYS, "number"),
    ):
        if not keys.isdisjoint(schema) or (name == "string" and schema.get("format") in _FORMATS):
            return (name,) if schema.get("nullable") is not True else (name, "null")
    return None


def _is_trivial(schema: Mapping[str, Any]) -> bool:
    return all(key in _ANNOTATIONS for key in schema)


def _without(schema: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in schema.items() if key not in keys}


def _resolve(root: Any, ref: Any, where: str) -> Any:
    """The schema a local ``$ref`` (``#`` or a ``#/...`` JSON pointer) points to."""
    if not isinstance(ref, str):
        raise SchemaError(where, "must be a string")
    if ref in ("#", ""):
        return root
    if not ref.startswith("#/"):
        raise SchemaError(where, f"only local references (#/...) are supported, not {ref!r}")
    node = root
    for raw in ref[2:].split("/"):
        token = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise SchemaError(where, f"unresolvable reference {ref!r}")
    if not isinstance(node, Mapping | bool):
        raise SchemaError(where, f"{ref!r} does not point to a schema")
    return node


def _deref(schema: Any, ctx: _Ctx, where: str, hops: int = 0) -> Any:
    """``schema`` with a top-level ``$ref`` replaced by its target (merged with any sibling keywords)."""
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, Mapping):
        raise SchemaError(where, "a schema must be an object or a boolean")
    if "$ref" not in schema:
        return schema
    if hops >= _MAX_REF_HOPS:
        raise SchemaError(f"{where}.$ref", "reference chain does not end")
    target = _deref(_resolve(ctx.root, schema["$ref"], f"{where}.$ref"), ctx, where, hops + 1)
    rest = _without(schema, "$ref")
    return target if _is_trivial(rest) else _merge(rest, target, where)


# -------------------------------------------------------------------------------------------- generation


def _gen(schema: Any, ctx: _Ctx, where: str, depth: int, attempt: int) -> Any:
    if depth > _HARD_DEPTH:
        raise SchemaError(where, "recursion does not terminate (every branch nests deeper)")
    schema = _deref(schema, ctx, where)
    if schema is True:
        return _any_value(ctx, attempt)
    if schema is False:
        raise SchemaError(where, "the false schema admits no value")
    if _COMBINATORS.isdisjoint(schema):
        return _gen_plain(schema, ctx, where, depth, attempt)
    if _ALSO in schema:
        return _gen_checked(_without(schema, _ALSO), schema[_ALSO], ctx, where, depth, attempt)
    if "allOf" in schema:
        return _gen_all_of(schema, ctx, where, depth, attempt)
    if "oneOf" in schema:
        return _gen_one_of(schema, ctx, where, depth, attempt)
    if "anyOf" in schema:
        return _gen_any_of(schema, ctx, where, depth, attempt)
    if "if" in schema:
        return _gen_if(schema, ctx, where, depth, attempt)
    if "not" in schema:
        return _gen_not(schema, ctx, where, depth, attempt)
    return _gen_plain(schema, ctx, where, depth, attempt)


_COMBINATORS = frozenset({_ALSO, "allOf", "oneOf", "anyOf", "if", "not"})  # what _gen handles before _gen_plain


def _gen_checked(schema: Any, checks: Sequence[Any], ctx: _Ctx, where: str, depth: int, attempt: int) -> Any:
    """Draw from ``schema`` until the value also satisfies every schema in ``checks``."""
    for n in range(_TRIES):
        value = _gen(schema, ctx, where, depth, attempt + n)
        if all(_valid(check, value, ctx) for check in checks):
            return value
    raise SchemaError(where, "could not draw a value satisfying every combined constraint")


def _gen_all_of(schema: Mapping[str, Any], ctx: _Ctx, where: str, depth: int, attempt: int) -> Any:
    branches = _schema_list(schema, "allOf", where)
    merged: Any = _without(schema, "allOf")
    for index, branch in enumerate(branches):
        merged = _merge(merged, _deref(branch, ctx, f"{where}.allOf[{index}]"), where)
    return _gen_checked(merged, branches, ctx, where, depth, attempt)


def _branch_order(branches: Sequence[Any], ctx: _Ctx, depth: int) -> list[int]:
    """A seeded order to try branches in; past the soft depth, branches that end the value come first."""
    order = list(range(len(branches)))
    ctx.rng.shuffle(order)
    if depth >= _SOFT_DEPTH:
        order.sort(key=lambda index: _termination_rank(branches[index], ctx))
    return order


def _termination_rank(schema: Any, ctx: _Ctx) -> int:
    """0: admits null; 1: reaches no ``$ref`` (so it ends); 2: may recurse."""
    if isinstance(schema, bool):
        return 0 if schema else 2
    if not isinstance(schema, Mapping):
        return 2
    try:
        types = _types(schema, "")
    except SchemaError:
        types = None
    if (types is not None and "null" in types) or ("const" in schema and schema["const"] is None):
        return 0
    return 1 if _ref_free(schema, ctx) else 2


def _ref_free(schema: Any, ctx: _Ctx) -> bool:
    hit = ctx.ref_free.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    result = _scan_ref_free(schema)
    ctx.ref_free[id(schema)] = (schema, result)
    return result


def _scan_ref_free(node: Any) -> bool:
    if isinstance(node, Mapping):
        if "$ref" in node:
            return False
        skip = ("enum", "const", "default", "examples", "$defs", "definitions")
        return all(_scan_ref_free(value) for key, value in node.items() if key not in skip)
    if isinstance(node, list):
        return all(_scan_ref_free(value) for value in node)
    return True


def _branch_target(schema: Mapping[str, Any], key: str, index: int, ctx: _Ctx, where: str) -> Any:
    """Branch ``index`` of ``schema[key]`` merged with the keywords beside it."""
    branch = _deref(schema[key][index], ctx, f"{where}.{key}[{index}]")
    rest = _without(schema, key)
    return branch if _is_trivial(rest) else _merge(rest, branch, where)


def _gen_any_of(schema: Mapping[str, Any], ctx: _Ctx, where: str, depth: int, attempt: int) -> Any:
    branches = _schema_list(schema, "anyOf", where)
    error: SchemaError | None = None
    for index in _branch_order(branches, ctx, depth):
        try:
            target = _branch_target(schema, "anyOf", index, ctx, where)
            return _gen(target, ctx, f"{where}.anyOf[{index}]", depth, attempt)
        except SchemaError as exc:
            error = exc
    assert error is not None
    raise error


def _gen_one_of(schema: Mapping[str, Any], ctx: _Ctx, where: str, depth: int, attempt: int) -> Any:
    branches = _schema_list(schema, "oneOf", where)
    order = _branch_order(branches, ctx, depth)
    error: SchemaError | None = None
    for n in range(max(_TRIES, len(order))):
        index = order[n % len(order)]
        try:
            target = _branch_target(schema, "oneOf", index, ctx, where)
            value = _gen(target, ctx, f"{where}.oneOf[{index}]", depth, attempt + n)
        except SchemaError as exc:
            error = exc
            continue
        if _count_valid(branches, value, ctx, 2) == 1:
            return value
    raise error or SchemaError(f"{where}.oneOf", "could not draw a value matching exactly one branch")


def _gen_if(schema: Mapping[str, Any], ctx: _Ctx, where: str, depth: int, attempt: int) -> Any:
    """``if``/``then``/``else`` is ``anyOf: [allOf: [if, then], allOf: [not: if, else]]``."""
    condition = schema["if"]
    rest = _without(schema, "if", "then", "else")
    branches = [
        {"allOf": [condition, schema.get("then", True)]},
        {"allOf": [{"not": condition}, schema.get("else", True)]},
    ]
    return _gen_any_of({**rest, "anyOf": branches}, ctx, where, depth, attempt)


def _gen_not(schema: Mapping[str, Any], ctx: _Ctx, where: str, depth: int, attempt: int) -> Any:
    negated = schema["not"]
    if not isinstance(negated, Mapping | bool):
        raise SchemaError(f"{where}.not", "must be a schema")
    rest = _without(schema, "not")
    for n in range(2 * _TRIES):
        value = _gen(rest, ctx, where, depth, attempt + n)
        if not _valid(negated, value, ctx):
            return value
    raise SchemaError(f"{where}.not", "could not draw a value outside the negated schema")


def _gen_plain(schema: Mapping[str, Any], ctx: _Ctx, where: str, depth: int, attempt: int) -> Any:
    if ("default" in schema or "examples" in schema) and "format" not in schema:
        value = _try_default(schema, ctx)
        if value is not _MISSING:
            return value
    if "const" in schema:
        rest = _constraints(schema, "const")
        if rest and not _valid(rest, schema["const"], ctx):
            raise SchemaError(f"{where}.const", "the constant does not satisfy the rest of the schema")
        return copy.deepcopy(schema["const"])
    if "enum" in schema:
        return _gen_enum(schema, ctx, where)
    types = _types(schema, where) or _infer_types(schema)
    if types is None:
        return _any_value(ctx, attempt)
    return _GENERATORS[_pick_type(types, ctx, depth)](schema, ctx, where, depth)


def _constraints(schema: Mapping[str, Any], *drop: str) -> dict[str, Any]:
    """The keywords of ``schema`` that constrain a value, less ``drop``."""
    return {key: value for key, value in schema.items() if key not in _ANNOTATIONS and key not in drop}


def _try_default(schema: Mapping[str, Any], ctx: _Ctx) -> Any:
    candidates = []
    if "default" in schema:
        candidates.append(schema["default"])
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        candidates.append(examples[0])
    if not candidates or ctx.rng.random() >= _DEFAULT_SHARE:
        return _MISSING
    value = candidates[0]
    rest = _constraints(schema)
    if _json_value(value) and _valid(rest, value, ctx):
        return copy.deepcopy(value)
    return _MISSING


def _json_value(value: Any) -> bool:
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_json_value(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _json_value(item) for key, item in value.items())
    return False


def _gen_enum(schema: Mapping[str, Any], ctx: _Ctx, where: str) -> Any:
    options = schema["enum"]
    if not isinstance(options, list) or not options:
        raise SchemaError(f"{where}.enum", "must be a non-empty list")
    rest = _constraints(schema, "enum", "format")
    if rest:
        options = [option for option in options if _valid(rest, option, ctx)]
        if not options:
            raise SchemaError(f"{where}.enum", "no listed value satisfies the rest of the schema")
    return copy.deepcopy(ctx.rng.choice(options))


def _pick_type(types: Sequence[str], ctx: _Ctx, depth: int) -> str:
    if len(types) == 1:
        return types[0]
    if "null" in types:
        if depth >= _SOFT_DEPTH or ctx.rng.random() < _NULL_SHARE:
            return "null"
        types = [name for name in types if name != "null"]
        if len(types) == 1:
            return types[0]
    if depth >= _SOFT_DEPTH:
        scalars = [name for name in types if name not in ("object", "array")]
        types = scalars or types
    return ctx.rng.choice(types)


_ANY_KINDS = ("string", "integer", "boolean", "number", "null")


def _any_value(ctx: _Ctx, attempt: int) -> Any:
    """A simple value for a schema that says nothing (a seeded string; other kinds on redraws)."""
    kind = _ANY_KINDS[attempt % len(_ANY_KINDS)]
    if kind == "string":
        return _words_text(ctx, 0, None)
    if kind == "integer":
        return ctx.rng.randint(0, 100)
    if kind == "boolean":
        return ctx.rng.random() < 0.5
    if kind == "number":
        return ctx.rng.randint(0, 10_000) / 100
    return None


# ---------------------------------------------------------------------------------------------- strings


def _words_text(ctx: _Ctx, lo: int, hi: int | None) -> str:
    """Words joined by spaces, ``lo`` to ``hi`` characters long."""
    rng, words = ctx.rng, ctx.words
    text = " ".join([rng.choice(words) for _ in range(rng.randint(1, 4))])
    while len(text) < lo:
        text += " " + rng.choice(words)
    if hi is not None and len(text) > hi:
        text = text[:hi]
        if text.endswith(" "):
            text = text[:-1] + "s"
    return text


def _gen_string(schema: Mapping[str, Any], ctx: _Ctx, where: str, depth: int) -> str:
    lo = _count(schema, "minLength", where) or 0
    hi = _count(schema, "maxLength", where)
    if hi is not None and lo > hi:
        raise SchemaError(f"{where}.minLength", f"minLength {lo} exceeds maxLength {hi}")
    pattern = schema.get("pattern")
    if pattern is not None:
        return _pattern_string(pattern, ctx, lo, hi, f"{where}.pattern")
    fmt = schema.get("format")
    maker = _FORMATS.get(fmt) if isinstance(fmt, str) else None
    if maker is None:
        return _words_text(ctx, lo, hi)
    for _ in range(_TRIES):
        text = maker(ctx)
        if lo <= len(text) and (hi is None or len(text) <= hi):
            return text
    raise SchemaError(f"{where}.format", f"cannot fit a {fmt!r} value within length {lo}..{hi}")


def _slug(ctx: _Ctx) -> str:
    word = ctx.rng.choice(ctx.words)
    slug = "".join(char for char in word.lower() if char.isascii() and char.isalnum())
    return slug or "item"


def _fmt_date(ctx: _Ctx) -> str:
    rng = ctx.rng
    return f"{rng.randint(2020, 2026):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _fmt_time(ctx: _Ctx) -> str:
    rng = ctx.rng
    return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"


def _fmt_date_time(ctx: _Ctx) -> str:
    return f"{_fmt_date(ctx)}T{_fmt_time(ctx)}"


def _fmt_duration(ctx: _Ctx) -> str:
    rng = ctx.rng
    days, hours, minutes = rng.randint(1, 30), rng.randint(1, 23), rng.randint(1, 59)
    return rng.choice((f"P{days}D", f"PT{hours}H{minutes}M", f"P{days}DT{hours}H", f"PT{minutes}M"))


def _fmt_email(ctx: _Ctx) -> str:
    return f"{_slug(ctx)}.{_slug(ctx)}@example.{ctx.rng.choice(('com', 'org', 'net'))}"


def _fmt_hostname(ctx: _Ctx) -> str:
    return f"{_slug(ctx)}.example.com"


def _fmt_ipv4(ctx: _Ctx) -> str:
    rng = ctx.rng
    return ".".join(str(octet) for octet in (rng.randint(1, 223), *(rng.randint(0, 255) for _ in range(3))))


def _fmt_ipv6(ctx: _Ctx) -> str:
    return "2001:db8:" + ":".join(f"{ctx.rng.getrandbits(16):x}" for _ in range(6))


def _fmt_uuid(ctx: _Ctx) -> str:
    return str(uuid.UUID(int=ctx.rng.getrandbits(128), version=4))


def _fmt_uri(ctx: _Ctx) -> str:
    return f"https://{_slug(ctx)}.example.com/{_slug(ctx)}"


def _fmt_uri_reference(ctx: _Ctx) -> str:
    return f"/{_slug(ctx)}/{_slug(ctx)}"


def _fmt_uri_template(ctx: _Ctx) -> str:
    return f"https://example.com/{_slug(ctx)}/{{id}}"


def _fmt_json_pointer(ctx: _Ctx) -> str:
    return f"/{_slug(ctx)}/{ctx.rng.randint(0, 9)}"


def _fmt_relative_json_pointer(ctx: _Ctx) -> str:
    return f"{ctx.rng.randint(0, 3)}/{_slug(ctx)}"


def _fmt_regex(ctx: _Ctx) -> str:
    return f"^{_slug(ctx)}[0-9]+$"


def _fmt_byte(ctx: _Ctx) -> str:
    return base64.b64encode(_words_text(ctx, 0, None).encode()).decode("ascii")


_FORMATS: dict[str, Callable[[_Ctx], str]] = {
    "date-time": _fmt_date_time,
    "date": _fmt_date,
    "time": _fmt_time,
    "duration": _fmt_duration,
    "email": _fmt_email,
    "idn-email": _fmt_email,
    "hostname": _fmt_hostname,
    "idn-hostname": _fmt_hostname,
    "ipv4": _fmt_ipv4,
    "ipv6": _fmt_ipv6,
    "uuid": _fmt_uuid,
    "uri": _fmt_uri,
    "iri": _fmt_uri,
    "url": _fmt_uri,
    "uri-reference": _fmt_uri_reference,
    "iri-reference": _fmt_uri_reference,
    "uri-template": _fmt_uri_template,
    "json-pointer": _fmt_json_pointer,
    "relative-json-pointer": _fmt_relative_json_pointer,
    "regex": _fmt_regex,
    "byte": _fmt_byte,
}


# ---------------------------------------------------------------------------------------------- patterns


@dataclass(frozen=True, slots=True)
class _CompiledPattern:
    regex: re.Pattern[str]
    seq: tuple[Any, ...]


_DIGITS = ((48, 57),)
_LETTERS = ((65, 90), (97, 122))
_WORD = ((48, 57), (65, 90), (95, 95), (97, 122))
_PREFERRED = "".join(chr(c) for a, b in ((48, 57), (65, 90), (97, 122)) for c in range(a, b + 1))
_PRINTABLE = "".join(chr(c) for c in range(32, 127))
# What a class item generates (non-negated), and what it matches (to subtract it from a negated class).
_CATEGORY_SEGMENTS: dict[str, tuple[tuple[int, int], ...]] = {
    "DIGIT": _DIGITS,
    "NOT_DIGIT": _LETTERS,
    "WORD": _WORD,
    "NOT_WORD": ((32, 32), (44, 46)),
    "SPACE": ((32, 32),),
    "NOT_SPACE": ((48, 57), (65, 90), (97, 122)),
    "LINEBREAK": ((10, 10),),
    "NOT_LINEBREAK": ((48, 57), (65, 90), (97, 122)),
}
_CATEGORY_TESTS: dict[str, Callable[[str], bool]] = {
    "DIGIT": str.isdigit,
    "NOT_DIGIT": lambda char: not char.isdigit(),
    "WORD": lambda char: char.isalnum() or char == "_",
    "NOT_WORD": lambda char: not (char.isalnum() or char == "_"),
    "SPACE": str.isspace,
    "NOT_SPACE": lambda char: not char.isspace(),
    "LINEBREAK": lambda char: char == "\n",
    "NOT_LINEBREAK": lambda char: char != "\n",
}


def _category(code: Any) -> str:
    name = str(getattr(code, "name", code)).removeprefix("CATEGORY_").removeprefix("UNI_").removeprefix("LOC_")
    if name not in _CATEGORY_SEGMENTS:
        raise _PatternProblem(f"unsupported character category {code}")
    return name


@functools.lru_cache(maxsize=512)
def _compile_pattern(pattern: str) -> _CompiledPattern:
    """The generator tree for ``pattern`` (cached by pattern string)."""
    try:
        regex = re.compile(pattern)
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise _PatternProblem(f"invalid pattern {pattern!r}: {exc}") from None
    return _CompiledPattern(regex, _convert(parsed))


def _convert(subpattern: Any) -> tuple[Any, ...]:
    """``re._parser`` output as generator nodes: (lit, text), (set, starts, ends, cumulative), (alt, seqs),
    (group, id, seq), (rep, min, max|None, seq), (ref, id), (cond, id, yes, no)."""
    nodes: list[Any] = []
    for op, av in subpattern:
        if op is sre_parse.LITERAL:
            if nodes and nodes[-1][0] == "lit":
                nodes[-1] = ("lit", nodes[-1][1] + chr(av))
            else:
                nodes.append(("lit", chr(av)))
        elif op is sre_parse.NOT_LITERAL:
            nodes.append(_char_set([(sre_parse.NEGATE, None), (sre_parse.LITERAL, av)]))
        elif op is sre_parse.ANY:
            nodes.append(_segments_node(_CATEGORY_SEGMENTS["NOT_SPACE"]))
        elif op is sre_parse.IN:
            nodes.append(_char_set(av))
        elif op is sre_parse.CATEGORY:
            nodes.append(_char_set([(op, av)]))
        elif op is sre_parse.BRANCH:
            nodes.append(("alt", tuple(_convert(branch) for branch in av[1])))
        elif op is sre_parse.SUBPATTERN:
            nodes.append(("group", av[0], _convert(av[3])))
        elif op is sre_parse.ATOMIC_GROUP:
            nodes.append(("group", None, _convert(av)))
        elif op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, sre_parse.POSSESSIVE_REPEAT):
            low, high, body = av
            nodes.append(("rep", low, None if high is sre_parse.MAXREPEAT else high, _convert(body)))
        elif op is sre_parse.AT:
            continue  # anchors and word boundaries: the drawn string is checked against the regex anyway
        elif op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
            if av[0] < 0:
                raise _PatternProblem("lookbehind assertions are not supported")
            continue  # lookahead: not generated from; draws that break it are rejected by the final check
        elif op is sre_parse.GROUPREF:
            nodes.append(("ref", av))
        elif op is sre_parse.GROUPREF_EXISTS:
            group, yes, no = av
            nodes.append(("cond", group, _convert(yes), _convert(no) if no is not None else ()))
        else:
            raise _PatternProblem(f"unsupported pattern construct {op}")
    return tuple(nodes)


def _char_set(items: Sequence[tuple[Any, Any]]) -> tuple[Any, ...]:
    negate = False
    ranges: list[tuple[int, int]] = []
    categories: list[str] = []
    for op, av in items:
        if op is sre_parse.NEGATE:
            negate = True
        elif op is sre_parse.LITERAL:
            ranges.append((av, av))
        elif op is sre_parse.RANGE:
            ranges.append(av)
        elif op is sre_parse.CATEGORY:
            categories.append(_category(av))
        else:
            raise _PatternProblem(f"unsupported character class item {op}")
    if not negate:
        segments = [*ranges, *(segment for name in categories for segment in _CATEGORY_SEGMENTS[name])]
        return _segments_node(_drop_surrogates(segments))

    def matched(char: str) -> bool:
        code = ord(char)
        return any(a <= code <= b for a, b in ranges) or any(_CATEGORY_TESTS[name](char) for name in categories)

    allowed = [char for char in _PREFERRED if not matched(char)] or [char for char in _PRINTABLE if not matched(char)]
    if not allowed:
        raise _PatternProblem("a negated character class admits no printable ASCII character")
    return _segments_node([(ord(char), ord(char)) for char in allowed])


def _drop_surrogates(segments: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for a, b in segments:
        if b < 0xD800 or a > 0xDFFF:
            out.append((a, b))
            continue
        if a < 0xD800:
            out.append((a, 0xD7FF))
        if b > 0xDFFF:
            out.append((0xE000, b))
    if not out:
        raise _PatternProblem("a character class admits only surrogate code points")
    return out


def _segments_node(segments: Sequence[tuple[int, int]]) -> tuple[Any, ...]:
    starts, cumulative, total = [], [], 0
    for a, b in segments:
        starts.append(a)
        total += b - a + 1
        cumulative.append(total)
    return ("set", tuple(starts), tuple(cumulative))


def _emit(seq: Sequence[Any], rng: random.Random, extra: int, out: list[str], groups: dict[int, str]) -> None:
    """Append to ``out`` a draw of ``seq``; ``extra`` stretches (or, below zero, shrinks) repeats."""
    for node in seq:
        kind = node[0]
        if kind == "lit":
            out.append(node[1])
        elif kind == "set":
            cumulative = node[2]
            pick = rng.randrange(cumulative[-1])
            index = bisect.bisect_right(cumulative, pick)
            offset = pick - (cumulative[index - 1] if index else 0)
            out.append(chr(node[1][index] + offset))
        elif kind == "rep":
            low, high = node[1], node[2]
            floor = low + max(0, extra) // 2
            top = low + max(0, 3 + extra)
            if high is not None:
                floor, top = min(floor, high), min(top, high)
            for _ in range(rng.randint(floor, top)):
                _emit(node[3], rng, extra, out, groups)
        elif kind == "alt":
            _emit(rng.choice(node[1]), rng, extra, out, groups)
        elif kind == "group":
            start = len(out)
            _emit(node[2], rng, extra, out, groups)
            if node[1] is not None:
                groups[node[1]] = "".join(out[start:])
        elif kind == "ref":
            if node[1] not in groups:
                raise _NoMatch
            out.append(groups[node[1]])
        else:  # cond
            _emit(node[2] if node[1] in groups else node[3], rng, extra, out, groups)


def _pattern_string(pattern: Any, ctx: _Ctx, lo: int, hi: int | None, where: str) -> str:
    if not isinstance(pattern, str):
        raise SchemaError(where, "must be a string")
    try:
        compiled = _compile_pattern(pattern)
    except _PatternProblem as exc:
        raise SchemaError(where, str(exc)) from None
    extra = 0
    for _ in range(_PATTERN_TRIES):
        out: list[str] = []
        try:
            _emit(compiled.seq, ctx.rng, extra, out, {})
        except _NoMatch:
            continue
        text = "".join(out)
        if len(text) < lo:
            extra = min(max(extra, 0) * 2 + 4, 2 * lo + 8)
        elif hi is not None and len(text) > hi:
            extra = -3
        elif compiled.regex.search(text) is not None:
            return text
    bounds = f" within length {lo}..{hi if hi is not None else ''}" if lo or hi is not None else ""
    raise SchemaError(where, f"could not generate a string matching {pattern!r}{bounds}")


# ----------------------------------------------------------------------------------------------- numbers


def _bounds(schema: Mapping[str, Any], where: str) -> tuple[Fraction | None, bool, Fraction | None, bool]:
    """(low, low exclusive, high, high exclusive), from either exclusive-bound form."""
    bounds: list[Any] = []
    for plain, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        value, is_exclusive = _number(schema, plain, where), False
        flag = schema.get(exclusive)
        if isinstance(flag, bool):
            is_exclusive = flag and value is not None
        elif flag is not None:
            strict = _number(schema, exclusive, where)
            assert strict is not None
            tighter = value is None or (strict >= value if plain == "minimum" else strict <= value)
            if tighter:
                value, is_exclusive = strict, True
        bounds += [value, is_exclusive]
    return bounds[0], bounds[1], bounds[2], bounds[3]


def _multiple(schema: Mapping[str, Any], where: str) -> Fraction | None:
    value = schema.get("multipleOf")
    if value is None:
        return None
    if not _is_number(value) or value <= 0:
        raise SchemaError(f"{where}.multipleOf", f"must be a positive number, not {value!r}")
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


def _units(multiple: Fraction | None, integer: bool) -> tuple[Fraction, ...]:
    """Candidate steps to draw in: whole multiples of the first one whose range is not empty."""
    if integer:
        return (Fraction(multiple.numerator) if multiple is not None else Fraction(1),)
    if multiple is not None:
        return (multiple,)
    return (Fraction(1, 100), Fraction(1, 10**4), Fraction(1, 10**6))


def _k_range(bounds: tuple[Fraction | None, bool, Fraction | None, bool], unit: Fraction) -> tuple[int, int] | None:
    """The multiples k of ``unit`` within bounds (a missing bound replaced by a window of plain values)."""
    lo, lo_x, hi, hi_x = bounds
    width = max(Fraction(100), 10 * unit)
    if lo is None and hi is None:
        lo, lo_x, hi, hi_x = Fraction(0), False, width, False
    elif lo is None:
        assert hi is not None
        lo, lo_x = (Fraction(0) if hi > 0 else hi - width), False
        if hi - lo > width:
            hi, hi_x = lo + width, False
    elif hi is None:
        hi, hi_x = lo + width, False
    k_min, k_max = math.ceil(lo / unit), math.floor(hi / unit)
    if lo_x and k_min * unit == lo:
        k_min += 1
    if hi_x and k_max * unit == hi:
        k_max -= 1
    return (k_min, k_max) if k_min <= k_max else None


def _numeric_span(schema: Mapping[str, Any], integer: bool, where: str) -> tuple[Fraction, int, int]:
    bounds = _bounds(schema, where)
    for unit in _units(_multiple(schema, where), integer):
        span = _k_range(bounds, unit)
        if span is not None:
            return unit, span[0], span[1]
    kind = "integer" if integer else "number"
    raise SchemaError(where, f"no {kind} satisfies the bounds and multipleOf")


def _gen_numeric(schema: Mapping[str, Any], ctx: _Ctx, where: str, integer: bool) -> int | float:
    if _NUMBER_KEYS.isdisjoint(schema):  # the common case, without fractions
        return ctx.rng.randint(0, 100) if integer else ctx.rng.randint(0, 10_000) / 100
    if integer:
        span = _int_span(schema, where)
        if span is not None:
            step, k_min, k_max = span
            return ctx.rng.randint(k_min, k_max) * step
    bounds = _bounds(schema, where)
    for unit in _units(_multiple(schema, where), integer):
        span = _k_range(bounds, unit)
        if span is not None:
            value = _draw_multiple(schema, ctx, unit, span, integer)
            if value is not None:
                return value
    kind = "integer" if integer else "number"
    raise SchemaError(where, f"no representable {kind} satisfies the bounds and multipleOf")


def _int_span(schema: Mapping[str, Any], where: str) -> tuple[int, int, int] | None:
    """(step, k_min, k_max) in plain integers, when every numeric keyword is an int (else None)."""
    values = [schema.get(key) for key in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "multipleOf")]
    if not all(value is None or type(value) is int for value in values):
        return None
    minimum, exclusive_min, maximum, exclusive_max, step = values
    step = step or 1
    if step < 1:
        raise SchemaError(f"{where}.multipleOf", f"must be a positive number, not {step!r}")
    lows = [value for value in (minimum, None if exclusive_min is None else exclusive_min + 1) if value is not None]
    highs = [value for value in (maximum, None if exclusive_max is None else exclusive_max - 1) if value is not None]
    lo, hi = (max(lows) if lows else None), (min(highs) if highs else None)
    width = max(100, 10 * step)
    if lo is None and hi is None:
        lo, hi = 0, width
    elif lo is None:
        assert hi is not None
        lo = 0 if hi > 0 else hi - width
        hi = min(hi, lo + width)
    elif hi is None:
        hi = lo + width
    k_min, k_max = -(-lo // step), hi // step
    if k_min > k_max:
        raise SchemaError(where, "no integer satisfies the bounds and multipleOf")
    return step, k_min, k_max


def _draw_multiple(
    schema: Mapping[str, Any], ctx: _Ctx, unit: Fraction, span: tuple[int, int], integer: bool
) -> int | float | None:
    """A multiple of ``unit`` in ``span`` that passes the float comparisons a validator makes, if any."""

    def make(k: int) -> int | float:
        return int(k * unit) if integer else float(k * unit)

    k_min, k_max = span
    for _ in range(_TRIES):
        value = make(ctx.rng.randint(k_min, k_max))
        if _number_ok(value, schema):
            return value
    for k in (*range(k_min, min(k_max, k_min + 32) + 1), *range(max(k_min, k_max - 32), k_max + 1)):
        value = make(k)  # float rounding can land on an exclusive bound
        if _number_ok(value, schema):
            return value
    return None


def _gen_integer(schema: Mapping[str, Any], ctx: _Ctx, where: str, depth: int) -> int | float:
    return _gen_numeric(schema, ctx, where, integer=True)


def _gen_number(schema: Mapping[str, Any], ctx: _Ctx, where: str, depth: int) -> int | float:
    return _gen_numeric(schema, ctx, where, integer=False)


def _gen_boolean(schema: Mapping[str, Any], ctx: _Ctx, where: str, depth: int) -> bool:
    return ctx.rng.random() < 0.5


def _gen_null(schema: Mapping[str, Any], ctx: _Ctx, where: str, depth: int) -> None:
    return None


# ----------------------------------------------------------------------------------------------- objects


def _ordered_keys(
    schema: Mapping[str, Any], props: Mapping[str, Any], required: Sequence[str], where: str
) -> list[str]:
    """Candidate keys in emission order: ``propertyOrdering``, then ``properties``, then other required."""
    ordering = _str_list(schema, "propertyOrdering", where)
    if not ordering and all(key in props for key in required):
        return list(props)
    keys = [key for key in ordering if key in props or key in required]
    seen = set(keys)
    keys += [key for key in props if key not in seen]
    seen.update(keys)
    keys += [key for key in dict.fromkeys(required) if key not in seen]
    return keys


def _matching(patterns: Mapping[str, Any], key: str) -> list[Any]:
    return [sub for pattern, sub in patterns.items() if _regex(pattern).search(key)]


@functools.lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _key_schema(key: str, props: Mapping[str, Any], patterns: Mapping[str, Any], additional: Any) -> Any:
    """The schema a property's value must satisfy, or False if the key is not allowed."""
    applicable = [props[key]] if key in props else []
    if patterns:
        applicable += _matching(patterns, key)
    if not applicable:
        return additional
    return applicable[0] if len(applicable) == 1 else {"allOf": applicable}


def _gen_object(schema: Mapping[str, Any], ctx: _Ctx, where: str, depth: int) -> dict[str, Any]:
    props = _mapping(schema, "properties", where)
    required = _str_list(schema, "required", where)
    patterns = _mapping(schema, "patternProperties", where)
    additional = schema.get("additionalProperties", True)
    lo = _count(schema, "minProperties", where) or 0
    hi = _count(schema, "maxProperties", where)
    if hi is not None and lo > hi:
        raise SchemaError(f"{where}.minProperties", f"minProperties {lo} exceeds maxProperties {hi}")
    required_set = set(required)
    if hi is not None and len(required_set) > hi:
        raise SchemaError(f"{where}.maxProperties", f"{len(required_set)} required properties exceed {hi}")
    keys = _ordered_keys(schema, props, required, where)
    deep = depth >= _SOFT_DEPTH
    budget = (hi - len(required_set)) if hi is not None else len(keys)
    chosen: list[str] = []
    skipped: list[str] = []
    for key in keys:
        if key in required_set:
            chosen.append(key)
        elif not deep and budget > 0 and ctx.rng.random() < _OPTIONAL_SHARE:
            chosen.append(key)
            budget -= 1
        else:
            skipped.append(key)
    if len(chosen) < lo:  # top up with optional properties, in order
        topping = set(skipped[: lo - len(chosen)])
        chosen = [key for key in keys if key in topping or key in chosen]
    out: dict[str, Any] = {}
    for key in chosen:
        sub = _key_schema(key, props, patterns, additional)
        if sub is False:
            raise SchemaError(f"{where}.required", f"required property {key!r} is not allowed by the schema")
        out[key] = _gen(sub, ctx, f"{where}.properties.{key}", depth + 1, 0)
    wanted = lo
    is_map = "properties" not in schema and (isinstance(additional, Mapping) or bool(patterns))
    if is_map and not deep:  # a few entries
        wanted = max(lo, ctx.rng.randint(1, 3))
    if hi is not None:
        wanted = min(wanted, hi)
    if len(out) < wanted:
        _add_extra(out, wanted, schema, ctx, where, depth)
    return out


def _add_extra(out: dict[str, Any], wanted: int, schema: Mapping[str, Any], ctx: _Ctx, where: str, depth: int) -> None:
    """Add properties beyond ``properties`` until ``out`` has ``wanted`` (for minProperties, or a map)."""
    props = _mapping(schema, "properties", where)
    patterns = _mapping(schema, "patternProperties", where)
    additional = schema.get("additionalProperties", True)
    names = schema.get("propertyNames", True)
    for n in range(4 * _TRIES + wanted):
        if len(out) >= wanted:
            return
        if patterns and (additional is False or n % 2 == 0):
            pattern = ctx.rng.choice(list(patterns))
            key = _pattern_string(pattern, ctx, 0, None, f"{where}.patternProperties.{pattern}")
            sub, sub_where = _key_schema(key, {}, patterns, True), f"{where}.patternProperties.{pattern}"
        elif additional is not False:
            key = _slug(ctx) if n < _TRIES else f"{_slug(ctx)}_{n}"
            if patterns and _matching(patterns, key):
                continue
            sub, sub_where = additional, f"{where}.additionalProperties"
        else:
            break
        if key in out or key in props or (names is not True and not _valid(names, key, ctx)):
            continue
        out[key] = _gen(sub, ctx, sub_where, depth + 1, 0)
    if len(out) < wanted:
        raise SchemaError(f"{where}.minProperties", f"could not add properties to reach {wanted}")


# ------------------------------------------------------------------------------------------------ arrays


def _array_parts(schema: Mapping[str, Any], where: str) -> tuple[list[Any], Any]:
    """(prefix schemas, schema for the items after them), from either ``prefixItems`` or list ``items``."""
    items = schema.get("items", True)
    if isinstance(items, list):
        return items, schema.get("additionalItems", True)
    prefix = schema.get("prefixItems", [])
    if not isinstance(prefix, list):
        raise SchemaError(f"{where}.prefixItems", "must be a list of schemas")
    return prefix, items


def _gen_array(schema: Mapping[str, Any], ctx: _Ctx, where: str, depth: int) -> list[Any]:
    prefix, items = _array_parts(schema, where)
    lo = _count(schema, "minItems", where) or 0
    hi = _count(schema, "maxItems", where)
    closed = next((index for index, sub in enumerate(prefix) if sub is False), len(prefix) if items is False else None)
    if closed is not None:
        hi = closed if hi is None else min(hi, closed)
    if hi is not None and lo > hi:
        raise SchemaError(f"{where}.minItems", f"minItems {lo} exceeds the most items allowed ({hi})")
    if depth >= _SOFT_DEPTH:
        count = lo
    elif prefix:
        count = max(lo, len(prefix) if hi is None else min(hi, len(prefix)))
    else:
        base = max(lo, 1) if hi is None else min(max(lo, 1), hi)
        top = base + 2 if hi is None else min(base + 2, hi)
        count = ctx.rng.randint(base, top)
    unique = schema.get("uniqueItems") is True
    out: list[Any] = []
    for index in range(count):
        value = _gen_item(schema, prefix, items, index, out, unique, ctx, where, depth)
        if value is _MISSING:
            if len(out) >= lo:
                break
            raise SchemaError(f"{where}.uniqueItems", f"could not draw {lo} distinct items")
        out.append(value)
    if "contains" in schema:
        _ensure_contains(out, schema, prefix, items, hi, unique, ctx, where, depth)
    return out


def _item_schema(prefix: Sequence[Any], items: Any, index: int, where: str) -> tuple[Any, str]:
    if index < len(prefix):
        return prefix[index], f"{where}.prefixItems[{index}]"
    return items, f"{where}.items"


def _gen_item(
    schema: Mapping[str, Any],
    prefix: Sequence[Any],
    items: Any,
    index: int,
    out: Sequence[Any],
    unique: bool,
    ctx: _Ctx,
    where: str,
    depth: int,
    extra: Any = None,
) -> Any:
    """Item ``index`` (also satisfying ``extra`` if given); _MISSING if no distinct draw was found."""
    sub, sub_where = _item_schema(prefix, items, index, where)
    if extra is not None:
        sub = {"allOf": [sub, extra]}
    for attempt in range(_UNIQUE_TRIES if unique else 1):
        value = _gen(sub, ctx, sub_where, depth + 1, attempt)
        if not unique or not any(_json_equal(value, other) for other in out):
            return value
        domain = _finite_domain(_deref(sub, ctx, sub_where))
        if domain is not None:  # pick among the values not used yet
            unused = [v for v in domain if not any(_json_equal(v, o) for o in out) and _valid(sub, v, ctx)]
            return copy.deepcopy(ctx.rng.choice(unused)) if unused else _MISSING
    return _MISSING


def _finite_domain(schema: Any) -> list[Any] | None:
    """Every value a schema of only a few values admits (enum, const, boolean, null), else None."""
    if not isinstance(schema, Mapping):
        return None
    if "const" in schema:
        return [schema["const"]]
    if isinstance(schema.get("enum"), list):
        return schema["enum"]
    try:
        types = _types(schema, "")
    except SchemaError:
        return None
    if types is not None and set(types) <= {"boolean", "null"}:
        return [
            value
            for name, values in (("boolean", [False, True]), ("null", [None]))
            if name in types
            for value in values
        ]
    return None


def _ensure_contains(
    out: list[Any],
    schema: Mapping[str, Any],
    prefix: Sequence[Any],
    items: Any,
    hi: int | None,
    unique: bool,
    ctx: _Ctx,
    where: str,
    depth: int,
) -> None:
    """Make at least ``minContains`` (default 1) items match ``contains``: append, or replace from the end."""
    contains = schema["contains"]
    need = _count(schema, "minContains", where)
    need = 1 if need is None else need
    have = sum(1 for value in out if _valid(contains, value, ctx))
    replace = len(out) - 1
    while have < need:
        if hi is None or len(out) < hi:
            index = len(out)
        else:
            while replace >= 0 and _valid(contains, out[replace], ctx):
                replace -= 1
            if replace < 0:
                raise SchemaError(f"{where}.contains", f"cannot fit {need} matching items")
            index = replace
        others = out[:index] + out[index + 1 :]
        value = _gen_item(schema, prefix, items, index, others, unique, ctx, where, depth, extra=contains)
        if value is _MISSING:
            raise SchemaError(f"{where}.contains", "could not draw a distinct matching item")
        if index == len(out):
            out.append(value)
        else:
            out[index] = value
        have += 1


_GENERATORS: dict[str, Callable[[Mapping[str, Any], _Ctx, str, int], Any]] = {
    "string": _gen_string,
    "integer": _gen_integer,
    "number": _gen_number,
    "boolean": _gen_boolean,
    "null": _gen_null,
    "object": _gen_object,
    "array": _gen_array,
}


# -------------------------------------------------------------------------------------------------- merge


def _merge(a: Any, b: Any, where: str) -> Any:
    """One schema satisfied only by values satisfying both (top-level ``$ref`` already resolved).

    What cannot be folded in (two different patterns, say) goes to ``_ALSO``, checked after drawing."""
    if a is False or b is False:
        return False
    if a is True or b is True:
        return b if a is True else a
    if _is_trivial(a) or _is_trivial(b):
        return {**b, **a} if _is_trivial(b) else {**a, **b}
    out = dict(a)
    also: list[Any] = [*a.get(_ALSO, ()), *b.get(_ALSO, ())]
    conditional = "if" in a and "if" in b
    for key, value in b.items():
        if key in _MERGED_APART or (conditional and key in ("if", "then", "else")):
            continue
        if key not in out:
            out[key] = value
            continue
        merger = _MERGERS.get(key)
        merged = merger(out[key], value, where) if merger is not None else _MISSING
        if merged is not _MISSING:
            out[key] = merged
        elif key not in _ANNOTATIONS and not _json_equal(out[key], value):
            also.append({key: value})
    if conditional:
        also.append({key: b[key] for key in ("if", "then", "else") if key in b})
    _merge_types(a, b, out, where)
    _merge_bounds(a, b, out, where)
    _merge_object(a, b, out)
    _merge_prefix(a, b, out)
    if also:
        out[_ALSO] = also
    return out


# Keywords _merge combines on their own (they interact with others), not through _MERGERS.
_MERGED_APART = frozenset(
    {"type", "nullable", "properties", "additionalProperties", "patternProperties", "prefixItems", _ALSO}
    | (_NUMBER_KEYS - {"multipleOf"})
)


def _merge_types(a: Mapping[str, Any], b: Mapping[str, Any], out: dict[str, Any], where: str) -> None:
    ta, tb = _types(a, where), _types(b, where)
    if ta is None and tb is None:
        return
    out.pop("nullable", None)
    if ta is None or tb is None:
        out["type"] = list(ta if ta is not None else tb)  # type: ignore[arg-type]
        return
    common = [name for name in ta if name in tb]
    if "integer" in ta and "number" in tb and "integer" not in common:
        common.append("integer")
    if "number" in ta and "integer" in tb and "integer" not in common:
        common.append("integer")
    if not common:
        raise SchemaError(f"{where}.type", f"combined schemas admit no common type ({list(ta)} vs {list(tb)})")
    out["type"] = common


def _canon_bounds(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The numeric bounds, with the draft-4 boolean exclusive form rewritten to the numeric form."""
    out: dict[str, Any] = {}
    for plain, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        value, flag = schema.get(plain), schema.get(exclusive)
        if isinstance(flag, bool):
            if flag and value is not None:
                out[exclusive] = value
                value = None
        elif flag is not None:
            out[exclusive] = flag
        if value is not None:
            out[plain] = value
    return out


def _merge_bounds(a: Mapping[str, Any], b: Mapping[str, Any], out: dict[str, Any], where: str) -> None:
    keys = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
    if not any(key in a or key in b for key in keys):
        return
    ca, cb = _canon_bounds(a), _canon_bounds(b)
    for key in keys:
        out.pop(key, None)
        values = [side[key] for side in (ca, cb) if key in side]
        if not all(_is_number(value) for value in values):
            raise SchemaError(f"{where}.{key}", "must be a finite number")
        if values:
            out[key] = max(values) if key in ("minimum", "exclusiveMinimum") else min(values)


def _pattern_covers(schema: Mapping[str, Any], key: str) -> bool:
    patterns = schema.get("patternProperties")
    return isinstance(patterns, Mapping) and bool(_matching(patterns, key))


def _merge_object(a: Mapping[str, Any], b: Mapping[str, Any], out: dict[str, Any]) -> None:
    """Properties of both; a key one side would call additional must satisfy that side's additionalProperties."""
    keys = ("properties", "additionalProperties", "patternProperties")
    if not any(key in a or key in b for key in keys):
        return
    pa, pb = a.get("properties") or {}, b.get("properties") or {}
    merged: dict[str, Any] = {}
    for key in (*pa, *(key for key in pb if key not in pa)):
        parts: list[Any] | None = []
        for side, props in ((a, pa), (b, pb)):
            if key in props:
                parts.append(props[key])
            elif not _pattern_covers(side, key):
                extra = side.get("additionalProperties", True)
                if extra is False:
                    parts = None
                    break
                if extra is not True:
                    parts.append(extra)
        if parts is not None:
            merged[key] = parts[0] if len(parts) == 1 else {"allOf": parts}
    if merged or "properties" in a or "properties" in b:
        out["properties"] = merged
    aa, ab = a.get("additionalProperties", True), b.get("additionalProperties", True)
    if "additionalProperties" in a or "additionalProperties" in b:
        if aa is False or ab is False:
            out["additionalProperties"] = False
        elif aa is True or ab is True:
            out["additionalProperties"] = ab if aa is True else aa
        else:
            out["additionalProperties"] = {"allOf": [aa, ab]}
    if "patternProperties" in a or "patternProperties" in b:
        patterns = dict(a.get("patternProperties") or {})
        for pattern, sub in (b.get("patternProperties") or {}).items():
            patterns[pattern] = {"allOf": [patterns[pattern], sub]} if pattern in patterns else sub
        out["patternProperties"] = patterns


def _both(x: Any, y: Any) -> Any:
    if x is False or y is False:
        return False
    if x is True or y is True:
        return y if x is True else x
    return {"allOf": [x, y]}


def _merge_prefix(a: Mapping[str, Any], b: Mapping[str, Any], out: dict[str, Any]) -> None:
    """Item i must satisfy each side's prefixItems[i], or that side's items past its prefix."""
    if "prefixItems" not in a and "prefixItems" not in b:
        return
    pa, pb = a.get("prefixItems") or [], b.get("prefixItems") or []
    ia, ib = a.get("items", True), b.get("items", True)
    out["prefixItems"] = [
        _both(pa[i] if i < len(pa) else ia, pb[i] if i < len(pb) else ib) for i in range(max(len(pa), len(pb)))
    ]


def _merge_max(x: Any, y: Any, where: str) -> Any:
    return max(x, y) if _is_number(x) and _is_number(y) else _MISSING


def _merge_min(x: Any, y: Any, where: str) -> Any:
    return min(x, y) if _is_number(x) and _is_number(y) else _MISSING


def _merge_multiple(x: Any, y: Any, where: str) -> Any:
    if not (_is_number(x) and _is_number(y) and x > 0 and y > 0):
        return _MISSING
    fx, fy = (Fraction(str(v)) if isinstance(v, float) else Fraction(v) for v in (x, y))
    lcm = Fraction(math.lcm(fx.numerator, fy.numerator), math.gcd(fx.denominator, fy.denominator))
    return int(lcm) if lcm.denominator == 1 else float(lcm)


def _merge_enum(x: Any, y: Any, where: str) -> Any:
    if not (isinstance(x, list) and isinstance(y, list)):
        return _MISSING
    common = [value for value in x if any(_json_equal(value, other) for other in y)]
    if not common:
        raise SchemaError(f"{where}.enum", "combined schemas share no enum value")
    return common


def _merge_const(x: Any, y: Any, where: str) -> Any:
    if not _json_equal(x, y):
        raise SchemaError(f"{where}.const", "combined schemas require different constants")
    return x


def _merge_all(x: Any, y: Any, where: str) -> Any:
    return _both(x, y)


def _merge_concat(x: Any, y: Any, where: str) -> Any:
    return [*x, *y] if isinstance(x, list) and isinstance(y, list) else _MISSING


def _merge_union(x: Any, y: Any, where: str) -> Any:
    return list(dict.fromkeys([*x, *y])) if isinstance(x, list) and isinstance(y, list) else _MISSING


def _merge_any_of(x: Any, y: Any, where: str) -> Any:
    if not (isinstance(x, list) and isinstance(y, list)) or len(x) * len(y) > 64:
        return _MISSING  # kept apart, checked after drawing
    return [_both(first, second) for first in x for second in y]


def _merge_not(x: Any, y: Any, where: str) -> Any:
    return {"anyOf": [x, y]}


def _merge_or(x: Any, y: Any, where: str) -> Any:
    return x is True or y is True


_MERGERS: dict[str, Callable[[Any, Any, str], Any]] = {
    "minLength": _merge_max,
    "minItems": _merge_max,
    "minProperties": _merge_max,
    "minContains": _merge_max,
    "maxLength": _merge_min,
    "maxItems": _merge_min,
    "maxProperties": _merge_min,
    "maxContains": _merge_min,
    "multipleOf": _merge_multiple,
    "enum": _merge_enum,
    "const": _merge_const,
    "required": _merge_union,
    "propertyOrdering": _merge_union,
    "allOf": _merge_concat,
    "anyOf": _merge_any_of,
    "not": _merge_not,
    "items": _merge_all,
    "additionalItems": _merge_all,
    "contains": _merge_all,
    "propertyNames": _merge_all,
    "uniqueItems": _merge_or,
}


# ---------------------------------------------------------------------------------------------- validity


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: booleans are not numbers, 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_json_equal(a[key], b[key]) for key in a)
    return type(a) is type(b) and a == b


def _is_type(value: Any, name: str) -> bool:
    if name == "string":
        return isinstance(value, str)
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if name == "object":
        return isinstance(value, Mapping)
    return isinstance(value, list)


def _count_valid(schemas: Sequence[Any], value: Any, ctx: _Ctx, stop: int) -> int:
    count = 0
    for schema in schemas:
        if _valid(schema, value, ctx):
            count += 1
            if count >= stop:
                break
    return count


def _valid(schema: Any, value: Any, ctx: _Ctx) -> bool:
    """Whether ``value`` is valid against ``schema`` (formats are not checked)."""
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, Mapping):
        return True
    if "$ref" in schema and not _valid(_resolve(ctx.root, schema["$ref"], "$ref"), value, ctx):
        return False
    types = _types(schema, "schema")
    if types is not None and not any(_is_type(value, name) for name in types):
        return False
    if value is None and schema.get("nullable") is True:
        return True
    if "const" in schema and not _json_equal(schema["const"], value):
        return False
    if "enum" in schema and not any(_json_equal(option, value) for option in schema["enum"]):
        return False
    if isinstance(value, str):
        ok = _string_ok(value, schema)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ok = _number_ok(value, schema)
    elif isinstance(value, Mapping):
        ok = _object_ok(value, schema, ctx)
    elif isinstance(value, list):
        ok = _array_ok(value, schema, ctx)
    else:
        ok = True
    return ok and _combinators_ok(value, schema, ctx)


def _combinators_ok(value: Any, schema: Mapping[str, Any], ctx: _Ctx) -> bool:
    if "allOf" in schema and not all(_valid(sub, value, ctx) for sub in schema["allOf"]):
        return False
    if "anyOf" in schema and not any(_valid(sub, value, ctx) for sub in schema["anyOf"]):
        return False
    if "oneOf" in schema and _count_valid(schema["oneOf"], value, ctx, 2) != 1:
        return False
    if "not" in schema and _valid(schema["not"], value, ctx):
        return False
    if "if" in schema:
        branch = "then" if _valid(schema["if"], value, ctx) else "else"
        if not _valid(schema.get(branch, True), value, ctx):
            return False
    return all(_valid(sub, value, ctx) for sub in schema.get(_ALSO, ()))


def _lenient_count(schema: Mapping[str, Any], key: str) -> int | None:
    try:
        return _count(schema, key, "")
    except SchemaError:
        return None


def _string_ok(value: str, schema: Mapping[str, Any]) -> bool:
    lo, hi = _lenient_count(schema, "minLength"), _lenient_count(schema, "maxLength")
    if (lo is not None and len(value) < lo) or (hi is not None and len(value) > hi):
        return False
    pattern = schema.get("pattern")
    return not isinstance(pattern, str) or _regex(pattern).search(value) is not None


def _number_ok(value: int | float, schema: Mapping[str, Any]) -> bool:
    """The numeric keywords, compared the way jsonschema does (floats as floats)."""
    low, high = schema.get("minimum"), schema.get("maximum")
    low_x, high_x = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if _is_number(low) and (value <= low if low_x is True else value < low):
        return False
    if _is_number(high) and (value >= high if high_x is True else value > high):
        return False
    if _is_number(low_x) and value <= low_x:
        return False
    if _is_number(high_x) and value >= high_x:
        return False
    multiple = schema.get("multipleOf")
    if _is_number(multiple) and multiple > 0:
        if isinstance(multiple, float):
            quotient = value / multiple
            return math.isfinite(quotient) and int(quotient) == quotient
        return not value % multiple
    return True


def _object_ok(value: Mapping[str, Any], schema: Mapping[str, Any], ctx: _Ctx) -> bool:
    required = schema.get("required")
    if isinstance(required, list) and not all(key in value for key in required):
        return False
    lo, hi = _lenient_count(schema, "minProperties"), _lenient_count(schema, "maxProperties")
    if (lo is not None and len(value) < lo) or (hi is not None and len(value) > hi):
        return False
    props = schema.get("properties")
    props = props if isinstance(props, Mapping) else {}
    patterns = schema.get("patternProperties")
    patterns = patterns if isinstance(patterns, Mapping) else {}
    additional = schema.get("additionalProperties", True)
    names = schema.get("propertyNames", True)
    for key, item in value.items():
        if names is not True and not _valid(names, key, ctx):
            return False
        matched = _matching(patterns, key) if patterns else []
        if key in props and not _valid(props[key], item, ctx):
            return False
        if not all(_valid(sub, item, ctx) for sub in matched):
            return False
        if key not in props and not matched and not _valid(additional, item, ctx):
            return False
    return True


def _array_ok(value: list[Any], schema: Mapping[str, Any], ctx: _Ctx) -> bool:
    lo, hi = _lenient_count(schema, "minItems"), _lenient_count(schema, "maxItems")
    if (lo is not None and len(value) < lo) or (hi is not None and len(value) > hi):
        return False
    try:
        prefix, items = _array_parts(schema, "")
    except SchemaError:
        prefix, items = [], True
    for index, item in enumerate(value):
        sub = prefix[index] if index < len(prefix) else items
        if not _valid(sub, item, ctx):
            return False
    if schema.get("uniqueItems") is True:
        for index, item in enumerate(value):
            if any(_json_equal(item, other) for other in value[index + 1 :]):
                return False
    if "contains" in schema:
        matches = sum(1 for item in value if _valid(schema["contains"], item, ctx))
        low = _lenient_count(schema, "minContains")
        high = _lenient_count(schema, "maxContains")
        if matches < (1 if low is None else low) or (high is not None and matches > high):
            return False
    return True


# ----------------------------------------------------------------------------------------------- checking


def _check(node: Any, where: str, root: Any) -> None:
    if isinstance(node, bool):
        return
    if not isinstance(node, Mapping):
        raise SchemaError(where, "a schema must be an object or a boolean")
    types = _types(node, where) or _infer_types(node)
    if "nullable" in node and not isinstance(node["nullable"], bool):
        raise SchemaError(f"{where}.nullable", "must be a boolean")
    if "$ref" in node:
        _resolve(root, node["$ref"], f"{where}.$ref")
    _check_children(node, where, root)
    for key in ("required", "propertyOrdering"):
        _str_list(node, key, where)
    if "enum" in node:
        _check_enum(node, types, where)
    for low_key, high_key in _COUNT_PAIRS:
        low, high = _count(node, low_key, where), _count(node, high_key, where)
        if low is not None and high is not None and low > high:
            raise SchemaError(f"{where}.{low_key}", f"{low_key} {low} exceeds {high_key} {high}")
    if "format" in node and not isinstance(node["format"], str):
        raise SchemaError(f"{where}.format", "must be a string")
    if "pattern" in node:
        _check_pattern(node["pattern"], f"{where}.pattern")
    if not _NUMBER_KEYS.isdisjoint(node):
        _check_numbers(node, types, where)
    if types is not None and "object" in types:
        _check_object(node, where)
    if types is not None and "array" in types:
        prefix, items = _array_parts(node, where)
        low = _count(node, "minItems", where)
        if items is False and low is not None and low > len(prefix):
            raise SchemaError(f"{where}.minItems", f"minItems {low} exceeds the {len(prefix)} items allowed")


def _check_children(node: Mapping[str, Any], where: str, root: Any) -> None:
    for key in _SCHEMA_MAPS:
        for name, sub in _mapping(node, key, where).items():
            if key == "patternProperties":
                _check_regex(name, f"{where}.{key}.{name}")
            _check(sub, f"{where}.{key}.{name}", root)
    for key in _SCHEMA_KEYS:
        if key in node:
            _check(node[key], f"{where}.{key}", root)
    for key in _SCHEMA_LISTS:
        if key in node:
            for index, sub in enumerate(_schema_list(node, key, where)):
                _check(sub, f"{where}.{key}[{index}]", root)
    items = node.get("items")
    if isinstance(items, list):
        for index, sub in enumerate(items):
            _check(sub, f"{where}.items[{index}]", root)
    elif items is not None:
        _check(items, f"{where}.items", root)
    if "prefixItems" in node:
        prefix = node["prefixItems"]
        if not isinstance(prefix, list):
            raise SchemaError(f"{where}.prefixItems", "must be a list of schemas")
        for index, sub in enumerate(prefix):
            _check(sub, f"{where}.prefixItems[{index}]", root)


def _check_enum(node: Mapping[str, Any], types: tuple[str, ...] | None, where: str) -> None:
    options = node["enum"]
    if not isinstance(options, list) or not options:
        raise SchemaError(f"{where}.enum", "must be a non-empty list")
    if types is not None and not any(_is_type(option, name) for option in options for name in types):
        raise SchemaError(f"{where}.enum", f"no listed value is of type {' or '.join(types)}")


def _check_regex(pattern: Any, where: str) -> None:
    if not isinstance(pattern, str):
        raise SchemaError(where, "must be a string")
    try:
        _regex(pattern)
    except re.error as exc:
        raise SchemaError(where, f"invalid pattern {pattern!r}: {exc}") from None


def _check_pattern(pattern: Any, where: str) -> None:
    if not isinstance(pattern, str):
        raise SchemaError(where, "must be a string")
    try:
        _compile_pattern(pattern)
    except _PatternProblem as exc:
        raise SchemaError(where, str(exc)) from None


def _check_numbers(node: Mapping[str, Any], types: tuple[str, ...] | None, where: str) -> None:
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if not isinstance(node.get(key), bool):
            _number(node, key, where)
    numeric = [name for name in types or ("number",) if name in ("number", "integer")]
    if numeric:
        _numeric_span(node, numeric == ["integer"], where)
    else:
        _bounds(node, where)
        _multiple(node, where)


def _check_object(node: Mapping[str, Any], where: str) -> None:
    props = _mapping(node, "properties", where)
    required = _str_list(node, "required", where)
    high = _count(node, "maxProperties", where)
    if high is not None and len(set(required)) > high:
        raise SchemaError(f"{where}.maxProperties", f"{len(set(required))} required properties exceed {high}")
    if node.get("additionalProperties") is False:
        for key in required:
            if key not in props and not _pattern_covers(node, key):
                raise SchemaError(f"{where}.required", f"required property {key!r} is not allowed by the schema")
