"""Anthropic Messages, `POST /v1/messages` (and its `count_tokens`), byte-shaped as api.anthropic.com answers.

Frames are `event: TYPE` + `data: {"type": TYPE, ...}`: message_start, content_block_start, ping,
one content_block_delta per plan chunk, content_block_stop, message_delta, message_stop.
Errors are `{"type": "error", "error": {"type", "message"}, "request_id"}`; a failure after the
200 is an `event: error` frame in the stream.

Agents (a plan with blocks), as the API streams them, each block numbered by `index` in order:

- extended thinking (`thinking: {type: enabled, budget_tokens}` or `{type: adaptive}`): a
  `thinking` block, content_block_start `{type: thinking, thinking: "", signature: ""}`, one
  `thinking_delta` per chunk, then one `signature_delta` (the plan's `sign(text)`) before its
  content_block_stop; with `display: omitted` the block comes empty, with only its signature_delta
  (the reasoning is timed and counted, not streamed). A `redacted_thinking` block is a
  content_block_start carrying its `data`, then its stop, no deltas.
- tool calls (`tools`, `tool_choice` auto/any/tool/none, `disable_parallel_tool_use`): a
  `tool_use` block, content_block_start `{type: tool_use, id: "toolu_01…", name, input: {}}`, one
  `input_json_delta` `{partial_json}` per chunk of the arguments, content_block_stop; the
  message_delta says stop_reason `tool_use`. Server tools (a `type` other than `custom`) are
  accepted and never called.
- structured output: Anthropic's tool-forced JSON (`tool_choice: {type: tool}`: the call's input
  is an instance of the tool's `input_schema`), and `output_config.format` (or the older
  `output_format`) `{type: json_schema, schema}`: the text block is a JSON instance of it.
- text blocks as for a plain answer. Not streamed, `content` lists the same blocks in order
  (`tool_use.input` the parsed arguments, `thinking` with its `signature`).

This module is the dialect: its routes, `parse` (the request's top-level fields: model,
`max_tokens`, stream, sampling), the encoders (`stream_frames`, `response`, `error`, `text_of`)
and the wire constants. Reading the rest of the request is in `_anthropic_agent`: the history
(`system` and `messages`; the history's `tool_use` / `tool_result` / `thinking` /
`redacted_thinking` blocks become the `Agent`'s calls and results, each `tool_result` also a
`tool` message, so prompts, seeds and journal filters see it), the tools, tool choice, thinking
and output format that make the `Agent`, and, with `strict` on (the default), the checks the API
runs on a request (each refusal's `check` id is `anthropic.<rule>`, listed in that module's
docstring), e.g. a `tool_result` without its `tool_use`, or thinking blocks altered between turns.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from contracts import DIALECT_PROFILE_DIR

from .._agent import Block, sign
from .._config import MockConfig
from .._errors import RequestError
from .._plan import Plan
from .._request import ChatRequest, Message, overrides_from_headers
from .._tokenizer import count_prompt_tokens
from .._wire import HttpResponse, StreamFrames
from ._anthropic_agent import AGENT_FIELDS, read_agent, read_history
from ._anthropic_agent import ROLES as ROLES  # the roles `messages` may hold, still importable from here
from ._base import BlockFrames, Call, Encoding, Route, StreamProbe, TextFrames, dumps

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
# The API writes its ping with a space after the colon, unlike every other event.
_PING = b'event: ping\ndata: {"type": "ping"}\n\n'
_BLOCK_START = (
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n' + _PING
)
_BLOCK_STOP = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
# A content_block_delta cut off inside its text, as a broken proxy or a buggy upstream sends it.
_MALFORMED = _DELTA_BEFORE + b'"\n\n'

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}

# Without `max_tokens` and with `strict: false`, the answer is capped as a client library would cap it.
DEFAULT_MAX_TOKENS = 4096
TOOL_ID_PREFIX = "toolu_01"  # the API's tool_use ids: `toolu_01` and 22 more characters


class AnthropicMessages:
    name = "anthropic-messages"
    tool_call_prefix = TOOL_ID_PREFIX
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
        """`max_tokens` is required, as the API requires it (with `strict: false` it defaults to
        4096); `system` becomes a leading system message, so prompts, journal filters and seeds
        read as in the other dialects. Tools, tool choice, thinking, an output format and the
        history's tool calls and results make the request's `Agent`."""
        body = call.json_object()
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise RequestError("model", "model: Field required (a non-empty string)")
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            if call.strict:
                raise RequestError("max_tokens", "max_tokens: Field required", check="anthropic.max-tokens-required")
            max_tokens = DEFAULT_MAX_TOKENS
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise RequestError("max_tokens", f"max_tokens: Input should be an integer >= 1, got {max_tokens!r}")
        stream = body.get("stream", False)
        if stream is not None and not isinstance(stream, bool):
            raise RequestError("stream", f"stream: Input should be a valid boolean, got {stream!r}")
        history = read_history(body)
        sampling = _sampling(body)
        agent = None
        if history.agentic or not AGENT_FIELDS.isdisjoint(body):
            agent = read_agent(body, history, max_tokens, call.strict)
            if agent is not None:
                sampling.update((name, body[name]) for name in sorted(AGENT_FIELDS) if body.get(name) is not None)
        request = ChatRequest(
            model=model,
            messages=history.messages,
            stream=bool(stream),
            max_tokens=max_tokens,
            sampling=sampling,
            overrides=overrides_from_headers(call.headers),
            agent=agent,
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
        finish = b"event: message_delta\ndata: " + dumps(delta) + b"\n\n" + _MESSAGE_STOP
        if plan.blocks:
            return self._block_frames(plan, enc, head, finish)
        return StreamFrames(
            head=head + _BLOCK_START,
            # The API sends message_start (with the input token count), the block start and a ping
            # as soon as it admits the request, before prefill: a client that takes its first byte
            # for its first token measures the wrong TTFT, and the mock should show that.
            head_on_arrival=True,
            chunks=TextFrames(_DELTA_BEFORE, _DELTA_AFTER, plan.chunks),
            tail=_BLOCK_STOP + finish,
            error=_ERROR_EVENT,
            malformed=_MALFORMED,
            headers=(*self.stream_headers, ("request-id", f"req_{enc.ident}")),
        )

    def _block_frames(self, plan: Plan, enc: Encoding, head: bytes, finish: bytes) -> StreamFrames:
        """A plan with blocks: each block opened (content_block_start), its chunks as deltas of its
        kind, closed (a thinking block with its signature_delta first), numbered in order. The first
        block opens in the head, with the ping after it, as the API sends them on admission; a
        redacted block is its one chunk's content_block_start, so it opens with that chunk."""
        starts: list[bytes] = []
        closes: list[bytes] = []
        templates: list[tuple[bytes, bytes]] = []
        omitted = _omitted_thinking(plan, enc)
        for index, block in enumerate(plan.blocks, start=int(omitted)):
            start, template, close = _block_events(index, block)
            starts.append(start)
            templates.append(template)
            closes.append(close)
        if omitted:
            # `display: omitted`: the thinking block comes empty, with the signature of its nothing.
            _, _, close = _block_events(0, Block("reasoning", 0, 0, "", signature=sign("")))
            head += _OMITTED_START + _PING + close + starts[0]
        elif plan.blocks[0].kind == "redacted_reasoning":
            before, after = templates[0]
            templates[0] = (before, after + _PING)
            head += starts[0]
        else:
            head += starts[0] + _PING
        openings = {block.start: closes[i - 1] + starts[i] for i, block in enumerate(plan.blocks) if i}
        block_of = plan.block_of_chunks()
        # A malformed event is a delta of the block being streamed where the fault cuts, cut off
        # inside its JSON string: a broken tool_use argument piece, a broken thinking delta.
        fault = plan.fault
        cut = len(block_of) if fault is None or fault.after is None else min(fault.after, len(block_of))
        open_block = block_of[cut - 1] if cut else 0
        return StreamFrames(
            head=head,
            head_on_arrival=True,
            chunks=BlockFrames(plan.chunks, block_of, templates, openings),
            tail=closes[-1] + finish,
            error=_ERROR_EVENT,
            malformed=templates[open_block][0] + b'"\n\n',
            headers=(*self.stream_headers, ("request-id", f"req_{enc.ident}")),
        )

    # -- not streamed ---------------------------------------------------------------------------

    def response(self, plan: Plan, enc: Encoding) -> HttpResponse:
        content = [_content_block(block) for block in plan.blocks] or [{"type": "text", "text": plan.answer}]
        if plan.blocks and _omitted_thinking(plan, enc):
            content.insert(0, {"type": "thinking", "thinking": "", "signature": sign("")})
        body = _message(plan, enc, content, _STOP_REASONS[plan.finish_reason])
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


