"""`conversations` profile over real HTTP, with the mock LLM as upstream.

What was stored is read back the way the contract exposes it: the next turn's request to the LLM
(the mock's journal) carries the whole conversation.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest
from refserver_helpers import events, llm_calls, llm_messages

from contracts import mint_token

SYSTEM_PROMPT = "You are terse."
RATE_LIMIT = 3


@pytest.fixture(scope="module")
def tuned(start_refserver):
    """A server with a system prompt, a small per-user rate limit and a short LLM read timeout."""
    return start_refserver(
        system_prompt=SYSTEM_PROMPT,
        llm_timeout_s=0.4,
        rate_limits={"conversations": {"count": RATE_LIMIT, "window_s": 60}},
    )


@pytest.fixture
def user(marker) -> str:
    return f"user-{marker}"


def create(http: httpx.Client, server, user: str, title: str = "a chat") -> str:
    response = http.post("/chat/conversation", json={"title": title}, headers=server.auth(user))
    assert response.status_code == 201, response.text
    return response.json()["id"]


def turn(http: httpx.Client, server, user: str, conversation_id: str, message: str) -> list[Any]:
    """One streamed turn, read to its end: its events."""
    body = {"conversationId": conversation_id, "message": message}
    with http.stream("POST", "/chat/stream", json=body, headers=server.auth(user)) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        return list(events(response))


def text_of(got: list[Any]) -> str:
    return "".join(event["content"] for event in got if isinstance(event, dict) and "content" in event)


def test_create_conversation_answers_the_stored_conversation(refserver, user):
    with refserver.client() as http:
        response = http.post("/chat/conversation", json={"title": "Trip plans"}, headers=refserver.auth(user))
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "title", "userId", "createdAt", "updatedAt"}
    assert uuid.UUID(body["id"])
    assert (body["title"], body["userId"]) == ("Trip plans", user)
    assert datetime.fromisoformat(body["createdAt"]) <= datetime.fromisoformat(body["updatedAt"])


def test_stream_chunks_concatenate_to_the_mock_answer(refserver, mockllm, marker, user):
    with refserver.client() as http:
        conversation = create(http, refserver, user)
        got = turn(http, refserver, user, conversation, f"tell me {marker}")
    (entry,) = llm_calls(mockllm, marker)
    assert got[-1] == "[DONE]"
    chunks = got[:-1]
    assert chunks and all(set(event) == {"content"} for event in chunks)
    assert text_of(chunks) == entry["answer"]
    assert llm_messages(entry) == [{"role": "user", "content": f"tell me {marker}"}]


def test_second_turn_carries_the_first_to_the_llm(refserver, mockllm, marker, user):
    with refserver.client() as http:
        conversation = create(http, refserver, user)
        first = text_of(turn(http, refserver, user, conversation, f"one {marker}"))
        turn(http, refserver, user, conversation, f"two {marker}")
    first_entry, second_entry = llm_calls(mockllm, marker, count=2)
    assert first == first_entry["answer"]
    assert llm_messages(second_entry) == [
        {"role": "user", "content": f"one {marker}"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": f"two {marker}"},
    ]


def test_system_prompt_is_folded_into_the_first_user_turn(tuned, mockllm, marker, user):
    with tuned.client() as http:
        conversation = create(http, tuned, user)
        first = text_of(turn(http, tuned, user, conversation, f"one {marker}"))
        turn(http, tuned, user, conversation, f"two {marker}")
    _, second_entry = llm_calls(mockllm, marker, count=2)
    assert llm_messages(second_entry) == [
        {"role": "user", "content": f"{SYSTEM_PROMPT}\n\none {marker}"},
        {"role": "assistant", "content": first},
        {"role": "user", "content": f"two {marker}"},
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Bearer {mint_token('another-secret-also-32-bytes-or-longer', 'mallory')}"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["missing", "garbage", "wrong-secret", "not-bearer"],
)
def test_every_call_needs_a_valid_token(refserver, mockllm, marker, user, headers):
    expired = {"Authorization": f"Bearer {mint_token(refserver.settings['jwt_secret'], user, ttl_s=-60)}"}
    with refserver.client() as http:
        conversation = create(http, refserver, user)
        for refused in (headers, expired):
            created = http.post("/chat/conversation", json={"title": "x"}, headers=refused)
            assert created.status_code == 401 and created.json()["detail"]
            body = {"conversationId": conversation, "message": f"sneaky {marker}"}
            streamed = http.post("/chat/stream", json=body, headers=refused)
            assert streamed.status_code == 401 and streamed.json()["detail"]
            # Auth comes before the body: a bad body without a token is still 401.
            assert http.post("/chat/stream", json={"bogus": 1}, headers=refused).status_code == 401
        turn(http, refserver, user, conversation, f"real {marker}")
    (entry,) = llm_calls(mockllm, marker)
    assert llm_messages(entry) == [{"role": "user", "content": f"real {marker}"}]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"title": ""},
        {"title": "   "},
        {"title": "x" * 201},
        {"title": 7},
        {"title": "ok", "extra": True},
    ],
    ids=["missing", "empty", "blank", "too-long", "not-a-string", "unknown-field"],
)
def test_bad_conversation_body_is_400(refserver, user, body):
    with refserver.client() as http:
        response = http.post("/chat/conversation", json=body, headers=refserver.auth(user))
    assert response.status_code == 400
    assert response.json()["detail"]


def test_bad_stream_bodies_are_400_and_store_nothing(refserver, mockllm, marker, user):
    with refserver.client() as http:
        conversation = create(http, refserver, user)
        bad_bodies = [
            {"conversationId": "not-a-uuid", "message": f"a {marker}"},
            {"conversationId": conversation[:-1], "message": f"b {marker}"},
            {"conversationId": conversation},
            {"conversationId": conversation, "message": ""},
            {"conversationId": conversation, "message": f"{marker} " + "x" * 2000},
            {"conversationId": conversation, "message": 42},
            {"conversationId": conversation, "message": f"c {marker}", "model": "gpt-4o"},
            {"conversation_id": conversation, "message": f"d {marker}"},
        ]
        for body in bad_bodies:
            response = http.post("/chat/stream", json=body, headers=refserver.auth(user))
            assert response.status_code == 400, (body, response.text)
            assert response.json()["detail"]
        not_json = http.post(
            "/chat/stream", content=b"{nope", headers={**refserver.auth(user), "content-type": "application/json"}
        )
        assert not_json.status_code == 400
        turn(http, refserver, user, conversation, f"real {marker}")
    (entry,) = llm_calls(mockllm, marker)
    assert llm_messages(entry) == [{"role": "user", "content": f"real {marker}"}]


def test_malformed_uuid_error_names_the_field(refserver, user):
    with refserver.client() as http:
        response = http.post(
            "/chat/stream", json={"conversationId": "123", "message": "hi"}, headers=refserver.auth(user)
        )
    assert response.status_code == 400
    assert "conversationId" in response.text


def test_another_users_or_unknown_conversation_is_404(refserver, mockllm, marker, user):
    with refserver.client() as http:
        conversation = create(http, refserver, user)
        for intruder, target in ((f"other-{marker}", conversation), (user, str(uuid.uuid4()))):
            body = {"conversationId": target, "message": f"intrude {marker}"}
            response = http.post("/chat/stream", json=body, headers=refserver.auth(intruder))
            assert response.status_code == 404 and response.json()["detail"]
        turn(http, refserver, user, conversation, f"mine {marker}")
    (entry,) = llm_calls(mockllm, marker)
    assert llm_messages(entry) == [{"role": "user", "content": f"mine {marker}"}]


def test_rate_limit_per_user_is_429(tuned, mockllm, marker, user):
    with tuned.client() as http:
        conversation = create(http, tuned, user)
        for i in range(RATE_LIMIT):
            turn(http, tuned, user, conversation, f"turn {i} {marker}")
        body = {"conversationId": conversation, "message": f"one too many {marker}"}
        refused = http.post("/chat/stream", json=body, headers=tuned.auth(user))
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["detail"]
        # Per user: someone else may still stream.
        other = f"other-{marker}"
        turn(http, tuned, other, create(http, tuned, other), f"other {marker}")
    entries = llm_calls(mockllm, marker, count=RATE_LIMIT + 1)
    assert len(entries) == RATE_LIMIT + 1
    assert not any("one too many" in m["content"] for e in entries for m in llm_messages(e))


def test_llm_failure_before_the_stream_is_the_error_event(refserver, mockllm, marker, user):
    mockllm.arm_fault("500", match={"contains": f"fails {marker}"})
    with refserver.client() as http:
        conversation = create(http, refserver, user)
        got = turn(http, refserver, user, conversation, f"fails {marker}")
        turn(http, refserver, user, conversation, f"again {marker}")
    assert len(got) == 1 and set(got[0]) == {"error"} and got[0]["error"]
    # The user message was kept, no assistant message was stored.
    _, second = llm_calls(mockllm, marker, count=2)
    assert llm_messages(second) == [
        {"role": "user", "content": f"fails {marker}"},
        {"role": "user", "content": f"again {marker}"},
    ]


@pytest.mark.parametrize("fault", ["error-after=3", "disconnect-after=3", "stall-after=2"])
def test_llm_failure_mid_stream_is_the_error_event_then_the_end(tuned, mockllm, marker, user, fault):
    mockllm.arm_fault(fault, match={"contains": marker})
    with tuned.client() as http:
        conversation = create(http, tuned, user)
        got = turn(http, tuned, user, conversation, f"fails {marker}")
    (entry,) = llm_calls(mockllm, marker)
    *chunks, last = got
    assert set(last) == {"error"} and last["error"]
    assert all(set(event) == {"content"} for event in chunks)
    expected = int(fault.split("=")[1])
    assert len(chunks) == expected
    assert entry["answer"].startswith(text_of(chunks))


def test_stop_mid_stream_cancels_the_llm_call_and_keeps_the_partial_answer(refserver, mockllm, marker, user):
    mockllm.patch_config({"timing": {"ttft_ms": 0, "itl_ms": 40}})
    with refserver.client() as http:
        conversation = create(http, refserver, user)
        body = {"conversationId": conversation, "message": f"stop {marker}"}
        with http.stream("POST", "/chat/stream", json=body, headers=refserver.auth(user)) as response:
            received = []
            for event in events(response):
                received.append(event)
                if len(received) == 3:
                    break
        (entry,) = llm_calls(mockllm, marker)
        assert entry["outcome"] == "client_closed"
        # The upstream call is closed first, the partial answer stored right after: give it a moment.
        time.sleep(0.3)
        mockllm.patch_config({"timing": {"itl_ms": 0}})
        turn(http, refserver, user, conversation, f"next {marker}")
    _, second = llm_calls(mockllm, marker, count=2)
    first_user, partial, next_user = llm_messages(second)
    assert first_user == {"role": "user", "content": f"stop {marker}"}
    assert next_user == {"role": "user", "content": f"next {marker}"}
    assert partial["role"] == "assistant"
    assert text_of(received) and partial["content"].startswith(text_of(received))
    assert entry["answer"].startswith(partial["content"]) and partial["content"] != entry["answer"]
