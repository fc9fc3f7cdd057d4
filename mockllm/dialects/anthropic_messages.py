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

The history's `tool_use` / `tool_result` / `thinking` / `redacted_thinking` blocks become the
`Agent`'s calls and results; each `tool_result` is also a `tool` message, so prompts, seeds and
journal filters see it. With `strict` on (the default) the request is checked as the API checks
it (`_check_*`; each refusal's `check` id is `anthropic.<rule>`), e.g. a `tool_result` without its
`tool_use`, or thinking blocks altered between turns.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contracts import DIALECT_PROFILE_DIR

from .._agent import Agent, Block, OutputFormat, Reasoning, Tool, ToolCall, ToolChoice, ToolResult, sign, signed
from .._config import MockConfig
from .._errors import RequestError
from .._plan import Plan
from .._request import ChatRequest, Message, overrides_from_headers
from .._tokenizer import count_prompt_tokens
from .._wire import HttpResponse, StreamFrames
from ._base import BlockFrames, Call, Encoding, Route, StreamProbe, TextFrames, dumps

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
# The request fields that change an agent answer: in `sampling`, so the seed depends on them.
_AGENT_FIELDS = frozenset({"tools", "tool_choice", "thinking", "output_config", "output_format"})
_TOOL_CHOICES = {"auto": "auto", "any": "required", "tool": "tool", "none": "none"}
_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
_THINKING_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"


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
        history = _read_history(body)
        sampling = _sampling(body)
        agent = None
        if history.agentic or not _AGENT_FIELDS.isdisjoint(body):
            agent = _agent(body, history, max_tokens, call.strict)
            if agent is not None:
                sampling.update((name, body[name]) for name in sorted(_AGENT_FIELDS) if body.get(name) is not None)
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


# -- the request's history ------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    """One message of `messages` with its content blocks (None for a string content)."""

    index: int
    role: str
    blocks: list[dict[str, Any]] | None


class _History:
    """The request's messages as the planner reads them, and what the checks need of its blocks."""

    __slots__ = ("_entries", "agentic", "calls", "messages", "raw", "results")

    def __init__(self, raw: list[Any]) -> None:
        self.messages: tuple[Message, ...] = ()
        self.raw = raw  # the request's `messages`, as sent
        self.calls: list[ToolCall] = []
        self.results: list[tuple[int, ToolResult]] = []  # (message index, result)
        self.agentic = False  # tool_use, tool_result or thinking blocks in the history
        self._entries: list[_Entry] | None = None

    @property
    def entries(self) -> list[_Entry]:
        """Each message with its blocks: made when a check needs them, never on the plain path."""
        if self._entries is None:
            self._entries = [
                _Entry(i, item["role"], item["content"] if isinstance(item["content"], list) else None)
                for i, item in enumerate(self.raw)
            ]
        return self._entries


def _messages(body: dict[str, Any]) -> tuple[Message, ...]:
    return _read_history(body).messages


def _read_history(body: dict[str, Any]) -> _History:
    """`system` (a leading system message) and `messages`, each content reduced to its text, each
    tool result a `tool` message; and the tool calls, results and thinking blocks found."""
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
    history = _History(value)
    results = history.results
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
        if isinstance(content, str):
            out.append(Message(role, content))
            continue
        found = len(results)
        text = _blocks_text(content, f"{where}.content", history, i)
        if len(results) == found:
            out.append(Message(role, text))
            continue
        out += [Message("tool", result.content) for _, result in results[found:]]
        if text:
            out.append(Message(role, text))
    history.messages = tuple(out)
    return history


def _blocks_text(value: Any, where: str, history: _History | None = None, index: int = 0) -> str:
    """The text blocks of a content list, joined; images and the like carry no text. Tool calls,
    tool results and thinking blocks are read `into` the history (a message's, not the system's)."""
    if not isinstance(value, list):
        raise RequestError(where, f"{where}: Input should be a string or a list of content blocks")
    texts = []
    for j, block in enumerate(value):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise RequestError(f"{where}.{j}", f"{where}.{j}: each content block must be an object with a 'type'")
        kind = block["type"]
        if kind == "text":
            if not isinstance(block.get("text"), str):
                raise RequestError(f"{where}.{j}.text", f"{where}.{j}.text: a text block needs a string 'text'")
            texts.append(block["text"])
        elif history is not None and kind in ("tool_use", "tool_result", "thinking", "redacted_thinking"):
            _read_block(block, f"{where}.{j}", history, index)
    return "".join(texts)


def _read_block(block: dict[str, Any], where: str, history: _History, index: int) -> None:
    kind = block["type"]
    history.agentic = True
    if kind == "tool_use":
        for name in ("id", "name"):
            if not isinstance(block.get(name), str) or not block[name]:
                raise RequestError(f"{where}.{name}", f"{where}.{name}: Field required")
        arguments = block.get("input", {})
        if not isinstance(arguments, dict):
            raise RequestError(f"{where}.input", f"{where}.input: Input should be a valid dictionary")
        text = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
        history.calls.append(ToolCall(block["id"], block["name"], text))
    elif kind == "tool_result":
        call_id = block.get("tool_use_id")
        if not isinstance(call_id, str) or not call_id:
            raise RequestError(f"{where}.tool_use_id", f"{where}.tool_use_id: Field required")
        content = block.get("content", "")
        if content is None:
            content = ""
        if not isinstance(content, str):
            content = _blocks_text(content, f"{where}.content")
        name = next((call.name for call in reversed(history.calls) if call.id == call_id), None)
        history.results.append((index, ToolResult(call_id, name, content)))
    elif kind == "thinking":
        if not isinstance(block.get("thinking"), str):
            raise RequestError(f"{where}.thinking", f"{where}.thinking: Field required")
    elif not isinstance(block.get("data"), str):
        raise RequestError(f"{where}.data", f"{where}.data: Field required")


# -- tools, tool choice, thinking, output format --------------------------------------------------


def _agent(body: dict[str, Any], history: _History, max_tokens: int, strict: bool) -> Agent | None:
    tools = _tools(body.get("tools"))
    choice, parallel = _tool_choice(body.get("tool_choice"))
    thinking, reasoning = _thinking(body.get("thinking"), body.get("output_config"))
    output = _output(body.get("output_config"), body.get("output_format"))
    if strict:
        _check_thinking_params(body, thinking, max_tokens, choice)
        _check_tool_pairs(history)
        _check_thinking_blocks(history, thinking)
    if not (tools or "tool_choice" in body or reasoning or output or history.calls or history.results):
        return None  # e.g. `thinking: {type: disabled}` alone: a plain request
    last_assistant = max((e.index for e in history.entries if e.role == "assistant"), default=-1)
    return Agent(
        tools=tools,
        choice=choice,
        parallel=parallel,
        reasoning=reasoning,
        output=output,
        calls=tuple(history.calls),
        results=tuple(result for _, result in history.results),
        pending=tuple(result for index, result in history.results if index > last_assistant),
    )


def _tools(value: Any) -> tuple[Tool, ...]:
    """Custom tools (`{name, description, input_schema}`); server tools (`{type: web_search_…}`
    and the like) are accepted, and never called by the mock."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RequestError("tools", "tools: Input should be a valid list")
    tools = []
    for i, tool in enumerate(value):
        where = f"tools.{i}"
        if not isinstance(tool, dict):
            raise RequestError(where, f"{where}: Input should be a valid dictionary")
        if tool.get("type") not in (None, "custom"):
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise RequestError(f"{where}.custom.name", f"{where}.custom.name: Field required")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise RequestError(f"{where}.custom.input_schema", f"{where}.custom.input_schema: Field required")
        description = tool.get("description")
        tools.append(Tool(name, schema, description if isinstance(description, str) else ""))
    return tuple(tools)


def _tool_choice(value: Any) -> tuple[ToolChoice, bool]:
    """`{type: auto|any|tool|none, name, disable_parallel_tool_use}`: the choice, and whether
    several calls may come in one turn."""
    if value is None:
        return ToolChoice(), True
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in _TOOL_CHOICES:
        raise RequestError(
            "tool_choice",
            f"tool_choice: Input tag {kind!r} found using 'type' does not match any of the expected tags: "
            "'auto', 'any', 'tool', 'none'",
        )
    name = value.get("name")
    if kind == "tool" and (not isinstance(name, str) or not name):
        raise RequestError("tool_choice.tool.name", "tool_choice.tool.name: Field required")
    parallel = not value.get("disable_parallel_tool_use", False)
    return ToolChoice(_TOOL_CHOICES[kind], name if kind == "tool" else None), parallel  # type: ignore[arg-type]


def _thinking(value: Any, output_config: Any) -> tuple[dict[str, Any] | None, Reasoning | None]:
    """`{type: enabled, budget_tokens}`, `{type: adaptive}` (its effort from `output_config.effort`)
    or `{type: disabled}`; `display: omitted` streams no thinking (it is still timed and counted)."""
    if value is None:
        return None, None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in ("enabled", "disabled", "adaptive"):
        raise RequestError(
            "thinking",
            f"thinking: Input tag {kind!r} found using 'type' does not match any of the expected tags: "
            "'enabled', 'disabled', 'adaptive'",
        )
    if kind == "disabled":
        return value, None
    visible = value.get("display") != "omitted"
    if kind == "adaptive":
        effort = output_config.get("effort") if isinstance(output_config, dict) else None
        return value, Reasoning(effort=_EFFORTS.get(effort) if isinstance(effort, str) else None, visible=visible)
    budget = value.get("budget_tokens")
    if budget is None:
        raise RequestError("thinking.enabled.budget_tokens", "thinking.enabled.budget_tokens: Field required")
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise RequestError(
            "thinking.enabled.budget_tokens", "thinking.enabled.budget_tokens: Input should be a valid integer"
        )
    return value, Reasoning(budget_tokens=budget, visible=visible)


def _output(output_config: Any, output_format: Any) -> OutputFormat | None:
    """`output_config.format` (or the older top-level `output_format`): `{type: json_schema, schema}`."""
    spec = output_config.get("format") if isinstance(output_config, dict) else None
    spec = spec if spec is not None else output_format
    if spec is None:
        return None
    if not isinstance(spec, dict) or spec.get("type") != "json_schema" or not isinstance(spec.get("schema"), dict):
        raise RequestError("output_config.format", "output_config.format: expected {type: json_schema, schema: {...}}")
    return OutputFormat("json_schema", spec["schema"])


# -- strict: the API's own checks -----------------------------------------------------------------
# Messages as api.anthropic.com words them, seen in its 400 answers quoted in public issue threads:
# anthropics/claude-code#13460 and #5060 (tool_result / tool_use pairing), BerriAI/litellm#9001 and
# router-for-me/CLIProxyAPI#413 (budget_tokens), MartialBE/one-hub#529 (temperature),
# quarkiverse/quarkus-langchain4j#1812 (top_k), mastra-ai/mastra#7507 (forced tool choice),
# deepset-ai/haystack-core-integrations#2146 (final assistant message without thinking),
# lbjlaq/Antigravity-Manager#498 (altered signature), tailcallhq/forgecode#1853 (thinking off).
# A first message from the assistant and consecutive turns of one role are accepted: the API
# merges consecutive turns and no longer requires a leading user turn
# (anthropics/anthropic-sdk-typescript#622), so the mock refuses neither.


def _check_thinking_params(body: dict[str, Any], thinking: dict[str, Any] | None, max_tokens: int, choice: Any) -> None:
    if thinking is None or thinking.get("type") == "disabled":
        return
    if thinking.get("type") == "enabled":
        budget = thinking["budget_tokens"]
        if budget < 1024:
            raise RequestError(
                "thinking.enabled.budget_tokens",
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
                check="anthropic.thinking-budget-too-small",
            )
        if budget >= max_tokens:
            raise RequestError(
                None,  # the API's message names no field first
                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at "
                f"{_THINKING_DOCS}#max-tokens-and-context-window-size",
                check="anthropic.thinking-budget-not-below-max-tokens",
            )
    considerations = (
        f"Please consult our documentation at {_THINKING_DOCS}#important-considerations-when-using-extended-thinking"
    )
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        raise RequestError(
            None,
            f"`temperature` may only be set to 1 when thinking is enabled. {considerations}",
            check="anthropic.thinking-temperature",
        )
    if body.get("top_k") is not None:
        raise RequestError(
            None,
            f"`top_k` must be unset when thinking is enabled. {considerations}",
            check="anthropic.thinking-top-k",
        )
    if choice.forced:
        raise RequestError(
            None,
            "Thinking may not be enabled when tool_choice forces tool use.",
            check="anthropic.thinking-forced-tool-choice",
        )


def _turns(history: _History) -> list[list[_Entry]]:
    """Consecutive messages of one role, merged into one turn as the API merges them."""
    turns: list[list[_Entry]] = []
    for entry in history.entries:
        if turns and turns[-1][0].role == entry.role:
            turns[-1].append(entry)
        else:
            turns.append([entry])
    return turns


def _blocks_of(turn: list[_Entry], kind: str) -> list[tuple[int, int, dict[str, Any]]]:
    return [
        (entry.index, j, block)
        for entry in turn
        for j, block in enumerate(entry.blocks or ())
        if block.get("type") == kind
    ]


def _check_tool_pairs(history: _History) -> None:
    """Each `tool_use` answered by a `tool_result` in the next turn; each `tool_result` answering a
    `tool_use` of the turn before it."""
    if not history.agentic:
        return
    turns = _turns(history)
    for t, turn in enumerate(turns):
        if turn[0].role == "assistant":
            uses = _blocks_of(turn, "tool_use")
            if not uses or t + 1 == len(turns):
                continue
            answered = {block["tool_use_id"] for _, _, block in _blocks_of(turns[t + 1], "tool_result")}
            missing = [(i, block["id"]) for i, _, block in uses if block["id"] not in answered]
            if missing:
                where = f"messages.{missing[0][0]}"
                raise RequestError(
                    where,
                    f"{where}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(call_id for _, call_id in missing)}. Each `tool_use` block must have a "
                    "corresponding `tool_result` block in the next message.",
                    check="anthropic.tool-use-without-tool-result",
                )
            continue
        results = _blocks_of(turn, "tool_result")
        if not results:
            continue
        used = {block["id"] for _, _, block in _blocks_of(turns[t - 1], "tool_use")} if t else set()
        unexpected = [(i, j, block["tool_use_id"]) for i, j, block in results if block["tool_use_id"] not in used]
        if unexpected:
            i, j, _ = unexpected[0]
            where = f"messages.{i}.content.{j}"
            raise RequestError(
                where,
                f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{', '.join(call_id for _, _, call_id in unexpected)}. Each `tool_result` block must have a "
                "corresponding `tool_use` block in the previous message.",
                check="anthropic.tool-result-without-tool-use",
            )


def _check_thinking_blocks(history: _History, thinking: dict[str, Any] | None) -> None:
    """Thinking on: the assistant turn the history's tool results answer starts with its thinking,
    and every thinking block comes back as the mock signed it. Thinking off: a final (prefilled)
    assistant message holds no thinking."""
    if not history.agentic:
        return
    on = thinking is not None and thinking.get("type") != "disabled"
    assistants = [entry for entry in history.entries if entry.role == "assistant" and entry.blocks]
    if not on:
        last = history.entries[-1]
        if last.role == "assistant" and last.blocks:
            for j, block in enumerate(last.blocks):
                if block.get("type") in ("thinking", "redacted_thinking"):
                    where = f"messages.{last.index}.content.{j}"
                    raise RequestError(
                        where,
                        f"{where}: When thinking is disabled, an `assistant` message in the final position cannot "
                        "contain `thinking`. To use thinking blocks, enable `thinking` in your request.",
                        check="anthropic.thinking-disabled-final-thinking",
                    )
        return
    final = next((e for e in reversed(history.entries) if e.role == "assistant"), None)
    if final is not None and final.blocks and final.index != history.entries[-1].index:
        first = final.blocks[0].get("type")
        if any(b.get("type") == "tool_use" for b in final.blocks) and first not in ("thinking", "redacted_thinking"):
            where = f"messages.{final.index}.content.0.type"
            raise RequestError(
                where,
                f"{where}: Expected `thinking` or `redacted_thinking`, but found `{first}`. When `thinking` is "
                "enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost "
                "set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from "
                "previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation "
                f"at {_THINKING_DOCS}",
                check="anthropic.thinking-block-missing",
            )
    for entry in assistants:
        for j, block in enumerate(entry.blocks or ()):
            if block.get("type") != "thinking":
                continue
            where = f"messages.{entry.index}.content.{j}"
            signature = block.get("signature")
            if not isinstance(signature, str) or not signed(block["thinking"], signature):
                raise RequestError(
                    where,
                    f"{where}: Invalid `signature` in `thinking` block",
                    check="anthropic.thinking-signature-invalid",
                )


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
