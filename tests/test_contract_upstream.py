"""Contract-stream mode: the mock serves a contract profile's API as its agent, the upstream of a proxy.

Real mock processes on loopback (`--contract sessions`), read by httpx, by raw sockets (to see the
writes), and decoded by the conformance suite's own SSE decoder.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from contracts import normalize
from mockllm import ConfigError, MockLLMClient, ServerProcess, parse_config, start_mock
from scenarios import parse_stream

STREAM = "/api/chat/stream"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with start_mock("--contract", "sessions", "--answer-tokens", "24", seed=5, ttft_ms=5, itl_ms=2) as mock:
        yield mock


@pytest.fixture
def mock(server: ServerProcess) -> Iterator[MockLLMClient]:
    with MockLLMClient(server.url) as client:
        client.reset()
        yield client


def events(body: bytes) -> list[dict[str, Any]]:
    decoded, issues = parse_stream(body)
    assert not issues, issues
    return [json.loads(event.data) for event in decoded]


def chat(mock: MockLLMClient, message: str, headers: dict[str, str] | None = None, **extra: Any) -> httpx.Response:
    body = {"message": message, **extra}
    return httpx.post(f"{mock.base_url}{STREAM}", json=body, headers=headers or {}, timeout=10)


def words(got: list[dict[str, Any]]) -> list[str]:
    return [event["content"] for event in got if event["type"] == "content"]


def test_a_sessions_stream_is_the_profile_grammar_one_word_per_event(mock: MockLLMClient, marker: str) -> None:
    response = chat(mock, f"hello {marker}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    got = events(response.content)
    assert [e["type"] for e in got] == ["session", *["content"] * (len(got) - 2), "done"]
    assert all(e["content"].split() == [e["content"]] for e in got[1:-1])
    assert [e["index"] for e in got[1:-1]] == list(range(len(got) - 2))
    (entry,) = mock.journal(prompt_contains=marker)
    assert " ".join(words(got)) == normalize(entry["answer"])
    assert entry["dialect"] == "contract:sessions" and entry["conversation"] == got[0]["session_id"]
    assert entry["outcome"] == "completed"


def test_the_second_turn_carries_the_conversation_the_mock_holds(mock: MockLLMClient, marker: str) -> None:
    first = events(chat(mock, f"one {marker}").content)
    session = first[0]["session_id"]
    second = events(chat(mock, f"two {marker}", session_id=session).content)
    assert second[0]["session_id"] == session
    other = events(chat(mock, f"three {marker}").content)  # no session_id: a new conversation
    assert other[0]["session_id"] != session
    entries = mock.journal(prompt_contains=marker)
    answer = entries[0]["answer"]
    turns = [("user", f"one {marker}"), ("assistant", answer), ("user", f"two {marker}")]
    assert [(m["role"], m["content"]) for m in entries[1]["messages"]] == turns
    assert entries[1]["body"]["messages"] == entries[1]["messages"]  # where an LLM request's conversation is read
    assert entries[1]["body"]["session_id"] == session and entries[1]["body"]["message"] == f"two {marker}"
    assert [m["content"] for m in entries[2]["messages"]] == [f"three {marker}"]
    history = httpx.get(f"{mock.base_url}/api/sessions/{session}/history").json()
    assert [(m["role"], m["content"]) for m in history["history"]] == [*turns, ("assistant", entries[1]["answer"])]


def test_same_seed_same_bytes_and_delays_on_a_fresh_server_or_after_reset(mock: MockLLMClient, marker: str) -> None:
    message = f"determinism {marker}"
    first = chat(mock, message).content
    mock.reset()
    again = chat(mock, message).content
    assert again == first
    with start_mock("--contract", "sessions", "--answer-tokens", "24", seed=5, ttft_ms=5, itl_ms=2) as fresh:
        same = httpx.post(f"{fresh.url}{STREAM}", json={"message": message}).content
        planned = MockLLMClient(fresh.url).journal()[0]["planned"]
    with start_mock("--contract", "sessions", "--answer-tokens", "24", seed=6, ttft_ms=5, itl_ms=2) as other:
        different = httpx.post(f"{other.url}{STREAM}", json={"message": message}).content
    assert same == first and different != first
    assert mock.journal(prompt_contains=marker)[0]["planned"] == planned


def raw_reads(mock: MockLLMClient, body: dict[str, Any], headers: dict[str, str]) -> list[bytes]:
    """The response's network reads, as a client sees them, HTTP framing and all."""
    host, port = mock.base_url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST {STREAM} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n"
        f"connection: close\r\n{head}\r\n"
    ).encode() + data
    reads = []
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        while chunk := sock.recv(65536):
            reads.append(chunk)
    return reads


