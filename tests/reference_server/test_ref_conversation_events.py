"""`conversation-events` profile over real HTTP, with the mock LLM as upstream.

What was stored is read from the server's own SQLite file (tests use the user id to find their rows);
what the LLM was asked and answered, from the mock's journal.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import time
import uuid
from pathlib import Path

import pytest
from refserver_helpers import events, llm_calls, llm_messages, stored_conversations

from contracts import mint_token

PROFILE = "conversation-events"
BASE = "/api/v1/chat/conversations"
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
FAULTS = ["500", "error-after=3", "disconnect-after=3", "stall-after=2"]
KINDS = {"connected": "c", "heartbeat": "h", "llm_chunk": "k", "llm_complete": "C", "system": "s", "error": "e"}


@pytest.fixture(scope="module")
def fast(start_refserver):
    """Quick heartbeats and a short upstream timeout, so a stalled LLM fails within a second."""
    return start_refserver(heartbeat_s=0.05, llm_timeout_s=0.8)


stored = functools.partial(stored_conversations, PROFILE)


def stored_id(server, conversation: str, role: str) -> str:
    """The id of the conversation's last stored message of `role`."""
    with sqlite3.connect(Path(server.log.name).parent / "reference-server.sqlite3") as db:
        (found,) = db.execute(
            "SELECT id FROM messages WHERE conversation_id = ? AND role = ? ORDER BY seq DESC LIMIT 1",
            (conversation, role),
        ).fetchone()
    return found


def new_conversation(server, user: str, content: str | None = None) -> str:
    """A conversation of `user`, with a first user message if `content` is given."""
    with server.client() as http:
        created = http.post(BASE, json={}, headers=server.auth(user))
        assert created.status_code == 201, created.text
        conversation = created.json()["id"]
        if content is not None:
            posted = http.post(f"{BASE}/{conversation}/messages", json={"content": content}, headers=server.auth(user))
            assert posted.status_code == 201, posted.text
    return conversation


def stream(server, user: str, conversation: str) -> list[dict]:
    with (
        server.client() as http,
        http.stream("GET", f"{BASE}/{conversation}/stream", headers=server.auth(user)) as response,
    ):
        assert response.status_code == 200, response.read()
        return list(events(response))


def check_grammar(got: list[dict]) -> str:
    """`connected heartbeat* (llm_chunk | heartbeat)* (llm_complete system? | error)`, every event timed;
    returns the terminal type."""
    for event in got:
        assert ISO.fullmatch(event["timestamp"]), event
    kinds = "".join(KINDS[e["type"]] for e in got)
    assert re.fullmatch(r"ch*[kh]*(Cs?|e)", kinds), kinds
    return next(e["type"] for e in reversed(got) if e["type"] != "system")


def chunks_of(got: list[dict]) -> str:
    return "".join(e["content"] for e in got if e["type"] == "llm_chunk")


def the(got: list[dict], kind: str) -> dict:
    (event,) = (e for e in got if e["type"] == kind)
    return event


def test_a_turn_streams_the_answer_as_typed_events(refserver, mockllm, marker):
    user = marker
    with refserver.client() as http:
        created = http.post(BASE, json={"title": "Saturday"}, headers=refserver.auth(user))
        assert created.status_code == 201
        conversation = created.json()
        assert conversation["title"] == "Saturday" and conversation["userId"] == user
        assert ISO.fullmatch(conversation["createdAt"])
        uuid.UUID(conversation["id"])
        url = f"{BASE}/{conversation['id']}"
        posted = http.post(f"{url}/messages", json={"content": f"hello {marker}"}, headers=refserver.auth(user))
        assert posted.status_code == 201
        message = posted.json()
        assert message["conversationId"] == conversation["id"] and message["id"]
        assert message["role"] == "user" and message["content"] == f"hello {marker}"
        assert ISO.fullmatch(message["createdAt"])
        with http.stream("GET", f"{url}/stream", headers=refserver.auth(user)) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["x-accel-buffering"] == "no"
            got = list(events(response))
    (entry,) = llm_calls(mockllm, marker)
    assert check_grammar(got) == "llm_complete"
    assert got[-1]["type"] == "llm_complete"  # a prose answer names no bet
    assert chunks_of(got) == the(got, "llm_complete")["content"] == entry["answer"]
    assert the(got, "llm_complete")["messageId"] == stored_id(refserver, conversation["id"], "assistant")
    assert stored_id(refserver, conversation["id"], "user") == message["id"]
    assert llm_messages(entry) == [{"role": "user", "content": f"hello {marker}"}]
    assert stored(refserver, user) == {
        conversation["id"]: [("user", f"hello {marker}"), ("assistant", entry["answer"])]
    }


