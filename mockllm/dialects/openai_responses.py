"""OpenAI Responses, `POST /v1/responses`, byte-shaped as api.openai.com answers.

A stream is a run of named events, each numbered by `sequence_number` from 0. The numbers of the
events after the deltas depend on how many deltas go out, so the frames are built knowing the
plan's fault: an in-band error after N deltas is numbered right after the N-th delta.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from contracts import DIALECT_PROFILE_DIR

from .._errors import RequestError
from .._plan import Plan
from .._request import ChatRequest, Message, overrides_from_headers
from .._wire import HttpResponse, StreamFrames
from ._base import Call, Encoding, NumberedTextFrames, Route, StreamProbe, dumps
from .openai_chat import _RANGES, JSON, OpenAIChat, check_ranges, model_field, stream_field

ROLES = frozenset({"user", "assistant", "system", "developer"})
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
_MEDIA_PARTS = frozenset({"input_image", "input_file", "input_audio", "refusal"})
# Input items that carry no text the mock answers from: accepted so agent loops can replay them.
_SKIPPED_ITEMS = frozenset({"function_call", "reasoning", "item_reference", "web_search_call", "file_search_call"})
_SAMPLING = ("temperature", "top_p")
_SAMPLING_RANGES = {name: _RANGES[name] for name in _SAMPLING}
# The API rejects smaller values: "Invalid 'max_output_tokens': integer below minimum value".
MIN_OUTPUT_TOKENS = 16
_MESSAGE = "The server had an error while processing your request. Sorry about that!"
_ERROR_FIELDS = dumps({"code": "server_error", "message": _MESSAGE, "param": None})[1:-1]  # the `error` event's
_FAILED = dumps({"code": "server_error", "message": _MESSAGE})  # the failed response's `error`
_INCOMPLETE = b'{"reason":"max_output_tokens"}'
_CHAT = OpenAIChat()


class OpenAIResponses:
    name = "openai-responses"
    routes = (Route("POST", "/v1/responses"),)
    stream_headers = _CHAT.stream_headers
    load_profile = DIALECT_PROFILE_DIR / "openai-responses.yaml"
    probe = StreamProbe(
        "/v1/responses",
        lambda prompt: {"model": "bench", "input": prompt, "stream": True},
        re.compile(rb"data: \{[^\n]*\"response\.output_text\.delta\""),
        b"event: response.completed",
    )

    def parse(self, call: Call) -> tuple[ChatRequest, Mapping[str, Any]]:
        body = call.json_object()
        model = model_field(body)
        instructions = body.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise RequestError("instructions", "'instructions' must be a string")
        messages = _input(body.get("input"))
        if instructions:
            messages = (Message("system", instructions), *messages)
        stream = stream_field(body)
        max_tokens = body.get("max_output_tokens")
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < MIN_OUTPUT_TOKENS
        ):
            raise RequestError(
                "max_output_tokens",
                f"'max_output_tokens' must be an integer >= {MIN_OUTPUT_TOKENS}, got {max_tokens!r}",
            )
        check_ranges(body, _SAMPLING_RANGES)
        request = ChatRequest(
            model=model,
            messages=messages,
            stream=stream,
            max_tokens=max_tokens,
            sampling={name: body[name] for name in _SAMPLING if body.get(name) is not None},
            overrides=overrides_from_headers(call.headers),
        )
        # What the response object echoes of the request, hashable: its JSON is cached by it (floats
        # made floats, so 1 and 1.0 cannot share a cache entry and echo differently).
        echo = (
            instructions,
            max_tokens,
            float(request.sampling.get("temperature", 1.0)),
            float(request.sampling.get("top_p", 1.0)),
            body.get("store", True) is not False,
            _strings(body, "previous_response_id"),
            _strings(body, "user"),
            _metadata(body.get("metadata")),
        )
        return request, {"echo": echo}

    # -- streamed -------------------------------------------------------------------------------

    def stream_frames(self, plan: Plan, enc: Encoding) -> StreamFrames:
        objects = _Objects(enc)
        where = b'"item_id":"msg_%b","output_index":0,"content_index":0' % enc.ident.encode()
        answer = dumps(plan.answer)  # escaped once, for the four events that repeat the whole text
        status = _status(plan)
        part = _part(answer)
        item = objects.message(status, b"[%b]" % part)
        pending = b'"response":' + objects.response("in_progress", b"[]")
        head = (
            _event(b"response.created", 0, pending)
            + _event(b"response.in_progress", 1, pending)
            + _event(b"response.output_item.added", 2, b'"output_index":0,"item":' + objects.message("in_progress"))
            + _event(b"response.content_part.added", 3, where + b',"part":' + _part(b'""'))
        )
        # Per chunk, only the sequence number and the text are encoded.
        before = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":'
        middle = b"," + where + b',"delta":'
        after = b',"logprobs":[]}\n\n'
        first = 4
        n = len(plan.chunks)
        done = first + n
        tail = (
            _event(b"response.output_text.done", done, where + b',"text":' + answer + b',"logprobs":[]')
            + _event(b"response.content_part.done", done + 1, where + b',"part":' + part)
            + _event(b"response.output_item.done", done + 2, b'"output_index":0,"item":' + item)
            + _event(b"response." + status.encode(), done + 3, b'"response":' + objects.final(plan, status, item))
        )
        fault = plan.fault
        cut = n if fault is None or fault.after is None else min(fault.after, n)
        error = malformed = b""
        if fault is not None and fault.kind == "error":
            # The text sent so far stays in the failed response's output.
            partial = objects.message("incomplete", b"[%b]" % _part(dumps("".join(plan.chunks[:cut]))))
            failed = objects.response("failed", b"[%b]" % partial, error=_FAILED)
            error = _event(b"error", first + cut, _ERROR_FIELDS) + _event(
                b"response.failed", first + cut + 1, b'"response":' + failed
            )
        elif fault is not None and fault.kind == "malformed":
            # A delta cut off inside its text, as a broken proxy sends it.
            malformed = before + b"%d" % (first + cut) + middle + b'"' + b"\n\n"
        return StreamFrames(
            head=head,
            head_on_arrival=True,  # the API acknowledges at once; the text follows after the TTFT
            chunks=NumberedTextFrames(before, middle, after, plan.chunks, first),
            tail=tail,
            error=error,
            malformed=malformed,
        )

    # -- not streamed ---------------------------------------------------------------------------

    def response(self, plan: Plan, enc: Encoding) -> HttpResponse:
        objects = _Objects(enc)
        status = _status(plan)
        item = objects.message(status, b"[%b]" % _part(dumps(plan.answer)))
        return HttpResponse(200, JSON, objects.final(plan, status, item))

    error = _CHAT.error  # the same error bodies and rate-limit headers as chat completions

    # -- a captured stream ----------------------------------------------------------------------

    def text_of(self, event: str | None, payload: dict[str, Any]) -> str | None:
        return payload.get("delta") if payload.get("type") == "response.output_text.delta" else None


Echo = tuple[str | None, int | None, float, float, bool, str | None, str | None, tuple[tuple[str, str], ...]]


class _Objects:
    """The JSON of one request's response objects and output message, in the API's field order.

    The fields that echo the request are encoded once per request shape (cached), so building a
    response object is a handful of concatenations around the status, output and usage.
    """

    __slots__ = ("_before_output", "_before_usage", "_end", "_head", "_message_head", "_offset")

    def __init__(self, enc: Encoding) -> None:
        ident = enc.ident.encode()
        self._head = b'{"id":"resp_%b","object":"response","created_at":%d,' % (ident, enc.created)
        self._message_head = b'{"id":"msg_%b","type":"message","status":"' % ident
        self._before_output, self._before_usage, self._end = _echoed(enc.request.model, enc.options["echo"])
        self._offset = enc.created

    def response(self, status: str, output: bytes, *, usage: bytes = b"null", error: bytes = b"null",
                 completed_at: bytes = b"null", incomplete: bytes = b"null") -> bytes:  # fmt: skip
        return b'%b"status":"%b","background":false,"completed_at":%b,"error":%b,"incomplete_details":%b%b%b%b%b%b' % (
            self._head, status.encode(), completed_at, error, incomplete,
            self._before_output, output, self._before_usage, usage, self._end,
        )  # fmt: skip

    def final(self, plan: Plan, status: str, item: bytes) -> bytes:
        """The finished response: completed, or incomplete when max_output_tokens cut the answer."""
        if status == "completed":
            return self.response(status, b"[%b]" % item, usage=_usage(plan),
                                 completed_at=b"%d" % (self._offset + round(plan.end_offset)))  # fmt: skip
        return self.response(status, b"[%b]" % item, usage=_usage(plan), incomplete=_INCOMPLETE)

    def message(self, status: str, content: bytes = b"[]") -> bytes:
        return self._message_head + status.encode() + b'","content":' + content + b',"role":"assistant"}'


@lru_cache(maxsize=1024)
def _echoed(model: str, echo: Echo) -> tuple[bytes, bytes, bytes]:
    """The response object's echoed fields, in three runs: up to `output`, up to `usage`, to the end."""
    instructions, max_tokens, temperature, top_p, store, previous, user, metadata = echo
    to_output = _fields(instructions=instructions, max_output_tokens=max_tokens, max_tool_calls=None, model=model)
    to_usage = _fields(
        parallel_tool_calls=True,
        previous_response_id=previous,
        reasoning={"effort": None, "summary": None},
        service_tier="default",
        store=store,
        temperature=temperature,
        text={"format": {"type": "text"}, "verbosity": "medium"},
        tool_choice="auto",
        tools=[],
        top_logprobs=0,
        top_p=top_p,
        truncation="disabled",
    )
    end = _fields(user=user, metadata=dict(metadata))
    return b"," + to_output + b',"output":', b"," + to_usage + b',"usage":', b"," + end + b"}"