def test_fragment_splits_writes_inside_json_and_utf8(mock: MockLLMClient, marker: str) -> None:
    headers = {"x-mock-fault": "fragment", "x-mock-multibyte": "0.6"}
    reads = raw_reads(mock, {"message": f"fragment {marker}"}, headers)
    writes = _chunks(b"".join(reads).split(b"\r\n\r\n", 1)[1])  # one HTTP chunk per write
    torn = [w for w in writes if not w.endswith(b"\n\n")]  # a write that ends inside an event
    cut_chars = [w for w in writes if not _ends_a_char(w)]  # a write that ends inside a character
    assert torn and cut_chars, writes[:8]
    got = events(b"".join(writes))
    (entry,) = mock.journal(prompt_contains=marker)
    assert " ".join(words(got)) == normalize(entry["answer"]) and got[-1] == {"type": "done"}
    assert entry["fault"] == "fragment" and entry["achieved"]["writes"] >= len(writes) > len(got)
    assert any(ord(ch) > 0x7F for ch in entry["answer"])


def _ends_a_char(data: bytes) -> bool:
    try:
        data[-4:].decode("utf-8")
    except UnicodeDecodeError as err:
        return err.reason != "unexpected end of data"
    return True


def _chunks(body: bytes) -> list[bytes]:
    """The data of each HTTP/1.1 chunk of a chunked body."""
    out, rest = [], body
    while rest:
        size, rest = rest.split(b"\r\n", 1)
        n = int(size, 16)
        if n == 0:
            break
        out.append(rest[:n])
        rest = rest[n + 2 :]
    return out


def test_error_after_n_is_the_profiles_error_event(mock: MockLLMClient, marker: str) -> None:
    got = events(chat(mock, f"err {marker}", {"x-mock-fault": "error-after=3"}).content)
    assert [e["type"] for e in got] == ["session", "content", "content", "content", "error"]
    assert isinstance(got[-1]["error"], str) and got[-1]["error"]
    (entry,) = mock.journal(prompt_contains=marker)
    assert " ".join(words(got)) == " ".join(normalize(entry["answer"]).split()[:3])


def test_disconnect_after_n_closes_mid_body(mock: MockLLMClient, marker: str) -> None:
    seen = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", f"{mock.base_url}{STREAM}", json={"message": f"drop {marker}"},
                     headers={"x-mock-fault": "disconnect-after=2"}) as response,
    ):  # fmt: skip
        for chunk in response.iter_raw():
            seen += chunk
    assert [e["type"] for e in events(seen)] == ["session", "content", "content"]
    assert mock.wait_for_journal(marker)[0]["outcome"] == "disconnected"


def test_stall_for_a_while_then_the_rest(mock: MockLLMClient, marker: str) -> None:
    started = time.perf_counter()
    got = events(chat(mock, f"pause {marker}", {"x-mock-fault": "stall-after=2,for=0.6"}).content)
    assert time.perf_counter() - started >= 0.6 and got[-1] == {"type": "done"}


