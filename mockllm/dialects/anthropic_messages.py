"""Anthropic Messages, `POST /v1/messages` (and its `count_tokens`), byte-shaped as api.anthropic.com answers.

Frames are `event: TYPE` + `data: {"type": TYPE, ...}`: message_start, content_block_start, ping,
one content_block_delta per plan chunk, content_block_stop, message_delta, message_stop.
Errors are `{"type": "error", "error": {"type", "message"}, "request_id"}`; a failure after the
200 is an `event: error` frame in the stream.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from contracts import DIALECT_PROFILE_DIR

from .._config import MockConfig
from .._errors import RequestError
from .._plan import Plan
from .._request import ChatRequest, Message, overrides_from_headers
from .._tokenizer import count_prompt_tokens
from .._wire import HttpResponse, StreamFrames
from ._base import Call, Encoding, Route, StreamProbe, TextFrames, dumps

ROLES = frozenset({"user", "assistant"})
_SAMPLING = ("temperature", "top_p", "top_k", "stop_sequences")

JSON = (("content-type", "application/json"),)

# Error type and default message by status, as the API documents them. Statuses it does not list
# get `api_error` (5xx) or `invalid_request_error` (4xx), which is what the API says it uses.
# A 503 is not documented; seen in the wild it comes from the proxy in front of the API, so it
# gets the generic `api_error` (the SDK picks its class, ServiceUnavailableError, by status).
_ERROR_SHAPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed your rate limit. Please try again later."),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    504: ("timeout_error", "Request timeout"),
    529: ("overloaded_error", "Overloaded"),
}  # fmt: skip

# The API's own in-band failure: during high load a stream that already answered 200 ends this way.
_ERROR_EVENT = (
    b"event: error\ndata: "
    + dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    + b"\n\n"
)

# Parts of the stream that never change, made once.
_DELTA_BEFORE = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":'
)
_DELTA_AFTER = b"}}\n\n"
_BLOCK_START = (
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    # The API writes its ping with a space after the colon, unlike every other event.
    b'event: ping\ndata: {"type": "ping"}\n\n'
)
_BLOCK_STOP = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
# A content_block_delta cut off inside its text, as a broken proxy or a buggy upstream sends it.
_MALFORMED = _DELTA_BEFORE + b'"\n\n'

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}


class AnthropicMessages:
    name = "anthropic-messages"
    stream_headers = (
        ("content-type", "text/event-stream; charset=utf-8"),
        ("cache-control", "no-cache"),
    )
    load_profile = DIALECT_PROFILE_DIR / "anthropic.yaml"
    probe = StreamProbe(
        "/v1/messages",
        lambda prompt: {
            "model": "bench",
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": prompt}],
            "stream": True,
        },
        re.compile(rb'"text_delta"'),
        b"event: message_stop",
    )

    def __init__(self) -> None:
        self.routes = (
            Route("POST", "/v1/messages"),
            Route("POST", "/v1/messages/count_tokens", self.count_tokens),
        )

    def parse(self, call: Call) -> tuple[ChatRequest, Mapping[str, Any]]:
        """`max_tokens` is required, as the API requires it; `system` becomes a leading system
        message, so prompts, journal filters and seeds read as in the other dialects."""
        body = call.json_object()
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise RequestError("model", "model: Field required (a non-empty string)")
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise RequestError("max_tokens", "max_tokens: Field required")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise RequestError("max_tokens", f"max_tokens: Input should be an integer >= 1, got {max_tokens!r}")
        stream = body.get("stream", False)
        if stream is not None and not isinstance(stream, bool):
            raise RequestError("stream", f"stream: Input should be a valid boolean, got {stream!r}")
        request = ChatRequest(
            model=model,
            messages=_messages(body),
            stream=bool(stream),
            max_tokens=max_tokens,
            sampling=_sampling(body),
            overrides=overrides_from_headers(call.headers),
        )
        return request, {}

    # -- streamed -------------------------------------------------------------------------------

    def stream_frames(self, plan: Plan, enc: Encoding) -> StreamFrames:
        message = _message(plan, enc, content=[], stop_reason=None)
        # The API counts the first output token in message_start (1, or 0 for an empty answer).
        message["usage"]["output_tokens"] = min(plan.completion_tokens, 1)
        head = b"event: message_start\ndata: " + dumps({"type": "message_start", "message": message}) + b"\n\n"
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": _STOP_REASONS[plan.finish_reason], "stop_sequence": None},
            # Cumulative counts: the SDK overwrites its snapshot with whichever are present.
            "usage": {
                "input_tokens": plan.prompt_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": plan.completion_tokens,
            },
        }
        tail = _BLOCK_STOP + b"event: message_delta\ndata: " + dumps(delta) + b"\n\n" + _MESSAGE_STOP
        return StreamFrames(
            head=head + _BLOCK_START,
            # The API sends message_start (with the input token count), the block start and a ping
            # as soon as it admits the request, before prefill: a client that takes its first byte
            # for its first token measures the wrong TTFT, and the mock should show that.
            head_on_arrival=True,
            chunks=TextFrames(_DELTA_BEFORE, _DELTA_AFTER, plan.chunks),
            tail=tail,
            error=_ERROR_EVENT,
            malformed=_MALFORMED,
            headers=(*self.stream_headers, ("request-id", f"req_{enc.ident}")),
        )

    # -- not streamed ---------------------------------------------------------------------------

    def response(self, plan: Plan, enc: Encoding) -> HttpResponse:
        body = _message(plan, enc, [{"type": "text", "text": plan.answer}], _STOP_REASONS[plan.finish_reason])
        return HttpResponse(200, (*JSON, ("request-id", f"req_{enc.ident}")), dumps(body))

    def error(
        self,
        status: int,
        message: str | None = None,
        *,
        param: str | None = None,
        retry_after: float | None = None,
        call: Call | None = None,
    ) -> HttpResponse:
        kind, default_message = _ERROR_SHAPES.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", "The mock returned an error.")
        )
        text = message or default_message
        if param and not text.startswith(param):
            text = f"{param}: {text}"  # the API has no `param` field; its messages lead with the field
        request_id = _request_id(call)
        headers = list(JSON)
        if request_id is not None:
            headers.append(("request-id", request_id))
        if status == 429 or retry_after is not None:
            headers.append(("retry-after", _seconds(1.0 if retry_after is None else retry_after)))
        if status == 429:
            headers += [
                ("anthropic-ratelimit-requests-limit", "50"),
                ("anthropic-ratelimit-requests-remaining", "0"),
                ("anthropic-ratelimit-tokens-limit", "40000"),
                ("anthropic-ratelimit-tokens-remaining", "0"),
            ]
        if status == 429 or status >= 500:
            headers.append(("x-should-retry", "true"))  # the SDK obeys this header when it retries
        body = {"type": "error", "error": {"type": kind, "message": text}, "request_id": request_id}
        return HttpResponse(status, tuple(headers), dumps(body))

    # -- other endpoints ------------------------------------------------------------------------

    def count_tokens(self, call: Call, config: MockConfig) -> HttpResponse:
        """`{"input_tokens": N}`, counted as a plan counts its prompt, system text included."""
        try:
            body = call.json_object()
            if not isinstance(body.get("model"), str) or not body["model"]:
                raise RequestError("model", "model: Field required (a non-empty string)")
            messages = _messages(body)
        except RequestError as err:
            return self.error(err.status, err.message, param=err.param, call=call)
        tokens = count_prompt_tokens([m.content for m in messages])
        return HttpResponse(200, JSON, dumps({"input_tokens": tokens}))

    # -- a captured stream ----------------------------------------------------------------------

    def text_of(self, event: str | None, payload: dict[str, Any]) -> str | None:
        delta = payload.get("delta") or {}
        if payload.get("type") == "content_block_delta" and delta.get("type") == "text_delta":
            return delta.get("text")
        return None


def _message(plan: Plan, enc: Encoding, content: list[Any], stop_reason: str | None) -> dict[str, Any]:
    return {
        "id": f"msg_{enc.ident}",
        "type": "message",
        "role": "assistant",
        "model": enc.request.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": plan.prompt_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": plan.completion_tokens,
            "service_tier": "standard",
        },
    }


def _request_id(call: Call | None) -> str | None:
    """From the request's bytes, so an error is as reproducible as an answer; null without one,
    as the API itself sometimes sends."""
    if call is None:
        return None
    digest = hashlib.blake2b(b"%b %b\n%b" % (call.method.encode(), call.path.encode(), call.body), digest_size=8)
    return f"req_mock{digest.hexdigest()}"


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def _messages(body: dict[str, Any]) -> tuple[Message, ...]:
    """`system` (a leading system message) and `messages`, each content reduced to its text."""
    out = []
    system = body.get("system")
    if system is not None:
        text = system if isinstance(system, str) else _blocks_text(system, "system")
        if text:
            out.append(Message("system", text))
    value = body.get("messages")
    if value is None:
        raise RequestError("messages", "messages: Field required")
    if not isinstance(value, list) or not value:
        raise RequestError("messages", "messages: Input should be a non-empty list of message objects")
    for i, item in enumerate(value):
        where = f"messages.{i}"
        if not isinstance(item, dict):
            raise RequestError(where, f"{where}: Input should be an object, got {type(item).__name__}")
        role = item.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise RequestError(f"{where}.role", f"{where}.role: Input should be 'user' or 'assistant', got {role!r}")
        content = item.get("content")
        if content is None:
            raise RequestError(f"{where}.content", f"{where}.content: Field required")
        text = content if isinstance(content, str) else _blocks_text(content, f"{where}.content")
        out.append(Message(role, text))
    return tuple(out)


def _blocks_text(value: Any, where: str) -> str:
    """The text blocks of a content list, joined; images, tool calls and the like carry no text."""
    if not isinstance(value, list):
        raise RequestError(where, f"{where}: Input should be a string or a list of content blocks")
    texts = []
    for j, block in enumerate(value):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise RequestError(f"{where}.{j}", f"{where}.{j}: each content block must be an object with a 'type'")
        if block["type"] == "text":
            if not isinstance(block.get("text"), str):
                raise RequestError(f"{where}.{j}.text", f"{where}.{j}.text: a text block needs a string 'text'")
            texts.append(block["text"])
    return "".join(texts)


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1):
            raise RequestError(name, f"{name}: Input should be a number between 0 and 1, got {value!r}")
    top_k = body.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        raise RequestError("top_k", f"top_k: Input should be an integer >= 0, got {top_k!r}")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise RequestError("stop_sequences", "stop_sequences: Input should be a list of strings")
    return {name: body[name] for name in _SAMPLING if body.get(name) is not None}
