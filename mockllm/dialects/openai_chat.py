"""OpenAI chat completions, `POST /v1/chat/completions` (and `GET /v1/models`), byte-shaped as
api.openai.com answers; the parts the other OpenAI dialects share (field checks, error bodies).

Beyond text (an `Agent`, built only when the request has `tools`, `tool_choice`,
`parallel_tool_calls`, `reasoning_effort`, a JSON `response_format`, or tool calls / tool messages
in its history; any other request takes the plain path, byte for byte as before):

- Tools: `tools: [{type: function, function: {name, description, parameters, strict}}]` (`custom`
  tools are accepted and not offered), `tool_choice` (`auto`, `none`, `required`, `{type: function,
  function: {name}}`, `{type: allowed_tools, allowed_tools: {mode}}`), `parallel_tool_calls`.
  A tool call streams as api.openai.com streams it: the call's first delta carries `index`, `id`
  (`call_` + 24 hex digits), `type: "function"` and `function: {name, arguments: ""}` (merged with
  the role delta, `content: null`, when the answer opens with a call), then its arguments in pieces,
  `{"tool_calls":[{"index":i,"function":{"arguments":piece}}]}`; several calls take indexes 0, 1, ...;
  the finish reason is `tool_calls`. Not streamed: `message.tool_calls`, `content: null` when the
  answer has no text.
- Reasoning: `reasoning_effort` (minimal, low, medium, high, xhigh; `none` is none) is visible
  reasoning, streamed before the content as `delta.reasoning_content` pieces, as vLLM, DeepSeek and
  other OpenAI-compatible servers stream it (api.openai.com itself shows none on chat completions);
  not streamed it is `message.reasoning_content`; usage counts it in
  `completion_tokens_details.reasoning_tokens`. A rule's redacted reasoning has no chat shape: it
  takes its time and sends nothing.
- Structured output: `response_format: {type: json_schema, json_schema: {name, schema, strict}}` or
  `{type: json_object}`: the content is a seeded JSON instance of the schema (any object for
  `json_object`), streamed in pieces like text. `{type: text}` is plain text.
- History: assistant messages' `tool_calls` are the calls, `tool` messages (`tool_call_id`) their
  results; the tool messages that end the history are the answer's pending input.

Checks as the provider makes them (`Call.strict`, the config's `strict`; `strict: false` lets each
through), each a 400 in OpenAI's error shape with its `check` id in the journal: see `_CHECKS`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from contracts import DIALECT_PROFILE_DIR

from .._agent import NO_PARAMETERS, Agent, OutputFormat, Reasoning, Tool, ToolCall, ToolChoice, ToolResult
from .._config import MockConfig
from .._errors import RequestError
from .._plan import Plan
from .._request import ChatRequest, Message, overrides_from_headers
from .._schema_instance import SchemaError, check_schema
from .._wire import HttpResponse, StreamFrames
from ._base import BlockFrames, Call, Encoding, Route, StreamProbe, TextFrames, dumps, json_string, json_text_field

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_SAMPLING = ("temperature", "top_p", "seed", "stop", "presence_penalty", "frequency_penalty",
             "logit_bias", "n", "response_format", "tools", "tool_choice", "parallel_tool_calls",
             "reasoning_effort")  # fmt: skip
_RANGES = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "presence_penalty": (-2, 2),
    "frequency_penalty": (-2, 2),
}

JSON = (("content-type", "application/json"),)
_ERROR_SHAPES: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Request not allowed."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", "service_unavailable", "The engine is currently overloaded, please try again later."),
    529: ("server_error", "overloaded", "The server is overloaded, please try again later."),
}  # fmt: skip


SYSTEM_FINGERPRINT = "fp_mock0001"

# Pieces of a chat.completion.chunk event: the envelope (id, created, model) is filled in once per
# response; `_END` closes every event, with a null usage when the client asked for a usage chunk.
_CHUNK_ENVELOPE = (
    b'data: {"id":"chatcmpl-%b","object":"chat.completion.chunk","created":%d,"model":%b,"service_tier":"default",'
    b'"system_fingerprint":"' + SYSTEM_FINGERPRINT.encode() + b'","choices":['
)
_ROLE_DELTA = (
    b'{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]'
)
_DELTA_BEFORE = b'{"index":0,"delta":{"content":'
_DELTA_AFTER = b'},"logprobs":null,"finish_reason":null}]'
_FINISH = b'{"index":0,"delta":{},"logprobs":null,"finish_reason":"%b"}]'
_END = b"}\n\n"
_END_WITH_USAGE = b',"usage":null}\n\n'

_ERROR_EVENT = b"data: " + dumps(
    {"error": {"message": "The server had an error while processing your request. Sorry about that!",
               "type": "server_error", "param": None, "code": None}}
) + b"\n\n"  # fmt: skip


class OpenAIChat:
    name = "openai-chat"
    stream_headers = (
        ("content-type", "text/event-stream; charset=utf-8"),
        ("cache-control", "no-cache"),
        ("x-accel-buffering", "no"),
    )
    load_profile = DIALECT_PROFILE_DIR / "openai-chat.yaml"
    probe = StreamProbe(
        "/v1/chat/completions",
        lambda prompt: {"model": "bench", "messages": [{"role": "user", "content": prompt}], "stream": True},
        json_text_field(b"content"),
        b"data: [DONE]",
    )

    def __init__(self) -> None:
        self.routes = (
            Route("POST", "/v1/chat/completions"),
            Route("GET", "/v1/models", self.list_models),
            Route("GET", "/v1/models/{model}", self.get_model),
        )

    def parse(self, call: Call) -> tuple[ChatRequest, Mapping[str, Any]]:
        body = call.json_object()
        model = model_field(body)
        messages = _messages(body.get("messages"))
        stream = stream_field(body)
        include_usage = include_usage_field(body, stream)
        max_tokens = _max_tokens(body)
        check_ranges(body, _RANGES)
        n = body.get("n")
        if n is not None and n != 1:
            counted = isinstance(n, int) and not isinstance(n, bool) and n > 1
            if not counted or call.strict:
                # Not the provider's rule (it answers n choices): the mock's own limit. With
                # `strict: false` an n above 1 is answered with the one choice.
                raise RequestError(
                    "n",
                    f"the mock answers one choice per request; 'n' must be 1, got {n!r}"
                    + (" (with the config's strict: false it answers with one choice)" if counted else ""),
                    check="openai-chat.n-above-one" if counted else None,
                )
        request = ChatRequest(
            model=model,
            messages=messages,
            stream=stream,
            max_tokens=max_tokens,
            sampling={name: body[name] for name in _SAMPLING if body.get(name) is not None},
            overrides=overrides_from_headers(call.headers),
            agent=_agent(body, messages, call.strict),
        )
        return request, {"include_usage": include_usage}

    # -- streamed -------------------------------------------------------------------------------

    def stream_frames(self, plan: Plan, enc: Encoding) -> StreamFrames:
        include_usage = enc.options["include_usage"]
        envelope = _CHUNK_ENVELOPE % (enc.ident.encode(), enc.created, json_string(enc.request.model))
        end = _END_WITH_USAGE if include_usage else _END
        if plan.blocks:
            return _block_frames(plan, envelope, end, include_usage)
        # Per chunk, only the text is encoded: the rest of the frame is made once here.
        before = envelope + _DELTA_BEFORE
        tail = envelope + _FINISH % plan.finish_reason.encode() + end
        if include_usage:
            tail += envelope + b'],"usage":' + _usage_json(plan.prompt_tokens, plan.completion_tokens) + b"}\n\n"
        return StreamFrames(
            head=envelope + _ROLE_DELTA + end,
            head_on_arrival=False,
            chunks=TextFrames(before, _DELTA_AFTER + end, plan.chunks),
            tail=tail + b"data: [DONE]\n\n",
            error=_ERROR_EVENT,
            # A frame cut off in the middle of its JSON, as a broken proxy or a buggy upstream sends it.
            malformed=before + b'"' + b"\n\n",
        )

    # -- not streamed ---------------------------------------------------------------------------

    def response(self, plan: Plan, enc: Encoding) -> HttpResponse:
        if plan.blocks:
            return HttpResponse(200, JSON, dumps(_block_body(plan, enc)))
        body = {
            "id": f"chatcmpl-{enc.ident}",
            "object": "chat.completion",
            "created": enc.created,
            "model": enc.request.model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": plan.answer,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": plan.finish_reason,
                }
            ],
            "usage": _usage(plan),
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        return HttpResponse(200, JSON, dumps(body))

    def error(
        self,
        status: int,
        message: str | None = None,
        *,
        param: str | None = None,
        retry_after: float | None = None,
        call: Call | None = None,
    ) -> HttpResponse:
        kind, code, default_message = _ERROR_SHAPES.get(
            status,
            (
                "server_error" if status >= 500 else "invalid_request_error",
                None,
                "The mock returned an error.",
            ),
        )
        headers = list(JSON)
        if status == 429:
            wait = 1.0 if retry_after is None else retry_after
            headers += [
                ("retry-after", _seconds(wait)),
                ("x-ratelimit-limit-requests", "500"),
                ("x-ratelimit-limit-tokens", "200000"),
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-remaining-tokens", "0"),
                ("x-ratelimit-reset-requests", f"{_seconds(wait)}s"),
                ("x-ratelimit-reset-tokens", f"{_seconds(wait)}s"),
            ]
        elif retry_after is not None:
            headers.append(("retry-after", _seconds(retry_after)))
        body = {
            "error": {
                "message": message or default_message,
                "type": kind,
                "param": param,
                "code": code,
            }
        }
        return HttpResponse(status, tuple(headers), dumps(body))

    # -- other endpoints ------------------------------------------------------------------------

    def list_models(self, call: Call, config: MockConfig) -> HttpResponse:
        data = [_model(name) for name in config.models]
        return HttpResponse(200, JSON, dumps({"object": "list", "data": data}))

    def get_model(self, call: Call, config: MockConfig) -> HttpResponse:
        # Any model name is accepted by the chat endpoint, so any name is described here too.
        return HttpResponse(200, JSON, dumps(_model(call.path_params["model"])))

    # -- a captured stream ----------------------------------------------------------------------

    def text_of(self, event: str | None, payload: dict[str, Any]) -> str | None:
        choices = payload.get("choices") or []
        return (choices[0].get("delta") or {}).get("content") if choices else None


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "mockllm"}


def _usage(plan: Plan) -> dict[str, Any]:
    return _usage_counts(plan.prompt_tokens, plan.completion_tokens, plan.reasoning_tokens)


@lru_cache(maxsize=1024)
def _usage_json(prompt_tokens: int, completion_tokens: int, reasoning_tokens: int = 0) -> bytes:
    """The usage object of a stream's last chunk: requests of one size share its bytes."""
    return dumps(_usage_counts(prompt_tokens, completion_tokens, reasoning_tokens))


