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

Agents (tools, thinking, structured output): the request's agent side (function declarations,
`toolConfig`, `thinkingConfig`, response schemas, the calls and results in the history) is read
into an `Agent` by `_gemini_agent.py`, which also makes the real API's checks on it (`Call.strict`)
and lists them, with their ids, messages and sources. This module encodes the answer, as the real
API streams it:

- A call is a `functionCall` part `{name, args}` sent whole in one event (`args` a JSON object,
  never a string); parallel calls are one part, one event each. The finish is `STOP` for calls too.
  Gemini 3 models add an `id` to each call.
- Thoughts stream, in pieces and before the answer, as parts `{"text": ..., "thought": true}` only
  with `includeThoughts`; `usageMetadata.thoughtsTokenCount` counts them whenever the model reasons,
  and `candidatesTokenCount` leaves them out, as Google counts. The first `functionCall` part of an
  answer carries a `thoughtSignature` when the model reasons (always on Gemini 3 models, which
  always think): https://ai.google.dev/gemini-api/docs/thought-signatures.
- With `responseMimeType: application/json` the answer text is a JSON instance of the schema
  (without a schema, a JSON object), streamed like any text.

The chat and countTokens routes are served under `/v1/` as well as `/v1beta/`: google-genai 1.x
called `v1beta`, the current SDK defaults to `v1`. The model list and lookup are `v1beta` only,
since `GET /v1/models[/{model}]` belong to the OpenAI dialect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from contracts import DIALECT_PROFILE_DIR

from .._agent import Block, sign
from .._config import MockConfig
from .._errors import RequestError
from .._jsonbytes import compact_json
from .._plan import Plan
from .._request import ChatRequest, Message, overrides_from_headers
from .._tokenizer import count_prompt_tokens
from .._wire import HttpResponse, StreamFrames
from ._base import Call, Encoding, Route, StreamProbe, TextFrames, json_string, json_text_field
from ._gemini_agent import agent_hint, check_role, field_of, read_agent

JSON = (
    ("content-type", "application/json; charset=UTF-8"),
    ("vary", "Origin, X-Origin, Referer"),
    ("x-content-type-options", "nosniff"),
    ("server", "scaffolding on HTTPServer2"),
)
STREAM = ":streamGenerateContent"
FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}  # calls finish with STOP

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
_ROLES = {"": "user", "user": "user", "model": "assistant", "function": "tool"}
_LENIENT_ROLES = {**_ROLES, "tool": "tool", "assistant": "assistant", "system": "system"}  # strict: false

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
    tool_call_prefix = ""  # a Gemini 3 call's `id` is the plan's own; older models send none
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
        messages = _conversation(body, strict=call.strict)
        max_tokens, sampling = _generation_config(body.get("generationConfig"))
        if body.get("tools") is not None:
            sampling["tools"] = body["tools"]
        model = model_name(call.path_params["model"])
        agent = read_agent(body, model, call.strict) if agent_hint(body, messages) else None
        if agent is not None:  # what else changes the answer goes into the seed
            tool_config = field_of(body, "toolConfig")
            if tool_config is not None:
                sampling["tool_config"] = tool_config
            thinking = field_of(field_of(body, "generationConfig") or {}, "thinkingConfig")
            if thinking is not None:
                sampling["thinking_config"] = thinking
        request = ChatRequest(
            model=model,
            messages=messages,
            stream=stream,
            max_tokens=max_tokens,
            sampling=sampling,
            overrides=overrides_from_headers(call.headers),
            agent=agent,
        )
        return request, {"sse": alt == "sse"}

    # -- streamed -------------------------------------------------------------------------------

    def stream_frames(self, plan: Plan, enc: Encoding) -> StreamFrames:
        sse = enc.options["sse"]
        if plan.blocks:
            return self._agent_stream(plan, enc, sse)
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

    def _agent_stream(self, plan: Plan, enc: Encoding, sse: bool) -> StreamFrames:
        """A plan with blocks: thought parts, text parts and whole `functionCall` parts, one event
        per chunk; the finish in an event of its own, as for text."""
        frames = _agent_frames(plan, enc, pretty=not sse)
        final = _agent_event(plan, enc, [{"text": ""}], final=True, pretty=not sse)
        malformed = frames.malformed(plan.fault.after if plan.fault is not None else None)
        if sse:
            return StreamFrames(
                head=b"",
                head_on_arrival=False,
                chunks=frames.wrapped(b"data: ", CRLF2),
                tail=b"data: " + final + CRLF2,
                error=_SSE_ERROR,
                malformed=b"data: " + malformed + CRLF2,
            )
        return StreamFrames(
            head=b"[",
            head_on_arrival=False,
            chunks=frames.wrapped(b"", ARRAY_NEXT),
            tail=final + ARRAY_END,
            error=_ARRAY_ERROR,
            malformed=malformed + ARRAY_NEXT,
            headers=self.array_headers,
        )

    # -- not streamed ---------------------------------------------------------------------------

    def response(self, plan: Plan, enc: Encoding) -> HttpResponse:
        if plan.blocks:
            parts = [part for block in plan.blocks for part in _block_parts(block, plan, enc)]
            body = _agent_event(plan, enc, parts, final=True, pretty=True)
            return HttpResponse(200, JSON, body + b"\n")
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
                messages = _conversation(inner, "generateContentRequest.", strict=call.strict)
            else:
                messages = _contents(body.get("contents"), "contents", strict=call.strict)
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


