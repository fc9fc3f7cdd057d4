"""`sessions` profile over real HTTP, with the mock LLM as upstream."""

from __future__ import annotations

from refserver_helpers import events, llm_calls


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
