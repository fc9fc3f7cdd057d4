"""Gemini API (generativelanguage), `POST /v1beta/models/{model}:generateContent` and
`:streamGenerateContent`, byte-shaped as generativelanguage.googleapis.com answers.

What the real API does and the mock copies:

- JSON is written in Google's own spelling: `": "` after a key, no space after a comma, UTF-8 as
  it is. Whole bodies (non-streamed answers, errors, the elements of a streamed array) are
  pretty-printed with two-space indents and end in a newline.
- `streamGenerateContent?alt=sse` (what the google-genai SDK always asks for) sends one
  `data: {GenerateContentResponse}` event per chunk, framed with CRLF, and no `[DONE]`.
- `streamGenerateContent` without `alt=sse` streams one JSON array: `[` + element, then
  `\\n,\\r\\n` + element for each next one, then `\\n]`.
- Errors are `{"error": {"code", "message", "status"}}` with the canonical gRPC status name;
  where the answer would have been an array, the error is wrapped in one too.

The chat and countTokens routes are served under `/v1/` as well as `/v1beta/`: google-genai 1.x
called `v1beta`, the current SDK defaults to `v1`. The model list and lookup are `v1beta` only,
since `GET /v1/models[/{model}]` belong to the OpenAI dialect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from contracts import DIALECT_PROFILE_DIR

from .._config import MockConfig
from .._errors import RequestError
from .._plan import Plan
from .._request import ChatRequest, Message, overrides_from_headers
from .._tokenizer import count_prompt_tokens
from .._wire import HttpResponse, StreamFrames
from ._base import Call, Encoding, Route, StreamProbe, TextFrames, json_string, json_text_field

JSON = (
    ("content-type", "application/json; charset=UTF-8"),
    ("vary", "Origin, X-Origin, Referer"),
    ("x-content-type-options", "nosniff"),
    ("server", "scaffolding on HTTPServer2"),
)
STREAM = ":streamGenerateContent"
FINISH = {"stop": "STOP", "length": "MAX_TOKENS"}

# (canonical status, default message) by HTTP status, as google.rpc.Code maps them.
_ERROR_SHAPES: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                             "login cookie or other valid authentication credential."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    409: ("ABORTED", "The operation was aborted."),
    413: ("INVALID_ARGUMENT", "Request payload size exceeds the limit."),
    429: ("RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing details. "
                                "For more information on this error, head to: "
                                "https://ai.google.dev/gemini-api/docs/rate-limits."),
    499: ("CANCELLED", "The operation was cancelled."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report in "
                      "https://developers.generativeai.google/guide/troubleshooting"),
    501: ("UNIMPLEMENTED", "Method not implemented."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "The request timed out. Please try again."),
}  # fmt: skip

# generationConfig fields that may change an answer, under the names the other dialects use, so
# the same conversation with the same settings gets the same seed whichever API it came on.
_SAMPLING = {
    "temperature": "temperature",
    "topP": "top_p",
    "topK": "top_k",
    "stopSequences": "stop",
    "seed": "seed",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
    "responseMimeType": "response_mime_type",
    "responseSchema": "response_schema",
    "responseJsonSchema": "response_json_schema",
}
_RANGES = {"temperature": (0, 2), "topP": (0, 1), "presencePenalty": (-2, 2), "frequencyPenalty": (-2, 2)}
_ROLES = {"": "user", "user": "user", "model": "assistant", "function": "tool", "tool": "tool"}

CRLF2 = b"\r\n\r\n"
ARRAY_NEXT = b"\n,\r\n"  # between two elements of a streamed array, as the real API writes it
ARRAY_END = b"\n]"


def google_json(value: Any) -> bytes:
    """One-line JSON in Google's spelling (`{"a": 1,"b": 2}`), as `alt=sse` events carry it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ": ")).encode()


def pretty_json(value: Any) -> bytes:
    """Two-space indented JSON, as Google writes whole bodies and array elements."""
    return json.dumps(value, ensure_ascii=False, indent=2).encode()


def _error_object(status: int, message: str | None = None) -> dict[str, Any]:
    name, default = _ERROR_SHAPES.get(status, ("UNKNOWN", "Unknown error."))
    return {"code": status, "message": message or default, "status": name}


_MID_STREAM_ERROR = {"error": _error_object(500)}
_SSE_ERROR = b"data: " + google_json(_MID_STREAM_ERROR) + CRLF2
_ARRAY_ERROR = pretty_json(_MID_STREAM_ERROR) + ARRAY_END


