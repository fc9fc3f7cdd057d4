"""`query-stream` profile over real HTTP, with the mock LLM as upstream.

What was stored is read from the server's own SQLite file (tests use the user id to find their rows);
what the LLM was asked and answered, from the mock's journal.
"""

from __future__ import annotations

import functools
import re
import time
import uuid

import pytest
from refserver_helpers import events, llm_calls, llm_messages, stored_conversations

from contracts import mint_token
from reference_server._settings import DEFAULT_PROJECT_ID

PROFILE = "query-stream"
STREAM = "/api/v1/ai/chat/stream"
CHAT = "/api/v1/ai/chat"
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
FAULTS = ["500", "error-after=3", "disconnect-after=3", "stall-after=2"]


@pytest.fixture(scope="module")
def fast(start_refserver):
    """Quick heartbeats and a short upstream timeout, so a stalled LLM fails within a second."""
    return start_refserver(heartbeat_s=0.05, llm_timeout_s=0.8)


stored = functools.partial(stored_conversations, PROFILE)


def stream(server, user: str, message: str, conversation: str | None = None) -> list[dict]:
    params = {"projectId": DEFAULT_PROJECT_ID, "message": message}
    if conversation:
        params["conversationId"] = conversation
    with server.client() as http, http.stream("GET", STREAM, params=params, headers=server.auth(user)) as response:
        assert response.status_code == 200, response.read()
        return list(events(response))


def check_grammar(got: list[dict]) -> str:
    """The stream's shape `conversationId token* (complete | error)`; returns the terminal type."""
    kinds = "".join({"conversationId": "i", "token": "t", "complete": "c", "error": "e"}[e["type"]] for e in got)
    assert re.fullmatch(r"it*[ce]", kinds), kinds
    return got[-1]["type"]


def text_of(got: list[dict]) -> str:
    return "".join(e["content"] for e in got if e["type"] == "token")


def test_stream_tokens_join_to_the_mock_answer(refserver, mockllm, marker):
    user = marker
    params = {"projectId": DEFAULT_PROJECT_ID, "message": f"tell me {marker}"}
    with (
        refserver.client() as http,
        http.stream("GET", STREAM, params=params, headers=refserver.auth(user)) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        got = list(events(response))
    (entry,) = llm_calls(mockllm, marker)
    assert check_grammar(got) == "complete"
    conversation = got[0]["conversationId"]
    uuid.UUID(conversation)
    assert text_of(got) == entry["answer"]
    assert ISO.fullmatch(got[-1]["timestamp"])
    assert got[-1]["metadata"] == {"model": entry["body"]["model"], "conversationId": conversation}
    assert llm_messages(entry) == [{"role": "user", "content": f"tell me {marker}"}]
    assert stored(refserver, user) == {conversation: [("user", f"tell me {marker}"), ("assistant", entry["answer"])]}


def test_second_turn_carries_the_first_in_order(refserver, mockllm, marker):
    first = stream(refserver, marker, f"first {marker}")
    conversation = first[0]["conversationId"]
    second = stream(refserver, marker, f"second {marker}", conversation)
    assert second[0]["conversationId"] == conversation
    one, two = llm_calls(mockllm, marker, count=2)
    assert text_of(first) == one["answer"] and text_of(second) == two["answer"]
    assert llm_messages(two) == [
        {"role": "user", "content": f"first {marker}"},
        {"role": "assistant", "content": one["answer"]},
        {"role": "user", "content": f"second {marker}"},
    ]


def test_the_llm_gets_only_the_last_ten_messages_then_the_new_one(refserver, mockllm, marker):
    """Seven turns over the non-streamed call: the seventh sends messages 3..12 of 12, then its own."""
    conversation = None
    with refserver.client() as http:
        for turn in range(1, 8):
            body = {"projectId": DEFAULT_PROJECT_ID, "message": f"turn {turn} {marker}"}
            if conversation:
                body["conversationId"] = conversation
            response = http.post(CHAT, json=body, headers=refserver.auth(marker))
            assert response.status_code == 200, response.text
            answer = response.json()
            conversation = conversation or answer["conversationId"]
            assert answer["conversationId"] == conversation
            assert answer["metadata"]["conversationId"] == conversation and answer["metadata"]["model"]
    calls = llm_calls(mockllm, marker, count=7)
    assert answer["response"] == calls[-1]["answer"]
    history = []
    for turn, call in enumerate(calls, start=1):
        history += [
            {"role": "user", "content": f"turn {turn} {marker}"},
            {"role": "assistant", "content": call["answer"]},
        ]
    assert len(llm_messages(calls[5])) == 11  # turn 6: all ten earlier messages fit
    assert llm_messages(calls[6]) == [*history[2:12], history[12]]


@pytest.mark.parametrize(
    "headers, query",
    [
        ({}, {}),
        ({"Authorization": "Bearer not-a-jwt"}, {}),
        ({"Authorization": "Bearer " + mint_token("another-secret-also-32-bytes-or-longer", "someone")}, {}),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, {}),
        ({}, {"access_token": "VALID"}),  # a query token is not a credential in this profile
    ],
    ids=["none", "garbage", "wrong-secret", "basic", "query-token"],
)
def test_401_without_a_valid_bearer_token(refserver, mockllm, marker, headers, query):
    query = {k: refserver.token(marker) if v == "VALID" else v for k, v in query.items()}
    with refserver.client() as http:
        params = {"projectId": DEFAULT_PROJECT_ID, "message": f"hi {marker}", **query}
        got = http.get(STREAM, params=params, headers=headers)
        posted = http.post(
            CHAT, params=query, json={"projectId": DEFAULT_PROJECT_ID, "message": f"hi {marker}"}, headers=headers
        )
        malformed = http.post(CHAT, content=b"{not json", headers=headers)
    for response in (got, posted, malformed):
        assert response.status_code == 401, response.text
        assert response.json()["detail"]
    assert mockllm.journal(prompt_contains=marker) == []
    assert stored(refserver, marker) == {}