def test_stall_for_good_keeps_the_connection_silent(mock: MockLLMClient, marker: str) -> None:
    seen = b""
    with (
        pytest.raises(httpx.ReadTimeout),
        httpx.stream("POST", f"{mock.base_url}{STREAM}", json={"message": f"stall {marker}"},
                     headers={"x-mock-fault": "stall-after=2"}, timeout=httpx.Timeout(5, read=0.8)) as response,
    ):  # fmt: skip
        for chunk in response.iter_raw():
            seen += chunk
    assert [e["type"] for e in events(seen + b"\n\n")] == ["session", "content", "content"]


def test_truncate_ends_cleanly_without_the_done_event(mock: MockLLMClient, marker: str) -> None:
    got = events(chat(mock, f"cut {marker}", {"x-mock-fault": "truncate-after=2"}).content)
    assert [e["type"] for e in got] == ["session", "content", "content"]
    whole = events(chat(mock, f"cut all {marker}", {"x-mock-fault": "truncate"}).content)
    assert whole[-1]["type"] == "content" and len(whole) > 3


def test_malformed_after_n_sends_one_event_that_is_not_json(mock: MockLLMClient, marker: str) -> None:
    decoded, _ = parse_stream(chat(mock, f"bad {marker}", {"x-mock-fault": "malformed-after=2"}).content)
    broken = []
    for event in decoded:
        try:
            json.loads(event.data)
        except ValueError:
            broken.append(event.index)
    assert broken == [3]  # session, two words, then the broken one
    assert json.loads(decoded[-1].data) == {"type": "done"}


@pytest.mark.parametrize(("spec", "status"), [("503", 503), ("429,retry-after=2", 429), ("400", 400)])
def test_http_errors_before_the_stream(mock: MockLLMClient, marker: str, spec: str, status: int) -> None:
    response = chat(mock, f"http {marker}", {"x-mock-fault": spec})
    assert response.status_code == status and isinstance(response.json()["error"], str)
    if status == 429:
        assert response.headers["retry-after"] == "2"
    (entry,) = mock.journal(prompt_contains=marker)
    assert entry["outcome"] == "http_error" and entry["fault"] == spec


def test_faults_armed_by_admin_and_by_config_match_the_prompt(mock: MockLLMClient, marker: str) -> None:
    mock.arm_fault("error-after=1", match={"contains": marker})
    assert events(chat(mock, "unrelated").content)[-1]["type"] == "done"
    assert events(chat(mock, f"armed {marker}").content)[-1]["type"] == "error"
    mock.patch_config({"faults": [{"fault": "500", "when": {"contains": f"cfg{marker}", "first": 1}}]})
    assert chat(mock, f"cfg{marker}").status_code == 500
    assert chat(mock, f"cfg{marker}").status_code == 200
    sources = [e["fault_source"] for e in mock.journal(prompt_contains=marker)]
    assert sources == ["armed:1", "config:0", None]


def test_a_turn_that_failed_keeps_the_message_but_not_the_answer(mock: MockLLMClient, marker: str) -> None:
    session = events(chat(mock, f"a {marker}").content)[0]["session_id"]
    chat(mock, f"b {marker}", {"x-mock-fault": "error-after=1"}, session_id=session)
    assert chat(mock, f"c {marker}", {"x-mock-fault": "503"}, session_id=session).status_code == 503
    chat(mock, f"d {marker}", session_id=session)
    last = mock.journal(prompt_contains=marker)[-1]
    roles = [(m["role"], m["content"].split()[0]) for m in last["messages"]]
    assert roles == [("user", "a"), ("assistant", roles[1][1]), ("user", "b"), ("user", "d")]


def test_bad_input_is_a_400_that_names_the_field_and_is_journalled_rejected(mock: MockLLMClient) -> None:
    response = httpx.post(f"{mock.base_url}{STREAM}", json={"text": "no message"})
    assert response.status_code == 400 and "message" in response.json()["error"]
    response = httpx.post(f"{mock.base_url}{STREAM}", json={"message": 7})
    assert response.status_code == 400 and "body field `message`" in response.json()["error"]
    assert [e["outcome"] for e in mock.journal()] == ["rejected", "rejected"]