class Gemini:
    name = "gemini"
    load_profile = DIALECT_PROFILE_DIR / "gemini.yaml"
    probe = StreamProbe(
        "/v1beta/models/bench:streamGenerateContent?alt=sse",
        lambda prompt: {"contents": [{"role": "user", "parts": [{"text": prompt}]}]},
        json_text_field(b"text"),
        b'"finishReason"',
        CRLF2,
    )
    # The `alt=sse` stream; the array stream sets its own (StreamFrames.headers).
    stream_headers = (
        ("content-type", "text/event-stream"),
        ("content-disposition", "attachment"),
        *JSON[1:],
        ("x-accel-buffering", "no"),  # not Google's: keeps a proxy in front of the mock from buffering
    )
    array_headers = (*JSON, ("x-accel-buffering", "no"))

    def __init__(self) -> None:
        self.routes = (
            Route("POST", "/v1beta/models/{model}:generateContent"),
            Route("POST", "/v1beta/models/{model}:streamGenerateContent"),
            Route("POST", "/v1/models/{model}:generateContent"),
            Route("POST", "/v1/models/{model}:streamGenerateContent"),
            Route("GET", "/v1beta/models", self.list_models),
            Route("GET", "/v1beta/models/{model}", self.get_model),
            Route("POST", "/v1beta/models/{model}:countTokens", self.count_tokens),
            Route("POST", "/v1/models/{model}:countTokens", self.count_tokens),
            # google-genai lists and looks up models under /v1/, where OpenAI's routes are.
            Route("GET", "/v1/models", self.list_models, self.claims),
            Route("GET", "/v1/models/{model}", self.get_model, self.claims),
        )

    def parse(self, call: Call) -> tuple[ChatRequest, Mapping[str, Any]]:
        stream = call.path.endswith(STREAM)
        alt = call.query.get("alt")
        if alt not in (None, "json", "sse"):
            raise RequestError("alt", f"query parameter 'alt' must be 'json' or 'sse', got {alt!r}")
        # The API key (`x-goog-api-key` or `?key=`) is accepted and not checked: the mock has no
        # accounts. The journal redacts the header and never records the query string.
        body = call.json_object()
        messages = _conversation(body)
        max_tokens, sampling = _generation_config(body.get("generationConfig"))
        if body.get("tools") is not None:
            sampling["tools"] = body["tools"]
        request = ChatRequest(
            model=model_name(call.path_params["model"]),
            messages=messages,
            stream=stream,
            max_tokens=max_tokens,
            sampling=sampling,
            overrides=overrides_from_headers(call.headers),
        )
        return request, {"sse": alt == "sse"}

    # -- streamed -------------------------------------------------------------------------------

    def stream_frames(self, plan: Plan, enc: Encoding) -> StreamFrames:
        sse = enc.options["sse"]
        values = _values(plan, enc)
        # Chunks carry the prompt count only, as gemini-1.5/2.0 streams do (2.5 adds a running
        # candidatesTokenCount, which would be per-chunk work); the final event has it all.
        before, after = _template(not sse, False).fill(values, text=_CUT).split(_CUT)
        # The finish goes in an event of its own with empty text (as the real API sends it when
        # the end comes after the last token) rather than folded into the last chunk: `truncate`
        # drops the tail, so a truncated stream is one without a finishReason.
        final = _template(not sse, True).fill(values, text=b'""')
        if sse:
            return StreamFrames(
                head=b"",
                head_on_arrival=False,
                chunks=TextFrames(b"data: " + before, after + CRLF2, plan.chunks),
                tail=b"data: " + final + CRLF2,
                error=_SSE_ERROR,
                # An event cut off inside the text string.
                malformed=b"data: " + before + b'"' + CRLF2,
            )
        # The array: `[` rides with the first element; each element brings the separator after
        # it rather than before, the same bytes split at a different place; the tail closes it.
        return StreamFrames(
            head=b"[",
            head_on_arrival=False,
            chunks=TextFrames(before, after + ARRAY_NEXT, plan.chunks),
            tail=final + ARRAY_END,
            error=_ARRAY_ERROR,
            malformed=before + b'"' + ARRAY_NEXT,
            headers=self.array_headers,
        )

    # -- not streamed ---------------------------------------------------------------------------

    def response(self, plan: Plan, enc: Encoding) -> HttpResponse:
        # The whole answer is escaped here, not by json_string: it would only fill that cache.
        text = json.dumps(plan.answer, ensure_ascii=False).encode()
        return HttpResponse(200, JSON, _template(True, True).fill(_values(plan, enc), text=text) + b"\n")

    def error(
        self,
        status: int,
        message: str | None = None,
        *,
        param: str | None = None,
        retry_after: float | None = None,
        call: Call | None = None,
    ) -> HttpResponse:
        error = _error_object(status, message)
        details: list[dict[str, Any]] = []
        if param is not None:
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"field": param, "description": error["message"]}],
                }
            )
        if status == 429:
            # Google says when to retry in RetryInfo; the mock also sends `retry-after`, as every
            # dialect's 429 does here, so one client-side backoff test covers them all.
            retry_after = 1.0 if retry_after is None else retry_after
            details.append(
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{_seconds(retry_after)}s"}
            )
        if details:
            error["details"] = details
        headers = JSON if retry_after is None else (*JSON, ("retry-after", _seconds(retry_after)))
        body = pretty_json({"error": error})
        if call is not None and call.path.endswith(STREAM) and call.query.get("alt") != "sse":
            body = b"[" + body + ARRAY_END  # the array the stream would have been
        return HttpResponse(status, headers, body + b"\n")

    # -- other endpoints ------------------------------------------------------------------------

    def claims(self, call: Call) -> bool:
        """A request from a Gemini client: its API key header or parameter, or the SDK's own header."""
        headers = call.headers
        return "x-goog-api-key" in headers or "x-goog-api-client" in headers or "key" in call.query

    def list_models(self, call: Call, config: MockConfig) -> HttpResponse:
        return HttpResponse(200, JSON, pretty_json({"models": [_model(name) for name in config.models]}) + b"\n")

    def get_model(self, call: Call, config: MockConfig) -> HttpResponse:
        # Any model name is accepted by the chat endpoints, so any name is described here too.
        return HttpResponse(200, JSON, pretty_json(_model(model_name(call.path_params["model"]))) + b"\n")

    def count_tokens(self, call: Call, config: MockConfig) -> HttpResponse:
        """`totalTokens` equals the `promptTokenCount` a generateContent call with the same
        contents reports, as with the real API."""
        try:
            body = call.json_object()
            inner = body.get("generateContentRequest")
            if inner is not None:
                if not isinstance(inner, dict):
                    raise RequestError("generateContentRequest", "'generateContentRequest' must be an object")
                messages = _conversation(inner, "generateContentRequest.")
            else:
                messages = _contents(body.get("contents"), "contents")
        except RequestError as err:
            return self.error(err.status, err.message, param=err.param, call=call)
        total = count_prompt_tokens([m.content for m in messages])
        body_out = {"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}
        return HttpResponse(200, JSON, pretty_json(body_out) + b"\n")

    # -- a captured stream ----------------------------------------------------------------------

    def text_of(self, event: str | None, payload: dict[str, Any]) -> str | None:
        candidates = payload.get("candidates") or []
        if not candidates:
            return None
        parts = (candidates[0].get("content") or {}).get("parts") or []
        texts = [part["text"] for part in parts if isinstance(part.get("text"), str) and not part.get("thought")]
        return "".join(texts) if texts else None


def model_name(raw: str) -> str:
    """`models/gemini-2.5-flash` and `gemini-2.5-flash` name the same model."""
    return raw.removeprefix("models/")


def _model(name: str) -> dict[str, Any]:
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": name,
        "description": "A deterministic mock model served by mockllm.",
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
    }