def _fields(**values: Any) -> bytes:
    """JSON object members without the braces."""
    return dumps(values)[1:-1]


def _event(kind: bytes, number: int, fields: bytes) -> bytes:
    return b'event: %b\ndata: {"type":"%b","sequence_number":%d,%b}\n\n' % (kind, kind, number, fields)


def _part(text: bytes) -> bytes:
    """An output_text content part around an already escaped JSON string."""
    return b'{"type":"output_text","annotations":[],"logprobs":[],"text":%b}' % text


def _status(plan: Plan) -> str:
    return "completed" if plan.finish_reason == "stop" else "incomplete"


def _usage(plan: Plan) -> bytes:
    return (
        b'{"input_tokens":%d,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"output_tokens":%d,'
        b'"output_tokens_details":{"reasoning_tokens":0},"total_tokens":%d}'
    ) % (plan.prompt_tokens, plan.completion_tokens, plan.prompt_tokens + plan.completion_tokens)


def _strings(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise RequestError(name, f"'{name}' must be a string, got {value!r}")
    return value


def _metadata(value: Any) -> tuple[tuple[str, str], ...]:
    """`metadata`: up to 16 string pairs, as the API allows; kept as a tuple to be hashable."""
    if value is None:
        return ()
    if (
        not isinstance(value, dict)
        or len(value) > 16
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    ):
        raise RequestError("metadata", "'metadata' must be an object of at most 16 string keys and string values")
    return tuple(value.items())


def _input(value: Any) -> tuple[Message, ...]:
    """`input`: a string (one user message) or a list of input items."""
    if isinstance(value, str):
        return (Message("user", value),)
    if not isinstance(value, list) or not value:
        raise RequestError("input", "'input' must be a string or a non-empty array of input items")
    messages = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise RequestError(f"input[{i}]", f"input[{i}] must be an object, got {type(item).__name__}")
        kind = item.get("type", "message")
        if not isinstance(kind, str):
            raise RequestError(f"input[{i}].type", f"input[{i}].type must be a string, got {type(kind).__name__}")
        if kind == "function_call_output":
            output = item.get("output")
            messages.append(Message("tool", output if isinstance(output, str) else _text(output, f"input[{i}].output")))
            continue
        if kind in _SKIPPED_ITEMS:
            continue
        if kind != "message":
            raise RequestError(f"input[{i}].type", f"input[{i}].type {kind!r} is not an input item the mock reads")
        role = item.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise RequestError(f"input[{i}].role", f"input[{i}].role must be one of {sorted(ROLES)}, got {role!r}")
        content = item.get("content")
        messages.append(Message(role, content if isinstance(content, str) else _text(content, f"input[{i}].content")))
    return tuple(messages)


def _text(parts: Any, where: str) -> str:
    """The text of a list of content parts; images and files carry none the mock reads."""
    if not isinstance(parts, list):
        raise RequestError(where, f"{where} must be a string or an array of content parts")
    texts = []
    for j, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        kind = kind if isinstance(kind, str) else None  # a list or an object names no part type
        if kind in _TEXT_PARTS:
            if not isinstance(part.get("text"), str):
                raise RequestError(f"{where}[{j}].text", f"a {kind} part needs a string 'text'")
            texts.append(part["text"])
        elif kind not in _MEDIA_PARTS:
            raise RequestError(
                f"{where}[{j}]",
                f"{where}[{j}] must be a content part of type input_text, output_text, input_image or input_file",
            )
    return "".join(texts)
