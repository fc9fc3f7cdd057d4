"""What a dialect is: the routes it answers and thin encoders between its wire format and a plan."""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._errors import RequestError
from .._plan import Plan
from .._request import ChatRequest
from .._wire import HttpResponse, StreamFrames


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request as a dialect sees it."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # names in lower case
    body: bytes
    path_params: Mapping[str, str] = field(default_factory=dict)

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object, or a `RequestError` that says what is wrong with it."""
        if not self.body:
            raise RequestError(None, "the request body is empty; expected a JSON object")
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as err:
            raise RequestError(None, f"the request body is not valid JSON: {err}") from None
        if not isinstance(value, dict):
            raise RequestError(None, f"the request body must be a JSON object, got {type(value).__name__}")
        return value


@dataclass(frozen=True, slots=True)
class Encoding:
    """The dialect's view of one planned response: the request it came from and stable ids."""

    request: ChatRequest
    call: Call
    ident: str  # unique per request seed, e.g. "mock0123456789abcdef"; each dialect adds its prefix
    created: int
    options: Mapping[str, Any]  # dialect-specific request options (e.g. include_usage)


class Dialect(Protocol):
    """A provider's wire format. Register an instance in `mockllm.dialects.DIALECTS`."""

    name: str
    chat_routes: tuple[tuple[str, str], ...]  # (method, path pattern) of the chat endpoints
    # (method, path pattern, method name on self[, name of a `claim(call) -> bool` on self]): the
    # claim lets two dialects share a route, e.g. `GET /v1/models` for OpenAI and google-genai.
    extra_routes: tuple[tuple[str, ...], ...]
    stream_headers: tuple[tuple[str, str], ...]

    def parse(self, call: Call) -> tuple[ChatRequest, Mapping[str, Any]]:
        """The normalized request and the dialect's own options; `RequestError` if invalid."""
        ...

    def stream_frames(self, plan: Plan, enc: Encoding) -> StreamFrames: ...

    def response(self, plan: Plan, enc: Encoding) -> HttpResponse: ...

    def error(
        self,
        status: int,
        message: str | None = None,
        *,
        param: str | None = None,
        retry_after: float | None = None,
        call: Call | None = None,
    ) -> HttpResponse:
        """An HTTP error shaped as this provider shapes it (`call`, when given, is the request it
        answers: Gemini wraps the error in an array where the response would have been one)."""
        ...


def dumps(value: Any) -> bytes:
    """Compact JSON with UTF-8 text as it is, as the providers send it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


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


class TextFrames(Sequence[bytes]):
    """Answer chunks as events `before + JSON string + after`, encoded when a write is due.

    The frame around the text is made once per response; per chunk there is only the escape
    (usually a cache hit) and one concatenation.
    """

    __slots__ = ("_after", "_before", "_texts")

    def __init__(self, before: bytes, after: bytes, texts: Sequence[str]) -> None:
        self._before = before
        self._after = after
        self._texts = texts

    def __len__(self) -> int:
        return len(self._texts)

    def __getitem__(self, index: int) -> bytes:  # type: ignore[override]
        return self._before + json_string(self._texts[index]) + self._after

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TextFrames):
            return NotImplemented
        return (self._before, self._after, tuple(self._texts)) == (other._before, other._after, tuple(other._texts))

    __hash__ = None  # type: ignore[assignment]


class NumberedTextFrames(TextFrames):
    """Events `before + number + middle + JSON string + after`, numbered from `first` (the
    Responses API's `sequence_number`)."""

    __slots__ = ("_first", "_middle")

    def __init__(self, before: bytes, middle: bytes, after: bytes, texts: Sequence[str], first: int) -> None:
        super().__init__(before, after, texts)
        self._middle = middle
        self._first = first

    def __getitem__(self, index: int) -> bytes:  # type: ignore[override]
        return b"%b%d%b%b%b" % (
            self._before,
            self._first + index,
            self._middle,
            json_string(self._texts[index]),
            self._after,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumberedTextFrames):
            return NotImplemented
        return super().__eq__(other) and (self._middle, self._first) == (other._middle, other._first)

    __hash__ = None  # type: ignore[assignment]
