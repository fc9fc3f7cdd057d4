"""The real `openai` SDK's Responses API against the real mock: text, usage, sequence numbers, and
what the SDK does with each fault (it raises for HTTP and transport faults, but hands an in-band
`error` + `response.failed` to the caller as events)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from mockllm import MockLLMClient, count_tokens

FAST = {"x-mock-ttft-ms": "0", "x-mock-itl-ms": "0", "x-mock-answer-tokens": "20"}
TERMINAL = {"response.completed", "response.incomplete", "response.failed"}


def sdk(mockllm: MockLLMClient, timeout: float = 5.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=mockllm.openai_base_url, api_key="k", max_retries=0, timeout=timeout)


def headers(fault: str | None = None) -> dict[str, str]:
    return FAST if fault is None else {**FAST, "x-mock-fault": fault}


def create(client: openai.OpenAI, marker: str, fault: str | None = None, **kwargs: Any) -> Any:
    return client.responses.create(
        model="gpt-4o-mini", input=f"Question {marker}", extra_headers=headers(fault), **kwargs
    )


def events(client: openai.OpenAI, marker: str, fault: str | None = None, seen: list[Any] | None = None, **kw: Any):
    """All stream events, appended to `seen` as they arrive (so a test sees them after a raise)."""
    seen = [] if seen is None else seen
    seen.extend(create(client, marker, fault, stream=True, **kw))
    return seen


def deltas(seen: list[Any]) -> list[str]:
    return [e.delta for e in seen if e.type == "response.output_text.delta"]


def raw_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of an LF-framed SSE body with `event:` lines."""
    out = []
    for block in raw.split(b"\n\n"):
        if block:
            name, data = block.split(b"\n", 1)
            out.append((name.removeprefix(b"event: ").decode(), json.loads(data.removeprefix(b"data: "))))
    return out


def post_raw(mockllm: MockLLMClient, marker: str, fault: str | None = None, **body: Any) -> httpx.Response:
    body = {"model": "m", "input": f"Question {marker}", "stream": True, **body}
    return httpx.post(f"{mockllm.openai_base_url}/responses", json=body, headers=headers(fault), timeout=5)