def _conversation(body: dict[str, Any], prefix: str = "", *, strict: bool = True) -> tuple[Message, ...]:
    """`systemInstruction` (as a leading system message) and `contents`, in dialect-free form."""
    messages = list(_contents(body.get("contents"), f"{prefix}contents", strict=strict))
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


def _contents(value: Any, field: str, *, strict: bool = True) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise RequestError(field, f"'{field}' must be a non-empty array of Content objects ({{role, parts}})")
    messages = []
    roles = _ROLES if strict else _LENIENT_ROLES
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise RequestError(where, f"{where} must be an object, got {type(item).__name__}")
        role = item.get("role", "")
        if strict:
            check_role(role, roles)
        if not isinstance(role, str) or role not in roles:
            raise RequestError(f"{where}.role", f"{where}.role must be 'user' or 'model', got {role!r}")
        parts = item.get("parts")
        text = _text(parts, f"{where}.parts")
        responses = None
        if not text or len(parts) > 1:  # a plain turn is one text part: no function responses in it
            responses = [
                field_of(p, "functionResponse") for p in parts if isinstance(field_of(p, "functionResponse"), dict)
            ]
        if responses:
            # Tool results are `tool` messages, so prompts, seeds and journal filters see them and
            # `last_user` stays the user's own words.
            messages += [Message("tool", compact_json(r.get("response"))) for r in responses]
            if text:
                messages.append(Message(roles[role], text))
            continue
        messages.append(Message(roles[role], text))
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


# -- agents: encoding --------------------------------------------------------------------------------

_HOLE = "\x00cut\x00"
_DUMPED_HOLE = b'"\\u0000cut\\u0000"'


def _agent_event(plan: Plan, enc: Encoding, parts: list[Any], *, final: bool, pretty: bool) -> bytes:
    """One GenerateContentResponse with these parts, keys in the real API's order; usage as Google
    counts it: `candidatesTokenCount` without the thoughts, `thoughtsTokenCount` when it thought."""
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    usage: dict[str, Any] = {"promptTokenCount": plan.prompt_tokens}
    thoughts = plan.reasoning_tokens
    if final:
        candidate["finishReason"] = FINISH[plan.finish_reason]
        usage["candidatesTokenCount"] = plan.completion_tokens - thoughts
    candidate["index"] = 0
    usage["totalTokenCount"] = plan.prompt_tokens + (plan.completion_tokens if final else thoughts)
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": plan.prompt_tokens}]
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    body = {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": enc.request.model,
        "responseId": enc.ident,
    }
    return pretty_json(body) if pretty else google_json(body)


def _signature(plan: Plan, enc: Encoding) -> str | None:
    """The thoughtSignature of the answer's first functionCall part: when the model thinks (Gemini 3
    always does), the signature of its reasoning, else of the call."""
    agent = enc.request.agent
    if not ((agent is not None and agent.reasoning is not None) or enc.request.model.startswith("gemini-3")):
        return None
    for block in plan.blocks:
        if block.kind == "reasoning" and block.signature:
            return block.signature
    first = plan.tool_calls[0]
    return sign(f"{first.call_id}:{first.text}")


