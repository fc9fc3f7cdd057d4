"""The reference server's real backends: PostgreSQL for storage, Redis for state shared by processes.

One PostgreSQL cluster and one redis-server for the session (tests/reference_server/services.py),
a fresh database of each per test. The storage and state classes are checked directly, each
against its in-process twin (SQLite, memory) with the same assertions; then real servers over
HTTP show what the backends are for: history that outlives a restart, and one rate-limit count
across server processes.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from refserver_helpers import events, llm_calls, llm_messages
from services import Postgres, Redis, start_postgres, start_redis

from reference_server._state import MemoryStore, RedisStore, StateStore
from reference_server._store import Store, iso

RATE_LIMIT = {"sessions": {"count": 3, "window_s": 30}}


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Redis]:
    server = start_redis()
    yield server
    server.stop()


# ---------------------------------------------------------------------------------------------- Store


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind the Store supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    return request.getfixturevalue("postgres").fresh_url()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = Store(database_url)
    await store.create_tables()
    yield store
    await store.close()


async def test_store_keeps_conversations_and_messages_in_order(store: Store) -> None:
    await store.create_tables()  # a second start on the same database changes nothing
    conv = await store.create_conversation("sessions", owner="alice", title="t")
    named = await store.create_conversation("sessions", id="my-id")
    assert named.id == "my-id"
    found = await store.conversation("sessions", conv.id)
    assert found is not None and (found.owner, found.title) == ("alice", "t")
    assert await store.conversation("conversations", conv.id) is None  # profiles never see each other's

    added = [await store.add_message(conv.id, role, f"{role} {i}") for i, role in enumerate(["user", "assistant"] * 3)]
    await store.add_message(named.id, "user", "elsewhere")
    got = await store.messages(conv.id)
    assert [(m.id, m.role, m.content) for m in got] == [(m.id, m.role, m.content) for m in added]
    assert [iso(m.created_at) for m in got] == [iso(m.created_at) for m in added]  # UTC, to the millisecond
    last = await store.messages(conv.id, last=2)
    assert [m.content for m in last] == ["user 4", "assistant 5"]  # the last two, oldest first
    assert len(await store.messages(conv.id, last=100)) == 6
    assert len(await store.messages(conv.id)) == 6
    updated = await store.conversation("sessions", conv.id)
    assert updated is not None and updated.updated_at >= found.updated_at

    assert await store.clear_messages(conv.id) == 6
    assert await store.messages(conv.id) == []
    assert await store.conversation("sessions", conv.id) is not None  # clearing keeps the conversation
    assert [m.content for m in await store.messages(named.id)] == ["elsewhere"]

    await store.add_message(named.id, "assistant", "reply")
    assert await store.delete_conversation("conversations", named.id) is False  # not that profile's
    assert await store.delete_conversation("sessions", named.id) is True
    assert await store.conversation("sessions", named.id) is None
    assert await store.messages(named.id) == []
    assert await store.delete_conversation("sessions", named.id) is False


async def test_store_tables_made_by_concurrent_workers(database_url: str) -> None:
    """Workers of one server start together on one empty database: each must come up."""
    stores = [Store(database_url) for _ in range(6)]
    try:
        results = await asyncio.gather(*(s.create_tables() for s in stores), return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        conv = await stores[0].create_conversation("sessions")
        await stores[1].add_message(conv.id, "user", "hi")
        assert [m.content for m in await stores[2].messages(conv.id)] == ["hi"]
    finally:
        for s in stores:
            await s.close()


# ---------------------------------------------------------------------------------------------- State


@pytest.fixture(params=["memory", "redis"])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    """Each state store, the Redis one under a prefix of its own."""
    if request.param == "memory":
        store: StateStore = MemoryStore()
    else:
        store = RedisStore(request.getfixturevalue("redis_server").url, prefix=f"test-{uuid.uuid4().hex}:")
    yield store
    await store.close()


async def test_state_get_set_expire(state: StateStore) -> None:
    assert await state.get("k") is None
    await state.set("k", b"v1", ttl_s=0.5)
    await state.set("long", b"stays", ttl_s=30)
    assert await state.get("k") == b"v1"
    await state.set("k", b"v2", ttl_s=0.5)  # overwrites
    assert await state.get("k") == b"v2"
    await asyncio.sleep(0.6)
    assert await state.get("k") is None
    assert await state.get("long") == b"stays"


async def test_state_take_is_single_use(state: StateStore) -> None:
    await state.set("session", b"once", ttl_s=30)
    taken = await asyncio.gather(*(state.take("session") for _ in range(20)))
    assert taken.count(b"once") == 1 and taken.count(None) == 19
    assert await state.get("session") is None
    assert await state.take("session") is None
    await state.set("brief", b"gone", ttl_s=0.05)
    await asyncio.sleep(0.1)
    assert await state.take("brief") is None  # expired values are not handed out


async def test_state_hit_counts_a_fixed_window(state: StateStore) -> None:
    window = 0.8
    first = await asyncio.gather(*(state.hit("rate:a", window) for _ in range(5)))
    counted = time.monotonic()  # the window began before this
    assert sorted(count for count, _ in first) == [1, 2, 3, 4, 5]  # no hit lost or counted twice
    assert all(0 < left <= window for _, left in first)
    await asyncio.sleep(0.2)
    count, left = await state.hit("rate:a", window)
    assert count == 6
    assert left <= window - 0.15  # a fixed window: hits do not extend it
    assert await state.hit("rate:b", window) == (1, pytest.approx(window, abs=0.05))  # keys count apart
    await asyncio.sleep(max(0.0, counted + window + 0.05 - time.monotonic()))
    count, left = await state.hit("rate:a", window)
    assert count == 1 and window - 0.1 < left <= window  # a new window


# ---------------------------------------------------------------------------------------------- servers


def stream_turn(server: Any, session_id: str, message: str) -> str:
    """One streamed `sessions` turn; the words joined as the contract says."""
    with (
        server.client() as http,
        http.stream(
            "POST",
            "/api/chat/stream",
            json={"message": message, "session_id": session_id},
            headers={"Accept": "text/event-stream"},
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        got = list(events(response))
    assert got[0] == {"type": "session", "session_id": session_id}
    assert got[-1] == {"type": "done"}
    return " ".join(event["content"] for event in got[1:-1])


def history(server: Any, session_id: str) -> list[dict[str, str]]:
    with server.client() as http:
        response = http.get(f"/api/sessions/{session_id}/history")
    assert response.status_code == 200, response.text
    return response.json()["history"]


def test_postgresql_keeps_a_conversation_across_a_restart(
    start_refserver: Callable[..., Any], postgres: Postgres, mockllm: Any, marker: str
) -> None:
    url = postgres.fresh_url()
    server = start_refserver(profiles=["sessions"], database_url=url)
    session_id = f"pg-{marker}"
    first, second = f"first {marker}", f"second {marker}"
    streamed = [stream_turn(server, session_id, first), stream_turn(server, session_id, second)]

    calls = sorted(llm_calls(mockllm, marker, count=2), key=lambda e: llm_messages(e)[-1]["content"] != first)
    answers = [call["answer"] for call in calls]
    assert [" ".join(a.split()) for a in answers] == streamed
    assert [(m["role"], m["content"]) for m in llm_messages(calls[1])] == [
        ("user", first),
        ("assistant", answers[0]),
        ("user", second),
    ]
    turns = [("user", first), ("assistant", answers[0]), ("user", second), ("assistant", answers[1])]
    before = history(server, session_id)
    assert [(m["role"], m["content"]) for m in before] == turns

    rows = postgres.psql(
        "SELECT json_agg(json_build_array(c.profile, m.role, m.content) ORDER BY m.seq) "
        f"FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE c.id = '{session_id}'",
        database=url.rsplit("/", 1)[1],
    )
    assert [tuple(row) for row in json.loads(rows)] == [("sessions", *turn) for turn in turns]

    server.stop()
    restarted = start_refserver(profiles=["sessions"], database_url=url)
    assert history(restarted, session_id) == before  # timestamps too


def start_two(start_refserver: Callable[..., Any], **settings: Any) -> list[Any]:
    """Two servers with the same settings, started side by side (a start is mostly imports)."""
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda _: start_refserver(**settings), range(2)))


def create_sessions(servers: list[Any]) -> list[httpx.Response]:
    """POST /api/sessions once on each server in turn (each counts toward the `sessions` limit)."""
    responses = []
    for server in servers:
        with server.client() as http:
            responses.append(http.post("/api/sessions"))
    return responses


def assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["Retry-After"]) <= 30
    assert response.json()["status_code"] == 429


def test_two_servers_share_a_rate_limit_through_redis(start_refserver: Callable[..., Any], redis_server: Redis) -> None:
    url = redis_server.fresh_url()
    a, b = start_two(start_refserver, profiles=["sessions"], redis_url=url, rate_limits=RATE_LIMIT)
    *allowed, fourth, fifth = create_sessions([a, b, a, b, a])
    assert [r.status_code for r in allowed] == [201, 201, 201]
    assert_limited(fourth)
    assert_limited(fifth)


def test_two_servers_without_redis_count_apart(start_refserver: Callable[..., Any]) -> None:
    """The contrast: memory state is per process, so the same requests are not limited."""
    a, b = start_two(start_refserver, profiles=["sessions"], rate_limits=RATE_LIMIT)
    responses = create_sessions([a, b, a, b, a, b])
    assert [r.status_code for r in responses] == [201] * 6  # 3 each
    assert_limited(create_sessions([a])[0])


def test_workers_share_postgresql_and_redis(
    start_refserver: Callable[..., Any], postgres: Postgres, redis_server: Redis, mockllm: Any, marker: str
) -> None:
    """The deployment the backends are for: two worker processes on one port, one database, one Redis."""
    server = start_refserver(
        workers=2,
        profiles=["sessions"],
        database_url=postgres.fresh_url(),
        redis_url=redis_server.fresh_url(),
        rate_limits=RATE_LIMIT,
    )
    assert "Traceback" not in server.output()  # both workers made it through startup on the empty database
    session_id = f"w-{marker}"
    stream_turn(server, session_id, f"one {marker}")
    stream_turn(server, session_id, f"two {marker}")
    second = max(llm_calls(mockllm, marker, count=2), key=lambda call: len(llm_messages(call)))
    assert [m["role"] for m in llm_messages(second)] == ["user", "assistant", "user"]  # turn 1 came back
    third, fourth = create_sessions([server, server])
    assert third.status_code == 201  # the two turns counted too, whichever worker took them
    assert_limited(fourth)
