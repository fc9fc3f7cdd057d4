"""What a dialect is, and the records and encoders its module is made of.

A dialect declares its routes as `Route` records (its chat endpoints, and endpoints it answers at
once such as a model list), parses a request into a `ChatRequest`, encodes a plan in the
provider's bytes (`TextFrames` keep the per-chunk work to one escape), reads the text out of its
own events (`text_of`, for replayed captures), names the load profile a load test of it uses and
says how a benchmark client asks it for a stream (`StreamProbe`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from .._config import MockConfig
from .._errors import RequestError
from .._jsonbody import decode_json
from .._jsonbytes import dumps as dumps
from .._jsonbytes import json_string as json_string
from .._limits import DEFAULT_JSON_DEPTH
from .._plan import Plan
from .._request import ChatRequest
from .._wire import HttpResponse, StreamFrames


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request as a dialect sees it, with the body limits in force when it came."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # names in lower case
    body: bytes
    path_params: Mapping[str, str] = field(default_factory=dict)
    max_json_depth: int = DEFAULT_JSON_DEPTH
    body_over: int | None = None  # the size limit the body went over (its bytes were dropped), if any
    strict: bool = True  # check the request as the provider does (the config's `strict`)

    def check_size(self) -> None:
        """A 413 `RequestError` if the body was over the size limit: every route answers it, even
        one that reads no body, in its own error shape."""
        if self.body_over is not None:
            raise RequestError(
                None, f"the request body is over {self.body_over} bytes (the mock's limits.max_body_bytes)", status=413
            )

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object, or a `RequestError` that says what is wrong with it."""
        self.check_size()
        if not self.body:
            raise RequestError(None, "the request body is empty; expected a JSON object")
        value = decode_json(self.body, self.max_json_depth)
        if not isinstance(value, dict):
            raise RequestError(None, f"the request body must be a JSON object, got {json_type(value)}")
        return value


def json_type(value: Any) -> str:
    """A decoded JSON value's type as the providers' messages name it ("expected an object, but got
    a string"; OpenAI calls a fraction a decimal)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    names = {str: "a string", list: "an array", dict: "an object", int: "an integer", float: "a decimal"}
    return names.get(type(value), type(value).__name__)


@dataclass(frozen=True, slots=True)
class Encoding:
    """The dialect's view of one planned response: the request it came from and stable ids."""

    request: ChatRequest
    call: Call
    ident: str  # unique per request seed, e.g. "mock0123456789abcdef"; each dialect adds its prefix
    created: int
    options: Mapping[str, Any]  # dialect-specific request options (e.g. include_usage)


H = TypeVar("H")

Endpoint = Callable[[Call, MockConfig], HttpResponse]
"""A dialect's endpoint answered at once, from the request and the config in force (a model list)."""


@dataclass(frozen=True, slots=True)
class Route(Generic[H]):
    """`method` and `path` (exact, or with `{name}` segments: their values are `Call.path_params`)
    and what answers them.

    A dialect's route has an `Endpoint` as its handler, or none: then it is a chat endpoint, which
    the server's chat path answers in that dialect. `claim` lets several dialects share a route
    (`GET /v1/models`, OpenAI's and the google-genai SDK's): the first whose `claim(call)` holds
    serves it, else the one that has no claim.
    """

    method: str
    path: str
    handler: H = None  # type: ignore[assignment]
    claim: Callable[[Call], bool] | None = None


@dataclass(frozen=True, slots=True)
class StreamProbe:
    """How a benchmark client asks for a stream and tells its frames apart, in bytes."""

    path: str | Callable[[str], str]  # a fixed path (with its query), or the path for a prompt
    body: Callable[[str], dict[str, Any]] | None  # the request body for a prompt; None: a GET
    content: re.Pattern[bytes]  # matches inside an event that carries answer text
    end: bytes  # found inside the stream's terminal event
    event_end: bytes = b"\n\n"


def json_text_field(key: bytes) -> re.Pattern[bytes]:
    """A non-empty JSON string value under `key`: `"key":"x` or `"key": "x`, never `""`."""
    return re.compile(rb'"' + key + rb'"\s*:\s*"(?!")')


HOOKS = "hooks"
"""The options key under which a dialect with state of its own hands the server its `RequestHooks`."""


class RequestHooks(Protocol):
    """What a dialect that keeps state across requests (a contract's agent, which keeps conversations)
    does with one request of its own, given in its options under `HOOKS`. The LLM dialects keep none."""

    def planned(self, plan: Plan) -> tuple[Plan, dict[str, Any]]:
        """Once the response is planned: the plan as this dialect sends it (a `words` join regroups
        its chunks) and the fields it adds to the journal entry."""
        ...

    def finished(self, outcome: str) -> None:
        """The response is over, with this journal outcome (`completed`, `client_closed`, ...)."""
        ...


class Dialect(Protocol):
    """A provider's wire format, described once: its module's class, registered with
    `mockllm.dialects.register`."""

    name: str
    routes: tuple[Route[Endpoint | None], ...]  # its chat endpoints (no handler) and other endpoints
    stream_headers: tuple[tuple[str, str], ...]
    load_profile: Path | None  # the load profile (YAML) a load test of this dialect uses
    probe: StreamProbe | None  # how the benchmarks ask it for a stream
    tool_call_prefix: str  # what a planned tool call's id is sent with (OpenAI's `call_`), for the journal

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

    def text_of(self, event: str | None, payload: dict[str, Any]) -> str | None:
        """The answer text one event of this dialect's stream carries (None: it carries none);
        `event` is its SSE event type, `payload` its data as JSON."""
        ...


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


class BlockFrames(Sequence[bytes]):
    """A plan with blocks (reasoning, tool calls, text) as events, encoded when a write is due.

    Chunk `i` is `openings[i] + before + JSON string + after`, with `before` and `after` its block's
    (`templates[block_of[i]]`); `openings` holds, at each block's first chunk, the events that close
    the block before it and open this one. A block whose template is None is silent: its chunks send
    their openings only (a block the dialect has no shape for). The frame around each chunk is laid
    out once per response, so a tool call's argument piece or a reasoning delta costs what a text
    chunk costs: one escape, two concatenations.
    """

    __slots__ = ("_afters", "_befores", "_texts")

    def __init__(
        self,
        texts: Sequence[str],
        block_of: Sequence[int],
        templates: Sequence[tuple[bytes, bytes] | None],
        openings: Mapping[int, bytes],
    ) -> None:
        self._texts = texts
        laid = [templates[block] or _SILENT for block in block_of]
        self._befores = [pair[0] for pair in laid]
        self._afters = [pair[1] for pair in laid]
        for index, opening in openings.items():
            self._befores[index] = opening + self._befores[index]

    def __len__(self) -> int:
        return len(self._texts)

    def __getitem__(self, index: int) -> bytes:  # type: ignore[override]
        after = self._afters[index]
        if after is None:
            return self._befores[index]  # a silent block's chunk: its opening only
        return self._befores[index] + json_string(self._texts[index]) + after

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BlockFrames):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]


_SILENT: tuple[bytes, None] = (b"", None)
