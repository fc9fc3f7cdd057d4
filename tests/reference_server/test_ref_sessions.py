"""`sessions` profile over real HTTP, with the mock LLM as upstream."""

from __future__ import annotations

import time

import pytest
from refserver_helpers import events, llm_calls, llm_messages


def test_stream_words_join_to_the_mock_answer(refserver, mockllm, marker):
    with (
        refserver.client() as http,
        http.stream(
            "POST", "/api/chat/stream", json={"message": f"tell me {marker}"}, headers={"Accept": "text/event-stream"}
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        got = list(events(response))
    (entry,) = llm_calls(mockllm, marker)
    assert got[0]["type"] == "session" and got[0]["session_id"]
    assert got[-1] == {"type": "done"}
    words = got[1:-1]
    assert [w["index"] for w in words] == list(range(len(words)))
    assert " ".join(w["content"] for w in words) == " ".join(entry["answer"].split())


def stream(http, body):
    return http.stream("POST", "/api/chat/stream", json=body, headers={"Accept": "text/event-stream"})


def history(http, session_id):
    response = http.get(f"/api/sessions/{session_id}/history")
    assert response.status_code == 200, response.text
    return response.json()["history"]


def test_session_create_and_reuse(refserver):
    with refserver.client() as http:
        made = http.post("/api/sessions", json={})
        assert made.status_code == 201
        session_id = made.json()["session_id"]
        again = http.post("/api/sessions", json={"session_id": session_id})
        assert again.status_code == 201 and again.json() == {"session_id": session_id}
        assert history(http, session_id) == []


def test_two_turns_carry_the_first_to_the_llm(refserver, mockllm, marker):
    with refserver.client() as http:
        first = http.post("/api/chat", json={"message": f"first {marker}"})
        assert first.status_code == 200, first.text
        body = first.json()
        assert set(body) == {"response", "session_id", "tokens_used", "timestamp"}
        assert body["tokens_used"] > 0
        session_id = body["session_id"]
        with stream(http, {"message": f"second {marker}", "session_id": session_id}) as response:
            got = list(events(response))
        assert got[-1] == {"type": "done"} and got[0]["session_id"] == session_id
        first_call, second_call = llm_calls(mockllm, marker, count=2)
        assert body["response"] == first_call["answer"]
        assert llm_messages(second_call) == [
            {"role": "user", "content": f"first {marker}"},
            {"role": "assistant", "content": first_call["answer"]},
            {"role": "user", "content": f"second {marker}"},
        ]
        stored = history(http, session_id)
        assert [(m["role"], m["content"]) for m in stored] == [
            ("user", f"first {marker}"),
            ("assistant", first_call["answer"]),
            ("user", f"second {marker}"),
            ("assistant", second_call["answer"]),
        ]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({}, "message"),
        ({"message": ""}, "message"),
        ({"message": "x" * 2001}, "message"),
        ({"message": 5}, "message"),
        ({"message": "hi", "temperature": 1}, "temperature"),
        ({"message": "hi", "session_id": "no spaces allowed"}, "session_id"),
    ],
)
def test_bad_chat_bodies_are_400_naming_the_field_and_store_nothing(refserver, mockllm, body, named):
    with refserver.client() as http:
        session_id = http.post("/api/sessions", json={}).json()["session_id"]
        for path in ("/api/chat", "/api/chat/stream"):
            sent = {**body, "session_id": body.get("session_id", session_id)}
            response = http.post(path, json=sent)
            assert response.status_code == 400, response.text
            assert named in response.text
        assert history(http, session_id) == []
    assert mockllm.journal() == []


def test_history_and_delete(refserver, mockllm, marker):
    with refserver.client() as http:
        assert http.get("/api/sessions/never-made/history").status_code == 404
        assert http.delete("/api/sessions/never-made").status_code == 404
        session_id = http.post("/api/chat", json={"message": marker}).json()["session_id"]
        assert len(history(http, session_id)) == 2
        cleared = http.delete(f"/api/sessions/{session_id}")
        assert cleared.status_code == 200 and cleared.json() == {"session_id": session_id}
        assert history(http, session_id) == []