def _call_part(block: Block, signature: str | None, gemini3: bool) -> dict[str, Any]:
    try:
        args: Any = json.loads(block.text)
    except ValueError:
        args = block.text  # arguments a template rendered as bad JSON go as written: the client's problem
    call: dict[str, Any] = {"name": block.name, "args": args}
    if gemini3:
        call["id"] = block.call_id  # Gemini 3 models name each call
    part: dict[str, Any] = {"functionCall": call}
    if signature is not None:
        part["thoughtSignature"] = signature
    return part


def _block_parts(block: Block, plan: Plan, enc: Encoding) -> list[dict[str, Any]]:
    """A block's part, its text joined: the whole block in a non-streamed answer, the event of a
    one-chunk block (a call, a redacted thought) in a stream."""
    if block.kind == "text":
        return [{"text": block.text}]
    if block.kind == "reasoning":
        return [{"text": block.text, "thought": True}]
    if block.kind == "redacted_reasoning":
        return [{"text": "", "thought": True, "thoughtSignature": block.text}]
    first = plan.tool_calls[0] is block
    return [_call_part(block, _signature(plan, enc) if first else None, enc.request.model.startswith("gemini-3"))]


class _AgentFrames(Sequence[bytes]):
    """A plan with blocks as Gemini events: a text or thought chunk is `before + JSON string +
    after` (its block's templates, made once per response); a functionCall chunk (whole, one per
    call) or a redacted thought is an event made once per response."""

    __slots__ = ("_afters", "_befores", "_block_of", "_templates", "_texts", "_whole")

    def __init__(
        self,
        texts: Sequence[str],
        block_of: Sequence[int],
        templates: Sequence[tuple[bytes, bytes] | None],
        whole: Mapping[int, bytes],
    ) -> None:
        self._texts = texts
        self._block_of = block_of
        self._templates = templates
        self._whole = whole
        # Laid out per chunk once per response; a whole event is its chunk's `before`, with no after.
        laid = [templates[block] or _WHOLE for block in block_of]
        self._befores = [pair[0] for pair in laid]
        self._afters = [pair[1] for pair in laid]
        for index, event in whole.items():
            self._befores[index] = event

    def __len__(self) -> int:
        return len(self._texts)

    def __getitem__(self, index: int) -> bytes:  # type: ignore[override]
        after = self._afters[index]
        if after is None:
            return self._befores[index]
        return self._befores[index] + json_string(self._texts[index]) + after

    def wrapped(self, before: bytes, after: bytes) -> _AgentFrames:
        """The same events, each framed (`data: ` and CRLF CRLF; or the array's separator)."""
        templates = [None if t is None else (before + t[0], t[1] + after) for t in self._templates]
        whole = {i: before + event + after for i, event in self._whole.items()}
        return _AgentFrames(self._texts, self._block_of, templates, whole)

    def malformed(self, at: int | None) -> bytes:
        """An event cut off in the middle of what the chunk at `at` streams: inside a thought's or
        a text's string, or inside a functionCall's args."""
        n = len(self._texts)
        index = n - 1 if at is None or at >= n else at
        template = self._templates[self._block_of[index]]
        if template is not None:
            return template[0] + b'"'
        event = self._whole[index]
        cut = event.find(b'"args": ')
        cut = len(event) // 2 if cut < 0 else cut + len(b'"args": ') + 2
        return event[:cut]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _AgentFrames):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]


def _agent_frames(plan: Plan, enc: Encoding, *, pretty: bool) -> _AgentFrames:
    block_of = plan.block_of_chunks()
    templates: list[tuple[bytes, bytes] | None] = []
    cache: dict[str, tuple[bytes, bytes]] = {}
    whole: dict[int, bytes] = {}
    for block in plan.blocks:
        if block.kind in ("text", "reasoning"):
            if block.kind not in cache:
                part: dict[str, Any] = {"text": _HOLE}
                if block.kind == "reasoning":
                    part["thought"] = True
                before, after = _agent_event(plan, enc, [part], final=False, pretty=pretty).split(_DUMPED_HOLE)
                cache[block.kind] = (before, after)
            templates.append(cache[block.kind])
            continue
        templates.append(None)
        (part,) = _block_parts(block, plan, enc)
        whole[block.start] = _agent_event(plan, enc, [part], final=False, pretty=pretty)
    return _AgentFrames(plan.chunks, block_of, templates, whole)


_WHOLE: tuple[bytes, None] = (b"", None)