def _block_events(index: int, block: Any) -> tuple[bytes, tuple[bytes, bytes], bytes]:
    """A block's opening events, the (before, after) around each chunk's JSON string, and the events
    that close it, as the API streams a block of that kind at `index`."""
    stop = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n' % index
    after = b"}}\n\n"
    if block.kind == "redacted_reasoning":
        before = (
            b'event: content_block_start\ndata: {"type":"content_block_start","index":%d,'
            b'"content_block":{"type":"redacted_thinking","data":' % index
        )
        return b"", (before, after), stop
    if block.kind == "reasoning":
        kind, key, opened = b"thinking_delta", b"thinking", {"type": "thinking", "thinking": "", "signature": ""}
        signature = {"type": "signature_delta", "signature": block.signature}
        stop = _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": signature}) + stop
    elif block.kind == "tool_call":
        kind, key = b"input_json_delta", b"partial_json"
        opened = {"type": "tool_use", "id": TOOL_ID_PREFIX + block.call_id, "name": block.name, "input": {}}
    else:
        kind, key, opened = b"text_delta", b"text", {"type": "text", "text": ""}
    start = _event("content_block_start", {"type": "content_block_start", "index": index, "content_block": opened})
    before = (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,"delta":{"type":"%b","%b":'
        % (index, kind, key)
    )
    return start, (before, after), stop


def _omitted_thinking(plan: Plan, enc: Encoding) -> bool:
    """The request asked for thinking it does not see (`display: omitted`) and the model thought."""
    agent = enc.request.agent
    return bool(agent and agent.reasoning and not agent.reasoning.visible and plan.reasoning_tokens)


def _event(kind: str, data: Any) -> bytes:
    return b"event: %b\ndata: %b\n\n" % (kind.encode(), dumps(data))


_EMPTY_THINKING = {"type": "thinking", "thinking": "", "signature": ""}
_OMITTED_START = _event(
    "content_block_start", {"type": "content_block_start", "index": 0, "content_block": _EMPTY_THINKING}
)


def _content_block(block: Any) -> dict[str, Any]:
    """A plan block as a block of a non-streamed message's `content`."""
    if block.kind == "reasoning":
        return {"type": "thinking", "thinking": block.text, "signature": block.signature}
    if block.kind == "redacted_reasoning":
        return {"type": "redacted_thinking", "data": block.text}
    if block.kind == "tool_call":
        return {
            "type": "tool_use",
            "id": TOOL_ID_PREFIX + block.call_id,
            "name": block.name,
            "input": _input(block.text),
        }
    return {"type": "text", "text": block.text}


def _input(arguments: str) -> Any:
    """A call's arguments as the `input` object (`{}` if cut short by `max_tokens`, as nothing parses)."""
    try:
        value = json.loads(arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# -- the request's top level ----------------------------------------------------------------------


def _messages(body: dict[str, Any]) -> tuple[Message, ...]:
    return read_history(body).messages


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