def test_streamed_text_equals_non_streamed_text_and_journal(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    whole = create(client, marker, instructions="Be brief.")
    assert whole.object == "response" and whole.status == "completed" and whole.incomplete_details is None
    text = whole.output_text
    assert text and whole.id.startswith("resp_") and whole.output[0].id.startswith("msg_")
    seen = events(client, marker, instructions="Be brief.")
    assert "".join(deltas(seen)) == text
    assert seen[-1].type == "response.completed" and seen[-1].response.output_text == text
    with client.responses.stream(
        model="gpt-4o-mini", input=f"Question {marker}", instructions="Be brief.", extra_headers=FAST
    ) as stream:
        final = stream.get_final_response()
    assert final.output_text == text
    for usage in (whole.usage, seen[-1].response.usage, final.usage):
        assert usage is not None and usage.output_tokens == count_tokens(text)
        assert usage.input_tokens == whole.usage.input_tokens > 0
        assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    entries = mockllm.journal(prompt_contains=marker)
    assert [e["stream"] for e in entries] == [False, True, True]
    assert all(e["answer"] == text and e["outcome"] == "completed" for e in entries)
    assert entries[0]["prompt"] == f"Be brief.\nQuestion {marker}"  # instructions: a leading system message
    assert entries[0]["dialect"] == "openai-responses"


def test_input_items_read_like_chat_messages(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    items = [
        {"role": "developer", "content": "Be brief."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": f"Question {marker}"}]},
    ]
    result = client.responses.create(model="m", input=items, extra_headers=FAST)  # type: ignore[arg-type]
    chat = client.chat.completions.create(
        model="m",
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": f"Question {marker}"}],
        extra_headers=FAST,
    )
    assert result.output_text == chat.choices[0].message.content  # same request, same answer
    assert result.usage is not None and chat.usage is not None
    assert result.usage.input_tokens == chat.usage.prompt_tokens


def test_max_output_tokens_is_incomplete(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    whole = create(client, marker, max_output_tokens=16)
    assert whole.status == "incomplete" and whole.incomplete_details is not None
    assert whole.incomplete_details.reason == "max_output_tokens"
    assert whole.usage is not None and whole.usage.output_tokens == 16 == count_tokens(whole.output_text)
    assert whole.output[0].status == "incomplete"
    seen = events(client, marker, max_output_tokens=16)
    last = seen[-1]
    assert last.type == "response.incomplete" and last.response.status == "incomplete"
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert "".join(deltas(seen)) == whole.output_text == last.response.output_text
    # The SDK's stream helper only knows `response.completed`: an incomplete stream has no final response.
    with (
        pytest.raises(RuntimeError, match=r"response\.completed"),
        client.responses.stream(
            model="gpt-4o-mini", input=f"Question {marker}", max_output_tokens=16, extra_headers=FAST
        ) as stream,
    ):
        stream.get_final_response()


def test_raw_events_are_named_and_numbered_from_zero(mockllm: MockLLMClient, marker: str) -> None:
    response = post_raw(mockllm, marker)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    parsed = raw_events(response.content)
    assert all(name == data["type"] for name, data in parsed)
    assert [data["sequence_number"] for _, data in parsed] == list(range(len(parsed)))
    names = [name for name, _ in parsed]
    assert names[:4] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
    ]  # fmt: skip
    assert names[-4:] == [
        "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed",
    ]  # fmt: skip
    assert set(names[4:-4]) == {"response.output_text.delta"}
    answer = mockllm.journal(prompt_contains=marker)[0]["answer"]
    assert "".join(data["delta"] for _, data in parsed[4:-4]) == answer
    assert parsed[-4][1]["text"] == answer
    response_ids = {data["response"]["id"] for _, data in parsed if "response" in data}
    item_ids = {data["item_id"] for _, data in parsed if "item_id" in data}
    assert len(response_ids) == 1 and len(item_ids) == 1
    usage = parsed[-1][1]["response"]["usage"]
    assert set(usage) == {
        "input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details", "total_tokens",
    }  # fmt: skip
    # An in-band error keeps the numbering: it follows the last delta sent.
    failed = raw_events(post_raw(mockllm, marker, "error-after=3").content)
    assert [data["sequence_number"] for _, data in failed] == list(range(len(failed)))
    assert [name for name, _ in failed][-5:] == ["response.output_text.delta"] * 3 + ["error", "response.failed"]


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


def test_error_after_n_streams_error_and_failed_events(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    seen = events(client, marker, "error-after=3")  # the SDK raises nothing: the events are the error
    assert len(deltas(seen)) == 3
    error, failed = seen[-2:]
    assert error.type == "error" and error.code == "server_error" and error.message
    assert failed.type == "response.failed" and failed.response.status == "failed"
    assert failed.response.error is not None and failed.response.error.code == "server_error"
    assert failed.response.output_text == "".join(deltas(seen))  # the text sent before the failure
    with (
        pytest.raises(RuntimeError, match=r"response\.completed"),
        client.responses.stream(model="m", input=f"Question {marker}", extra_headers=headers("error-after=3")) as s,
    ):
        s.get_final_response()
    with pytest.raises(openai.InternalServerError):  # not streamed: the whole response is a 500
        create(client, marker, "error-after=3")


@pytest.mark.parametrize("stream", [False, True])
def test_disconnect_after_n_is_a_connection_error(mockllm: MockLLMClient, marker: str, stream: bool) -> None:
    seen: list[Any] = []
    client = sdk(mockllm)
    with pytest.raises(openai.APIConnectionError):
        events(client, marker, "disconnect-after=3", seen) if stream else create(client, marker, "disconnect-after=3")
    assert len(deltas(seen)) == (3 if stream else 0)
    assert mockllm.wait_for_journal(marker)[0]["outcome"] == "disconnected"


@pytest.mark.parametrize("stream", [False, True])
def test_stall_is_a_timeout(mockllm: MockLLMClient, marker: str, stream: bool) -> None:
    seen: list[Any] = []
    client = sdk(mockllm, timeout=0.5)
    with pytest.raises(openai.APITimeoutError):
        events(client, marker, "stall-after=2", seen) if stream else create(client, marker, "stall-after=2")
    assert len(deltas(seen)) == (2 if stream else 0)
    assert mockllm.wait_for_journal(marker)[0]["outcome"] == "client_closed"


@pytest.mark.parametrize("stream", [False, True])
def test_malformed_breaks_the_sdk_json_parse(mockllm: MockLLMClient, marker: str, stream: bool) -> None:
    seen: list[Any] = []
    client = sdk(mockllm)
    with pytest.raises(json.JSONDecodeError):  # the SDK lets the decoder's error through, unwrapped
        events(client, marker, "malformed-after=2", seen) if stream else create(client, marker, "malformed-after=2")
    assert len(deltas(seen)) == (2 if stream else 0)


def test_truncate_ends_without_a_terminal_event(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    seen = events(client, marker, "truncate-after=3")  # the SDK sees a clean end, no error
    assert len(deltas(seen)) == 3 and not TERMINAL & {e.type for e in seen}
    seen = events(client, marker, "truncate")
    assert seen[-1].type == "response.output_text.delta"
    assert "".join(deltas(seen)) == mockllm.journal(prompt_contains=marker)[0]["answer"]
    with pytest.raises(openai.APIConnectionError):  # not streamed: a body shorter than its length
        create(client, marker, "truncate")


def test_fragmented_stream_gives_the_same_text(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    plain = create(client, marker).output_text
    fragmented = {**FAST, "x-mock-fault": "fragment", "x-mock-multibyte": "0.5"}
    whole = client.responses.create(model="gpt-4o-mini", input=f"Question {marker}", extra_headers=fragmented)
    stream = client.responses.create(
        model="gpt-4o-mini", input=f"Question {marker}", stream=True, extra_headers=fragmented
    )
    text = "".join(deltas(list(stream)))
    assert text == whole.output_text and any(ord(ch) > 127 for ch in text)
    assert create(client, marker, "fragment").output_text == plain


def test_armed_fault_applies_to_the_responses_path(mockllm: MockLLMClient, marker: str) -> None:
    mockllm.arm_fault("error-after=2", match={"contains": marker, "path": "/v1/responses"})
    client = sdk(mockllm)
    seen = events(client, marker)
    assert [e.type for e in seen[-2:]] == ["error", "response.failed"] and len(deltas(seen)) == 2
    assert events(client, marker)[-1].type == "response.completed"  # armed for one request
    entries = mockllm.journal(prompt_contains=marker)
    assert entries[0]["fault"] == "error-after=2" and entries[1]["fault"] is None


def test_bad_requests_name_the_field(mockllm: MockLLMClient) -> None:
    client = sdk(mockllm)
    cases = [
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"model": "m", "input": [{"role": "user", "content": 5}]}, "input[0].content"),
        ({"model": "m", "input": [{"type": "teleport"}]}, "input[0].type"),
        ({"model": "m", "input": "x", "max_output_tokens": 5}, "max_output_tokens"),
        ({"model": "m", "input": "x", "temperature": 3}, "temperature"),
        ({"model": "m", "input": "x", "instructions": 1}, "instructions"),
    ]
    for body, param in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            client.post("/responses", body=body, cast_to=object)
        assert caught.value.body["param"] == param, body
