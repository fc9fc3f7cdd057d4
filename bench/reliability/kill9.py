"""`kill -9` mid-stream, on SQLite and on PostgreSQL: nothing answered is lost, nothing is half-written.

A process can die at any instruction (the OOM killer, a node drained without grace). What a user
was shown as answered must survive it, and what the store holds must still be consistent: no
assistant message without the user message it answers, a database that passes its own integrity
check. Users here chat in turns on the `sessions` profile (the user message is stored before the
LLM is called, the answer after the stream ends) until the server is SIGKILLed mid-stream; then
the same database is opened by a new server and every session's history is read back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from mockllm import ServerProcess, start_mock
from reference_server import start_reference

from . import _postgres
from ._common import Outcome, Property, Sizes, reference_flags, wait_serving

TTFT_MS, ITL_MS, TOKENS = 20, 10, 20
KILL_BY_FACTOR = 10
# An assistant message must follow a user message of its conversation; every message needs its conversation.
ORPHANS_SQL = (
    "SELECT count(*) FROM messages m WHERE m.role = 'assistant' AND NOT EXISTS (SELECT 1 FROM messages u "
    "WHERE u.conversation_id = m.conversation_id AND u.role = 'user' AND u.seq < m.seq)"
)
HOMELESS_SQL = (
    "SELECT count(*) FROM messages m WHERE NOT EXISTS (SELECT 1 FROM conversations c WHERE c.id = m.conversation_id)"
)


# ---------------------------------------------------------------------------------------------- pure part


@dataclass(slots=True)
class Turn:
    session: str
    message: str
    answer: str


@dataclass(slots=True)
class KillFigures:
    store: str
    answered: list[Turn] = field(default_factory=list)
    in_flight: int = 0  # turns whose stream the kill cut
    histories: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    unreadable: int = 0  # histories that did not read after the restart
    integrity: str = ""
    orphans: int = -1
    homeless: int = -1
    served_after: bool = False
    error: str | None = None


def lost_turns(answered: Sequence[Turn], histories: dict[str, list[dict[str, str]]]) -> list[Turn]:
    """Answered turns whose user message and answer are not, in that order, adjacent in the history."""
    lost = []
    for turn in answered:
        history = histories.get(turn.session, [])
        pairs = itertools.pairwise(history)
        if not any(
            a.get("role") == "user"
            and a.get("content") == turn.message
            and b.get("role") == "assistant"
            and b.get("content") == turn.answer
            for a, b in pairs
        ):
            lost.append(turn)
    return lost


def half_written(histories: dict[str, list[dict[str, str]]]) -> int:
    """Assistant messages that are empty or follow no user message: what a torn write would leave."""
    count = 0
    for history in histories.values():
        for i, item in enumerate(history):
            if item.get("role") == "assistant" and (
                not item.get("content") or i == 0 or history[i - 1].get("role") != "user"
            ):
                count += 1
    return count


def judge(fig: KillFigures) -> list[Property]:
    name = fig.store
    if fig.error is not None:
        return [
            Property(
                f"{name}: kill -9 scenario ran",
                None if fig.error.startswith("not checked") else False,
                fig.error,
                "ran",
            )
        ]
    lost = lost_turns(fig.answered, fig.histories)
    torn = half_written(fig.histories)
    return [
        Property(
            f"{name}: the kill cut streams mid-way", fig.in_flight > 0, f"{fig.in_flight} streams cut", "at least 1"
        ),
        Property(
            f"{name}: no answered turn lost",
            not lost and fig.unreadable == 0 and bool(fig.answered),
            f"{len(lost)} of {len(fig.answered)} lost, {fig.unreadable} histories unreadable",
            "0 lost",
        ),
        Property(
            f"{name}: no half-written row",
            torn == 0 and fig.orphans == 0 and fig.homeless == 0,
            f"{torn} torn in histories; in the store: {fig.orphans} assistant rows without a user row, "
            f"{fig.homeless} rows without a conversation",
            "0",
        ),
        Property(f"{name}: database integrity", fig.integrity == "ok", fig.integrity or "not read", "ok"),
        Property(f"{name}: serves again on the same database", fig.served_after, str(fig.served_after), "True"),
    ]


# ---------------------------------------------------------------------------------------------- I/O part


def parse_words(lines: Sequence[str]) -> tuple[str, bool]:
    """The `sessions` stream's answer (words joined by one space) and whether `done` arrived."""
    words, done = [], False
    for line in lines:
        if not line.startswith("data:"):
            continue
        with contextlib.suppress(ValueError):
            event = json.loads(line[5:])
            if event.get("type") == "content":
                words.append(event["content"])
            elif event.get("type") == "done":
                done = True
    return " ".join(words), done


async def chat_turns(base: str, user: int, stop: asyncio.Event, fig: KillFigures) -> None:
    """One user: a session, then turns back to back until `stop` or the server dies."""
    async with httpx.AsyncClient(base_url=base, timeout=10.0) as client:
        try:
            session = (await client.post("/api/sessions", json={})).json()["session_id"]
        except (httpx.HTTPError, KeyError, ValueError):
            return
        for turn in range(10_000):  # bounded: the kill comes after a second or two
            if stop.is_set():
                return
            message = f"user {user} turn {turn}: tell me something"
            lines: list[str] = []
            try:
                async with client.stream(
                    "POST",
                    "/api/chat/stream",
                    json={"message": message, "session_id": session},
                    headers={"Accept": "text/event-stream"},
                ) as response:
                    async for line in response.aiter_lines():
                        lines.append(line)
            except httpx.HTTPError:
                fig.in_flight += 1
                return
            answer, done = parse_words(lines)
            if done:
                fig.answered.append(Turn(session, message, answer))
            else:
                fig.in_flight += 1
                return


