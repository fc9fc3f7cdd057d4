"""OpenAI Responses, `POST /v1/responses`, byte-shaped as api.openai.com answers.

A stream is a run of named events, each numbered by `sequence_number` from 0. The numbers of the
events after the deltas depend on how many deltas go out, so the frames are built knowing the
plan's fault: an in-band error after N deltas is numbered right after the N-th delta.

Agents. `tools` (function tools `{type: function, name, description, parameters, strict}`; built-in
tool types are echoed and otherwise ignored), `tool_choice` (`auto`, `none`, `required`,
`{type: function, name}`, `{type: allowed_tools, mode}`), `parallel_tool_calls`, `reasoning`
(`{effort, summary}`) and `text.format` (`json_schema`, `json_object`, `text`) are read into the
request's `Agent` and echoed in the response object as the API echoes them; the history's
`function_call` and `function_call_output` items are its calls and results, `reasoning` items sent
back are accepted and skipped. A plan with blocks is streamed as one output item per block, each
with its own `output_index`, and `sequence_number` runs on through every event:

- text: a `message` item (`response.output_item.added`, `response.content_part.added`,
  `response.output_text.delta`..., `.done`, `response.content_part.done`, `response.output_item.done`);
- a tool call: a `function_call` item (`id` `fc_...`, `call_id` `call_...`, `name`, `arguments: ""`,
  `status: in_progress`), its arguments in `response.function_call_arguments.delta` pieces, then
  `response.function_call_arguments.done` and `response.output_item.done`; the response is completed;
- reasoning: a `reasoning` item (`rs_...`). It is visible only when `reasoning.summary` is set (auto,
  concise, detailed): `response.reasoning_summary_part.added`, `response.reasoning_summary_text.delta`
  pieces, `.done`, `response.reasoning_summary_part.done`. Without a summary the reasoning is hidden,
  as the API hides it: the item is added on arrival and done, with an empty summary, when the first
  visible token is due (a rule's reasoning block streams nothing for its time); redacted reasoning is
  an item with `encrypted_content`. `usage.output_tokens_details.reasoning_tokens` counts it all;
- structured output: the `message` text is the JSON instance, in pieces like any text.

`response.completed` carries every item as its `response.output_item.done` did. An in-band `error`
(and `response.failed`, with the items sent so far, the one cut short `incomplete`) and a malformed
event (a delta of the block being streamed, cut inside its JSON string) are numbered where the cut
falls, inside any block.

Checks, as the API makes them (`strict: false` turns them off), each with its error message:
`openai-responses.function-call-output-without-call`, `.function-call-without-output`,
`.tool-choice-not-offered`, `.text-format-missing-name`, `.text-format-missing-schema`,
`.json-object-without-json`, `.tool-missing-name`, `.tool-invalid-name`, `.tool-invalid-parameters`,
`.invalid-call-item`, `.invalid-reasoning-effort`, `.invalid-reasoning-summary`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from contracts import DIALECT_PROFILE_DIR

from .._agent import NO_PARAMETERS, Agent, Block, OutputFormat, Reasoning, Tool, ToolCall, ToolChoice, ToolResult
from .._errors import RequestError
from .._jsonbytes import json_string
from .._plan import Plan
from .._request import ChatRequest, Message, overrides_from_headers
from .._wire import HttpResponse, StreamFrames
from ._base import Call, Encoding, NumberedTextFrames, Route, StreamProbe, dumps
from .openai_chat import _RANGES, JSON, OpenAIChat, check_ranges, model_field, stream_field

ROLES = frozenset({"user", "assistant", "system", "developer"})
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
_MEDIA_PARTS = frozenset({"input_image", "input_file", "input_audio", "refusal"})
# Input items that carry no text the mock answers from: accepted so agent loops can replay them.
_SKIPPED_ITEMS = frozenset({"reasoning", "item_reference", "web_search_call", "file_search_call"})
_SAMPLING = ("temperature", "top_p")
_SAMPLING_RANGES = {name: _RANGES[name] for name in _SAMPLING}
# The API rejects smaller values: "Invalid 'max_output_tokens': integer below minimum value".
MIN_OUTPUT_TOKENS = 16
_MESSAGE = "The server had an error while processing your request. Sorry about that!"
_ERROR_FIELDS = dumps({"code": "server_error", "message": _MESSAGE, "param": None})[1:-1]  # the `error` event's
_FAILED = dumps({"code": "server_error", "message": _MESSAGE})  # the failed response's `error`
_INCOMPLETE = b'{"reason":"max_output_tokens"}'
_CHAT = OpenAIChat()

# Function names as the API allows them (its message: "Invalid 'tools[0].name': string does not match
# pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.", code invalid_value).
_FUNCTION_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
_SUMMARIES = ("auto", "concise", "detailed")
_CHOICES = ("none", "auto", "required")
_FORMATS = ("text", "json_object", "json_schema")
_DEFAULT_REASONING = {"effort": None, "summary": None}
_DEFAULT_TEXT = {"format": {"type": "text"}, "verbosity": "medium"}
# The `code` the API gives a 400 by how its message starts (the chat shapes give none).
_CODES = (
    ("Missing required parameter: ", "missing_required_parameter"),
    ("Invalid type for ", "invalid_type"),
    ("Invalid value: ", "invalid_value"),
    ("Invalid 'tools[", "invalid_value"),
)


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
        previous = _strings(body, "previous_response_id")
        history = _input(body.get("input"), call.strict and previous is None)
        messages = history.messages
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
        sampling = {name: body[name] for name in _SAMPLING if body.get(name) is not None}
        settings = _agent_settings(body, call.strict, history)
        agent = settings.agent(history)
        if agent is not None:
            sampling.update(settings.sampling)
        request = ChatRequest(
            model=model,
            messages=messages,
            stream=stream,
            max_tokens=max_tokens,
            sampling=sampling,
            overrides=overrides_from_headers(call.headers),
            agent=agent,
        )
        # What the response object echoes of the request, hashable: its JSON is cached by it (floats
        # made floats, so 1 and 1.0 cannot share a cache entry and echo differently).
        echo = (
            instructions,
            max_tokens,
            float(request.sampling.get("temperature", 1.0)),
            float(request.sampling.get("top_p", 1.0)),
            body.get("store", True) is not False,
            previous,
            _strings(body, "user"),
            _metadata(body.get("metadata")),
            settings.echo(),
        )
        hidden = agent is not None and agent.reasoning is not None and not agent.reasoning.visible
        return request, {"echo": echo, "summary": settings.summary is not None, "hidden_reasoning": hidden}

    # -- streamed -------------------------------------------------------------------------------

    def stream_frames(self, plan: Plan, enc: Encoding) -> StreamFrames:
        if plan.blocks or plan.reasoning_tokens:
            return _Items(plan, enc).stream()
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
            + _event(
                b"response." + status.encode(), done + 3, b'"response":' + objects.final(plan, status, b"[%b]" % item)
            )
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
        if plan.blocks or plan.reasoning_tokens:
            return HttpResponse(200, JSON, _Items(plan, enc).whole())
        objects = _Objects(enc)
        status = _status(plan)
        item = objects.message(status, b"[%b]" % _part(dumps(plan.answer)))
        return HttpResponse(200, JSON, objects.final(plan, status, b"[%b]" % item))

    def error(
        self,
        status: int,
        message: str | None = None,
        *,
        param: str | None = None,
        retry_after: float | None = None,
        call: Call | None = None,
    ) -> HttpResponse:
        """The chat completions' error bodies and rate-limit headers, with the `code` the Responses
        API gives the request checks' messages (`missing_required_parameter`, `invalid_type`, ...)."""
        response = _CHAT.error(status, message, param=param, retry_after=retry_after, call=call)
        code = None if message is None or status != 400 else _code(message)
        if code is None:
            return response
        body = json.loads(response.body)
        body["error"]["code"] = code
        return HttpResponse(response.status, response.headers, dumps(body))

    # -- a captured stream ----------------------------------------------------------------------

    def text_of(self, event: str | None, payload: dict[str, Any]) -> str | None:
        return payload.get("delta") if payload.get("type") == "response.output_text.delta" else None