class _Template:
    """A response body dumped once with named holes (`"\\u0000name\\u0000"`), filled per response
    by one join: the same bytes as dumping the filled dict, without the pure-Python pretty-printer
    (some 200 us a body) on every response."""

    __slots__ = ("_literals", "_names")
    _HOLE = re.compile(rb'"\\u0000(\w+)\\u0000"')

    def __init__(self, dumped: bytes) -> None:
        pieces = self._HOLE.split(dumped)
        self._literals = pieces[0::2]
        self._names = [name.decode() for name in pieces[1::2]]

    def fill(self, values: Mapping[str, bytes], **more: bytes) -> bytes:
        """The body with each hole replaced by its value, JSON already."""
        out = [self._literals[0]]
        for name, literal in zip(self._names, self._literals[1:], strict=True):
            out.append(more[name] if name in more else values[name])
            out.append(literal)
        return b"".join(out)


def _hole(name: str) -> str:
    return f"\x00{name}\x00"


@lru_cache(maxsize=4)
def _template(pretty: bool, final: bool) -> _Template:
    """A GenerateContentResponse with one candidate, keys in the order the real API writes them:
    a chunk (no finish, prompt usage only) or the final one (finish and full usage)."""
    candidate: dict[str, Any] = {"content": {"parts": [{"text": _hole("text")}], "role": "model"}}
    usage: dict[str, Any] = {"promptTokenCount": _hole("prompt")}
    if final:
        candidate["finishReason"] = _hole("finish")
        usage["candidatesTokenCount"] = _hole("completion")
    candidate["index"] = 0
    usage["totalTokenCount"] = _hole("total" if final else "prompt")
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": _hole("prompt")}]
    body = {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": _hole("model"),
        "responseId": _hole("id"),
    }
    return _Template(pretty_json(body) if pretty else google_json(body))