async def load_then_kill(
    base: str, users: int, kill_after_s: float, kill: Callable[[], None], fig: KillFigures
) -> None:
    """Kill once `kill_after_s` has passed and every user has had a turn answered (on a loaded machine
    that takes longer; a kill before any answer would prove nothing), or at KILL_BY_FACTOR times that."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(chat_turns(base, u, stop, fig)) for u in range(users)]
    start = time.perf_counter()
    await asyncio.sleep(kill_after_s)
    while (
        len({t.session for t in fig.answered}) < users and time.perf_counter() - start < kill_after_s * KILL_BY_FACTOR
    ):
        await asyncio.sleep(0.05)
    kill()
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)


def read_histories(base: str, sessions: set[str], fig: KillFigures) -> None:
    with httpx.Client(base_url=base, timeout=10.0) as client:
        for session in sorted(sessions):
            try:
                response = client.get(f"/api/sessions/{session}/history")
                response.raise_for_status()
                fig.histories[session] = [dict(item) for item in response.json()["history"]]
            except (httpx.HTTPError, KeyError, ValueError):
                fig.unreadable += 1
        try:
            response = client.post("/api/chat", json={"message": "after the restart"})
            fig.served_after = response.status_code == 200
        except httpx.HTTPError:
            fig.served_after = False


def start_server(mock: ServerProcess, database: str, workdir: Path, name: str) -> ServerProcess:
    return start_reference(
        f"{mock.url}/v1", *reference_flags(database), "--profile", "sessions", log=workdir / f"{name}.log", cwd=workdir
    )


def one_store(store: str, database: str, mock: ServerProcess, workdir: Path, sizes: Sizes) -> KillFigures:
    """Chat, SIGKILL, restart on the same database, read back."""
    fig = KillFigures(store)
    server = start_server(mock, database, workdir, f"{store}-before")
    try:
        wait_serving(server.url)

        def kill() -> None:
            server.process.kill()  # SIGKILL: no shutdown handler runs
            server.process.wait(10)

        asyncio.run(load_then_kill(server.url, sizes.kill_users, sizes.kill_after_s, kill, fig))
    finally:
        server.stop()
    restarted = start_server(mock, database, workdir, f"{store}-after")
    try:
        wait_serving(restarted.url)
        read_histories(restarted.url, {t.session for t in fig.answered}, fig)
    finally:
        restarted.stop()
    return fig


def sqlite_run(mock: ServerProcess, workdir: Path, sizes: Sizes) -> KillFigures:
    path = workdir / "kill9.sqlite3"
    fig = one_store("SQLite", f"sqlite+aiosqlite:///{path}", mock, workdir, sizes)
    with contextlib.closing(sqlite3.connect(path)) as db:
        fig.integrity = str(db.execute("PRAGMA integrity_check").fetchone()[0])
        fig.orphans = int(db.execute(ORPHANS_SQL).fetchone()[0])
        fig.homeless = int(db.execute(HOMELESS_SQL).fetchone()[0])
    return fig


def postgres_run(mock: ServerProcess, workdir: Path, sizes: Sizes) -> KillFigures:
    try:
        cluster = _postgres.Postgres()
    except _postgres.Unavailable as err:
        return KillFigures("PostgreSQL", error=f"not checked: {err}")
    try:
        cluster.psql("CREATE DATABASE kill9")
        fig = one_store("PostgreSQL", cluster.url_of("kill9"), mock, workdir, sizes)
        # amcheck would need the extension; a full read of every table and index is the check here.
        cluster.psql("SELECT count(*) FROM conversations; SELECT count(*) FROM messages;", "kill9")
        fig.integrity = "ok"
        fig.orphans = int(cluster.psql(ORPHANS_SQL, "kill9"))
        fig.homeless = int(cluster.psql(HOMELESS_SQL, "kill9"))
        return fig
    finally:
        cluster.stop()


def run(sizes: Sizes, workdir: Path | None = None) -> Outcome:
    outcome = Outcome(
        f"kill -9 mid-stream: {sizes.kill_users} users chatting in turns (sessions profile), SIGKILL after "
        f"{sizes.kill_after_s:g} s once each has had an answer, a new server on the same database",
        ["store", "answered", "cut", "sessions read", "lost", "integrity", "orphan rows"],
    )
    with tempfile.TemporaryDirectory(prefix="reliability-kill9-") as tmp:
        base = workdir or Path(tmp)
        with start_mock("--answer-tokens", str(TOKENS), ttft_ms=TTFT_MS, itl_ms=ITL_MS, log=base / "mock.log") as mock:
            figures = []
            for runner in (sqlite_run, postgres_run):
                try:
                    figures.append(runner(mock, base, sizes))
                except Exception as err:  # a store that cannot even run the scenario is a failed property
                    store = "SQLite" if runner is sqlite_run else "PostgreSQL"
                    figures.append(KillFigures(store, error=f"{type(err).__name__}: {err}"[:300]))
    for fig in figures:
        lost = len(lost_turns(fig.answered, fig.histories))
        outcome.rows.append(
            [
                fig.store,
                str(len(fig.answered)),
                str(fig.in_flight),
                str(len(fig.histories)),
                str(lost),
                fig.integrity or "-",
                f"{fig.orphans}/{fig.homeless}",
            ]
        )
        outcome.properties.extend(judge(fig))
    return outcome