def _usage_counts(prompt_tokens: int, completion_tokens: int, reasoning_tokens: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def model_field(body: dict[str, Any]) -> str:
    """`model`, required by every OpenAI endpoint: a non-empty string."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("model", "you must provide a model parameter (a non-empty string)")
    return model


def stream_field(body: dict[str, Any]) -> bool:
    """`stream`: a boolean, false when absent or null."""
    stream = body.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        raise RequestError("stream", f"'stream' must be a boolean, got {stream!r}")
    return bool(stream)


def include_usage_field(body: dict[str, Any], stream: bool) -> bool:
    """`stream_options.include_usage`: allowed only on a stream, as OpenAI has it."""
    options = body.get("stream_options")
    if options is None:
        return False
    if not stream:
        raise RequestError("stream_options", "The 'stream_options' parameter is only allowed when 'stream' is enabled.")
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise RequestError("stream_options", "'stream_options' must be {\"include_usage\": bool}")
    return options.get("include_usage", False)


def check_ranges(body: dict[str, Any], ranges: Mapping[str, tuple[float, float]]) -> None:
    """Each named sampling number, when present, within its range; else the error OpenAI gives."""
    for name, (low, high) in ranges.items():
        value = body.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high
        ):
            raise RequestError(name, f"'{name}' must be a number between {low} and {high}, got {value!r}")


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def _messages(value: Any) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise RequestError("messages", "'messages' must be a non-empty array of message objects")
    messages = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise RequestError(f"messages[{i}]", f"messages[{i}] must be an object, got {type(item).__name__}")
        role = item.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise RequestError(
                f"messages[{i}].role",
                f"messages[{i}].role must be one of {sorted(ROLES)}, got {role!r}",
            )
        messages.append(Message(role, _content(item.get("content"), i, role)))
    return tuple(messages)


def _content(value: Any, i: int, role: str) -> str:
    if isinstance(value, str):
        return value
    if value is None and role in ("assistant", "tool", "function"):
        return ""  # an assistant turn that only called tools
    if isinstance(value, list):
        texts = []
        for j, part in enumerate(value):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise RequestError(
                    f"messages[{i}].content[{j}]",
                    "each content part must be an object with a 'type'",
                )
            if part["type"] in ("text", "input_text"):
                if not isinstance(part.get("text"), str):
                    raise RequestError(f"messages[{i}].content[{j}].text", "a text part needs a string 'text'")
                texts.append(part["text"])
        return "".join(texts)
    raise RequestError(f"messages[{i}].content", f"messages[{i}].content must be a string or an array of parts")


def _max_tokens(body: dict[str, Any]) -> int | None:
    chosen = None
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RequestError(name, f"'{name}' must be an integer >= 1, got {value!r}")
        chosen = value if chosen is None else min(chosen, value)
    return chosen


# -- tools, reasoning and structured output ---------------------------------------------------------

# The checks this dialect makes as api.openai.com makes them (on unless the config says `strict:
# false`), by the `check` id the journal records. The messages are the API's own, as clients and
# their issue trackers quote them (e.g. openai/openai-python and langchain-ai issues; SGLang's
# router mirrors the tool_choice one):
#   "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with
#    'tool_calls'." (param "messages.[i].role", its spelling and typo as the API has them)
#   "Invalid parameter: 'tool_call_id' of 'X' not found in 'tool_calls' of previous message."
#   "An assistant message with 'tool_calls' must be followed by tool messages responding to each
#    'tool_call_id'. The following tool_call_ids did not have response messages: X"
#   "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."
#   "Invalid 'tools[0].function.name': string does not match pattern. Expected a string that
#    matches the pattern '^[a-zA-Z0-9_-]+$'."
#   "'messages' must contain the word 'json' in some form, to use 'response_format' of type
#    'json_object'."
_CHECKS = {
    "openai-chat.tool-message-without-call": "a tool message with no assistant tool_calls before it",
    "openai-chat.tool-call-id-unknown": "a tool message answering no call of the assistant message before it",
    "openai-chat.tool-call-id-missing": "a tool message without a tool_call_id",
    "openai-chat.tool-calls-without-results": "an assistant message's tool_calls not each answered by a tool message",
    "openai-chat.tool-call-invalid": "an assistant message's tool call without an id, type or function",
    "openai-chat.tools-invalid": "tools not an array of tool objects",
    "openai-chat.tool-function-missing": "a function tool without its function",
    "openai-chat.tool-name-missing": "a function tool without a name",
    "openai-chat.tool-name-invalid": "a function name not matching ^[a-zA-Z0-9_-]{1,64}$",
    "openai-chat.tool-parameters-invalid": "a function's parameters not a JSON Schema object",
    "openai-chat.tool-choice-invalid": "a tool_choice that is none of auto, none, required, a named function",
    "openai-chat.tool-choice-without-tools": "tool_choice without tools",
    "openai-chat.tool-choice-unknown-function": "tool_choice naming a function tools does not offer",
    "openai-chat.parallel-tool-calls-without-tools": "parallel_tool_calls without tools, or not a boolean",
    "openai-chat.reasoning-effort-invalid": "a reasoning_effort that is none of the efforts",
    "openai-chat.response-format-invalid": "a response_format of no known type",
    "openai-chat.json-object-without-json-word": "response_format json_object with no 'json' in the messages",
    "openai-chat.json-schema-missing": "response_format json_schema without json_schema or its name, or a bad schema",
    "openai-chat.schema-invalid": "a function's parameters or a response schema no value can satisfy",
    "openai-chat.n-above-one": "n > 1 (the mock's own limit, not the provider's: it answers one choice)",
}  # fmt: skip

_AGENT_FIELDS = frozenset({"tools", "tool_choice", "parallel_tool_calls", "reasoning_effort", "response_format"})
_NAME = re.compile(r"[a-zA-Z0-9_-]+")
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
_CALL_PREFIX = "call_"


def _refuse(strict: bool, check: str, param: str | None, message: str) -> None:
    """A 400 as the provider answers it, when the request is checked; else nothing."""
    if strict:
        raise RequestError(param, message, check=check)


def _type_name(value: Any) -> str:
    """A JSON value's type as OpenAI's messages name it ("expected an object, but got a string")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {str: "a string", list: "an array", dict: "an object", int: "an integer", float: "a decimal"}.get(
        type(value), "a value"
    )


def _agent(body: dict[str, Any], messages: tuple[Message, ...], strict: bool) -> Agent | None:
    """The request's tools, tool choice, reasoning, output format and tool history; None when it
    has none of them (the plain path)."""
    if _AGENT_FIELDS.isdisjoint(body) and not any(
        item["role"] == "tool" or "tool_calls" in item for item in body["messages"]
    ):
        return None  # the plain path, at the cost of one look per message
    tools, has_tools = _tools(body.get("tools"), strict)
    raw_choice = body.get("tool_choice")
    choice = _tool_choice(raw_choice, tools, has_tools, strict)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None:
        if not isinstance(parallel, bool):
            _refuse(
                strict,
                "openai-chat.parallel-tool-calls-without-tools",
                "parallel_tool_calls",
                f"Invalid type for 'parallel_tool_calls': expected a boolean, but got {_type_name(parallel)} instead.",
            )
            parallel = bool(parallel)
        elif not has_tools:
            _refuse(
                strict,
                "openai-chat.parallel-tool-calls-without-tools",
                "parallel_tool_calls",
                "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' "
                "are specified.",
            )
    reasoning = _reasoning(body.get("reasoning_effort"), strict)
    output = _response_format(body.get("response_format"), messages, strict)
    calls, results, pending = _history(body.get("messages"), strict)
    if not (has_tools or raw_choice is not None or parallel is not None or reasoning or output or calls or results):
        return None
    return Agent(
        tools=tools,
        choice=choice,
        parallel=True if parallel is None else parallel,
        reasoning=reasoning,
        output=output,
        calls=calls,
        results=results,
        pending=pending,
    )


def _tools(value: Any, strict: bool) -> tuple[tuple[Tool, ...], bool]:
    """The function tools offered, and whether `tools` offers any tool at all (custom tools too)."""
    if value is None:
        return (), False
    if not isinstance(value, list):
        _refuse(
            strict,
            "openai-chat.tools-invalid",
            "tools",
            f"Invalid type for 'tools': expected an array, but got {_type_name(value)} instead.",
        )
        return (), False
    if not value:
        _refuse(
            strict,
            "openai-chat.tools-invalid",
            "tools",
            "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        )
    tools: list[Tool] = []
    for i, item in enumerate(value):
        key = f"tools[{i}]"
        if not isinstance(item, dict):
            _refuse(
                strict,
                "openai-chat.tools-invalid",
                key,
                f"Invalid type for '{key}': expected an object, but got {_type_name(item)} instead.",
            )
            continue
        kind = item.get("type")
        if kind == "custom":
            continue  # a free-form tool: accepted, never called by the mock
        if kind != "function":
            _refuse(
                strict,
                "openai-chat.tools-invalid",
                f"{key}.type",
                f"Invalid value: {kind!r}. Supported values are: 'function' and 'custom'."
                if kind is not None
                else f"Missing required parameter: '{key}.type'.",
            )
            if kind is not None:
                continue
        function = item.get("function")
        if not isinstance(function, dict):
            _refuse(
                strict,
                "openai-chat.tool-function-missing",
                f"{key}.function",
                f"Missing required parameter: '{key}.function'."
                if function is None
                else f"Invalid type for '{key}.function': expected an object, but got {_type_name(function)} instead.",
            )
            continue
        name = function.get("name")
        if not isinstance(name, str):
            _refuse(
                strict,
                "openai-chat.tool-name-missing",
                f"{key}.function.name",
                f"Missing required parameter: '{key}.function.name'."
                if name is None
                else f"Invalid type for '{key}.function.name': expected a string, but got {_type_name(name)} instead.",
            )
            continue
        if len(name) > 64:
            _refuse(
                strict,
                "openai-chat.tool-name-invalid",
                f"{key}.function.name",
                f"Invalid '{key}.function.name': string too long. Expected a string with maximum length 64, "
                f"but got a string with length {len(name)} instead.",
            )
        elif not _NAME.fullmatch(name):
            _refuse(
                strict,
                "openai-chat.tool-name-invalid",
                f"{key}.function.name",
                f"Invalid '{key}.function.name': string does not match pattern. Expected a string that "
                "matches the pattern '^[a-zA-Z0-9_-]+$'.",
            )
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            _refuse(
                strict,
                "openai-chat.tool-parameters-invalid",
                f"{key}.function.parameters",
                f"Invalid type for '{key}.function.parameters': expected an object, but got "
                f"{_type_name(parameters)} instead.",
            )
            parameters = None
        if parameters is not None and not _schema_ok(strict, parameters, f"function '{name}'"):
            parameters = None
        description = function.get("description")
        tools.append(
            Tool(
                name,
                NO_PARAMETERS if parameters is None else parameters,
                description if isinstance(description, str) else "",
            )
        )
    return tuple(tools), bool(value)


def _tool_choice(value: Any, tools: tuple[Tool, ...], has_tools: bool, strict: bool) -> ToolChoice:
    if value is None:
        return ToolChoice()
    if not has_tools:
        _refuse(
            strict,
            "openai-chat.tool-choice-without-tools",
            "tool_choice",
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
        )
    if isinstance(value, str):
        if value in ("auto", "none", "required"):
            return ToolChoice(value)  # type: ignore[arg-type]
        _refuse(
            strict,
            "openai-chat.tool-choice-invalid",
            "tool_choice",
            f"Invalid value: {value!r}. Supported values are: 'none', 'auto', and 'required'.",
        )
        return ToolChoice()
    if isinstance(value, dict) and value.get("type") == "allowed_tools":
        mode = (value.get("allowed_tools") or {}).get("mode") if isinstance(value.get("allowed_tools"), dict) else None
        return ToolChoice("required" if mode == "required" else "auto")
    function = value.get("function") if isinstance(value, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(value, dict) or value.get("type") != "function" or not isinstance(name, str):
        param = (
            "tool_choice.function.name"
            if isinstance(value, dict) and value.get("type") == "function"
            else "tool_choice"
        )
        _refuse(
            strict,
            "openai-chat.tool-choice-invalid",
            param,
            f"Missing required parameter: '{param}'."
            if param != "tool_choice"
            else "Invalid value for 'tool_choice': expected 'none', 'auto', 'required', or an object "
            '{"type": "function", "function": {"name": ...}}.',
        )
        return ToolChoice("required")
    if has_tools and all(tool.name != name for tool in tools):
        # As SGLang's OpenAI-compatible router words it, mirroring the API.
        _refuse(
            strict,
            "openai-chat.tool-choice-unknown-function",
            "tool_choice",
            f"Invalid value for 'tool_choice': function '{name}' not found in 'tools'.",
        )
    return ToolChoice("tool", name)


def _schema_ok(strict: bool, schema: Mapping[str, Any], what: str) -> bool:
    """Whether the mock can make values valid against `schema`; if not, a 400 as OpenAI refuses an
    invalid schema ("Invalid schema for function 'X': ..."), or False without the checks (the
    caller then drops the schema)."""
    try:
        check_schema(schema, "schema")
    except SchemaError as err:
        _refuse(strict, "openai-chat.schema-invalid", None, f"Invalid schema for {what}: {err}")
        return False
    return True


def _reasoning(value: Any, strict: bool) -> Reasoning | None:
    if value is None or value == "none":
        return None
    if value not in _EFFORTS:
        _refuse(
            strict,
            "openai-chat.reasoning-effort-invalid",
            "reasoning_effort",
            f"Invalid value: {value!r}. Supported values are: 'none', 'minimal', 'low', 'medium', 'high', and 'xhigh'.",
        )
        value = "medium"
    return Reasoning(effort="high" if value == "xhigh" else value, visible=True)


def _response_format(value: Any, messages: tuple[Message, ...], strict: bool) -> OutputFormat | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        _refuse(
            strict,
            "openai-chat.response-format-invalid",
            "response_format",
            f"Invalid type for 'response_format': expected an object, but got {_type_name(value)} instead.",
        )
        return None
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        if not any("json" in message.content.lower() for message in messages):
            _refuse(
                strict,
                "openai-chat.json-object-without-json-word",
                "messages",
                "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
            )
        return OutputFormat("json_object")
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict):
            _refuse(
                strict,
                "openai-chat.json-schema-missing",
                "response_format.json_schema",
                "Missing required parameter: 'response_format.json_schema'."
                if spec is None
                else "Invalid type for 'response_format.json_schema': expected an object, but got "
                f"{_type_name(spec)} instead.",
            )
            return OutputFormat("json_schema")
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            _refuse(
                strict,
                "openai-chat.json-schema-missing",
                "response_format.json_schema.name",
                "Missing required parameter: 'response_format.json_schema.name'.",
            )
            name = None
        schema = spec.get("schema")
        if schema is not None and not isinstance(schema, dict):
            _refuse(
                strict,
                "openai-chat.json-schema-missing",
                "response_format.json_schema.schema",
                "Invalid type for 'response_format.json_schema.schema': expected an object, but got "
                f"{_type_name(schema)} instead.",
            )
            schema = None
        if schema is not None and not _schema_ok(strict, schema, f"response_format '{name}'"):
            schema = None
        return OutputFormat("json_schema", schema, name)
    _refuse(
        strict,
        "openai-chat.response-format-invalid",
        "response_format.type",
        f"Invalid value: {kind!r}. Supported values are: 'text', 'json_object', and 'json_schema'."
        if kind is not None
        else "Missing required parameter: 'response_format.type'.",
    )
    return None


def _history(value: Any, strict: bool) -> tuple[tuple[ToolCall, ...], tuple[ToolResult, ...], tuple[ToolResult, ...]]:
    """The tool calls of the assistant messages, the tool messages' results, and the results that
    end the history; checked as the API checks them: each tool message answers a call of the
    assistant message before it, and each call of an assistant message is answered before the next
    message of another role."""
    calls: list[ToolCall] = []
    results: list[ToolResult] = []
    trailing: list[ToolResult] = []
    open_calls: dict[str, str] | None = None  # the latest assistant tool_calls (id -> name) still in reach
    unanswered: list[str] = []
    asked_at = 0
    for i, item in enumerate(value):  # `_messages` has checked it is a list of objects with a role
        role = item["role"]
        if role == "tool":
            call_id = item.get("tool_call_id")
            if not isinstance(call_id, str):
                _refuse(
                    strict,
                    "openai-chat.tool-call-id-missing",
                    f"messages.[{i}].tool_call_id",
                    f"Missing required parameter: 'messages.[{i}].tool_call_id'.",
                )
                call_id = ""
            if open_calls is None:
                _refuse(
                    strict,
                    "openai-chat.tool-message-without-call",
                    f"messages.[{i}].role",
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    "with 'tool_calls'.",
                )
            elif call_id not in open_calls:
                _refuse(
                    strict,
                    "openai-chat.tool-call-id-unknown",
                    f"messages.[{i}].tool_call_id",
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of previous message.",
                )
            if call_id in unanswered:
                unanswered.remove(call_id)
            result = ToolResult(call_id, (open_calls or {}).get(call_id), _content(item.get("content"), i, role))
            results.append(result)
            trailing.append(result)
            continue
        if unanswered:
            _refuse_unanswered(strict, asked_at, unanswered)
        trailing = []
        open_calls, unanswered = None, []
        if role == "assistant" and item.get("tool_calls") is not None:
            made = _assistant_calls(item["tool_calls"], i, strict)
            if made:
                calls += made
                open_calls = {call.id: call.name for call in made}
                unanswered = [call.id for call in made]
                asked_at = i
    if unanswered:
        _refuse_unanswered(strict, asked_at, unanswered)
    return tuple(calls), tuple(results), tuple(trailing)


def _refuse_unanswered(strict: bool, at: int, ids: list[str]) -> None:
    _refuse(
        strict,
        "openai-chat.tool-calls-without-results",
        f"messages.[{at}].role",
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
        f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(ids)}",
    )


def _assistant_calls(value: Any, i: int, strict: bool) -> list[ToolCall]:
    key = f"messages.[{i}].tool_calls"
    if not isinstance(value, list):
        _refuse(
            strict,
            "openai-chat.tool-call-invalid",
            key,
            f"Invalid type for '{key}': expected an array, but got {_type_name(value)} instead.",
        )
        return []
    out = []
    for j, call in enumerate(value):
        if not isinstance(call, dict):
            _refuse(
                strict,
                "openai-chat.tool-call-invalid",
                f"{key}.[{j}]",
                f"Invalid type for '{key}.[{j}]': expected an object, but got {_type_name(call)} instead.",
            )
            continue
        function = call.get("function")
        call_id = call.get("id")
        for field_name, ok in (("id", isinstance(call_id, str)), ("function", isinstance(function, dict))):
            if not ok:
                _refuse(
                    strict,
                    "openai-chat.tool-call-invalid",
                    f"{key}.[{j}].{field_name}",
                    f"Missing required parameter: '{key}.[{j}].{field_name}'.",
                )
        if not isinstance(call_id, str) or not isinstance(function, dict):
            continue
        name = function.get("name")
        arguments = function.get("arguments")
        out.append(
            ToolCall(call_id, name if isinstance(name, str) else "", arguments if isinstance(arguments, str) else "")
        )
    return out


# -- an answer with blocks ----------------------------------------------------------------------------

_CALL_OPEN = b'{"index":%d,"id":%b,"type":"function","function":{"name":%b,"arguments":""}}'
_FIRST_CALL_BEFORE = b'{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":['
_FIRST_CALL_AFTER = b'],"refusal":null},"logprobs":null,"finish_reason":null}]'
_CALL_BEFORE = b'{"index":0,"delta":{"tool_calls":['
_CALL_AFTER = b']},"logprobs":null,"finish_reason":null}]'
_ARGUMENTS_BEFORE = b'{"index":0,"delta":{"tool_calls":[{"index":%d,"function":{"arguments":'
_ARGUMENTS_AFTER = b'}}]},"logprobs":null,"finish_reason":null}]'
_REASONING_BEFORE = b'{"index":0,"delta":{"reasoning_content":'
_ROLE_DELTA_NO_TEXT = (
    b'{"index":0,"delta":{"role":"assistant","content":null,"refusal":null},"logprobs":null,"finish_reason":null}]'
)


class _SilentBlockFrames(BlockFrames):
    """`BlockFrames` where a block without a template (`None`: a redacted reasoning block, which
    chat completions has no shape for) sends only the openings at its chunks."""

    __slots__ = ()

    def __getitem__(self, index: int) -> bytes:  # type: ignore[override]
        template = self._templates[self._block_of[index]]
        opening = self._openings.get(index) or b""
        if template is None:
            return opening
        return opening + template[0] + json_string(self._texts[index]) + template[1]


def _block_frames(plan: Plan, envelope: bytes, end: bytes, include_usage: bool) -> StreamFrames:
    """The stream of an answer with reasoning, tool calls and text, made once per response."""
    blocks = plan.blocks
    templates: list[tuple[bytes, bytes] | None] = []
    openings: dict[int, bytes] = {}
    head = b""
    calls = 0
    for k, block in enumerate(blocks):
        if block.kind == "tool_call":
            opening = _CALL_OPEN % (
                calls,
                json_string(_CALL_PREFIX + (block.call_id or "")),
                json_string(block.name or ""),
            )
            if k == 0:  # the role delta carries the first call, as api.openai.com sends it
                head = envelope + _FIRST_CALL_BEFORE + opening + _FIRST_CALL_AFTER + end
            else:
                openings[block.start] = envelope + _CALL_BEFORE + opening + _CALL_AFTER + end
            templates.append((envelope + _ARGUMENTS_BEFORE % calls, _ARGUMENTS_AFTER + end))
            calls += 1
        elif block.kind == "reasoning":
            templates.append((envelope + _REASONING_BEFORE, _DELTA_AFTER + end))
        elif block.kind == "text":
            templates.append((envelope + _DELTA_BEFORE, _DELTA_AFTER + end))
        else:
            templates.append(None)
    if not head:
        has_text = any(block.kind == "text" for block in blocks)
        head = envelope + (_ROLE_DELTA if has_text else _ROLE_DELTA_NO_TEXT) + end
    block_of = plan.block_of_chunks()
    silent = None in templates
    frames: Sequence[bytes] = (
        _SilentBlockFrames(plan.chunks, block_of, templates, openings)  # type: ignore[arg-type]
        if silent
        else BlockFrames(plan.chunks, block_of, templates, openings)  # type: ignore[arg-type]
    )
    tail = envelope + _FINISH % plan.finish_reason.encode() + end
    if include_usage:
        usage = _usage_json(plan.prompt_tokens, plan.completion_tokens, plan.reasoning_tokens)
        tail += envelope + b'],"usage":' + usage + b"}\n\n"
    # A malformed event is a broken delta of the block being streamed where the fault cuts in.
    fault = plan.fault
    cut = len(plan.chunks) if fault is None or fault.after is None else fault.after
    at = block_of[min(max(cut - 1, 0), len(block_of) - 1)] if block_of else 0
    template = templates[at] if templates else None
    broken = (template or (envelope + _DELTA_BEFORE, b""))[0]
    return StreamFrames(
        head=head,
        head_on_arrival=False,
        chunks=frames,
        tail=tail + b"data: [DONE]\n\n",
        error=_ERROR_EVENT,
        malformed=broken + b'"' + b"\n\n",
    )


def _block_body(plan: Plan, enc: Encoding) -> dict[str, Any]:
    """The chat.completion of an answer with blocks: content (null without text), reasoning_content
    (as OpenAI-compatible servers give it), tool_calls."""
    has_text = any(block.kind == "text" for block in plan.blocks)
    message: dict[str, Any] = {"role": "assistant", "content": plan.answer if has_text else None}
    reasoning = "".join(block.text for block in plan.blocks if block.kind == "reasoning")
    if reasoning:
        message["reasoning_content"] = reasoning
    calls = plan.tool_calls
    if calls:
        message["tool_calls"] = [
            {
                "id": _CALL_PREFIX + (block.call_id or ""),
                "type": "function",
                "function": {"name": block.name, "arguments": block.text},
            }
            for block in calls
        ]
    message["refusal"] = None
    message["annotations"] = []
    return {
        "id": f"chatcmpl-{enc.ident}",
        "object": "chat.completion",
        "created": enc.created,
        "model": enc.request.model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": plan.finish_reason}],
        "usage": _usage(plan),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
