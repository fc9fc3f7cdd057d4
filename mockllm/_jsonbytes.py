"""JSON as the providers send it, in bytes: compact, UTF-8 as it is, and string literals cached.

Shared by the dialects' encoders and the contract events; it imports nothing of the mock's, so the
config can compile a contract's events without an import circle.
"""

from __future__ import annotations

import json
import json.encoder
from typing import Any


def dumps(value: Any) -> bytes:
    """Compact JSON with UTF-8 text as it is, as the providers send it."""
    return compact_json(value).encode()


def compact_json(value: Any) -> str:
    """`dumps` as text: a tool call's arguments as the model streams them."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def json_string(text: str) -> bytes:
    """A JSON string literal, as json.dumps writes it. Runs once per chunk; answers reuse a small
    vocabulary, so most chunks are a dictionary hit."""
    found = _ESCAPED.get(text)
    if found is None:
        found = _encode_string(text).encode()
        if len(_ESCAPED) < _ESCAPED_MAX:
            _ESCAPED[text] = found
    return found


_encode_string = json.encoder.encode_basestring
_ESCAPED: dict[str, bytes] = {}
_ESCAPED_MAX = 200_000
