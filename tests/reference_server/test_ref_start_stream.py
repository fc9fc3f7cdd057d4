"""`start-stream` profile over real HTTP, with the mock LLM as upstream.

The stream is read as a browser's EventSource reads it: a GET with no body and no custom headers.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import pytest
from refserver_helpers import events, llm_calls, llm_messages

MODEL = "mock-model"
RATE_LIMIT = 2  # starts per user and minute on the `short` server
SESSION_TTL_S = 0.5  # long enough for a start and its GET on a busy machine


@pytest.fixture(scope="module")
def short(start_refserver):
    """A server whose stream sessions expire fast, whose LLM reads time out fast, with a start rate limit."""
    return start_refserver(
        session_ttl_s=SESSION_TTL_S,
        llm_timeout_s=0.4,
        rate_limits={"start-stream": {"count": RATE_LIMIT, "window_s": 60}},
    )


@pytest.fixture
def user(marker) -> str:
    return f"user-{marker}"


def start(http: httpx.Client, user: str, prompt: str, chat_id: str | None = None, model: str = MODEL) -> dict:
    body: dict[str, Any] = {"prompt": prompt, "modelId": model, "userId": user}
    if chat_id is not None:
        body["chatId"] = chat_id
    response = http.post("/chat/start", json=body)
    assert response.status_code == 200, response.text
    started = response.json()
    assert set(started) == {"sessionId", "chatId"}
    return started


def stream(http: httpx.Client, session_id: str, **params: str) -> tuple[httpx.Headers, list[Any]]:
    """The stream of a session, read to its end: (response headers, events)."""
    with http.stream("GET", "/chat/stream", params={"sessionId": session_id, **params}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        return response.headers, list(events(response))


def history(http: httpx.Client, chat_id: str, **params: str) -> list[dict[str, str]]:
    response = http.get("/chat/history", params={"chatId": chat_id, **params})
    assert response.status_code == 200, response.text
    return response.json()


def text_of(got: list[Any]) -> str:
    return "".join(event["content"] for event in got if event.get("type") == "token")


def turns(http: httpx.Client, chat_id: str) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in history(http, chat_id)]


def test_stream_tokens_concatenate_to_the_mock_answer(refserver, mockllm, marker, user):
    with refserver.client() as http:
        started = start(http, user, f"tell me {marker}")
        headers, got = stream(http, started["sessionId"])
        stored = history(http, started["chatId"])
    (entry,) = llm_calls(mockllm, marker)
    assert headers["X-Cache"] == "MISS"
    assert got[-1] == {"type": "done"}
    tokens = got[:-1]
    assert tokens and all(set(event) == {"type", "content"} and event["type"] == "token" for event in tokens)
    assert text_of(tokens) == entry["answer"]
    assert llm_messages(entry) == [{"role": "user", "content": f"tell me {marker}"}]
    assert entry["body"]["model"] == MODEL
    assert [(m["role"], m["content"]) for m in stored] == [
        ("user", f"tell me {marker}"),
        ("assistant", entry["answer"]),
    ]
    assert all(datetime.fromisoformat(m["createdAt"]) for m in stored)


def test_second_turn_carries_the_first_to_the_llm(refserver, mockllm, marker, user):
    with refserver.client() as http:
        first = start(http, user, f"one {marker}")
        answer = text_of(stream(http, first["sessionId"])[1])
        second = start(http, user, f"two {marker}", chat_id=first["chatId"])
        assert second["chatId"] == first["chatId"]
        stream(http, second["sessionId"])
    _, second_entry = llm_calls(mockllm, marker, count=2)
    assert llm_messages(second_entry) == [
        {"role": "user", "content": f"one {marker}"},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": f"two {marker}"},
    ]


def test_bad_start_bodies_are_400_and_store_nothing(refserver, mockllm, marker, user):
    with refserver.client() as http:
        chat = start(http, user, f"first {marker}")["chatId"]
        before = turns(http, chat)
        good = {"prompt": f"bad {marker}", "modelId": MODEL, "userId": user, "chatId": chat}
        bad_bodies = [
            {k: v for k, v in good.items() if k != "prompt"},
            {**good, "prompt": ""},
            {**good, "prompt": f"{marker} " + "x" * 2000},
            {k: v for k, v in good.items() if k != "modelId"},
            {**good, "modelId": ""},
            {k: v for k, v in good.items() if k != "userId"},
            {**good, "userId": 7},
            {**good, "chatId": 123},
            {**good, "temperature": 0.5},
        ]
        for body in bad_bodies:
            response = http.post("/chat/start", json=body)
            assert response.status_code == 400, (body, response.text)
            assert response.json()["detail"]
        assert http.post("/chat/start", content=b"[", headers={"content-type": "application/json"}).status_code == 400
        assert turns(http, chat) == before
    assert mockllm.journal(prompt_contains=f"bad {marker}") == []


def test_model_outside_the_plan_is_403_and_stores_nothing(refserver, mockllm, marker, user):
    with refserver.client() as http:
        chat = start(http, user, f"first {marker}")["chatId"]
        refused = http.post(
            "/chat/start", json={"prompt": f"pricey {marker}", "modelId": "gpt-4o", "userId": user, "chatId": chat}
        )
        assert refused.status_code == 403
        assert "gpt-4o" in refused.json()["detail"]
        assert turns(http, chat) == [("user", f"first {marker}")]
        # The same model is in the pro plan.
        allowed = start(http, "pro-user", f"pro {marker}", model="gpt-4o")
        _, got = stream(http, allowed["sessionId"])
    assert got[-1] == {"type": "done"}
    (entry,) = llm_calls(mockllm, marker)
    assert entry["body"]["model"] == "gpt-4o"
    assert text_of(got) == entry["answer"]


def test_another_users_or_unknown_chat_is_404(refserver, mockllm, marker, user):
    with refserver.client() as http:
        chat = start(http, user, f"first {marker}")["chatId"]
        intruder = f"other-{marker}"
        for who, target in ((intruder, chat), (user, "00000000-0000-4000-8000-000000000000"), (user, "no-such-chat")):
            body = {"prompt": f"intrude {marker}", "modelId": MODEL, "userId": who, "chatId": target}
            response = http.post("/chat/start", json=body)
            assert response.status_code == 404 and response.json()["detail"]
            history_response = http.get("/chat/history", params={"chatId": target, "userId": who})
            assert history_response.status_code == 404 and history_response.json()["detail"]
        assert turns(http, chat) == [("user", f"first {marker}")]
        assert history(http, chat, userId=user) == history(http, chat)
        assert http.get("/chat/history").status_code == 400
    assert mockllm.journal(prompt_contains=marker) == []


def test_unknown_session_is_404_and_a_missing_one_400(refserver):
    with refserver.client() as http:
        unknown = http.get("/chat/stream", params={"sessionId": "no-such-session"})
        assert unknown.status_code == 404
        assert unknown.headers["content-type"].startswith("application/json") and unknown.json()["detail"]
        assert http.get("/chat/stream").status_code == 400


def test_a_session_streams_once(refserver, mockllm, marker, user):
    with refserver.client() as http:
        started = start(http, user, f"once {marker}")
        stream(http, started["sessionId"])
        again = http.get("/chat/stream", params={"sessionId": started["sessionId"]})
        assert again.status_code == 410
        assert again.headers["content-type"].startswith("application/json") and again.json()["detail"]
    assert len(llm_calls(mockllm, marker)) == 1


def test_of_two_concurrent_gets_exactly_one_streams(refserver, mockllm, marker, user):
    mockllm.patch_config({"timing": {"ttft_ms": 0, "itl_ms": 5}})
    with refserver.client() as http:
        session = start(http, user, f"race {marker}")["sessionId"]

    def get() -> tuple[int, list[Any]]:
        with (
            refserver.client() as http,
            http.stream("GET", "/chat/stream", params={"sessionId": session}) as response,
        ):
            return response.status_code, list(events(response)) if response.status_code == 200 else []

    with ThreadPoolExecutor(2) as pool:
        results = sorted(pool.map(lambda _: get(), range(2)), key=lambda result: result[0])
    (entry,) = llm_calls(mockllm, marker)
    assert [status for status, _ in results] == [200, 410]
    assert text_of(results[0][1]) == entry["answer"]


def test_a_session_of_another_user_is_404_and_not_used_up(refserver, mockllm, marker, user):
    with refserver.client() as http:
        session = start(http, user, f"mine {marker}")["sessionId"]
        other = http.get("/chat/stream", params={"sessionId": session, "userId": f"other-{marker}"})
        assert other.status_code == 404
        _, got = stream(http, session, userId=user)
    (entry,) = llm_calls(mockllm, marker)
    assert text_of(got) == entry["answer"]


def test_an_expired_session_is_410_and_calls_no_llm(short, mockllm, marker, user):
    with short.client() as http:
        started = start(http, user, f"late {marker}")
        time.sleep(SESSION_TTL_S + 0.1)
        late = http.get("/chat/stream", params={"sessionId": started["sessionId"]})
        assert late.status_code == 410 and "expired" in late.json()["detail"]
        assert turns(http, started["chatId"]) == [("user", f"late {marker}")]
        # A fresh session of the same chat still streams.
        _, got = stream(http, start(http, user, f"again {marker}", chat_id=started["chatId"])["sessionId"])
    (entry,) = llm_calls(mockllm, marker)
    assert text_of(got) == entry["answer"]
    assert llm_messages(entry)[-1] == {"role": "user", "content": f"again {marker}"}


def test_a_configured_rate_limit_is_429_per_user_and_stores_nothing(short, mockllm, marker, user):
    with short.client() as http:
        chat = start(http, user, f"one {marker}")["chatId"]
        start(http, user, f"two {marker}", chat_id=chat)
        body = {"prompt": f"three {marker}", "modelId": MODEL, "userId": user, "chatId": chat}
        refused = http.post("/chat/start", json=body)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1 and refused.json()["detail"]
        assert turns(http, chat) == [("user", f"one {marker}"), ("user", f"two {marker}")]
        start(http, f"other-{marker}", f"other {marker}")  # per user


def test_llm_failure_before_the_stream_is_the_error_event(refserver, mockllm, marker, user):
    mockllm.arm_fault("500", match={"contains": marker})
    with refserver.client() as http:
        started = start(http, user, f"fails {marker}")
        _, got = stream(http, started["sessionId"])
        assert turns(http, started["chatId"]) == [("user", f"fails {marker}")]
    assert len(got) == 1 and got[0]["type"] == "error" and got[0]["message"]
    assert set(got[0]) == {"type", "message"}


@pytest.mark.parametrize("fault", ["error-after=3", "disconnect-after=3", "stall-after=2"])
def test_llm_failure_mid_stream_is_the_error_event_then_the_end(short, mockllm, marker, user, fault):
    mockllm.arm_fault(fault, match={"contains": marker})
    with short.client() as http:
        started = start(http, user, f"fails {marker}")
        headers, got = stream(http, started["sessionId"])
        assert turns(http, started["chatId"]) == [("user", f"fails {marker}")]
    (entry,) = llm_calls(mockllm, marker)
    *tokens, last = got
    assert last["type"] == "error" and last["message"]
    assert all(event["type"] == "token" for event in tokens)
    assert len(tokens) == int(fault.split("=")[1])
    assert entry["answer"].startswith(text_of(tokens))
    assert headers["X-Cache"] == "MISS"


def test_a_repeated_question_is_answered_from_the_cache(refserver, mockllm, marker, user):
    prompt = f"cache me {marker}"
    with refserver.client() as http:
        first = start(http, user, prompt)
        first_headers, first_events = stream(http, first["sessionId"])
        (entry,) = llm_calls(mockllm, marker)
        # A new chat asks the same model the same conversation: the cache answers.
        second = start(http, f"other-{marker}", prompt)
        second_headers, second_events = stream(http, second["sessionId"])
        assert len(mockllm.journal(prompt_contains=marker)) == 1
        assert turns(http, second["chatId"]) == [("user", prompt), ("assistant", entry["answer"])]
        # Another model is another question.
        third = start(http, user, prompt, model="gpt-4o-mini")
        third_headers, _ = stream(http, third["sessionId"])
    assert (first_headers["X-Cache"], second_headers["X-Cache"], third_headers["X-Cache"]) == ("MISS", "HIT", "MISS")
    assert text_of(first_events) == text_of(second_events) == entry["answer"]
    assert second_events[-1] == {"type": "done"}
    assert len(llm_calls(mockllm, marker, count=2)) == 2


def test_a_silent_llm_gets_keep_alive_comments(refserver, mockllm, marker, user):
    heartbeat_s = refserver.settings["heartbeat_s"]
    mockllm.patch_config({"timing": {"ttft_ms": heartbeat_s * 1000 + 400, "itl_ms": 0}})
    with refserver.client() as http:
        session = start(http, user, f"slow {marker}")["sessionId"]
        with http.stream("GET", "/chat/stream", params={"sessionId": session}) as response:
            raw = response.read().decode()
    (entry,) = llm_calls(mockllm, marker)
    before_first_event = raw.split("data:", 1)[0]
    assert before_first_event.startswith(":") and before_first_event.endswith("\n\n")
    assert "data:" in raw and raw.rstrip().endswith('{"type":"done"}')
    text = "".join(json.loads(line[5:])["content"] for line in raw.splitlines() if '"token"' in line)
    assert text == entry["answer"]


def test_stop_mid_stream_cancels_the_llm_call_and_keeps_the_partial_answer(refserver, mockllm, marker, user):
    mockllm.patch_config({"timing": {"ttft_ms": 0, "itl_ms": 40}})
    with refserver.client() as http:
        started = start(http, user, f"stop {marker}")
        with http.stream("GET", "/chat/stream", params={"sessionId": started["sessionId"]}) as response:
            received = []
            for event in events(response):
                received.append(event)
                if len(received) == 3:
                    break
        (entry,) = llm_calls(mockllm, marker)
        assert entry["outcome"] == "client_closed"
        deadline = time.monotonic() + 2.0
        while len(stored := turns(http, started["chatId"])) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        # The server still answers: a new turn in the same chat streams to its end.
        mockllm.patch_config({"timing": {"itl_ms": 0}})
        _, got = stream(http, start(http, user, f"next {marker}", chat_id=started["chatId"])["sessionId"])
    assert got[-1] == {"type": "done"}
    assert stored[0] == ("user", f"stop {marker}")
    role, partial = stored[1]
    assert role == "assistant"
    assert all(event["type"] == "token" for event in received)
    assert partial.startswith(text_of(received)) and text_of(received)
    assert entry["answer"].startswith(partial) and partial != entry["answer"]
