"""Request bodies: a JSON body that cannot be decoded is the client's problem (400), whatever its shape.

msgspec decodes recursively and raises RecursionError on a body nested about a thousand levels deep
(`[[[[...]]]]`), which Litestar answers as a 500. No contract body is nested more than a few levels,
so a body nested deeper than `MAX_DEPTH` is refused before it is decoded, naming the problem; the
scan runs only on a body with that many brackets at all, so ordinary bodies cost one `count`.
Size is bounded before this (Litestar's `request_max_body_size`, 413); encoding, syntax and types
are already 400s of msgspec and Litestar.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request
from litestar.exceptions import ValidationException

MAX_DEPTH = 32
# A string that is not blank as Python's `str.strip()` sees it, spelled so that ECMA regexes (JSON
# Schema's `pattern`) read it alike: any character outside Python's whitespace set.
NOT_BLANK = "[^\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
# A JSON string (skipped whole, so brackets inside it do not count) or one bracket.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def too_deep(body: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON text nests arrays and objects more than `limit` levels deep."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for token in _TOKEN.finditer(body):
        bracket = token.group()
        if bracket in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif bracket in (b"]", b"}"):
            depth -= 1
    return False


def _nested(detail: str) -> ValidationException:
    return ValidationException(detail=f"body: {detail}", extra=[{"key": "body", "message": detail}])


class BodyRequest(Request):
    """The app's request class: `json()` refuses an over-nested body with a 400 instead of a 500."""

    async def json(self) -> Any:
        if too_deep(await self.body()):
            raise _nested(f"JSON nested more than {MAX_DEPTH} levels deep")
        try:
            return await super().json()
        except RecursionError:  # deeper than the scan saw (it cannot be, but never a 500 for a body)
            raise _nested("JSON nested too deeply") from None
