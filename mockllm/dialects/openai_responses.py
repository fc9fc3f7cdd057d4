"""OpenAI Responses, `POST /v1/responses`, byte-shaped as api.openai.com answers.

A stream is a run of named events, each numbered by `sequence_number` from 0. The numbers of the
events after the deltas depend on how many deltas go out, so the frames are built knowing the
plan's fault: an in-band error after N deltas is numbered right after the N-th delta.

This module is the dialect: its route, `parse` (the plain fields: `model`, `instructions`, `stream`,
`max_output_tokens`, `temperature`, `top_p`, `store`, `previous_response_id`, `user`, `metadata`;
`input` and the agent parameters through `_responses_agent`), the encoders (`stream_frames` and
`response`, whose plain text path is built here; `error`, the chat completions' error bodies with
the Responses API's `code`; `text_of`) and the wire constants. Its private siblings hold the rest:

- `_responses_agent`: the input items (messages, the history's `function_call` and
  `function_call_output` items) and the agent parameters (`tools`, `tool_choice`,
  `parallel_tool_calls`, `reasoning`, `text.format`), read into the request's `Agent` and the
  fields the response object echoes as the API echoes them, and the API's request checks
  (`strict: false` turns them off; their ids and messages are listed in its docstring);
- `_responses_blocks`: the response object's bytes, and a plan with blocks (text, tool calls,
  reasoning, structured output) streamed as one output item per block, as the API streams them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from contracts import DIALECT_PROFILE_DIR

from .._errors import RequestError
from .._plan import Plan
from .._request import ChatRequest, Message, overrides_from_headers
from .._wire import HttpResponse, StreamFrames
from ._base import Call, Encoding, NumberedTextFrames, Route, StreamProbe, dumps
from ._responses_agent import ROLES as ROLES
from ._responses_agent import _agent_settings, _input
from ._responses_blocks import _ERROR_FIELDS, _FAILED, _event, _Items, _Objects, _part, _status
from .openai_chat import _RANGES, JSON, OpenAIChat, check_ranges, model_field, stream_field

_SAMPLING = ("temperature", "top_p")
_SAMPLING_RANGES = {name: _RANGES[name] for name in _SAMPLING}
# The API rejects smaller values: "Invalid 'max_output_tokens': integer below minimum value".
MIN_OUTPUT_TOKENS = 16
_CHAT = OpenAIChat()
# The `code` the API gives a 400 by how its message starts (the chat shapes give none).
_CODES = (
    ("Missing required parameter: ", "missing_required_parameter"),
    ("Invalid type for ", "invalid_type"),
    ("Invalid value: ", "invalid_value"),
    ("Invalid 'tools[", "invalid_value"),
)


class OpenAIResponses:
    name = "openai-responses"
    tool_call_prefix = "call_"  # a function_call item's `call_id` (its item id is `fc_…`)
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
