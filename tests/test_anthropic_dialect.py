"""The real `anthropic` SDK against the real mock server: answers, usage and every fault's error type.

The SDK is the judge of the bytes. Where it lets a transport failure through unwrapped (a close or
a read timeout mid-stream surface as `httpx2` errors, not `APIConnectionError`), the tests assert
what it actually raises, so a change in the SDK shows up here.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anthropic
import httpx
import httpx2
import pytest

from mockllm import MockLLMClient, count_tokens
from mockllm._tokenizer import count_prompt_tokens

FAST = {"x-mock-ttft-ms": "0", "x-mock-itl-ms": "0", "x-mock-answer-tokens": "24"}
SYSTEM = "Be brief."

pytestmark = pytest.mark.filterwarnings("error")  # the SDK must parse every frame without a warning


def sdk(mockllm: MockLLMClient, timeout: float = 5.0) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=mockllm.base_url, api_key="k", max_retries=0, timeout=timeout)


def ask(marker: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"Question {marker}"}]


def create(client: anthropic.Anthropic, marker: str, fault: str | None = None, **kwargs: Any) -> Any:
    headers = dict(FAST, **({"x-mock-fault": fault} if fault else {}))
    kwargs.setdefault("max_tokens", 256)
    return client.messages.create(
        model="claude-mock", messages=ask(marker), system=SYSTEM, extra_headers=headers, **kwargs
    )


def stream_text(client: anthropic.Anthropic, marker: str, fault: str, seen: list[str]) -> None:
    """Iterate the raw event stream, collecting text deltas, until it ends or raises."""
    for event in create(client, marker, fault, stream=True):
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            seen.append(event.delta.text)


def sse_frames(raw: bytes) -> list[tuple[str, str]]:
    """(event, data) of an LF-framed SSE body; every frame must be exactly those two lines."""
    frames = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        event, data = block.split("\n")
        assert event.startswith("event: ") and data.startswith("data: "), block
        frames.append((event.removeprefix("event: "), data.removeprefix("data: ")))
    return frames


def post(mockllm: MockLLMClient, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{mockllm.base_url}/v1/messages", json=body, headers=headers or FAST, timeout=5)


# -- answers and usage -------------------------------------------------------------------------------


def test_streamed_text_equals_non_streamed_text_and_journal(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    whole = create(client, marker)
    with client.messages.stream(
        model="claude-mock", max_tokens=256, messages=ask(marker), system=SYSTEM, extra_headers=FAST
    ) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    text = whole.content[0].text
    assert text and streamed == text == final.content[0].text
    assert whole.stop_reason == final.stop_reason == "end_turn"
    prompt_tokens = count_prompt_tokens([SYSTEM, f"Question {marker}"])
    for usage in (whole.usage, final.usage):
        assert usage.output_tokens == count_tokens(text) == 24
        assert usage.input_tokens == prompt_tokens
    assert whole.id == final.id and whole.id.startswith("msg_")
    assert whole.model == final.model == "claude-mock"
    assert whole._request_id and stream.request_id == whole._request_id  # same request, same id
    entries = mockllm.journal(prompt_contains=marker)
    assert [e["stream"] for e in entries] == [False, True]
    assert all(e["answer"] == text and e["outcome"] == "completed" for e in entries)
    assert entries[0]["dialect"] == "anthropic-messages"
    assert entries[0]["prompt"] == f"{SYSTEM}\nQuestion {marker}"


def test_max_tokens_cuts_with_max_tokens_stop_reason(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    whole = create(client, marker, max_tokens=5)
    assert whole.stop_reason == "max_tokens"
    assert whole.usage.output_tokens == 5 == count_tokens(whole.content[0].text)
    with client.messages.stream(
        model="claude-mock", max_tokens=5, messages=ask(marker), system=SYSTEM, extra_headers=FAST
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 5
    assert final.content[0].text == whole.content[0].text


def test_system_and_content_blocks_count_like_plain_strings(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    blocks = client.messages.create(
        model="claude-mock",
        max_tokens=64,
        system=[{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": f"Question {marker}"}]},
            {"role": "assistant", "content": "An answer."},
            {"role": "user", "content": [{"type": "text", "text": "More?"}]},
        ],
        extra_headers=FAST,
    )
    expected = count_prompt_tokens(["Be brief.", f"Question {marker}", "An answer.", "More?"])
    assert blocks.usage.input_tokens == expected
    counted = client.messages.count_tokens(
        model="claude-mock",
        system="Be brief.",
        messages=[
            {"role": "user", "content": f"Question {marker}"},
            {"role": "assistant", "content": "An answer."},
            {"role": "user", "content": "More?"},
        ],
    )
    assert counted.input_tokens == expected
    assert mockllm.journal(prompt_contains=marker)[0]["prompt"].startswith("Be brief.\n")


def test_count_tokens_matches_usage(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    counted = client.messages.count_tokens(model="claude-mock", messages=ask(marker), system=SYSTEM)
    assert counted.input_tokens == create(client, marker).usage.input_tokens
    response = httpx.post(f"{mockllm.base_url}/v1/messages/count_tokens", json={"model": "m"}, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"] == {"type": "invalid_request_error", "message": "messages: Field required"}


def test_raw_stream_bytes_are_anthropic_shaped(mockllm: MockLLMClient, marker: str) -> None:
    body = {"model": "claude-mock", "max_tokens": 256, "messages": ask(marker), "system": SYSTEM, "stream": True}
    response = post(mockllm, body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["request-id"].startswith("req_")
    frames = sse_frames(response.content)
    names = [event for event, _ in frames]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"} and len(names) == 24 + 6
    data = [json.loads(payload) for _, payload in frames]
    assert [d["type"] for d in data] == names  # every frame's data names its own event
    message = data[0]["message"]
    assert message["id"].startswith("msg_") and message["model"] == "claude-mock"
    assert (message["type"], message["role"], message["content"]) == ("message", "assistant", [])
    assert message["stop_reason"] is None and message["stop_sequence"] is None
    assert message["usage"]["output_tokens"] == 1
    assert message["usage"]["input_tokens"] == count_prompt_tokens([SYSTEM, f"Question {marker}"])
    assert data[1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert frames[2][1] == '{"type": "ping"}'  # as the API writes it, with a space
    assert all(d["index"] == 0 and d["delta"]["type"] == "text_delta" for d in data[3:-3])
    assert data[-3] == {"type": "content_block_stop", "index": 0}
    assert data[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert data[-2]["usage"]["output_tokens"] == 24
    assert data[-1] == {"type": "message_stop"}
    text = "".join(d["delta"]["text"] for d in data[3:-3])
    assert text == mockllm.journal(prompt_contains=marker)[0]["answer"]


def test_message_start_arrives_before_the_first_token(mockllm: MockLLMClient, marker: str) -> None:
    """The head goes out on arrival: time to first byte is not time to first token."""
    body = {"model": "claude-mock", "max_tokens": 256, "messages": ask(marker), "stream": True}
    headers = {"x-mock-ttft-ms": "300", "x-mock-itl-ms": "0", "x-mock-answer-tokens": "3"}
    start = time.perf_counter()
    arrivals: list[tuple[float, bytes]] = []
    with httpx.stream("POST", f"{mockllm.base_url}/v1/messages", json=body, headers=headers, timeout=5) as response:
        for read in response.iter_raw():
            arrivals.append((time.perf_counter() - start, read))
    first_at, first = arrivals[0]
    assert first.startswith(b"event: message_start") and b"content_block_delta" not in first
    assert first_at < 0.2
    delta_at = next(at for at, read in arrivals if b"content_block_delta" in read)
    assert delta_at >= 0.29


# -- HTTP errors before the stream ---------------------------------------------------------------------


def test_429_is_rate_limit_error_with_retry_after(mockllm: MockLLMClient, marker: str) -> None:
    for fault, wait in (("429", "1"), ("429,retry-after=7", "7")):
        with pytest.raises(anthropic.RateLimitError) as caught:
            create(sdk(mockllm), marker, fault)
        assert caught.value.response.headers["retry-after"] == wait
        assert caught.value.type == "rate_limit_error"
        assert caught.value.body["request_id"] == caught.value.request_id


@pytest.mark.parametrize(
    ("fault", "error", "kind"),
    [
        ("529", anthropic.OverloadedError, "overloaded_error"),
        ("500", anthropic.InternalServerError, "api_error"),
        ("503", anthropic.ServiceUnavailableError, "api_error"),
        ("400", anthropic.BadRequestError, "invalid_request_error"),
        ("401", anthropic.AuthenticationError, "authentication_error"),
        ("403", anthropic.PermissionDeniedError, "permission_error"),
        ("404", anthropic.NotFoundError, "not_found_error"),
        ("413", anthropic.ContentTooLargeError, "request_too_large"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_http_faults_raise_the_sdk_status_error(
    mockllm: MockLLMClient, marker: str, fault: str, error: type[anthropic.APIStatusError], kind: str, stream: bool
) -> None:
    with pytest.raises(error) as caught:
        result = create(sdk(mockllm), marker, fault, stream=stream)
        list(result) if stream else None
    assert caught.value.status_code == int(fault)
    assert caught.value.type == kind
    assert set(caught.value.body) == {"type", "error", "request_id"}
    assert caught.value.body["type"] == "error" and caught.value.api_message
    assert caught.value.response.headers["content-type"] == "application/json"
    assert mockllm.journal(prompt_contains=marker)[0]["outcome"] == "http_error"


def test_armed_529_through_the_admin_api(mockllm: MockLLMClient, marker: str) -> None:
    mockllm.arm_fault("529", match={"contains": marker})
    with pytest.raises(anthropic.OverloadedError) as caught:
        create(sdk(mockllm), marker)
    assert caught.value.status_code == 529
    assert mockllm.journal(prompt_contains=marker)[0]["fault_source"].startswith("armed:")
    assert create(sdk(mockllm), marker).stop_reason == "end_turn"  # armed for one request only


# -- faults mid-stream and mid-body -------------------------------------------------------------------


def test_error_after_n_is_an_in_band_overloaded_error(mockllm: MockLLMClient, marker: str) -> None:
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        stream_text(sdk(mockllm), marker, "error-after=3", seen)
    # An `event: error` after the 200: the SDK raises its plain status error with the 200 status.
    assert type(caught.value) is anthropic.APIStatusError and caught.value.status_code == 200
    assert caught.value.type == "overloaded_error" and caught.value.api_message == "Overloaded"
    assert len(seen) == 3
    with pytest.raises(anthropic.InternalServerError):  # not streamed: a 500 instead of the body
        create(sdk(mockllm), marker, "error-after=3")


def test_disconnect_after_n_is_a_transport_error(mockllm: MockLLMClient, marker: str) -> None:
    seen: list[str] = []
    # Mid-stream the SDK does not wrap the transport's error in APIConnectionError.
    with pytest.raises(httpx2.RemoteProtocolError):
        stream_text(sdk(mockllm), marker, "disconnect-after=3", seen)
    assert len(seen) == 3
    assert mockllm.wait_for_journal(marker)[0]["outcome"] == "disconnected"
    with pytest.raises(anthropic.APIConnectionError):
        create(sdk(mockllm), marker + "-whole", "disconnect-after=3")


def test_stall_is_a_read_timeout_and_the_journal_sees_the_client_leave(mockllm: MockLLMClient, marker: str) -> None:
    seen: list[str] = []
    with pytest.raises(httpx2.ReadTimeout):  # mid-stream: the transport's own timeout, unwrapped
        stream_text(sdk(mockllm, timeout=0.5), marker, "stall-after=2", seen)
    assert len(seen) == 2
    assert mockllm.wait_for_journal(marker)[0]["outcome"] == "client_closed"
    with pytest.raises(anthropic.APITimeoutError):  # before the response: the SDK's timeout error
        create(sdk(mockllm, timeout=0.5), marker + "-whole", "stall-after=2")


def test_stall_for_seconds_resumes(mockllm: MockLLMClient, marker: str) -> None:
    seen: list[str] = []
    stream_text(sdk(mockllm), marker, "stall-after=2,for=0.2", seen)
    assert "".join(seen) == mockllm.wait_for_journal(marker)[0]["answer"]


def test_malformed_chunk_breaks_the_sdk_parse(mockllm: MockLLMClient, marker: str) -> None:
    seen: list[str] = []
    with pytest.raises(json.JSONDecodeError):
        stream_text(sdk(mockllm), marker, "malformed-after=2", seen)
    assert len(seen) == 2
    with pytest.raises(json.JSONDecodeError):  # not streamed: half a body
        create(sdk(mockllm), marker, "malformed-after=2")


def test_truncate_ends_without_message_stop_and_the_sdk_does_not_notice(mockllm: MockLLMClient, marker: str) -> None:
    body = {"model": "claude-mock", "max_tokens": 256, "messages": ask(marker), "stream": True}
    frames = sse_frames(post(mockllm, body, dict(FAST, **{"x-mock-fault": "truncate-after=3"})).content)
    assert [event for event, _ in frames] == ["message_start", "content_block_start", "ping"] + [
        "content_block_delta"
    ] * 3
    client = sdk(mockllm)
    with client.messages.stream(
        model="claude-mock",
        max_tokens=256,
        messages=ask(marker),
        system=SYSTEM,
        extra_headers=dict(FAST, **{"x-mock-fault": "truncate"}),
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    # No error: the final message is the snapshot so far, with no stop reason and message_start's usage.
    assert text == final.content[0].text == mockllm.journal(prompt_contains=marker)[-1]["answer"]
    assert final.stop_reason is None and final.usage.output_tokens == 1
    with pytest.raises(anthropic.APIConnectionError):  # not streamed: the body is cut short
        create(client, marker, "truncate")


def test_fragmented_stream_still_parses_to_the_same_text(mockllm: MockLLMClient, marker: str) -> None:
    client = sdk(mockllm)
    headers = dict(FAST, **{"x-mock-multibyte": "0.5"})
    plain = client.messages.create(
        model="claude-mock", max_tokens=256, messages=ask(marker), system=SYSTEM, extra_headers=headers
    )
    seen: list[str] = []
    fragmented = dict(headers, **{"x-mock-fault": "fragment"})
    for event in client.messages.create(
        model="claude-mock",
        max_tokens=256,
        messages=ask(marker),
        system=SYSTEM,
        stream=True,
        extra_headers=fragmented,
    ):
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            seen.append(event.delta.text)
    text = plain.content[0].text
    assert "".join(seen) == text and any(ord(ch) > 127 for ch in text)
    whole = client.messages.create(
        model="claude-mock", max_tokens=256, messages=ask(marker), system=SYSTEM, extra_headers=fragmented
    )
    assert whole.content[0].text == text


# -- validation ----------------------------------------------------------------------------------------


def test_bad_requests_are_invalid_request_errors_naming_the_field(mockllm: MockLLMClient) -> None:
    user = [{"role": "user", "content": "x"}]
    cases = [
        ({"messages": user, "max_tokens": 5}, "model"),
        ({"model": "m", "messages": user}, "max_tokens"),
        ({"model": "m", "messages": user, "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "messages": user, "max_tokens": True}, "max_tokens"),
        ({"model": "m", "max_tokens": 5}, "messages"),
        ({"model": "m", "messages": [], "max_tokens": 5}, "messages"),
        ({"model": "m", "messages": [{"role": "system", "content": "x"}], "max_tokens": 5}, "messages.0.role"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}], "max_tokens": 5}, "messages.0.content"),
        ({"model": "m", "messages": [{"role": "user", "content": [{"text": "x"}]}], "max_tokens": 5},
         "messages.0.content.0"),
        ({"model": "m", "messages": user, "max_tokens": 5, "system": 3}, "system"),
        ({"model": "m", "messages": user, "max_tokens": 5, "temperature": 1.5}, "temperature"),
        ({"model": "m", "messages": user, "max_tokens": 5, "top_k": -1}, "top_k"),
        ({"model": "m", "messages": user, "max_tokens": 5, "stop_sequences": "END"}, "stop_sequences"),
        ({"model": "m", "messages": user, "max_tokens": 5, "stream": "yes"}, "stream"),
    ]  # fmt: skip
    client = sdk(mockllm)
    for body, param in cases:
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.post("/v1/messages", body=body, cast_to=object)
        assert caught.value.type == "invalid_request_error", body
        assert caught.value.api_message.startswith(f"{param}: "), (body, caught.value.api_message)
    response = httpx.post(f"{mockllm.base_url}/v1/messages", content=b"{not json", timeout=5)
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    response = post(mockllm, {"model": "m", "messages": user, "max_tokens": 5}, {"x-mock-fault": "explode"})
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("x-mock-fault: ")
    assert "explode" in response.json()["error"]["message"]
    entries = mockllm.journal(outcome="rejected")
    assert len(entries) == len(cases) + 2 and entries[1]["param"] == "max_tokens"