@pytest.mark.parametrize(
    "params, key",
    [
        ({"projectId": "not-a-uuid"}, "projectId"),
        ({"projectId": None}, "projectId"),
        ({"conversationId": "1234"}, "conversationId"),
        ({"conversationId": "5f0c6a2e8c1b4d7e9a532b6f1e0d4c11"}, "conversationId"),  # no hyphens
        ({"message": None}, "message"),
        ({"message": ""}, "message"),
        ({"message": "   "}, "message"),
        ({"message": "x" * 2001}, "message"),
    ],
    ids=["bad-project", "no-project", "bad-conversation", "unhyphenated", "no-message", "empty", "blank", "2001"],
)
def test_400_for_bad_parameters_and_nothing_stored(refserver, mockllm, marker, params, key):
    params = {"projectId": DEFAULT_PROJECT_ID, "message": f"hi {marker}", **params}
    params = {k: v for k, v in params.items() if v is not None}
    with refserver.client() as http:
        got = http.get(STREAM, params=params, headers=refserver.auth(marker))
        body = {"projectId": params.get("projectId"), "message": params.get("message")}
        if "conversationId" in params:
            body["conversationId"] = params["conversationId"]
        posted = http.post(CHAT, json={k: v for k, v in body.items() if v is not None}, headers=refserver.auth(marker))
    assert got.status_code == 400, got.text
    assert key in got.json()["detail"]
    assert posted.status_code == 400, posted.text
    assert key in posted.text
    assert mockllm.journal(prompt_contains=marker) == []
    assert stored(refserver, marker) == {}


def test_400_on_an_existing_conversation_stores_nothing(refserver, mockllm, marker):
    conversation = stream(refserver, marker, f"first {marker}")[0]["conversationId"]
    before = stored(refserver, marker)
    long = f"{marker} " + "x" * 2000
    with refserver.client() as http:
        params = {"projectId": DEFAULT_PROJECT_ID, "message": long, "conversationId": conversation}
        assert http.get(STREAM, params=params, headers=refserver.auth(marker)).status_code == 400
        body = {"projectId": DEFAULT_PROJECT_ID, "message": long, "conversationId": conversation}
        assert http.post(CHAT, json=body, headers=refserver.auth(marker)).status_code == 400
        body = {"projectId": DEFAULT_PROJECT_ID, "message": f"ok {marker}", "conversationId": conversation, "x": 1}
        assert http.post(CHAT, json=body, headers=refserver.auth(marker)).status_code == 400  # unknown field
    assert stored(refserver, marker) == before and len(before[conversation]) == 2
    assert len(llm_calls(mockllm, marker)) == 1


def test_message_of_exactly_the_limit_is_accepted(refserver, mockllm, marker):
    message = f"{marker} " + "y" * (2000 - len(marker) - 1)
    got = stream(refserver, marker, message)
    (entry,) = llm_calls(mockllm, marker)
    assert check_grammar(got) == "complete"
    assert llm_messages(entry)[-1]["content"] == message


def test_404_for_an_unknown_project_or_conversation_and_nothing_stored(refserver, mockllm, marker):
    owner, intruder = f"{marker}-owner", f"{marker}-intruder"
    conversation = stream(refserver, owner, f"mine {marker}")[0]["conversationId"]
    before = stored(refserver, owner)
    cases = [
        (intruder, {"projectId": str(uuid.uuid4())}),  # unknown project
        (owner, {"projectId": str(uuid.uuid4()), "conversationId": conversation}),
        (intruder, {"conversationId": str(uuid.uuid4())}),  # unknown conversation
        (intruder, {"conversationId": conversation}),  # another user's
        (intruder, {"conversationId": conversation.upper()}),
    ]
    with refserver.client() as http:
        for user, extra in cases:
            params = {"projectId": DEFAULT_PROJECT_ID, "message": f"sneak {marker}", **extra}
            got = http.get(STREAM, params=params, headers=refserver.auth(user))
            assert got.status_code == 404, (extra, got.text)
            assert got.json()["detail"]
            posted = http.post(CHAT, json=params, headers=refserver.auth(user))
            assert posted.status_code == 404, (extra, posted.text)
    assert stored(refserver, owner) == before
    assert stored(refserver, intruder) == {}
    assert len(llm_calls(mockllm, marker)) == 1


