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
through), each a 400 in OpenAI's error shape with its `check` id in the journal.

This module is the routes, `parse`, the encoders (`stream_frames`, `response`, `error`, `text_of`,
the frames of an answer with blocks) and the wire constants; the Responses and legacy completions
dialects import its shared field readers (`model_field`, `stream_field`, `include_usage_field`,
`check_ranges`) and pieces (`JSON`, `_RANGES`, `_ERROR_EVENT`). `_chat_agent` reads the request's
agent side into an `Agent` and makes the checks (its docstring lists each id and the API's words).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from contracts import DIALECT_PROFILE_DIR

from .._config import MockConfig
from .._errors import RequestError
from .._plan import Plan
from .._request import ChatRequest, Message, overrides_from_headers
from .._wire import HttpResponse, StreamFrames
from ._base import BlockFrames, Call, Encoding, Route, StreamProbe, TextFrames, dumps, json_string, json_text_field
from ._chat_agent import agent_of, check_choices, message_text

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
    tool_call_prefix = "call_"  # the API's tool call ids: `call_` and 24 more characters
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
        check_choices(body.get("n"), call.strict)
        request = ChatRequest(
            model=model,
            messages=messages,
            stream=stream,
            max_tokens=max_tokens,
            sampling={name: body[name] for name in _SAMPLING if body.get(name) is not None},
            overrides=overrides_from_headers(call.headers),
            agent=agent_of(body, messages, call.strict),
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
        messages.append(Message(role, message_text(item.get("content"), i, role)))
    return tuple(messages)


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


# -- an answer with blocks ----------------------------------------------------------------------------

_CALL_PREFIX = "call_"
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
    frames = BlockFrames(plan.chunks, block_of, templates, openings)
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
