"""Per-model upstream providers: `models:` routes a model to Anthropic Messages or Gemini, as seed
002's multi-provider adapters do; the mock speaks both, so the same contract stream must come out."""

from __future__ import annotations

import pytest
from refserver_helpers import events, llm_calls


def strings(value):
    """Every string in a JSON value, in document order: the turns, whatever the provider's shape."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


@pytest.fixture(scope="module")
def multi(start_refserver):
    return start_refserver(
        profiles=["start-stream"],
        models=[
            {"pattern": "claude-*", "provider": "anthropic"},
            {"pattern": "gemini-*", "provider": "gemini"},
        ],
    )


@pytest.mark.parametrize(
    ("model", "path_part"),
    [("claude-test", "/v1/messages"), ("gemini-test", ":streamGenerateContent"), ("gpt-test", "/chat/completions")],
)
def test_each_provider_streams_the_mock_answer_in_the_contract_grammar(multi, mockllm, marker, model, path_part):
    with multi.client() as http:
        # "pro-user" has the plan that allows every model.
        started = http.post("/chat/start", json={"prompt": f"hi {marker}", "modelId": model, "userId": "pro-user"})
        assert started.status_code == 200, started.text
        first = started.json()
        with http.stream("GET", "/chat/stream", params={"sessionId": first["sessionId"]}) as response:
            got = list(events(response))
        # A second turn: the provider gets the first one in its own message format.
        again = http.post(
            "/chat/start",
            json={"prompt": f"more {marker}", "modelId": model, "userId": "pro-user", "chatId": first["chatId"]},
        ).json()
        with http.stream("GET", "/chat/stream", params={"sessionId": again["sessionId"]}) as response:
            list(events(response))
    entry, second = llm_calls(mockllm, marker, count=2)
    assert path_part in entry["path"]
    assert got[-1] == {"type": "done"}
    assert "".join(e["content"] for e in got if e["type"] == "token") == entry["answer"]
    sent = list(strings(second["body"]))
    assert sent.index(f"hi {marker}") < sent.index(entry["answer"]) < sent.index(f"more {marker}")


def test_a_provider_failure_is_the_error_event(multi, mockllm, marker):
    mockllm.arm_fault("error-after=2", match={"contains": marker})
    with multi.client() as http:
        started = http.post(
            "/chat/start", json={"prompt": f"hi {marker}", "modelId": "claude-test", "userId": "pro-user"}
        ).json()
        with http.stream("GET", "/chat/stream", params={"sessionId": started["sessionId"]}) as response:
            got = list(events(response))
    assert got[-1]["type"] == "error" and got[-1]["message"]
    assert [e["type"] for e in got[:-1]] == ["token"] * (len(got) - 1)