def test_second_turn_carries_the_first_in_order(refserver, mockllm, marker):
    conversation = new_conversation(refserver, marker, f"first {marker}")
    first = stream(refserver, marker, conversation)
    with refserver.client() as http:
        body = {"content": f"second {marker}"}
        assert (
            http.post(f"{BASE}/{conversation}/messages", json=body, headers=refserver.auth(marker)).status_code == 201
        )
    second = stream(refserver, marker, conversation)
    one, two = llm_calls(mockllm, marker, count=2)
    assert chunks_of(first) == one["answer"] and chunks_of(second) == two["answer"]
    assert llm_messages(two) == [
        {"role": "user", "content": f"first {marker}"},
        {"role": "assistant", "content": one["answer"]},
        {"role": "user", "content": f"second {marker}"},
    ]


def test_409_when_no_user_message_awaits_an_answer(refserver, mockllm, marker):
    empty = new_conversation(refserver, marker)
    answered = new_conversation(refserver, marker, f"once {marker}")
    stream(refserver, marker, answered)
    with refserver.client() as http:
        for conversation in (empty, answered):
            response = http.get(f"{BASE}/{conversation}/stream", headers=refserver.auth(marker))
            assert response.status_code == 409
            assert response.headers["content-type"].startswith("application/json")
            assert "user message" in response.json()["detail"]
    assert len(llm_calls(mockllm, marker)) == 1
    assert len(stored(refserver, marker)[answered]) == 2


@pytest.mark.parametrize(
    "headers, query",
    [
        ({}, {}),
        ({"Authorization": "Bearer not-a-jwt"}, {}),
        ({"Authorization": "Bearer " + mint_token("another-secret-also-32-bytes-or-longer", "someone")}, {}),
        ({}, {"access_token": "not-a-jwt"}),
        ({}, {"access_token": mint_token("another-secret-also-32-bytes-or-longer", "someone")}),
    ],
    ids=["none", "garbage", "wrong-secret", "query-garbage", "query-wrong-secret"],
)
def test_401_without_a_valid_token_on_every_call(refserver, mockllm, marker, headers, query):
    conversation = new_conversation(refserver, marker, f"hi {marker}")
    before = stored(refserver, marker)
    url = f"{BASE}/{conversation}"
    with refserver.client(headers=headers, params=query) as http:
        responses = [
            http.post(BASE, json={"title": "x"}),
            http.post(BASE, content=b"{not json"),
            http.post(f"{url}/messages", json={"content": f"more {marker}"}),
            http.get(f"{url}/stream"),
            http.get(f"{BASE}/not-a-uuid/stream"),
        ]
    for response in responses:
        assert response.status_code == 401, response.text
        assert response.json()["detail"]
    assert stored(refserver, marker) == before
    assert mockllm.journal(prompt_contains=marker) == []


def test_access_token_in_the_query_is_accepted_on_every_call(refserver, mockllm, marker):
    with refserver.client(params={"access_token": refserver.token(marker)}) as http:
        created = http.post(BASE)
        assert created.status_code == 201, created.text
        conversation = created.json()["id"]
        posted = http.post(f"{BASE}/{conversation}/messages", json={"content": f"via query {marker}"})
        assert posted.status_code == 201, posted.text
        with http.stream("GET", f"{BASE}/{conversation}/stream") as response:
            assert response.status_code == 200
            got = list(events(response))
    (entry,) = llm_calls(mockllm, marker)
    assert check_grammar(got) == "llm_complete"
    assert chunks_of(got) == entry["answer"]


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/not-a-uuid/messages", {"content": "hi"}),
        ("GET", "/1234/stream", None),
        ("GET", "/5f0c6a2e8c1b4d7e9a532b6f1e0d4c11/stream", None),  # no hyphens
        ("POST", "/{id}/messages", {"content": "x" * 2001}),
        ("POST", "/{id}/messages", {"content": "  "}),
        ("POST", "/{id}/messages", {}),
        ("POST", "/{id}/messages", {"content": "hi", "role": "assistant"}),
        ("POST", "", {"title": "t" * 201}),
        ("POST", "", {"name": "x"}),
    ],
    ids=["bad-id-post", "bad-id-stream", "unhyphenated", "2001", "blank", "no-content", "extra", "title", "unknown"],
)
def test_400_for_bad_input_and_nothing_stored(refserver, mockllm, marker, method, path, body):
    conversation = new_conversation(refserver, marker)
    before = stored(refserver, marker)
    with refserver.client() as http:
        response = http.request(method, BASE + path.format(id=conversation), json=body, headers=refserver.auth(marker))
    assert response.status_code == 400, response.text
    assert response.json()["detail"]
    assert stored(refserver, marker) == before
    assert mockllm.journal(prompt_contains=marker) == []


def test_a_message_of_exactly_the_limit_is_accepted(refserver, mockllm, marker):
    content = f"{marker} " + "y" * (2000 - len(marker) - 1)
    conversation = new_conversation(refserver, marker, content)
    assert check_grammar(stream(refserver, marker, conversation)) == "llm_complete"
    (entry,) = llm_calls(mockllm, marker)
    assert llm_messages(entry) == [{"role": "user", "content": content}]