@pytest.mark.parametrize("fault", FAULTS)
def test_llm_failure_becomes_the_error_event_and_the_end(fast, mockllm, marker, fault):
    mockllm.arm_fault(fault, match={"contains": marker})
    started = time.monotonic()
    got = stream(fast, marker, f"fail {marker}")
    assert time.monotonic() - started < 3
    (entry,) = llm_calls(mockllm, marker)
    assert check_grammar(got) == "error"
    assert got[-1]["message"]
    assert entry["answer"].startswith(text_of(got))
    assert len(text_of(got)) < len(entry["answer"])
    if fault == "500":
        assert text_of(got) == ""
    # The user message stays; no assistant message, not even the part that was streamed.
    assert list(stored(fast, marker).values()) == [[("user", f"fail {marker}")]]


def test_post_chat_answers_502_when_the_llm_fails(refserver, mockllm, marker):
    mockllm.arm_fault("500", match={"contains": marker})
    with refserver.client() as http:
        body = {"projectId": DEFAULT_PROJECT_ID, "message": f"fail {marker}"}
        response = http.post(CHAT, json=body, headers=refserver.auth(marker))
    assert response.status_code == 502
    assert "LLM" in response.json()["detail"]
    assert list(stored(refserver, marker).values()) == [[("user", f"fail {marker}")]]


def test_comment_heartbeats_while_the_llm_is_slow(fast, mockllm, marker):
    mockllm.patch_config({"timing": {"ttft_ms": 300, "itl_ms": 0}})
    params = {"projectId": DEFAULT_PROJECT_ID, "message": f"slow {marker}"}
    with fast.client() as http, http.stream("GET", STREAM, params=params, headers=fast.auth(marker)) as response:
        lines = [line for line in response.iter_lines() if line]
    first_token = next(i for i, line in enumerate(lines) if '"type":"token"' in line)
    assert lines[0].startswith('data: {"type":"conversationId"')
    assert lines[1:first_token].count(": heartbeat") >= 2
    assert lines[-1].startswith('data: {"type":"complete"')  # nothing after the terminal event


def test_stop_mid_stream_keeps_the_partial_answer(refserver, mockllm, marker):
    mockllm.patch_config({"timing": {"ttft_ms": 0, "itl_ms": 40}})
    params = {"projectId": DEFAULT_PROJECT_ID, "message": f"long {marker}"}
    read: list[dict] = []
    with (
        refserver.client() as http,
        http.stream("GET", STREAM, params=params, headers=refserver.auth(marker)) as response,
    ):
        for event in events(response):
            read.append(event)
            if len(read) == 4:  # the conversation id and three tokens
                break
    conversation = read[0]["conversationId"]
    (entry,) = llm_calls(mockllm, marker)
    assert entry["outcome"] == "client_closed"
    deadline = time.monotonic() + 5  # the partial answer is stored as the server notices the stop
    while len(messages := stored(refserver, marker).get(conversation, [])) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(messages) == 2 and messages[1][0] == "assistant", messages
    partial = messages[1][1]
    assert partial.startswith(text_of(read)) and entry["answer"].startswith(partial)
    assert len(partial) < len(entry["answer"])
    # The server is healthy, and the next turn carries the partial answer.
    mockllm.patch_config({"timing": {"itl_ms": 0}})
    again = stream(refserver, marker, f"go on {marker}", conversation)
    assert check_grammar(again) == "complete"
    _, second = llm_calls(mockllm, marker, count=2)
    assert llm_messages(second)[1] == {"role": "assistant", "content": partial}


def test_a_new_conversation_exists_as_soon_as_its_id_is_handed_out(refserver, mockllm, marker):
    """The id in the first event names a conversation at once, not only once the turn is stored: a
    client that stops the stream and straight away sends the next message with that id must not get
    a 404, however late the server gets round to storing the stopped turn. Here the first stream is
    still open (its LLM silent) when the id is used."""
    mockllm.arm_fault("stall-after=0,for=2", match={"contains": f"slow {marker}"})
    params = {"projectId": DEFAULT_PROJECT_ID, "message": f"slow {marker}"}
    with (
        refserver.client() as http,
        http.stream("GET", STREAM, params=params, headers=refserver.auth(marker)) as response,
    ):
        first = events(response)  # kept: dropping the generator would close the response
        conversation = next(first)["conversationId"]
        again = stream(refserver, marker, f"go on {marker}", conversation)
        assert again[0] == {"type": "conversationId", "conversationId": conversation}
        assert check_grammar(again) == "complete"
        assert check_grammar([{"type": "conversationId"}, *first]) == "complete"
