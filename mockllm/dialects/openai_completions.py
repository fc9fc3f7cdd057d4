"""OpenAI legacy completions, `POST /v1/completions`, as api.openai.com and vLLM answer it.

The endpoint is retired for new OpenAI models, but vLLM and other OpenAI-compatible servers still
serve it, and benchmark tools call it. One prompt in, one choice out; the prompt is planned as a
single user message, so the same text gets the same answer as on the chat endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._errors import RequestError
from .._plan import Plan
from .._request import ChatRequest, Message, overrides_from_headers
from .._wire import HttpResponse, StreamFrames
from ._base import Call, Encoding, Route, StreamProbe, TextFrames, dumps, json_string, json_text_field
from .openai_chat import (
    _ERROR_EVENT,
    _RANGES,
    JSON,
    OpenAIChat,
    check_ranges,
    include_usage_field,
    model_field,
    stream_field,
)

_SAMPLING = ("temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty", "logit_bias")
# OpenAI's default `max_tokens` is 16; vLLM's is whatever the context leaves, i.e. no cap. The mock
# follows vLLM, the server most clients of this endpoint talk to: without `max_tokens` the
# configured answer length decides, as on the other endpoints.
DEFAULT_MAX_TOKENS: int | None = None
_CHAT = OpenAIChat()


class OpenAICompletions:
    name = "openai-completions"
    tool_call_prefix = ""  # no tools
    routes = (Route("POST", "/v1/completions"),)
    stream_headers = _CHAT.stream_headers
    load_profile = None  # none in contracts/dialects/
    probe = StreamProbe(
        "/v1/completions",
        lambda prompt: {"model": "bench", "prompt": prompt, "stream": True},
        json_text_field(b"text"),
        b"data: [DONE]",
    )

    def parse(self, call: Call) -> tuple[ChatRequest, Mapping[str, Any]]:
        body = call.json_object()
        model = model_field(body)
        prompt = _prompt(body.get("prompt"))
        stream = stream_field(body)
        include_usage = include_usage_field(body, stream)
        max_tokens = body.get("max_tokens", DEFAULT_MAX_TOKENS)
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
        ):
            raise RequestError("max_tokens", f"'max_tokens' must be an integer >= 1, got {max_tokens!r}")
        if body.get("echo"):
            raise RequestError("echo", "the mock does not echo the prompt; 'echo' must be false")
        for name in ("n", "best_of"):
            if body.get(name) not in (None, 1):
                raise RequestError(name, f"the mock answers one choice per request; '{name}' must be 1")
        check_ranges(body, _RANGES)
        request = ChatRequest(
            model=model,
            messages=(Message("user", prompt),),
            stream=stream,
            max_tokens=max_tokens,
            sampling={name: body[name] for name in _SAMPLING if body.get(name) is not None},
            overrides=overrides_from_headers(call.headers),
            raw_prompt=True,
        )
        return request, {"include_usage": include_usage}

    # -- streamed -------------------------------------------------------------------------------

    def stream_frames(self, plan: Plan, enc: Encoding) -> StreamFrames:
        usage_field = b',"usage":null' if enc.options["include_usage"] else b""
        envelope = (
            b'data: {"id":"cmpl-' + enc.ident.encode() + b'","object":"text_completion","created":'
            + str(enc.created).encode() + b',"model":' + json_string(enc.request.model) + b',"choices":['
        )  # fmt: skip
        # Per chunk, only the text is encoded: the rest of the frame is made once here.
        before = envelope + b'{"text":'
        after = b',"index":0,"logprobs":null,"finish_reason":null}]' + usage_field + b"}\n\n"
        tail = (
            envelope + b'{"text":"","index":0,"logprobs":null,"finish_reason":"'
            + plan.finish_reason.encode() + b'"}]' + usage_field + b"}\n\n"
        )  # fmt: skip
        if enc.options["include_usage"]:
            tail += envelope + b'],"usage":' + dumps(_usage(plan)) + b"}\n\n"
        tail += b"data: [DONE]\n\n"
        return StreamFrames(
            head=b"",  # no role chunk: the first event carries text
            head_on_arrival=False,
            chunks=TextFrames(before, after, plan.chunks),
            tail=tail,
            error=_ERROR_EVENT,
            malformed=before + b'"' + b"\n\n",  # a frame cut off inside its text
        )

    # -- not streamed ---------------------------------------------------------------------------

    def response(self, plan: Plan, enc: Encoding) -> HttpResponse:
        body = {
            "id": f"cmpl-{enc.ident}",
            "object": "text_completion",
            "created": enc.created,
            "model": enc.request.model,
            "choices": [{"text": plan.answer, "index": 0, "logprobs": None, "finish_reason": plan.finish_reason}],
            "usage": _usage(plan),
        }
        return HttpResponse(200, JSON, dumps(body))

    error = _CHAT.error  # the same error bodies and rate-limit headers as chat completions

    # -- a captured stream ----------------------------------------------------------------------

    def text_of(self, event: str | None, payload: dict[str, Any]) -> str | None:
        choices = payload.get("choices") or []
        return choices[0].get("text") if choices else None


def _usage(plan: Plan) -> dict[str, int]:
    return {
        "prompt_tokens": plan.prompt_tokens,
        "completion_tokens": plan.completion_tokens,
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
    }


def _prompt(value: Any) -> str:
    """One prompt as text: a string, or a list holding one string (as clients batch a single one)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise RequestError("prompt", "the mock reads text prompts only; send 'prompt' as a string, not token ids")
    if isinstance(value, list) and len(value) > 1:
        raise RequestError("prompt", f"the mock answers one prompt per request; 'prompt' holds {len(value)}")
    raise RequestError("prompt", "'prompt' must be a string or a list of one string")