def test_404_for_an_unknown_or_another_users_conversation_and_nothing_stored(refserver, mockllm, marker):
    owner, intruder = f"{marker}-owner", f"{marker}-intruder"
    conversation = new_conversation(refserver, owner, f"mine {marker}")
    before = stored(refserver, owner)
    with refserver.client(headers=refserver.auth(intruder)) as http:
        for target in (str(uuid.uuid4()), conversation, conversation.upper()):
            posted = http.post(f"{BASE}/{target}/messages", json={"content": f"sneak {marker}"})
            assert posted.status_code == 404, posted.text
            got = http.get(f"{BASE}/{target}/stream")
            assert got.status_code == 404, got.text
            assert got.json()["detail"]
    assert stored(refserver, owner) == before
    assert stored(refserver, intruder) == {}
    assert mockllm.journal(prompt_contains=marker) == []


@pytest.mark.parametrize("fault", FAULTS)
def test_llm_failure_becomes_the_error_event_and_the_question_still_awaits(fast, mockllm, marker, fault):
    conversation = new_conversation(fast, marker, f"fail {marker}")
    mockllm.arm_fault(fault, match={"contains": marker})
    started = time.monotonic()
    got = stream(fast, marker, conversation)
    assert time.monotonic() - started < 3
    (entry,) = llm_calls(mockllm, marker)
    assert check_grammar(got) == "error"
    assert the(got, "error")["message"]
    assert entry["answer"].startswith(chunks_of(got)) and len(chunks_of(got)) < len(entry["answer"])
    assert stored(fast, marker)[conversation] == [("user", f"fail {marker}")]
    # Streaming again answers the same question afresh.
    again = stream(fast, marker, conversation)
    _, retry = llm_calls(mockllm, marker, count=2)
    assert check_grammar(again) == "llm_complete"
    assert llm_messages(retry) == [{"role": "user", "content": f"fail {marker}"}]
    assert stored(fast, marker)[conversation] == [("user", f"fail {marker}"), ("assistant", retry["answer"])]


def test_heartbeats_arrive_while_the_llm_is_slow(fast, mockllm, marker):
    mockllm.patch_config({"timing": {"ttft_ms": 300, "itl_ms": 0}})
    conversation = new_conversation(fast, marker, f"slow {marker}")
    got = stream(fast, marker, conversation)
    (entry,) = llm_calls(mockllm, marker)
    assert check_grammar(got) == "llm_complete"
    first_chunk = next(i for i, e in enumerate(got) if e["type"] == "llm_chunk")
    assert [e["type"] for e in got[1:first_chunk]].count("heartbeat") >= 2
    assert chunks_of(got) == the(got, "llm_complete")["content"] == entry["answer"]


@pytest.mark.parametrize(
    "answer, odds",
    [
        ("I would bet on the home side, at odds of 2.5 or better.", 2.5),
        ("The ODDS are long tonight.", None),
        ("Betting on the draw looks wise.", None),
        ("A better alphabet has no wagers in it.", "no system event"),
    ],
)
def test_system_event_follows_an_answer_that_names_a_bet(refserver, mockllm, marker, answer, odds):
    rule = {"match": {"contains": marker}, "answer": {"fixed": answer}}
    mockllm.patch_config({"answers": {"rules": [rule]}})
    got = stream(refserver, marker, new_conversation(refserver, marker, f"tips {marker}"))
    assert check_grammar(got) == "llm_complete"
    assert the(got, "llm_complete")["content"] == chunks_of(got) == answer
    if odds == "no system event":
        assert got[-1]["type"] == "llm_complete"
        return
    assert [e["type"] for e in got[-2:]] == ["llm_complete", "system"]
    assert got[-1]["message"] == "New bet recommendation available"
    assert got[-1]["metadata"]["odds"] == odds and got[-1]["metadata"]["betId"]


def test_stop_mid_stream_stores_no_answer_and_the_question_still_awaits(refserver, mockllm, marker):
    mockllm.patch_config({"timing": {"ttft_ms": 0, "itl_ms": 40}})
    conversation = new_conversation(refserver, marker, f"long {marker}")
    read: list[dict] = []
    with (
        refserver.client() as http,
        http.stream("GET", f"{BASE}/{conversation}/stream", headers=refserver.auth(marker)) as response,
    ):
        for event in events(response):
            read.append(event)
            if sum(e["type"] == "llm_chunk" for e in read) == 3:
                break
    (entry,) = llm_calls(mockllm, marker)
    assert entry["outcome"] == "client_closed"
    # The server is healthy, and the question is answered afresh, with no part of the first answer.
    mockllm.patch_config({"timing": {"itl_ms": 0}})
    again = stream(refserver, marker, conversation)
    assert check_grammar(again) == "llm_complete"
    _, second = llm_calls(mockllm, marker, count=2)
    assert llm_messages(second) == [{"role": "user", "content": f"long {marker}"}]
    assert stored(refserver, marker)[conversation] == [("user", f"long {marker}"), ("assistant", second["answer"])]
