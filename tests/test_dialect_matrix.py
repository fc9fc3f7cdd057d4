"""Every fault in every dialect, streamed and not, checked on the raw bytes the client receives.

Each dialect is a row of data: how to ask, how to read the answer text, the error and the terminal
event out of its frames. Each fault's expectation is written once, for all dialects. The SDK's
reaction to each cell is checked in the per-dialect test modules.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from mockllm import MockLLMClient

Event = tuple[str | None, str]  # (SSE event type, data)
HEADERS = {
    "x-mock-ttft-ms": "5",
    "x-mock-itl-ms": "2",
    "x-mock-answer-tokens": "12",
    "content-type": "application/json",
}


@dataclass(frozen=True)
class Dialect:
    name: str
    path: Callable[[bool], str]
    body: Callable[[str, bool], dict[str, Any]]
    text_of: Callable[[str | None, dict[str, Any]], str | None]  # an event's answer text
    is_error: Callable[[str | None, dict[str, Any]], bool]
    is_terminal: Callable[[Event], bool]
    whole_text: Callable[[dict[str, Any]], str]
    error_shape: Callable[[int, dict[str, Any]], bool]
    done_marker: bool = False  # OpenAI chat/completions end with `data: [DONE]`


def _choice(data: dict[str, Any], *keys: str) -> Any:
    choices = data.get("choices") or []
    value: Any = choices[0] if choices else {}
    for key in keys:
        value = (value or {}).get(key)
    return value


def _openai_error(status: int, body: dict[str, Any]) -> bool:
    return isinstance(body.get("error"), dict) and isinstance(body["error"].get("message"), str)


DIALECTS = [
    Dialect(
        name="openai-chat",
        path=lambda stream: "/v1/chat/completions",
        body=lambda prompt, stream: {"model": "m", "messages": [{"role": "user", "content": prompt}], "stream": stream},
        text_of=lambda event, data: _choice(data, "delta", "content"),
        is_error=lambda event, data: "error" in data,
        is_terminal=lambda event: event[1] == "[DONE]",
        whole_text=lambda body: body["choices"][0]["message"]["content"],
        error_shape=_openai_error,
        done_marker=True,
    ),
    Dialect(
        name="openai-completions",
        path=lambda stream: "/v1/completions",
        body=lambda prompt, stream: {"model": "m", "prompt": prompt, "stream": stream, "max_tokens": 100},
        text_of=lambda event, data: _choice(data, "text"),
        is_error=lambda event, data: "error" in data,
        is_terminal=lambda event: event[1] == "[DONE]",
        whole_text=lambda body: body["choices"][0]["text"],
        error_shape=_openai_error,
        done_marker=True,
    ),
    Dialect(
        name="openai-responses",
        path=lambda stream: "/v1/responses",
        body=lambda prompt, stream: {"model": "m", "input": prompt, "stream": stream},
        text_of=lambda event, data: data.get("delta") if data.get("type") == "response.output_text.delta" else None,
        is_error=lambda event, data: data.get("type") in ("error", "response.failed"),
        is_terminal=lambda event: event[0] in ("response.completed", "response.incomplete"),
        whole_text=lambda body: "".join(
            part["text"]
            for item in body["output"]
            if item["type"] == "message"
            for part in item["content"]
            if part["type"] == "output_text"
        ),
        error_shape=_openai_error,
    ),
    Dialect(
        name="anthropic-messages",
        path=lambda stream: "/v1/messages",
        body=lambda prompt, stream: {
            "model": "m",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": prompt}],
            "stream": stream,
        },
        text_of=lambda event, data: (
            (data.get("delta") or {}).get("text") if data.get("type") == "content_block_delta" else None
        ),
        is_error=lambda event, data: data.get("type") == "error",
        is_terminal=lambda event: event[0] == "message_stop",
        whole_text=lambda body: "".join(block["text"] for block in body["content"] if block["type"] == "text"),
        error_shape=lambda status, body: body.get("type") == "error" and isinstance(body.get("error"), dict),
    ),
    Dialect(
        name="gemini",
        path=lambda stream: (
            "/v1beta/models/m:streamGenerateContent?alt=sse" if stream else "/v1beta/models/m:generateContent"
        ),
        body=lambda prompt, stream: {"contents": [{"role": "user", "parts": [{"text": prompt}]}]},
        text_of=lambda event, data: (
            "".join(
                part.get("text", "")
                for part in ((data.get("candidates") or [{}])[0].get("content") or {}).get("parts", [])
            )
            or None
        ),
        is_error=lambda event, data: "error" in data,
        is_terminal=lambda event: '"finishReason"' in event[1],
        whole_text=lambda body: "".join(part["text"] for part in body["candidates"][0]["content"]["parts"]),
        error_shape=lambda status, body: isinstance(body.get("error"), dict) and body["error"].get("code") == status,
    ),
]


def sse_events(raw: bytes) -> list[Event]:
    """The events of an SSE body (any line ending), enough of the WHATWG rules for these checks."""
    text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    events: list[Event] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        event, data = None, []
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
        if data:
            events.append((event, "\n".join(data)))
    return events


def parsed(event: Event) -> dict[str, Any] | None:
    try:
        value = json.loads(event[1])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def fetch(mockllm: MockLLMClient, dialect: Dialect, marker: str, stream: bool, fault: str | None, timeout: float = 3):
    """(status, headers, raw body, the transport error if the body did not complete)."""
    headers = dict(HEADERS, **({"x-mock-fault": fault} if fault else {}))
    status, got, raw = 0, httpx.Headers(), bytearray()
    try:
        with (
            httpx.Client(base_url=mockllm.base_url, timeout=timeout) as client,
            client.stream(
                "POST", dialect.path(stream), json=dialect.body(f"Say {marker}", stream), headers=headers
            ) as r,
        ):
            status, got = r.status_code, r.headers
            for piece in r.iter_raw():
                raw += piece
    except (httpx.TransportError, httpx.TimeoutException) as err:
        return status, got, bytes(raw), err
    return status, got, bytes(raw), None


def planned_chunks(mockllm: MockLLMClient, marker: str) -> list[str]:
    (entry,) = mockllm.journal(prompt_contains=marker)
    return entry["planned"]["chunks"]


def content(dialect: Dialect, events: list[Event]) -> list[str]:
    texts = []
    for event in events:
        data = parsed(event)
        if data is not None:
            text = dialect.text_of(event[0], data)
            if text:
                texts.append(text)
    return texts


def errors(dialect: Dialect, events: list[Event]) -> list[int]:
    return [
        i for i, event in enumerate(events) if (data := parsed(event)) is not None and dialect.is_error(event[0], data)
    ]


BY_NAME = pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)


@BY_NAME
@pytest.mark.parametrize("fault", [None, "fragment"])
def test_streamed_answer_is_the_plan_and_ends_with_the_terminal_event(
    mockllm: MockLLMClient, marker: str, dialect: Dialect, fault: str | None
) -> None:
    status, headers, raw, err = fetch(mockllm, dialect, marker, True, fault)
    assert (status, err) == (200, None)
    assert headers["content-type"].startswith("text/event-stream")
    events = sse_events(raw)
    chunks = planned_chunks(mockllm, marker)
    assert content(dialect, events) == chunks and len(chunks) >= 3
    assert dialect.is_terminal(events[-1]) and not errors(dialect, events)
    assert sum(dialect.is_terminal(e) for e in events) == 1
    assert all(parsed(e) is not None for e in events if e[1] != "[DONE]")


@BY_NAME
@pytest.mark.parametrize("fault", [None, "fragment"])
def test_whole_answer_equals_the_streamed_plan(mockllm: MockLLMClient, marker: str, dialect: Dialect, fault) -> None:
    status, _, raw, err = fetch(mockllm, dialect, marker, False, fault)
    assert (status, err) == (200, None)
    assert dialect.whole_text(json.loads(raw)) == "".join(planned_chunks(mockllm, marker))


@BY_NAME
@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("code", [429, 500, 503, 529])
def test_http_errors_come_in_the_providers_shape(
    mockllm: MockLLMClient, marker: str, dialect: Dialect, stream: bool, code: int
) -> None:
    status, headers, raw, err = fetch(mockllm, dialect, marker, stream, str(code))
    assert (status, err) == (code, None)
    assert headers["content-type"].startswith("application/json")
    assert dialect.error_shape(code, json.loads(raw)), raw
    if code == 429:
        assert float(headers["retry-after"]) > 0


@BY_NAME
def test_error_after_n_is_an_in_band_error_then_the_end(mockllm: MockLLMClient, marker: str, dialect: Dialect) -> None:
    status, _, raw, err = fetch(mockllm, dialect, marker, True, "error-after=3")
    assert (status, err) == (200, None)
    events = sse_events(raw)
    assert content(dialect, events) == planned_chunks(mockllm, marker)[:3]
    found = errors(dialect, events)
    assert found and found[0] > 0 and not any(dialect.is_terminal(e) for e in events)
    assert not content(dialect, events[found[0] :])


@BY_NAME
def test_error_after_n_not_streamed_is_a_server_error(mockllm: MockLLMClient, marker: str, dialect: Dialect) -> None:
    status, _, raw, err = fetch(mockllm, dialect, marker, False, "error-after=3")
    assert (status, err) == (500, None) and dialect.error_shape(500, json.loads(raw))


@BY_NAME
@pytest.mark.parametrize("stream", [True, False])
def test_disconnect_after_n_cuts_the_connection(mockllm: MockLLMClient, marker: str, dialect: Dialect, stream) -> None:
    _, _, raw, err = fetch(mockllm, dialect, marker, stream, "disconnect-after=3")
    if stream:
        assert isinstance(err, httpx.RemoteProtocolError)  # the chunked body never ends properly
        events = sse_events(raw)
        assert content(dialect, events) == planned_chunks(mockllm, marker)[:3]
        assert not any(dialect.is_terminal(e) for e in events)
    else:
        assert err is not None or raw == b""


@BY_NAME
@pytest.mark.parametrize("stream", [True, False])
def test_stall_after_n_goes_silent(mockllm: MockLLMClient, marker: str, dialect: Dialect, stream: bool) -> None:
    _, _, raw, err = fetch(mockllm, dialect, marker, stream, "stall-after=2", timeout=0.5)
    assert isinstance(err, httpx.ReadTimeout)
    if stream:
        assert content(dialect, sse_events(raw)) == planned_chunks(mockllm, marker)[:2]


@BY_NAME
def test_malformed_after_n_is_one_broken_event_in_a_complete_stream(
    mockllm: MockLLMClient, marker: str, dialect: Dialect
) -> None:
    status, _, raw, err = fetch(mockllm, dialect, marker, True, "malformed-after=2")
    assert (status, err) == (200, None)
    events = sse_events(raw)
    broken = [i for i, e in enumerate(events) if e[1] != "[DONE]" and parsed(e) is None]
    assert len(broken) == 1
    assert content(dialect, events[: broken[0]]) == planned_chunks(mockllm, marker)[:2]
    assert content(dialect, events) == planned_chunks(mockllm, marker)
    assert dialect.is_terminal(events[-1])


@BY_NAME
def test_malformed_not_streamed_is_a_body_that_is_not_json(mockllm: MockLLMClient, marker: str, dialect) -> None:
    status, _, raw, err = fetch(mockllm, dialect, marker, False, "malformed-after=2")
    assert (status, err) == (200, None)
    with pytest.raises(ValueError):
        json.loads(raw)


@BY_NAME
def test_truncate_ends_cleanly_without_the_terminal_event(mockllm: MockLLMClient, marker: str, dialect) -> None:
    status, _, raw, err = fetch(mockllm, dialect, marker, True, "truncate")
    assert (status, err) == (200, None)
    events = sse_events(raw)
    assert content(dialect, events) == planned_chunks(mockllm, marker)
    assert not any(dialect.is_terminal(e) for e in events)


@BY_NAME
def test_truncate_not_streamed_is_a_short_body(mockllm: MockLLMClient, marker: str, dialect: Dialect) -> None:
    _, _, _, err = fetch(mockllm, dialect, marker, False, "truncate")
    assert isinstance(err, httpx.RemoteProtocolError)