def _values(plan: Plan, enc: Encoding) -> dict[str, bytes]:
    """What fills a response template's holes, text aside."""
    return {
        "prompt": b"%d" % plan.prompt_tokens,
        "completion": b"%d" % plan.completion_tokens,
        "total": b"%d" % (plan.prompt_tokens + plan.completion_tokens),
        "finish": b'"%s"' % FINISH[plan.finish_reason].encode(),
        "model": json_string(enc.request.model),
        "id": b'"%s"' % enc.ident.encode(),
    }


_CUT = b"\x00"  # where a chunk's text goes: a byte JSON never carries raw


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


# -- request parsing ------------------------------------------------------------------------------


def _conversation(body: dict[str, Any], prefix: str = "") -> tuple[Message, ...]:
    """`systemInstruction` (as a leading system message) and `contents`, in dialect-free form."""
    messages = list(_contents(body.get("contents"), f"{prefix}contents"))
    system = body.get("systemInstruction")
    if system is not None:
        field = f"{prefix}systemInstruction"
        if isinstance(system, str):  # not in the REST schema, but a common shortcut
            text = system
        elif isinstance(system, dict):
            text = _text(system.get("parts"), f"{field}.parts")
        else:
            raise RequestError(field, f"'{field}' must be a Content object with 'parts'")
        messages.insert(0, Message("system", text))
    return tuple(messages)


def _contents(value: Any, field: str) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise RequestError(field, f"'{field}' must be a non-empty array of Content objects ({{role, parts}})")
    messages = []
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise RequestError(where, f"{where} must be an object, got {type(item).__name__}")
        role = item.get("role", "")
        if not isinstance(role, str) or role not in _ROLES:
            raise RequestError(f"{where}.role", f"{where}.role must be 'user' or 'model', got {role!r}")
        messages.append(Message(_ROLES[role], _text(item.get("parts"), f"{where}.parts")))
    return tuple(messages)


def _text(parts: Any, field: str) -> str:
    """The text parts joined; other parts (inline data, function calls, thoughts) are ignored."""
    if not isinstance(parts, list) or not parts:
        raise RequestError(field, f"'{field}' must be a non-empty array of Part objects")
    texts = []
    for j, part in enumerate(parts):
        if not isinstance(part, dict):
            raise RequestError(f"{field}[{j}]", f"{field}[{j}] must be a Part object, got {type(part).__name__}")
        text = part.get("text")
        if text is None or part.get("thought") is True:
            continue
        if not isinstance(text, str):
            raise RequestError(f"{field}[{j}].text", f"{field}[{j}].text must be a string, got {text!r}")
        texts.append(text)
    return "".join(texts)


def _generation_config(config: Any) -> tuple[int | None, dict[str, Any]]:
    """`maxOutputTokens` and the sampling settings, each checked and named when wrong."""
    if config is None:
        return None, {}
    if not isinstance(config, dict):
        raise RequestError("generationConfig", "'generationConfig' must be an object")
    max_tokens = config.get("maxOutputTokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise RequestError(
            "generationConfig.maxOutputTokens",
            f"generationConfig.maxOutputTokens must be an integer >= 1, got {max_tokens!r}",
        )
    for name, (low, high) in _RANGES.items():
        value = config.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high
        ):
            raise RequestError(
                f"generationConfig.{name}",
                f"generationConfig.{name} must be a number between {low} and {high}, got {value!r}",
            )
    top_k = config.get("topK")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int | float) or top_k < 1):
        raise RequestError("generationConfig.topK", f"generationConfig.topK must be a number >= 1, got {top_k!r}")
    count = config.get("candidateCount")
    if count is not None and count != 1:
        raise RequestError(
            "generationConfig.candidateCount",
            f"the mock answers one candidate per request; generationConfig.candidateCount must be 1, got {count!r}",
        )
    stops = config.get("stopSequences")
    if stops is not None and (
        not isinstance(stops, list) or len(stops) > 5 or not all(isinstance(s, str) for s in stops)
    ):
        raise RequestError(
            "generationConfig.stopSequences",
            "generationConfig.stopSequences must be an array of at most 5 strings",
        )
    sampling = {name: config[key] for key, name in _SAMPLING.items() if config.get(key) is not None}
    return max_tokens, sampling