def _code(message: str) -> str | None:
    for prefix, code in _CODES:
        if message.startswith(prefix):
            return code
    return None


Echo = tuple[
    str | None, int | None, float, float, bool, str | None, str | None, tuple[tuple[str, str], ...], str | None
]


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

    def final(self, plan: Plan, status: str, output: bytes) -> bytes:
        """The finished response (`output`: its items' JSON array): completed, or incomplete when
        max_output_tokens cut the answer."""
        if status == "completed":
            return self.response(status, output, usage=_usage(plan),
                                 completed_at=b"%d" % (self._offset + round(plan.end_offset)))  # fmt: skip
        return self.response(status, output, usage=_usage(plan), incomplete=_INCOMPLETE)

    def message(self, status: str, content: bytes = b"[]", head: bytes | None = None) -> bytes:
        return (head or self._message_head) + status.encode() + b'","content":' + content + b',"role":"assistant"}'


@lru_cache(maxsize=1024)
def _echoed(model: str, echo: Echo) -> tuple[bytes, bytes, bytes]:
    """The response object's echoed fields, in three runs: up to `output`, up to `usage`, to the end."""
    instructions, max_tokens, temperature, top_p, store, previous, user, metadata, agent = echo
    settings = {} if agent is None else json.loads(agent)
    to_output = _fields(instructions=instructions, max_output_tokens=max_tokens, max_tool_calls=None, model=model)
    to_usage = _fields(
        parallel_tool_calls=settings.get("parallel_tool_calls", True),
        previous_response_id=previous,
        reasoning=settings.get("reasoning", _DEFAULT_REASONING),
        service_tier="default",
        store=store,
        temperature=temperature,
        text=settings.get("text", _DEFAULT_TEXT),
        tool_choice=settings.get("tool_choice", "auto"),
        tools=settings.get("tools", []),
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
    return "incomplete" if plan.finish_reason == "length" else "completed"


def _usage(plan: Plan) -> bytes:
    return (
        b'{"input_tokens":%d,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"output_tokens":%d,'
        b'"output_tokens_details":{"reasoning_tokens":%d},"total_tokens":%d}'
    ) % (plan.prompt_tokens, plan.completion_tokens, plan.reasoning_tokens, plan.prompt_tokens + plan.completion_tokens)


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


# -- the request's input -------------------------------------------------------------------------


class _History:
    """The input items: the messages (tool calls and results among them, as assistant and tool
    turns), the calls and results themselves, and the results the history ends with."""

    __slots__ = ("calls", "mentions_json", "messages", "pending", "results")

    def __init__(
        self,
        messages: tuple[Message, ...],
        calls: tuple[ToolCall, ...] = (),
        results: tuple[ToolResult, ...] = (),
        pending: tuple[ToolResult, ...] = (),
        mentions_json: bool = False,
    ) -> None:
        self.messages = messages
        self.calls = calls
        self.results = results
        self.pending = pending
        self.mentions_json = mentions_json


def _input(value: Any, check: bool) -> _History:
    """`input`: a string (one user message) or a list of input items. `check`: refuse, as the API
    does without a `previous_response_id`, a call without its output and an output without its call."""
    if isinstance(value, str):
        return _History((Message("user", value),), mentions_json="json" in value.lower())
    if not isinstance(value, list) or not value:
        raise RequestError("input", "'input' must be a string or a non-empty array of input items")
    messages: list[Message] = []
    calls: list[ToolCall] = []
    results: list[ToolResult] = []
    pending: list[ToolResult] = []
    mentions_json = False
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise RequestError(f"input[{i}]", f"input[{i}] must be an object, got {type(item).__name__}")
        kind = item.get("type", "message")
        if not isinstance(kind, str):
            raise RequestError(f"input[{i}].type", f"input[{i}].type must be a string, got {type(kind).__name__}")
        if kind == "function_call":
            call = ToolCall(_call_id(item, i, check), _item_string(item, i, "name", check), _arguments(item, i, check))
            calls.append(call)
            messages.append(Message("assistant", call.arguments))
            continue
        if kind == "function_call_output":
            call_id = _call_id(item, i, check)
            output = item.get("output")
            content = output if isinstance(output, str) else _text(output, f"input[{i}].output")
            name = next((known.name for known in reversed(calls) if known.id == call_id), None)
            result = ToolResult(call_id, name, content)
            results.append(result)
            pending.append(result)
            messages.append(Message("tool", content))
            continue
        if kind in _SKIPPED_ITEMS:
            continue
        if kind != "message":
            raise RequestError(f"input[{i}].type", f"input[{i}].type {kind!r} is not an input item the mock reads")
        role = item.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise RequestError(f"input[{i}].role", f"input[{i}].role must be one of {sorted(ROLES)}, got {role!r}")
        content = item.get("content")
        text = content if isinstance(content, str) else _text(content, f"input[{i}].content")
        messages.append(Message(role, text))
        mentions_json = mentions_json or "json" in text.lower()
        pending = []  # a message after the results: the history no longer ends with them
    if check:
        _check_pairs(calls, results)
    return _History(tuple(messages), tuple(calls), tuple(results), tuple(pending), mentions_json)


def _check_pairs(calls: list[ToolCall], results: list[ToolResult]) -> None:
    """Every output answers a call of the input, every call has its output, as the API requires.
    Its messages: "No tool call found for function call output with call_id call_x." and
    "No tool output found for function call call_x." (param `input`, as reported by its users)."""
    called = {call.id for call in calls}
    for result in results:
        if result.call_id not in called:
            raise RequestError(
                "input",
                f"No tool call found for function call output with call_id {result.call_id}.",
                check="openai-responses.function-call-output-without-call",
            )
    answered = {result.call_id for result in results}
    for call in calls:
        if call.id not in answered:
            raise RequestError(
                "input",
                f"No tool output found for function call {call.id}.",
                check="openai-responses.function-call-without-output",
            )


def _call_id(item: dict[str, Any], i: int, check: bool) -> str:
    return _item_string(item, i, "call_id", check)


def _item_string(item: dict[str, Any], i: int, name: str, check: bool) -> str:
    value = item.get(name)
    if isinstance(value, str) and value:
        return value
    if check:
        raise RequestError(
            f"input[{i}].{name}",
            f"Missing required parameter: 'input[{i}].{name}'.",
            check="openai-responses.invalid-call-item",
        )
    return ""


def _arguments(item: dict[str, Any], i: int, check: bool) -> str:
    value = item.get("arguments", "")
    if isinstance(value, str):
        return value
    if check:
        raise RequestError(
            f"input[{i}].arguments",
            f"Invalid type for 'input[{i}].arguments': expected a string, but got {_a(value)} instead.",
            check="openai-responses.invalid-call-item",
        )
    return dumps(value).decode()


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


def _a(value: Any) -> str:
    """A JSON value's type as the API's messages name it ("an object", "a string")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    names = {str: "a string", list: "an array", dict: "an object", int: "an integer", float: "a number"}
    return names.get(type(value), "a value")


# -- tools, tool choice, reasoning, text format --------------------------------------------------


class _Settings:
    """The request's agent parameters: what the planner reads, what the response echoes, what the
    seed depends on."""

    __slots__ = ("choice", "echoed", "output", "parallel", "reasoning", "sampling", "summary", "tools")

    def __init__(self) -> None:
        self.tools: list[Tool] = []
        self.choice: ToolChoice | None = None
        self.parallel: bool | None = None
        self.reasoning: Reasoning | None = None
        self.summary: str | None = None
        self.output: OutputFormat | None = None
        self.echoed: dict[str, Any] = {}
        self.sampling: dict[str, Any] = {}

    def agent(self, history: _History) -> Agent | None:
        """The request's `Agent`, or None for a plain request (the plain path stays untouched)."""
        if not (
            self.tools
            or self.choice is not None
            or self.reasoning is not None
            or self.output is not None
            or history.calls
            or history.results
        ):
            return None
        return Agent(
            tools=tuple(self.tools),
            choice=self.choice or ToolChoice(),
            parallel=self.parallel is not False,
            reasoning=self.reasoning,
            output=self.output,
            calls=history.calls,
            results=history.results,
            pending=history.pending,
        )

    def echo(self) -> str | None:
        """The echoed fields that differ from a plain request's, as JSON text (hashable)."""
        return json.dumps(self.echoed, ensure_ascii=False) if self.echoed else None


def _agent_settings(body: dict[str, Any], strict: bool, history: _History) -> _Settings:
    settings = _Settings()
    _tools(body.get("tools"), strict, settings)
    _tool_choice(body.get("tool_choice"), strict, settings)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None:
        if not isinstance(parallel, bool):
            raise RequestError(
                "parallel_tool_calls",
                f"Invalid type for 'parallel_tool_calls': expected a boolean, but got {_a(parallel)} instead.",
            )
        settings.parallel = parallel
        settings.echoed["parallel_tool_calls"] = parallel
        if not parallel:
            settings.sampling["parallel_tool_calls"] = False
    _reasoning(body.get("reasoning"), strict, settings)
    _text_format(body.get("text"), strict, history, settings)
    return settings


def _tools(value: Any, strict: bool, settings: _Settings) -> None:
    """`tools`: function tools are offered to the model; built-in tools are echoed, not used."""
    if value is None:
        return
    if not isinstance(value, list):
        raise RequestError("tools", f"Invalid type for 'tools': expected an array, but got {_a(value)} instead.")
    echoed: list[Any] = []
    for i, tool in enumerate(value):
        if not isinstance(tool, dict):
            raise RequestError(
                f"tools[{i}]", f"Invalid type for 'tools[{i}]': expected an object, but got {_a(tool)} instead."
            )
        if tool.get("type") != "function":
            echoed.append(tool)
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            if strict:
                raise RequestError(
                    f"tools[{i}].name",
                    f"Missing required parameter: 'tools[{i}].name'.",
                    check="openai-responses.tool-missing-name",
                )
            echoed.append(tool)
            continue
        if strict and not _FUNCTION_NAME.fullmatch(name):
            raise RequestError(
                f"tools[{i}].name",
                f"Invalid 'tools[{i}].name': string does not match pattern. "
                "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                check="openai-responses.tool-invalid-name",
            )
        parameters = tool.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            if strict:
                raise RequestError(
                    f"tools[{i}].parameters",
                    f"Invalid type for 'tools[{i}].parameters': expected an object, but got {_a(parameters)} instead.",
                    check="openai-responses.tool-invalid-parameters",
                )
            parameters = None
        description = tool.get("description") if isinstance(tool.get("description"), str) else None
        settings.tools.append(Tool(name, NO_PARAMETERS if parameters is None else parameters, description or ""))
        echoed.append(
            {
                "type": "function",
                "description": description,
                "name": name,
                "parameters": parameters,
                "strict": tool.get("strict", True),
            }
        )
    if echoed:
        settings.echoed["tools"] = echoed
    if settings.tools:
        settings.sampling["tools"] = [[tool.name, dict(tool.parameters), tool.description] for tool in settings.tools]


def _tool_choice(value: Any, strict: bool, settings: _Settings) -> None:
    """`tool_choice`: a mode, a function by name, or allowed tools with their mode."""
    if value is None:
        return
    if isinstance(value, str):
        if value not in _CHOICES:
            raise RequestError(
                "tool_choice", f"Invalid value: {value!r}. Supported values are: 'none', 'auto', and 'required'."
            )
        settings.choice = ToolChoice(value)  # type: ignore[arg-type]
    elif isinstance(value, dict):
        kind = value.get("type")
        if kind == "function":
            name = value.get("name")
            if not isinstance(name, str) or not name:
                raise RequestError("tool_choice.name", "Missing required parameter: 'tool_choice.name'.")
            # The API's message (as its users report it): "Tool choice 'x' not found in 'tools' parameter."
            if strict and not any(tool.name == name for tool in settings.tools):
                raise RequestError(
                    "tool_choice",
                    f"Tool choice '{name}' not found in 'tools' parameter.",
                    check="openai-responses.tool-choice-not-offered",
                )
            settings.choice = ToolChoice("tool", name)
        elif kind == "allowed_tools":
            settings.choice = ToolChoice("required" if value.get("mode") == "required" else "auto")
        else:
            settings.choice = ToolChoice("auto")  # a built-in tool: the mock's model calls functions only
    else:
        raise RequestError(
            "tool_choice", f"Invalid type for 'tool_choice': expected an object, but got {_a(value)} instead."
        )
    settings.echoed["tool_choice"] = value
    settings.sampling["tool_choice"] = value


def _reasoning(value: Any, strict: bool, settings: _Settings) -> None:
    """`reasoning: {effort, summary}`: reasoning when an effort (other than none) or a summary is
    asked for; shown, as summary deltas, only with a summary."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise RequestError(
            "reasoning", f"Invalid type for 'reasoning': expected an object, but got {_a(value)} instead."
        )
    effort = value.get("effort")
    summary = value.get("summary", value.get("generate_summary"))
    if effort is not None and effort not in _EFFORTS:
        if strict:
            raise RequestError(
                "reasoning.effort",
                f"Invalid value: {effort!r}. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', "
                "and 'xhigh'.",
                check="openai-responses.invalid-reasoning-effort",
            )
        effort = None
    if summary is not None and summary not in _SUMMARIES:
        if strict:
            raise RequestError(
                "reasoning.summary",
                f"Invalid value: {summary!r}. Supported values are: 'auto', 'concise', and 'detailed'.",
                check="openai-responses.invalid-reasoning-summary",
            )
        summary = None
    settings.echoed["reasoning"] = {"effort": effort, "summary": summary}
    if effort == "none" or (effort is None and summary is None):
        return
    settings.summary = summary
    settings.reasoning = Reasoning(effort={"xhigh": "high"}.get(effort, effort), visible=summary is not None)
    settings.sampling["reasoning"] = {"effort": effort, "summary": summary}


def _text_format(value: Any, strict: bool, history: _History, settings: _Settings) -> None:
    """`text: {format, verbosity}`: a JSON schema or any JSON object as the answer."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise RequestError("text", f"Invalid type for 'text': expected an object, but got {_a(value)} instead.")
    verbosity = value.get("verbosity", "medium")
    if verbosity not in ("low", "medium", "high"):
        raise RequestError(
            "text.verbosity", f"Invalid value: {verbosity!r}. Supported values are: 'low', 'medium', and 'high'."
        )
    fmt = value.get("format", {"type": "text"})
    if not isinstance(fmt, dict):
        raise RequestError(
            "text.format", f"Invalid type for 'text.format': expected an object, but got {_a(fmt)} instead."
        )
    kind = fmt.get("type")
    if kind not in _FORMATS:
        raise RequestError(
            "text.format.type",
            f"Invalid value: {kind!r}. Supported values are: 'text', 'json_object', and 'json_schema'.",
        )
    echoed: dict[str, Any] = {"type": kind}
    if kind == "json_schema":
        # The API's messages: "Missing required parameter: 'text.format.name'." (and '.schema').
        name, schema = fmt.get("name"), fmt.get("schema")
        if strict and (not isinstance(name, str) or not name):
            raise RequestError(
                "text.format.name",
                "Missing required parameter: 'text.format.name'.",
                check="openai-responses.text-format-missing-name",
            )
        if strict and not isinstance(schema, dict):
            raise RequestError(
                "text.format.schema",
                "Missing required parameter: 'text.format.schema'.",
                check="openai-responses.text-format-missing-schema",
            )
        schema = schema if isinstance(schema, dict) else None
        name = name if isinstance(name, str) else None
        settings.output = OutputFormat("json_schema", schema, name)
        echoed.update(description=fmt.get("description"), name=name, schema=schema, strict=fmt.get("strict", False))
    elif kind == "json_object":
        # The API's message when no input message says "json" (instructions do not count).
        if strict and not history.mentions_json:
            raise RequestError(
                "input",
                "Response input messages must contain the word 'json' in some form to use 'text.format' of type "
                "'json_object'.",
                check="openai-responses.json-object-without-json",
            )
        settings.output = OutputFormat("json_object")
    settings.echoed["text"] = {"format": echoed, "verbosity": verbosity}
    if settings.output is not None:
        settings.sampling["text_format"] = echoed


# -- a plan with blocks: one output item per block -----------------------------------------------

_ADDED = b"response.output_item.added"
_DONE = b"response.output_item.done"
Events = list[tuple[bytes, bytes]]  # (event type, its fields after the sequence number)


class _Item:
    """One output item: a block's (a message, a reasoning item, a function call), or the item of
    hidden reasoning, which has no chunks. Its events, item JSON and delta template, in bytes."""

    __slots__ = ("at", "call_id", "id", "kind", "name", "objects")

    def __init__(self, objects: _Objects, kind: str, at: int, ident: str, block: Block | None) -> None:
        self.objects = objects
        self.kind = kind  # message, reasoning, silent (reasoning shown as nothing), redacted, function_call
        self.at = b"%d" % at  # its output_index
        self.call_id = self.name = b""
        if kind == "function_call":
            assert block is not None and block.call_id is not None
            self.id = b"fc_" + block.call_id.encode()
            self.call_id = b"call_" + block.call_id.encode()
            self.name = dumps(block.name)
        else:
            prefix = "msg" if kind == "message" else "rs"
            self.id = (f"{prefix}_{ident}" if at == 0 else f"{prefix}_{ident}_{at}").encode()

    def _where(self) -> bytes:
        return b'"item_id":"%b","output_index":%b' % (self.id, self.at)

    def item(self, text: bytes, status: str) -> bytes:
        """The item's JSON, with its text (escaped) and status."""
        kind = self.kind
        if kind == "message":
            head = b'{"id":"%b","type":"message","status":"' % self.id
            return self.objects.message(status, b"[%b]" % _part(text) if text else b"[]", head)
        if kind == "function_call":
            return b'{"id":"%b","type":"function_call","status":"%b","arguments":%b,"call_id":"%b","name":%b}' % (
                self.id,
                status.encode(),
                text,
                self.call_id,
                self.name,
            )
        if kind == "reasoning" and text:
            return b'{"id":"%b","type":"reasoning","summary":[{"type":"summary_text","text":%b}]}' % (self.id, text)
        if kind == "redacted" and text:
            return b'{"id":"%b","type":"reasoning","summary":[],"encrypted_content":%b}' % (self.id, text)
        return b'{"id":"%b","type":"reasoning","summary":[]}' % self.id

    def opening(self) -> Events:
        at_item = b'"output_index":%b,"item":' % self.at
        if self.kind == "message":
            return [
                (_ADDED, at_item + self.item(b"", "in_progress")),
                (b"response.content_part.added", self._where() + b',"content_index":0,"part":' + _part(b'""')),
            ]
        if self.kind == "function_call":
            return [(_ADDED, at_item + self.item(b'""', "in_progress"))]
        events = [(_ADDED, at_item + self.item(b"", "in_progress"))]
        if self.kind == "reasoning":
            events.append(
                (
                    b"response.reasoning_summary_part.added",
                    self._where() + b',"summary_index":0,"part":{"type":"summary_text","text":""}',
                )
            )
        return events

    def closing(self, text: bytes, status: str) -> Events:
        """The events that finish the item, its whole text (escaped) known."""
        done = (_DONE, b'"output_index":%b,"item":' % self.at + self.item(text, status))
        where = self._where()
        if self.kind == "message":
            where += b',"content_index":0'
            return [
                (b"response.output_text.done", where + b',"text":' + text + b',"logprobs":[]'),
                (b"response.content_part.done", where + b',"part":' + _part(text)),
                done,
            ]
        if self.kind == "function_call":
            return [(b"response.function_call_arguments.done", where + b',"arguments":' + text), done]
        if self.kind == "reasoning":
            where += b',"summary_index":0'
            return [
                (b"response.reasoning_summary_text.done", where + b',"text":' + text),
                (b"response.reasoning_summary_part.done", where + b',"part":{"type":"summary_text","text":%b}' % text),
                done,
            ]
        if self.kind == "redacted":
            return []  # its one chunk is its done event
        return [done]

    def template(self) -> tuple[bytes, bytes, bytes] | None:
        """Each chunk's event as (before, middle, after): `before + number + middle + JSON string +
        after`; None: its chunks send nothing (reasoning not shown)."""
        kind = self.kind
        if kind == "message":
            return (
                b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":',
                b"," + self._where() + b',"content_index":0,"delta":',
                b',"logprobs":[]}\n\n',
            )
        if kind == "reasoning":
            return (
                b"event: response.reasoning_summary_text.delta\ndata: "
                b'{"type":"response.reasoning_summary_text.delta","sequence_number":',
                b"," + self._where() + b',"summary_index":0,"delta":',
                b"}\n\n",
            )
        if kind == "function_call":
            return (
                b"event: response.function_call_arguments.delta\ndata: "
                b'{"type":"response.function_call_arguments.delta","sequence_number":',
                b"," + self._where() + b',"delta":',
                b"}\n\n",
            )
        if kind == "redacted":
            return (
                b'event: response.output_item.done\ndata: {"type":"response.output_item.done","sequence_number":',
                b',"output_index":%b,"item":{"id":"%b","type":"reasoning","summary":[],"encrypted_content":'
                % (self.at, self.id),
                b"}}\n\n",
            )
        return None

    def broken(self, number: int) -> bytes:
        """An event of this item cut off inside its JSON, as a broken proxy sends it."""
        template = self.template()
        if template is None:
            return (
                b'event: response.output_item.done\ndata: {"type":"response.output_item.done","sequence_number":%d,'
                b'"output_index":%b,"item":{"id":"%b","type":"reasoning","summary":[\n\n' % (number, self.at, self.id)
            )
        before, middle, _ = template
        return before + b"%d" % number + middle + b'"\n\n'


def _numbered(events: Events, first: int) -> tuple[bytes, int]:
    """The events numbered from `first`, and the number after them."""
    return b"".join(_event(kind, first + k, fields) for k, (kind, fields) in enumerate(events)), first + len(events)


class _Items:
    """A plan with blocks (or with hidden reasoning only) as the API's output items: the stream's
    frames, numbered once, and the whole response."""

    __slots__ = ("blocks", "hidden", "items", "objects", "plan", "status")

    def __init__(self, plan: Plan, enc: Encoding) -> None:
        self.plan = plan
        self.objects = objects = _Objects(enc)
        self.status = _status(plan)
        # Reasoning not streamed (no summary asked for, or a rule's for a request that asked for none):
        # an item of its own, with an empty summary, ahead of the blocks.
        self.hidden = bool(enc.options.get("hidden_reasoning")) or (
            plan.reasoning_tokens > 0 and not any(b.kind in ("reasoning", "redacted_reasoning") for b in plan.blocks)
        )
        shown = bool(enc.options.get("summary"))
        self.items: list[_Item] = []
        self.blocks: list[Block | None] = []
        if self.hidden:
            self.items.append(_Item(objects, "hidden", 0, enc.ident, None))
            self.blocks.append(None)
        for block in plan.blocks:
            kind = {"text": "message", "tool_call": "function_call", "redacted_reasoning": "redacted"}.get(
                block.kind, "reasoning" if shown else "silent"
            )
            self.items.append(_Item(objects, kind, len(self.items), enc.ident, block))
            self.blocks.append(block)

    def _text(self, k: int, stop: int | None = None) -> bytes:
        """Item `k`'s text, escaped: whole, or its chunks before chunk `stop`."""
        block = self.blocks[k]
        if block is None:
            return b""
        if stop is None:
            return dumps(block.text)
        return dumps("".join(self.plan.chunks[block.start : stop]))

    def _item_status(self, k: int) -> str:
        return "incomplete" if self.status == "incomplete" and k == len(self.items) - 1 else "completed"

    def _output(self) -> bytes:
        return b"[%b]" % b",".join(item.item(self._text(k), self._item_status(k)) for k, item in enumerate(self.items))

    def whole(self) -> bytes:
        return self.objects.final(self.plan, self.status, self._output())

    def stream(self) -> StreamFrames:
        plan, items, objects = self.plan, self.items, self.objects
        first = 1 if self.hidden else 0  # the first block's item
        pending = b'"response":' + objects.response("in_progress", b"[]")
        # The first item is added on arrival: hidden reasoning starts at once, text as the plain path's.
        head, number = _numbered(
            [(b"response.created", pending), (b"response.in_progress", pending), *items[0].opening()], 0
        )
        n = len(plan.chunks)
        numbers = [0] * n
        starts: dict[int, int] = {}  # a block's first chunk: the number of its opening's first event
        openings: dict[int, bytes] = {}
        templates: list[tuple[bytes, bytes, bytes] | None] = []
        for j, block in enumerate(plan.blocks):
            k = first + j
            item = items[k]
            template = item.template()
            templates.append(template)
            if k:
                starts[block.start] = number
                events = items[k - 1].closing(self._text(k - 1), "completed") + item.opening()
                openings[block.start], number = _numbered(events, number)
            step = 0 if template is None else 1
            for i in range(block.start, block.stop):
                numbers[i] = number
                number += step
        last = len(items) - 1
        tail, _ = _numbered(
            [
                *items[last].closing(self._text(last), self._item_status(last)),
                (
                    b"response." + self.status.encode(),
                    b'"response":' + objects.final(plan, self.status, self._output()),
                ),
            ],
            number,
        )
        fault = plan.fault
        cut = n if fault is None or fault.after is None else min(fault.after, n)
        at = number if cut == n else starts.get(cut, numbers[cut])  # the number the next event would have
        error = malformed = b""
        if fault is not None and fault.kind == "error":
            failed = objects.response("failed", self._sent(cut), error=_FAILED)
            error = _event(b"error", at, _ERROR_FIELDS) + _event(b"response.failed", at + 1, b'"response":' + failed)
        elif fault is not None and fault.kind == "malformed":
            malformed = items[self._streaming(cut)].broken(at)
        return StreamFrames(
            head=head,
            head_on_arrival=True,
            chunks=_NumberedBlockFrames(plan.chunks, plan.block_of_chunks(), templates, numbers, openings),
            tail=tail,
            error=error,
            malformed=malformed,
        )

    def _streaming(self, cut: int) -> int:
        """The item being streamed when the first `cut` chunks have gone out (its end not sent)."""
        if cut == 0:
            return 0  # the item added on arrival
        return (1 if self.hidden else 0) + self.plan.block_of_chunks()[cut - 1]

    def _sent(self, cut: int) -> bytes:
        """The output of a response that failed after `cut` chunks: the items finished, then the one
        cut short, as far as it went (incomplete)."""
        k = self._streaming(cut)
        done = [self.items[j].item(self._text(j), "completed") for j in range(k)]
        block = self.blocks[k]
        partial = self._text(k, max(cut, block.start)) if block is not None else b""
        item = self.items[k]
        if item.kind != "function_call" and partial == b'""':
            partial = b""  # nothing of it went out: no text part, no summary part
        done.append(item.item(partial, "incomplete"))
        return b"[%b]" % b",".join(done)


class _NumberedBlockFrames(Sequence[bytes]):
    """`BlockFrames` with a sequence number in each event: chunk `i` is `openings[i] + before +
    numbers[i] + middle + JSON string + after`, its block's template (None: the chunk sends nothing
    but its opening). Everything but the escape and the number is made once per response."""

    __slots__ = ("_block_of", "_numbers", "_openings", "_templates", "_texts")

    def __init__(
        self,
        texts: Sequence[str],
        block_of: Sequence[int],
        templates: Sequence[tuple[bytes, bytes, bytes] | None],
        numbers: Sequence[int],
        openings: Mapping[int, bytes],
    ) -> None:
        self._texts = texts
        self._block_of = block_of
        self._templates = templates
        self._numbers = numbers
        self._openings = openings

    def __len__(self) -> int:
        return len(self._texts)

    def __getitem__(self, index: int) -> bytes:  # type: ignore[override]
        template = self._templates[self._block_of[index]]
        opening = self._openings.get(index, b"")
        if template is None:
            return opening
        before, middle, after = template
        return b"%b%b%d%b%b%b" % (opening, before, self._numbers[index], middle, json_string(self._texts[index]), after)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _NumberedBlockFrames):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]