def test_the_other_session_calls_are_answered_from_the_profile(mock: MockLLMClient, marker: str) -> None:
    made = httpx.post(f"{mock.base_url}/api/sessions", json={})
    assert made.status_code == 201
    session = made.json()["session_id"]
    again = httpx.post(f"{mock.base_url}/api/sessions", json={"session_id": session})
    assert again.status_code == 201 and again.json() == {"session_id": session}
    assert httpx.get(f"{mock.base_url}/api/sessions/{session}/history").json()["history"] == []
    assert httpx.get(f"{mock.base_url}/api/sessions/nope/history").status_code == 404
    sent = httpx.post(f"{mock.base_url}/api/chat", json={"message": f"send {marker}", "session_id": session}).json()
    (entry,) = mock.journal(prompt_contains=marker)
    assert sent["response"] == entry["answer"] and sent["session_id"] == session and entry["stream"] is False
    deleted = httpx.delete(f"{mock.base_url}/api/sessions/{session}")
    assert deleted.json() == {"session_id": session}
    assert httpx.get(f"{mock.base_url}/api/sessions/{session}/history").json()["history"] == []
    assert httpx.get(f"{mock.base_url}/api/health").json() == {"status": "healthy"}


def test_the_llm_dialects_are_still_served_beside_the_contract(mock: MockLLMClient, marker: str) -> None:
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": marker}]}
    assert httpx.post(f"{mock.openai_base_url}/chat/completions", json=body).status_code == 200


async def test_a_two_call_profile_streams_the_message_posted_before(marker: str) -> None:
    from mockllm import MockServer

    server = MockServer({"seed": 1, "contract": "conversation-events", "timing": {"ttft_ms": 1, "itl_ms": 0}})
    port = await server.start()
    base = f"http://127.0.0.1:{port}/api/v1/chat/conversations"
    try:
        async with httpx.AsyncClient() as client:
            conversation = (await client.post(base, json={})).json()["id"]
            posted = await client.post(f"{base}/{conversation}/messages", json={"content": f"hi {marker}"})
            assert posted.status_code == 201 and posted.json() == {"content": f"hi {marker}"}
            got = events((await client.get(f"{base}/{conversation}/stream")).content)
            assert [e["type"] for e in got][:1] == ["connected"] and got[-1]["type"] == "llm_complete"
            text = "".join(e["content"] for e in got if e["type"] == "llm_chunk")
            assert got[-1]["content"] == text
            again = await client.get(f"{base}/{conversation}/stream")
            assert again.status_code == 404  # the posted message was answered once
            entries = (await client.get(f"http://127.0.0.1:{port}/_mock/journal")).json()["entries"]
            assert [m["content"] for m in entries[0]["messages"]] == [f"hi {marker}"] and entries[0]["answer"] == text
    finally:
        await server.close()


def test_a_profile_the_mock_cannot_serve_is_refused_with_the_reason(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="no-such-profile"):
        parse_config({"contract": "no-such-profile"})
    profile = tmp_path / "odd.yaml"
    text = (
        "name: odd\nstream:\n  grammar: 'start token{repeat} (done | error)'\n  kind_field: type\n  done: done\n"
        "  error: error\n  text: {{kinds: [token], field: content}}\n"
        "operations:\n  stream:\n    calls:\n      - {{method: GET, path: /s, stream: true}}\n"
    )
    profile.write_text(text.format(repeat="*"))
    with pytest.raises(ConfigError, match=r"contract profile 'odd': its `stream` operation carries no \{message\}"):
        parse_config({"contract": str(profile)})
    strict = tmp_path / "strict.yaml"  # profiles are cached by path: another file
    strict.write_text(text.format(repeat="+").replace("name: odd", "name: strict"))  # no empty answer
    with pytest.raises(ConfigError, match=r"profile 'strict': the stream start done does not match its grammar"):
        parse_config({"contract": str(strict)})
