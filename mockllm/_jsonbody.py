"""Request bodies decoded as JSON within bounds: strict UTF-8, strict JSON, a nesting limit.

Every JSON body the mock reads (a dialect's request, the admin API's) is decoded here, so a body
the mock accepts is one it can store and render again: the journal shows it, the config serves it
back. Python's json module recurses in C up to the interpreter's recursion limit and raises
RecursionError beyond it (and json.dumps would on the way out), accepts NaN, Infinity and
out-of-range floats that no JSON reader takes back, and decodes lone UTF-16 surrogate escapes into
strings that cannot be encoded as UTF-8. Each of those is refused here with a `RequestError` that
names the problem; the caller answers it in its own error shape.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ._errors import RequestError

_SURROGATE_ESCAPES = ("\\ud", "\\uD")  # \ud800-\udfff: only a body with one needs the full check


def decode_json(body: bytes, max_depth: int) -> Any:
    """The value of a JSON body nested at most `max_depth` levels deep; `RequestError` otherwise."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        where = f"byte 0x{body[err.start]:02x} at offset {err.start}"
        raise RequestError(None, f"the request body is not valid UTF-8: {where} ({err.reason})") from None
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise RequestError(None, _too_deep_message(max_depth)) from None
    except ValueError as err:  # JSONDecodeError, a constant or float refused, an integer over 4300 digits
        raise RequestError(None, f"the request body is not valid JSON: {err}") from None
    # A value can nest no deeper than it has containers: most bodies are cleared by this count alone.
    if text.count("[") + text.count("{") > max_depth and nests_deeper(value, max_depth):
        raise RequestError(None, _too_deep_message(max_depth))
    if any(escape in text for escape in _SURROGATE_ESCAPES):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError(
                None, "the request body has a lone UTF-16 surrogate escape in a string (\\ud800-\\udfff unpaired)"
            ) from None
    return value


def nests_deeper(value: Any, max_depth: int) -> bool:
    """Whether `value` has containers nested more than `max_depth` levels deep (a scalar has none).
    Level by level, without recursion: the depth it checks is the one recursion could not take."""
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(max_depth):
        nested = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
        if not nested:
            return False
        level = nested
    return bool(level)


def _too_deep_message(max_depth: int) -> str:
    return f"the request body nests JSON deeper than {max_depth} levels (the mock's limits.max_json_depth)"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value
