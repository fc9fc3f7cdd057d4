"""The `reset` and `refuse` faults: a connection reset before any byte, and a listener that refuses
connections for a while and then listens again on the same port. Real mock processes, real clients."""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from mockllm import MockLLMClient, ServerProcess, parse_fault, start_mock
from mockllm._faults import FaultSyntaxError


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with start_mock("--contract", "sessions", seed=2, ttft_ms=5, itl_ms=1) as mock:
        yield mock


@pytest.fixture
def mock(server: ServerProcess) -> Iterator[MockLLMClient]:
    with MockLLMClient(server.url) as client:
        client.reset()
        yield client


def _port(mock: MockLLMClient) -> int:
    return int(mock.base_url.rsplit(":", 1)[1])


def _connect_errno(port: int) -> int:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port))


def test_reset_is_a_connection_error_to_the_openai_sdk(mock: MockLLMClient, marker: str) -> None:
    client = openai.OpenAI(base_url=mock.openai_base_url, api_key="test", max_retries=0)
    mock.arm_fault("reset", match={"contains": marker})
    with pytest.raises(openai.APIConnectionError) as caught:
        client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": f"hi {marker}"}])
    chain, error = [], caught.value.__cause__
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert any(isinstance(e, ConnectionResetError) for e in chain), chain  # ECONNRESET, not a status
    assert not isinstance(caught.value, openai.APIStatusError)
    (entry,) = mock.journal(prompt_contains=marker)
    assert entry["outcome"] == "reset" and entry["fault"] == "reset" and entry["fault_source"] == "armed:1"
    # The SDK's own retry gets an answer: the reset was that request's alone.
    retried = openai.OpenAI(base_url=mock.openai_base_url, api_key="test", max_retries=0)
    answer = retried.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": marker}])
    assert answer.choices[0].message.content


def test_reset_sends_no_byte_on_a_stream_of_every_kind(mock: MockLLMClient, marker: str) -> None:
    host, port = "127.0.0.1", _port(mock)
    requests = [
        ("/api/chat/stream", b'{"message": "contract %s"}'),
        ("/v1/chat/completions", b'{"model": "m", "stream": true, "messages": [{"role": "user", "content": "%s"}]}'),
        ("/v1/messages", b'{"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "%s"}]}'),
    ]
    for path, template in requests:
        body = template % marker.encode()
        head = f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(head.encode() + b"x-mock-fault: reset\r\n\r\n" + body)
            with pytest.raises(ConnectionResetError):
                assert sock.recv(1024) == b"", "the mock answered instead of resetting"
    outcomes = [(e["dialect"], e["outcome"]) for e in mock.journal(prompt_contains=marker)]
    assert outcomes == [("contract:sessions", "reset"), ("openai-chat", "reset"), ("anthropic-messages", "reset")]
    assert mock.stats()["by_outcome"] == {"reset": 3}


def test_refuse_closes_the_listener_then_it_listens_again(mock: MockLLMClient, marker: str) -> None:
    port = _port(mock)
    mock.arm_fault("refuse,for=1.5", match={"contains": marker})
    with pytest.raises(httpx.ReadError):  # the request that triggers it: reset, as a crashing process does
        httpx.post(f"{mock.base_url}/api/chat/stream", json={"message": f"crash {marker}"})
    started = time.monotonic()
    assert _connect_errno(port) == errno.ECONNREFUSED
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{mock.base_url}/api/chat/stream", json={"message": "refused"})
    while _connect_errno(port) == errno.ECONNREFUSED:
        assert time.monotonic() - started < 5, "the mock did not listen again"
        time.sleep(0.05)
    waited = time.monotonic() - started
    assert 1.0 < waited < 2.5, waited
    answered = httpx.post(f"{mock.base_url}/api/chat/stream", json={"message": f"back {marker}"})
    assert answered.status_code == 200 and b'"type":"done"' in answered.content
    stats = mock.stats()
    assert stats["refusal_windows"] == 1 and stats["refusing_s"] == 0
    assert "mockllm_refusal_windows_total 1" in httpx.get(f"{mock.base_url}/metrics").text
    outcomes = [(e["fault"], e["outcome"]) for e in mock.journal(prompt_contains=marker)]
    assert outcomes == [("refuse,for=1.5", "reset"), (None, "completed")]


def test_an_open_connection_is_served_through_a_refusal_window(server: ServerProcess) -> None:
    """`POST /_mock/refuse` opens a window with no request; a kept-alive connection still works."""
    with httpx.Client(base_url=server.url) as kept:
        opened = kept.post("/_mock/refuse", json={"for_s": 0.8})
        assert opened.status_code == 200 and opened.json()["refusing_s"] > 0.5
        assert _connect_errno(int(server.url.rsplit(":", 1)[1])) == errno.ECONNREFUSED
        assert kept.get("/_mock/stats").json()["refusing_s"] > 0  # the same connection: still served
        assert kept.post("/_mock/refuse", json={"for_s": 0}).status_code == 400
    time.sleep(1.0)
    assert httpx.get(f"{server.url}/health").status_code == 200


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("refuse", "refuse needs for=S"),
        ("refuse,for=0", "refuse needs for=S"),
        ("refuse,for=99999", "refuse needs for=S"),
        ("reset=1", "reset takes no '='"),
        ("reset,for=2", "unknown option 'for'"),
        ("refuse,after=2", "refuse needs for=S"),
    ],
)
def test_bad_reset_and_refuse_specs_say_what_is_wrong(spec: str, problem: str) -> None:
    with pytest.raises(FaultSyntaxError, match=problem):
        parse_fault(spec)


def test_reset_and_refuse_parse() -> None:
    assert parse_fault("reset").effect == "reset"
    refuse = parse_fault("refuse,for=2.5")
    assert (refuse.kind, refuse.seconds) == ("refuse", 2.5)
