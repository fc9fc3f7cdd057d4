"""The fixture host itself: each defect (or framing) does at the HTTP level what it claims, no more.

One host process (`python -m tests.scenarios.implementations`) over the session's real mock LLM; each
test compares a fixture with the plain reference server on the same request where it can (the mock's
answer depends only on the request, so both get the same text).
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource

from contracts import mint_token
from mockllm import ServerProcess
from mockllm.client import MockLLMClient
from tests.scenarios.implementations import IMPLEMENTATIONS, RUN_SETTINGS, Host, start_host

AUTH = {"Authorization": f"Bearer {mint_token(RUN_SETTINGS['jwt_secret'], 'fixture-user')}"}


@pytest.fixture(scope="module")
def host(mockllm_server: ServerProcess) -> Iterator[Host]:
    started = time.monotonic()
    host = start_host(mockllm_server.url)
    assert time.monotonic() - started < 10, "the host starts in about the time of its imports"
    yield host
    host.stop()
    assert host.process.returncode == 0, host.output()  # every started app shut down cleanly


@pytest.fixture
def http(host: Host) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.url, timeout=10.0) as client:
        yield client


def events(response: httpx.Response) -> list[Any]:
    return [sse.data if sse.data == "[DONE]" else json.loads(sse.data) for sse in EventSource(response).iter_sse()]


def data_of(raw: bytes) -> list[Any]:
    """The JSON data of each event of a whole body whose blocks hold one `data:` line (any line ends)."""
    blocks = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n\n")
    return [
        json.loads(line[len(b"data: ") :]) for block in blocks for line in block.split(b"\n") if line[:5] == b"data:"
    ]


def sessions_stream(http: httpx.Client, impl: str, message: str) -> tuple[httpx.Response, bytes]:
    with http.stream("POST", f"/impl/{impl}/api/chat/stream", json={"message": message}) as response:
        return response, response.read()


def start_stream(http: httpx.Client, impl: str, prompt: str, **start: str) -> tuple[httpx.Response, list[Any]]:
    started = http.post(f"/impl/{impl}/chat/start", json={"prompt": prompt, "modelId": "mock-model", "userId": "u1"})
    assert started.status_code == 200, started.text
    with http.stream("GET", f"/impl/{impl}/chat/stream", params={"sessionId": started.json()["sessionId"]}) as response:
        return response, events(response)


def test_router_strips_the_prefix_and_lists_the_implementations(http: httpx.Client) -> None:
    health = http.get("/impl/reference/api/health")
    assert health.status_code == 200 and health.json()["status"] == "healthy"
    unknown = http.get("/impl/no-such-fixture/api/health")
    assert unknown.status_code == 404
    assert "reference" in unknown.json()["implementations"]
    listing = http.get("/").json()
    assert listing["no-terminal"] == {
        "profiles": ["sessions", "query-stream"],
        "breaks": "stream.terminal",
        "summary": IMPLEMENTATIONS["no-terminal"].summary,
    }
    assert set(listing) == set(IMPLEMENTATIONS)


def test_no_terminal_drops_only_the_done_event(http: httpx.Client, marker: str) -> None:
    reference, ref_body = sessions_stream(http, "reference", f"tell me {marker}")
    broken, body = sessions_stream(http, "no-terminal", f"tell me {marker}")
    assert reference.status_code == broken.status_code == 200
    want, got = data_of(ref_body), data_of(body)
    assert want[-1] == {"type": "done"} and len(want) > 3
    assert [e for e in got if e["type"] != "session"] == [e for e in want[:-1] if e["type"] != "session"]


def test_crlf_and_lone_cr_reframe_every_line_end(http: httpx.Client, marker: str) -> None:
    _, reference = sessions_stream(http, "reference", f"frame me {marker}")
    _, crlf = sessions_stream(http, "crlf", f"frame me {marker}")
    assert crlf.count(b"\n") == crlf.count(b"\r\n") > 0 and crlf.endswith(b"\r\n\r\n")
    assert data_of(crlf)[1:] == data_of(reference)[1:]  # the session event names another session
    _, lone_cr = sessions_stream(http, "lone-cr", f"frame me {marker}")
    assert b"\n" not in lone_cr and lone_cr.endswith(b"\r\r")
    assert data_of(lone_cr)[1:] == data_of(reference)[1:]


def test_split_writes_cut_inside_multibyte_characters(http: httpx.Client, mockllm: MockLLMClient) -> None:
    rule = {"match": {"contains": "[multibyte]"}, "answer": {"prose": {"multibyte": 0.8}}}
    mockllm.patch_config({"answers": {"rules": [rule]}})
    _, want = start_stream(http, "reference", "[multibyte] split me")
    session = http.post(
        "/impl/split-writes/chat/start",
        json={"prompt": "[multibyte] split me", "modelId": "mock-model", "userId": "u1"},
    ).json()["sessionId"]
    with http.stream("GET", "/impl/split-writes/chat/stream", params={"sessionId": session}) as response:
        pieces = list(response.iter_raw())
    assert max(map(len, pieces)) <= 7 * 3  # a read may hold a few writes, never a whole event
    assert any(_cut_in_a_character(piece) for piece in pieces)
    got = [json.loads(block[len(b"data: ") :]) for block in b"".join(pieces).split(b"\n\n") if block]
    assert got == want


def _cut_in_a_character(piece: bytes) -> bool:
    try:
        piece.decode()
    except UnicodeDecodeError:
        return True
    return False


def test_hang_on_error_keeps_heartbeating_and_never_ends(
    http: httpx.Client, mockllm: MockLLMClient, marker: str
) -> None:
    mockllm.arm_fault("error-after=2", match={"contains": marker})
    base = "/impl/hang-on-error/api/v1/chat/conversations"
    conversation = http.post(base, json={}, headers=AUTH).json()["id"]
    http.post(f"{base}/{conversation}/messages", json={"content": f"fail me {marker}"}, headers=AUTH)
    seen: list[dict[str, Any]] = []
    with http.stream("GET", f"{base}/{conversation}/stream", headers=AUTH) as response:
        deadline = time.monotonic() + 2.0
        for sse in EventSource(response).iter_sse():
            seen.append(json.loads(sse.data))
            if time.monotonic() > deadline:
                break
    kinds = [e["type"] for e in seen]
    assert kinds[0] == "connected" and kinds.count("llm_chunk") == 2
    assert "error" not in kinds and "llm_complete" not in kinds
    assert kinds[-3:] == ["heartbeat"] * 3  # still beating after the failure, well past the deadline


def test_no_history_sends_the_newest_message_alone(http: httpx.Client, mockllm: MockLLMClient, marker: str) -> None:
    for impl, sent in (("reference", 3), ("no-history", 1)):
        first = http.post(f"/impl/{impl}/api/chat", json={"message": f"first {impl} {marker}"})
        session_id = first.json()["session_id"]
        http.post(f"/impl/{impl}/api/chat", json={"message": f"second {impl} {marker}", "session_id": session_id})
        second = mockllm.wait_for_journal(f"second {impl} {marker}")[-1]
        assert len(second["body"]["messages"]) == sent
        assert second["body"]["messages"][-1]["content"] == f"second {impl} {marker}"


def test_abort_not_cancelled_reads_the_llm_to_the_end(http: httpx.Client, mockllm: MockLLMClient, marker: str) -> None:
    mockllm.arm_fault("stall-after=3,for=1", match={"contains": marker}, count=None)
    for impl, outcome in (("reference", "client_closed"), ("abort-not-cancelled", "completed")):
        session = http.post(
            f"/impl/{impl}/chat/start", json={"prompt": f"stop {impl} {marker}", "modelId": "mock-model", "userId": "u"}
        ).json()["sessionId"]
        with http.stream("GET", f"/impl/{impl}/chat/stream", params={"sessionId": session}) as response:
            next(EventSource(response).iter_sse())
        (entry,) = mockllm.wait_for_journal(f"stop {impl} {marker}", timeout=5)
        assert entry["outcome"] == outcome


def test_broken_after_abort_fails_the_stopped_session_only(
    http: httpx.Client, mockllm: MockLLMClient, marker: str
) -> None:
    mockllm.arm_fault("stall-after=3,for=1", match={"contains": f"stop me {marker}"})
    url = "/impl/broken-after-abort/api/chat/stream"
    with http.stream("POST", url, json={"message": f"stop me {marker}"}) as response:
        first, _word = itertools.islice(EventSource(response).iter_sse(), 2)  # then the client stops
        session_id = first.json()["session_id"]
    mockllm.wait_for_journal(f"stop me {marker}")  # the server has seen the client leave
    again = {"message": f"again {marker}", "session_id": session_id}
    assert [http.post(url, json=again).status_code for _ in range(4)] == [500, 500, 500, 200]
    assert http.post(url, json={"message": f"elsewhere {marker}"}).status_code == 200


def test_settings_defects_lie_about_one_value(http: httpx.Client) -> None:
    body = {"prompt": "a forbidden model", "modelId": RUN_SETTINGS["forbidden_model"], "userId": "u1"}
    assert http.post("/impl/reference/chat/start", json=body).status_code == 403
    assert http.post("/impl/no-plans/chat/start", json=body).status_code == 200
    origin = {"Origin": RUN_SETTINGS["cors_origin"]}
    assert http.get("/impl/reference/api/health", headers=origin).headers["access-control-allow-origin"]
    assert "access-control-allow-origin" not in http.get("/impl/no-cors/api/health", headers=origin).headers


def test_bad_framing_leaves_a_block_unterminated_after_done(http: httpx.Client, marker: str) -> None:
    conversation = http.post("/impl/bad-framing/chat/conversation", json={"title": "t"}, headers=AUTH).json()["id"]
    body = {"conversationId": conversation, "message": f"frame me {marker}"}
    with http.stream("POST", "/impl/bad-framing/chat/stream", json=body, headers=AUTH) as response:
        raw = response.read()
    assert raw.endswith(b"data: [DONE]\n\ndata: {}\n")


def test_rejects_after_calling_calls_the_llm_for_a_refused_message(
    http: httpx.Client, mockllm: MockLLMClient, marker: str
) -> None:
    too_long = f"{marker} " + "x" * 2001
    refused = http.post("/impl/rejects-after-calling/api/chat/stream", json={"message": too_long})
    assert refused.status_code == 400 and refused.json()["detail"].startswith("message")
    (entry,) = mockllm.journal(prompt_contains=marker)
    assert entry["outcome"] == "completed"
    assert http.post("/impl/reference/api/chat/stream", json={"message": too_long}).status_code == 400
    assert len(mockllm.journal(prompt_contains=marker)) == 1


def test_every_implementation_builds_and_serves(http: httpx.Client) -> None:
    """Each is built on its first request: every recipe makes a working app (health-down aside)."""
    for name in IMPLEMENTATIONS:
        answer = http.get(f"/impl/{name}/api/health")
        assert answer.status_code == (503 if name == "health-down" else 200), (name, answer.text)


def test_open_choices_are_made_the_other_way(http: httpx.Client, marker: str) -> None:
    """The valid fixtures of issue 15 §1 each make, at the HTTP level, the choice the reference does not."""
    too_long = f"{marker} " + "x" * 2001
    for impl, status in (("reference", 400), ("no-length-limit", 200)):
        conversation = http.post(f"/impl/{impl}/chat/conversation", json={"title": "t"}, headers=AUTH).json()["id"]
        body = {"conversationId": conversation, "message": too_long}
        with http.stream("POST", f"/impl/{impl}/chat/stream", json=body, headers=AUTH) as response:
            assert response.status_code == status, impl
            response.read()
    for impl, status in (("reference", 400), ("malformed-id-404", 404)):
        refused = http.post(
            f"/impl/{impl}/api/v1/chat/conversations/not-a-uuid/messages", json={"content": "hi"}, headers=AUTH
        )
        assert refused.status_code == status and isinstance(refused.json(), dict), impl
    for impl, status in (("reference", 200), ("stream-201", 201)):
        response, raw = sessions_stream(http, impl, f"created {marker}")
        assert response.status_code == status and data_of(raw)[-1] == {"type": "done"}, impl
    for impl, status in (("reference", 400), ("accepts-empty-message", 200)):
        started = http.post(f"/impl/{impl}/chat/start", json={"prompt": "", "modelId": "mock-model", "userId": "u1"})
        assert started.status_code == status, impl


def test_system_then_done_ends_a_bet_with_system_then_the_sentinel(
    http: httpx.Client, mockllm: MockLLMClient, marker: str
) -> None:
    mockllm.patch_config(
        {"answers": {"rules": [{"match": {"contains": "[bet]"}, "answer": {"fixed": "A bet at odds 2.5"}}]}}
    )
    base = "/impl/system-then-done/api/v1/chat/conversations"
    conversation = http.post(base, json={}, headers=AUTH).json()["id"]
    http.post(f"{base}/{conversation}/messages", json={"content": f"[bet] tips {marker}"}, headers=AUTH)
    with http.stream("GET", f"{base}/{conversation}/stream", headers=AUTH) as response:
        kinds = [e if e == "[DONE]" else e["type"] for e in events(response)]
    assert kinds[-3:] == ["llm_complete", "system", "[DONE]"]


def test_unknown_ids_and_cors_fixtures_differ_from_the_reference_at_the_http_level(
    http: httpx.Client, marker: str
) -> None:
    """Issue 15 §3: each fixture makes its one change, seen on the wire."""
    unknown = str(uuid.uuid4())
    for impl, status in (("reference", 404), ("creates-on-unknown-id", 200)):
        params = {"projectId": RUN_SETTINGS["project_id"], "message": f"hi {marker}", "conversationId": unknown}
        with http.stream("GET", f"/impl/{impl}/api/v1/ai/chat/stream", params=params, headers=AUTH) as response:
            assert response.status_code == status, impl
            if status == 200:
                assert events(response)[0] == {"type": "conversationId", "conversationId": params["conversationId"]}
    for impl, status in (("reference", 200), ("unknown-session-404", 404)):
        body = {"message": f"hi {marker}", "session_id": f"{impl}-{marker}"}
        assert http.post(f"/impl/{impl}/api/chat", json=body).status_code == status, impl
    for impl, status in (("reference", 404), ("unknown-history-empty", 200)):
        assert http.get(f"/impl/{impl}/api/sessions/{unknown}/history").status_code == status, impl
    origin, foreign = RUN_SETTINGS["cors_origin"], "https://foreign.invalid"
    seen = {
        (impl, asked): http.get(f"/impl/{impl}/api/health", headers={"Origin": asked}).headers
        for impl in ("reference", "cors-star-credentials", "cors-any-origin", "cors-exact-origin")
        for asked in (origin, foreign)
    }
    assert seen[("reference", origin)]["access-control-allow-origin"] == origin
    assert "access-control-allow-origin" not in seen[("reference", foreign)]
    star = seen[("cors-star-credentials", origin)]
    assert (star["access-control-allow-origin"], star["access-control-allow-credentials"]) == ("*", "true")
    assert seen[("cors-any-origin", foreign)]["access-control-allow-origin"] == foreign
    exact = seen[("cors-exact-origin", origin)]
    assert (exact["access-control-allow-origin"], exact["vary"]) == (origin, "Origin")
    assert "access-control-allow-origin" not in seen[("cors-exact-origin", foreign)]
