"""OpenAI chat completions, `POST /v1/chat/completions` (and `GET /v1/models`), byte-shaped as
api.openai.com answers; the parts the other OpenAI dialects share (field checks, error bodies)."""

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
from ._base import Call, Encoding, Route, StreamProbe, TextFrames, dumps, json_string, json_text_field

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_SAMPLING = ("temperature", "top_p", "seed", "stop", "presence_penalty", "frequency_penalty",
             "logit_bias", "n", "response_format", "tools", "tool_choice")  # fmt: skip
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
            raise RequestError("n", f"the mock answers one choice per request; 'n' must be 1, got {n!r}")
        request = ChatRequest(
            model=model,
            messages=messages,
            stream=stream,
            max_tokens=max_tokens,
            sampling={name: body[name] for name in _SAMPLING if body.get(name) is not None},
            overrides=overrides_from_headers(call.headers),
        )
        return request, {"include_usage": include_usage}

    # -- streamed -------------------------------------------------------------------------------

    def stream_frames(self, plan: Plan, enc: Encoding) -> StreamFrames:
        include_usage = enc.options["include_usage"]
        envelope = _CHUNK_ENVELOPE % (enc.ident.encode(), enc.created, json_string(enc.request.model))
        end = _END_WITH_USAGE if include_usage else _END
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
    return _usage_counts(plan.prompt_tokens, plan.completion_tokens)


@lru_cache(maxsize=1024)
def _usage_json(prompt_tokens: int, completion_tokens: int) -> bytes:
    """The usage object of a stream's last chunk: requests of one size share its bytes."""
    return dumps(_usage_counts(prompt_tokens, completion_tokens))


def _usage_counts(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
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