def test_upstream_http_error_is_503_for_chat(refserver, mockllm, marker):
    mockllm.arm_fault("500", match={"contains": marker})
    with refserver.client() as http:
        response = http.post("/api/chat", json={"message": marker})
    assert response.status_code == 503
    assert "LLM" in response.json()["detail"]


@pytest.mark.parametrize("fault", ["500", "error-after=3", "disconnect-after=3", "truncate", "malformed-after=2"])
def test_upstream_failure_in_a_stream_is_the_error_event(refserver, mockllm, marker, fault):
    mockllm.arm_fault(fault, match={"contains": marker})
    with refserver.client() as http, stream(http, {"message": marker}) as response:
        assert response.status_code == 200
        got = list(events(response))
    assert got[0]["type"] == "session"
    assert got[-1]["type"] == "error" and got[-1]["error"]
    assert all(event["type"] == "content" for event in got[1:-1])


def test_stall_becomes_an_error_event_after_the_upstream_timeout(start_refserver, mockllm, marker):
    server = start_refserver(llm_timeout_s=0.5)
    mockllm.arm_fault("stall-after=2", match={"contains": marker})
    with server.client() as http, stream(http, {"message": marker}) as response:
        got = list(events(response))
    assert got[-1]["type"] == "error" and "timed out" in got[-1]["error"]


def test_rate_limit_per_client(start_refserver):
    server = start_refserver(rate_limits={"sessions": {"count": 3, "window_s": 30}})
    with server.client() as http:
        assert [http.post("/api/sessions", json={}).status_code for _ in range(3)] == [201] * 3
        refused = http.post("/api/sessions", json={})
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 30
        assert http.get("/api/health").status_code == 200  # health is not limited


def test_cors_on_calls_and_streams(start_refserver, mockllm, marker):
    server = start_refserver(profiles=["sessions"], cors_origins=["http://app.test"])
    with server.client() as http:
        allowed = {"Origin": "http://app.test"}
        assert http.get("/api/health", headers=allowed).headers["access-control-allow-origin"] == "http://app.test"
        with http.stream("POST", "/api/chat/stream", json={"message": marker}, headers=allowed) as response:
            assert response.headers["access-control-allow-origin"] == "http://app.test"
            assert response.headers["x-accel-buffering"] == "no"
            assert response.headers["cache-control"] == "no-cache"
            list(events(response))
        other = http.get("/api/health", headers={"Origin": "http://elsewhere.test"})
        assert "access-control-allow-origin" not in other.headers
        preflight = http.options(
            "/api/chat/stream",
            headers={"Origin": "http://app.test", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code in (200, 204)
        assert preflight.headers["access-control-allow-origin"] == "http://app.test"


def test_stop_mid_stream_cancels_the_llm_call_and_keeps_the_partial_answer(refserver, mockllm, marker):
    mockllm.patch_config({"timing": {"ttft_ms": 0, "itl_ms": 40}})
    with refserver.client() as http:
        with stream(http, {"message": marker}) as response:
            got = []
            for event in events(response):
                got.append(event)
                if len(got) == 4:  # session + 3 words: the user presses stop
                    break
        session_id = got[0]["session_id"]
        deadline = time.monotonic() + 5
        while (entry := mockllm.journal(prompt_contains=marker)[0])["outcome"] == "in_progress":
            assert time.monotonic() < deadline, "the LLM call was not cancelled"
            time.sleep(0.02)
        assert entry["outcome"] == "client_closed"
        assert http.get("/api/health").status_code == 200
        deadline = time.monotonic() + 5
        while len(stored := history(http, session_id)) < 2:
            assert time.monotonic() < deadline, "the partial answer was not stored"
            time.sleep(0.02)
    partial = stored[1]["content"]
    assert stored[1]["role"] == "assistant" and partial
    assert entry["answer"].startswith(partial) and len(partial) < len(entry["answer"])
