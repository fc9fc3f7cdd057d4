"""The real `openai` SDK's legacy completions against the real mock: text, usage, and each fault's
error type, streamed and not."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from mockllm import MockLLMClient, count_tokens

FAST = {"x-mock-ttft-ms": "0", "x-mock-itl-ms": "0", "x-mock-answer-tokens": "20"}


def sdk(mockllm: MockLLMClient, timeout: float = 5.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=mockllm.openai_base_url, api_key="k", max_retries=0, timeout=timeout)


def headers(fault: str | None = None) -> dict[str, str]:
    return FAST if fault is None else {**FAST, "x-mock-fault": fault}


def create(client: openai.OpenAI, marker: str, fault: str | None = None, **kwargs: Any) -> Any:
    return client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt=f"Question {marker}", extra_headers=headers(fault), **kwargs
    )


def chunks(client: openai.OpenAI, marker: str, fault: str | None = None, seen: list[Any] | None = None, **kw: Any):
    """All stream chunks, appended to `seen` as they arrive (so a test sees them after a raise)."""
    seen = [] if seen is None else seen
    seen.extend(create(client, marker, fault, stream=True, **kw))
    return seen


def texts(seen: list[Any]) -> list[str]:
    return [c.choices[0].text for c in seen if c.choices and c.choices[0].text]


def sse_events(raw: bytes) -> list[str]:
    return [block.removeprefix(b"data: ").decode() for block in raw.split(b"\n\n") if block]


def test_streamed_text_equals_non_streamed_text_and_journal(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    whole = create(client, marker)
    text = whole.choices[0].text
    assert text and whole.object == "text_completion" and whole.id.startswith("cmpl-")
    assert whole.choices[0].finish_reason == "stop" and whole.choices[0].logprobs is None
    seen = chunks(client, marker, stream_options={"include_usage": True})
    assert "".join(texts(seen)) == text
    assert [c.choices[0].finish_reason for c in seen if c.choices][-1] == "stop"
    usage = seen[-1].usage
    assert seen[-1].choices == [] and usage is not None
    assert all(c.usage is None for c in seen[:-1])
    for u in (whole.usage, usage):
        assert u.completion_tokens == count_tokens(text)
        assert u.prompt_tokens == count_tokens(f"Question {marker}")  # a raw prompt: no chat framing
        assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    entries = mockllm.journal(prompt_contains=marker)
    assert [e["stream"] for e in entries] == [False, True]
    assert all(e["answer"] == text and e["outcome"] == "completed" for e in entries)
    assert entries[0]["dialect"] == "openai-completions"
    assert all(e["planned"]["prompt_tokens"] == usage.prompt_tokens for e in entries)  # journal and usage agree
    # The prompt is one user message: the same text gets the chat endpoint's answer.
    chat = client.chat.completions.create(
        model="gpt-3.5-turbo-instruct", messages=[{"role": "user", "content": f"Question {marker}"}], extra_headers=FAST
    )
    assert chat.choices[0].message.content == text


def test_a_list_of_one_prompt_is_that_prompt(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    single = client.completions.create(model="m", prompt=f"Question {marker}", extra_headers=FAST)
    listed = client.completions.create(model="m", prompt=[f"Question {marker}"], extra_headers=FAST)
    assert listed.choices[0].text == single.choices[0].text


def test_max_tokens_cuts_with_length(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    whole = create(client, marker, max_tokens=7)
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage.completion_tokens == 7 == count_tokens(whole.choices[0].text)
    seen = chunks(client, marker, max_tokens=7)
    assert [c.choices[0].finish_reason for c in seen if c.choices[0].finish_reason] == ["length"]
    assert "".join(texts(seen)) == whole.choices[0].text


def test_raw_stream_bytes(mockllm: MockLLMClient, marker: str) -> None:
    body = {"model": "m", "prompt": f"Question {marker}", "stream": True}
    response = httpx.post(f"{mockllm.openai_base_url}/completions", json=body, headers=FAST, timeout=5)
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    events = sse_events(response.content)
    assert events[-1] == "[DONE]"
    parsed = [json.loads(e) for e in events[:-1]]
    assert {(c["id"], c["object"], c["created"], c["model"]) for c in parsed} == {
        (parsed[0]["id"], "text_completion", parsed[0]["created"], "m")
    }
    assert all("usage" not in c for c in parsed)  # no include_usage: no usage field at all
    assert parsed[-1]["choices"] == [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}]
    assert "".join(c["choices"][0]["text"] for c in parsed) == mockllm.journal(prompt_contains=marker)[0]["answer"]


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        ("429,retry-after=7", openai.RateLimitError, 429),
        ("500", openai.InternalServerError, 500),
        ("503", openai.InternalServerError, 503),
        ("529", openai.APIStatusError, 529),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_http_faults_raise_the_sdk_status_error(
    mockllm: MockLLMClient, marker: str, fault: str, error: type[openai.APIStatusError], status: int, stream: bool
) -> None:
    with pytest.raises(error) as caught:
        result = create(sdk(mockllm), marker, fault, stream=stream)
        list(result) if stream else None
    assert caught.value.status_code == status
    assert set(caught.value.body) == {"message", "type", "param", "code"}
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "7"
        assert caught.value.body["code"] == "rate_limit_exceeded"
    assert mockllm.journal(prompt_contains=marker)[0]["outcome"] == "http_error"


def test_error_after_n_is_an_api_error_mid_stream(mockllm: MockLLMClient, marker: str) -> None:
    seen: list[Any] = []
    with pytest.raises(openai.APIError) as caught:
        chunks(sdk(mockllm), marker, "error-after=3", seen)
    assert not isinstance(caught.value, openai.APIStatusError)  # in-band, after a 200
    assert caught.value.body["type"] == "server_error"
    assert len(texts(seen)) == 3
    with pytest.raises(openai.InternalServerError):  # not streamed: the whole response is a 500
        create(sdk(mockllm), marker, "error-after=3")


@pytest.mark.parametrize("stream", [False, True])
def test_disconnect_after_n_is_a_connection_error(mockllm: MockLLMClient, marker: str, stream: bool) -> None:
    seen: list[Any] = []
    client = sdk(mockllm)
    with pytest.raises(openai.APIConnectionError):
        chunks(client, marker, "disconnect-after=3", seen) if stream else create(client, marker, "disconnect-after=3")
    assert len(texts(seen)) == (3 if stream else 0)
    assert mockllm.wait_for_journal(marker)[0]["outcome"] == "disconnected"


@pytest.mark.parametrize("stream", [False, True])
def test_stall_is_a_timeout(mockllm: MockLLMClient, marker: str, stream: bool) -> None:
    seen: list[Any] = []
    client = sdk(mockllm, timeout=0.5)
    with pytest.raises(openai.APITimeoutError):
        chunks(client, marker, "stall-after=2", seen) if stream else create(client, marker, "stall-after=2")
    assert len(texts(seen)) == (2 if stream else 0)
    assert mockllm.wait_for_journal(marker)[0]["outcome"] == "client_closed"


@pytest.mark.parametrize("stream", [False, True])
def test_malformed_breaks_the_sdk_json_parse(mockllm: MockLLMClient, marker: str, stream: bool) -> None:
    seen: list[Any] = []
    client = sdk(mockllm)
    with pytest.raises(json.JSONDecodeError):  # the SDK lets the decoder's error through, unwrapped
        chunks(client, marker, "malformed-after=2", seen) if stream else create(client, marker, "malformed-after=2")
    assert len(texts(seen)) == (2 if stream else 0)


def test_truncate_ends_without_finish_or_done(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    seen = chunks(client, marker, "truncate-after=3")  # the SDK sees a clean, short end
    assert len(seen) == 3 and all(c.choices[0].finish_reason is None for c in seen)
    body = {"model": "m", "prompt": f"Question {marker}", "stream": True}
    raw = httpx.post(f"{mockllm.openai_base_url}/completions", json=body, headers=headers("truncate"), timeout=5)
    events = sse_events(raw.content)
    assert "[DONE]" not in events and all(json.loads(e)["choices"][0]["finish_reason"] is None for e in events)
    with pytest.raises(openai.APIConnectionError):  # not streamed: a body shorter than its length
        create(client, marker, "truncate")


def test_fragmented_stream_gives_the_same_text(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    fragmented = {**FAST, "x-mock-fault": "fragment", "x-mock-multibyte": "0.5"}
    whole = client.completions.create(model="m", prompt=f"Question {marker}", extra_headers=fragmented)
    stream = client.completions.create(model="m", prompt=f"Question {marker}", stream=True, extra_headers=fragmented)
    text = "".join(texts(list(stream)))
    assert text == whole.choices[0].text and any(ord(ch) > 127 for ch in text)


def test_armed_fault_applies_to_the_completions_path(mockllm: MockLLMClient, marker: str) -> None:
    mockllm.arm_fault("error-after=2", match={"contains": marker, "path": "/v1/completions"})
    client = sdk(mockllm)
    seen: list[Any] = []
    with pytest.raises(openai.APIError):
        chunks(client, marker, seen=seen)
    assert len(texts(seen)) == 2
    assert chunks(client, marker)[-1].choices[0].finish_reason == "stop"  # armed for one request
    entries = mockllm.journal(prompt_contains=marker)
    assert entries[0]["fault"] == "error-after=2" and entries[1]["fault"] is None


def test_bad_requests_name_the_field(mockllm: MockLLMClient) -> None:
    client = sdk(mockllm)
    cases = [
        ({"prompt": "x"}, "model"),
        ({"model": "m"}, "prompt"),
        ({"model": "m", "prompt": ["a", "b"]}, "prompt"),
        ({"model": "m", "prompt": [1, 2, 3]}, "prompt"),
        ({"model": "m", "prompt": "x", "echo": True}, "echo"),
        ({"model": "m", "prompt": "x", "n": 2}, "n"),
        ({"model": "m", "prompt": "x", "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "prompt": "x", "temperature": 3}, "temperature"),
        ({"model": "m", "prompt": "x", "stream_options": {"include_usage": True}}, "stream_options"),
    ]
    for body, param in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            client.post("/completions", body=body, cast_to=object)
        assert caught.value.body["param"] == param, body
