"""The real `openai` SDK against the real mock server: answers, usage and every fault's error type."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from mockllm import MockLLMClient, count_tokens


def sdk(mockllm: MockLLMClient, timeout: float = 5.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=mockllm.openai_base_url, api_key="sk-test", max_retries=0, timeout=timeout)


def ask(marker: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Question {marker}"}]


def sse_events(raw: bytes) -> list[str]:
    """The `data:` payloads of an LF-framed SSE body, in order."""
    return [block.removeprefix(b"data: ").decode() for block in raw.split(b"\n\n") if block]


def test_streamed_text_equals_non_streamed_text_and_journal(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    whole = client.chat.completions.create(model="gpt-4o-mini", messages=ask(marker))
    pieces, usage = [], None
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=ask(marker), stream=True, stream_options={"include_usage": True}
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    text = whole.choices[0].message.content
    assert text and "".join(pieces) == text
    assert whole.choices[0].finish_reason == "stop"
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens == count_tokens(text)
    assert usage.prompt_tokens == whole.usage.prompt_tokens
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    entries = mockllm.journal(prompt_contains=marker)
    assert [e["stream"] for e in entries] == [False, True]
    assert all(e["answer"] == text and e["outcome"] == "completed" for e in entries)
    assert entries[0]["headers"]["authorization"] == "[redacted]"


def test_max_tokens_cuts_with_length(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    for name in ("max_tokens", "max_completion_tokens"):
        result = client.chat.completions.create(model="m", messages=ask(marker), **{name: 7})
        assert result.choices[0].finish_reason == "length"
        assert result.usage.completion_tokens == 7 == count_tokens(result.choices[0].message.content)
    stream = client.chat.completions.create(model="m", messages=ask(marker), max_tokens=7, stream=True)
    finishes = [c.choices[0].finish_reason for c in stream if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]


def test_raw_stream_bytes_are_openai_shaped(mockllm: MockLLMClient, marker: str) -> None:
    body = {"model": "gpt-4o", "messages": ask(marker), "stream": True, "stream_options": {"include_usage": True}}
    response = httpx.post(f"{mockllm.openai_base_url}/chat/completions", json=body, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["transfer-encoding"] == "chunked"
    events = sse_events(response.content)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    ids = {(c["id"], c["created"], c["model"], c["system_fingerprint"]) for c in chunks}
    assert len(ids) == 1 and next(iter(ids))[2] == "gpt-4o"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    first = chunks[0]["choices"][0]
    assert first["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert first["finish_reason"] is None and first["logprobs"] is None
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert set(chunks[-1]["usage"]) == {
        "prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details", "completion_tokens_details",
    }  # fmt: skip
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[1:-2])
    assert text == mockllm.journal(prompt_contains=marker)[0]["answer"]


def test_without_include_usage_there_is_no_usage_field(mockllm: MockLLMClient, marker: str) -> None:
    body = {"model": "m", "messages": ask(marker), "stream": True}
    response = httpx.post(f"{mockllm.openai_base_url}/chat/completions", json=body, timeout=5)
    chunks = [json.loads(e) for e in sse_events(response.content)[:-1]]
    assert chunks and all("usage" not in c and c["choices"] for c in chunks)


def test_models_and_health(mockllm: MockLLMClient) -> None:
    client = sdk(mockllm)
    models = [m.id for m in client.models.list()]
    assert models == ["mock-gpt", "gpt-4o-mini", "gpt-4o"]
    assert client.models.retrieve("any-name-at-all").id == "any-name-at-all"
    assert httpx.get(f"{mockllm.base_url}/health").json() == {"status": "ok"}


def test_429_is_rate_limit_error_with_retry_after(mockllm: MockLLMClient, marker: str) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        sdk(mockllm).chat.completions.create(
            model="m", messages=ask(marker), extra_headers={"x-mock-fault": "429,retry-after=7"}
        )
    headers = caught.value.response.headers
    assert headers["retry-after"] == "7"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "7s"
    assert caught.value.body["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        ("500", openai.InternalServerError, 500),
        ("503", openai.InternalServerError, 503),
        ("529", openai.InternalServerError, 529),
        ("400", openai.BadRequestError, 400),
        ("401", openai.AuthenticationError, 401),
        ("404", openai.NotFoundError, 404),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_http_faults_raise_the_sdk_status_error(
    mockllm: MockLLMClient, marker: str, fault: str, error: type[openai.APIStatusError], status: int, stream: bool
) -> None:
    with pytest.raises(error) as caught:
        result = sdk(mockllm).chat.completions.create(
            model="m", messages=ask(marker), stream=stream, extra_headers={"x-mock-fault": fault}
        )
        list(result) if stream else None
    assert caught.value.status_code == status
    assert set(caught.value.body) == {"message", "type", "param", "code"}
    assert mockllm.journal(prompt_contains=marker)[0]["outcome"] == "http_error"


def stream_text(client: openai.OpenAI, marker: str, fault: str, seen: list[str]) -> None:
    stream = client.chat.completions.create(
        model="m", messages=ask(marker), stream=True, extra_headers={"x-mock-fault": fault}
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            seen.append(chunk.choices[0].delta.content)


def test_error_after_n_is_an_api_error_mid_stream(mockllm: MockLLMClient, marker: str) -> None:
    seen: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        stream_text(sdk(mockllm), marker, "error-after=4", seen)
    assert not isinstance(caught.value, openai.APIStatusError)  # in-band, after a 200
    assert caught.value.body["type"] == "server_error"
    assert len(seen) == 4


def test_disconnect_after_n_is_a_connection_error(mockllm: MockLLMClient, marker: str) -> None:
    seen: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        stream_text(sdk(mockllm), marker, "disconnect-after=3", seen)
    assert len(seen) == 3
    assert mockllm.wait_for_journal(marker)[0]["outcome"] == "disconnected"


def test_stall_is_a_timeout_and_the_journal_sees_the_client_leave(mockllm: MockLLMClient, marker: str) -> None:
    seen: list[str] = []
    with pytest.raises(openai.APITimeoutError):
        stream_text(sdk(mockllm, timeout=0.5), marker, "stall-after=2", seen)
    assert len(seen) == 2
    assert mockllm.wait_for_journal(marker)[0]["outcome"] == "client_closed"


def test_stall_for_seconds_resumes(mockllm: MockLLMClient, marker: str) -> None:
    seen: list[str] = []
    stream_text(sdk(mockllm), marker, "stall-after=2,for=0.3", seen)
    entry = mockllm.wait_for_journal(marker)[0]
    assert "".join(seen) == entry["answer"]
    achieved = entry["achieved"]
    third_chunk_at = achieved["ttft_ms"] + sum(achieved["itl_ms"][:2])
    assert entry["planned"]["offsets_ms"][2] == 0.0  # zero timing: the 300 ms are the stall's own
    assert 299.5 <= third_chunk_at < 400.0  # deadlines are held to within half a millisecond


def test_malformed_chunk_breaks_the_sdk_parse(mockllm: MockLLMClient, marker: str) -> None:
    seen: list[str] = []
    with pytest.raises(json.JSONDecodeError):
        stream_text(sdk(mockllm), marker, "malformed-after=2", seen)
    assert len(seen) == 2


def test_truncate_ends_cleanly_without_done(mockllm: MockLLMClient, marker: str) -> None:
    body = {"model": "m", "messages": ask(marker), "stream": True}
    headers = {"x-mock-fault": "truncate-after=3"}
    response = httpx.post(f"{mockllm.openai_base_url}/chat/completions", json=body, headers=headers, timeout=5)
    events = sse_events(response.content)
    assert "[DONE]" not in events
    chunks = [json.loads(e) for e in events]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 4  # role chunk + 3 tokens
    seen: list[str] = []
    stream_text(sdk(mockllm), marker, "truncate-after=3", seen)  # the SDK sees a short answer, no error
    assert len(seen) == 3


def test_fragmented_stream_splits_utf8_and_the_sdk_reassembles(mockllm: MockLLMClient, marker: str) -> None:
    headers = {"x-mock-fault": "fragment", "x-mock-multibyte": "0.5", "x-mock-answer-tokens": "40"}
    body = {"model": "m", "messages": ask(marker), "stream": True}
    reads: list[bytes] = []
    with httpx.stream("POST", f"{mockllm.openai_base_url}/chat/completions", json=body, headers=headers) as response:
        reads.extend(response.iter_raw())
    assert len(reads) > 40
    assert any(read and 0x80 <= read[0] <= 0xBF for read in reads), "no read starts inside a UTF-8 character"
    whole = b"".join(reads)
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in sse_events(whole)[:-1])
    entries = mockllm.journal(prompt_contains=marker)
    assert text == entries[0]["answer"] and any(ord(ch) > 127 for ch in text)
    seen: list[str] = []
    client = sdk(mockllm)
    stream = client.chat.completions.create(model="m", messages=ask(marker), stream=True, extra_headers=headers)
    seen = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert "".join(seen) == text


def test_bad_requests_name_the_field(mockllm: MockLLMClient) -> None:
    client = sdk(mockllm)
    cases = [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3}, "temperature"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream_options": {}}, "stream_options"),
    ]
    for body, param in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            client.post("/chat/completions", body=body, cast_to=object)
        assert caught.value.body["param"] == param, body
        assert param.split("[")[0] in caught.value.body["message"]
    response = httpx.post(f"{mockllm.openai_base_url}/chat/completions", content=b"{not json", timeout=5)
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    response = httpx.post(
        f"{mockllm.openai_base_url}/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
        headers={"x-mock-fault": "explode"},
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "x-mock-fault"
    assert "explode" in response.json()["error"]["message"]
    assert mockllm.stats()["by_outcome"]["rejected"] == len(cases) + 2


def test_client_abort_mid_stream_is_journaled_and_the_server_stays_healthy(mockllm: MockLLMClient, marker: str) -> None:
    body = {"model": "m", "messages": ask(marker), "stream": True}
    headers = {"x-mock-ttft-ms": "0", "x-mock-itl-ms": "20", "x-mock-answer-tokens": "100"}
    with httpx.stream("POST", f"{mockllm.openai_base_url}/chat/completions", json=body, headers=headers) as response:
        for _ in zip(range(3), response.iter_raw(), strict=False):
            pass  # read a little, then hang up: a stop button
    entry = mockllm.wait_for_journal(marker, timeout=1.0)[0]  # well before the 2 s the answer would take
    assert entry["outcome"] == "client_closed"
    assert 0 < len(entry["achieved"]["itl_ms"]) < 99
    assert mockllm.stats()["active_streams"] == 0
    follow_up = sdk(mockllm).chat.completions.create(model="m", messages=ask(marker + "-again"))
    assert follow_up.choices[0].finish_reason == "stop"
