"""The SQLite store's group commit (reference_server/_group_commit.py), on a real SQLite file: writes
queued together share a transaction, a failing one fails only its own caller, a cancelled caller's
write still lands, and one task's writes keep their order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from reference_server._group_commit import GroupCommit
from reference_server._store import Store


def _store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path}/group.sqlite3")


def test_a_burst_of_messages_is_stored_whole_and_in_each_conversations_order(tmp_path: Path) -> None:
    async def scenario() -> list[list[str]]:
        store = _store(tmp_path)
        await store.create_tables()
        ids = [(await store.create_conversation("sessions", id=f"c{i}")).id for i in range(20)]

        async def turn(conversation: str, n: int) -> None:
            await store.add_message(conversation, "user", f"{conversation} q{n}")
            await store.add_message(conversation, "assistant", f"{conversation} a{n}")

        await asyncio.gather(*(turn(c, n) for n in range(10) for c in ids))
        stored = [[m.content for m in await store.messages(c)] for c in ids]
        await store.close()
        return stored

    for history in asyncio.run(scenario()):
        questions = [said for said in history if " q" in said]
        assert len(history) == 20 and len(questions) == 10
        for question in questions:  # one task's writes in order: each answer after its own question
            assert history.index(question.replace(" q", " a")) > history.index(question)


def test_a_failing_write_fails_only_its_caller(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[object], list[str]]:
        store = _store(tmp_path)
        await store.create_tables()
        await store.create_conversation("sessions", id="taken")
        results = await asyncio.gather(
            store.create_conversation("sessions", id="fresh-1"),
            store.create_conversation("sessions", id="taken"),  # the key exists: IntegrityError
            store.create_conversation("sessions", id="fresh-2"),
            return_exceptions=True,
        )
        found = [c for c in ("fresh-1", "fresh-2") if await store.conversation("sessions", c)]
        await store.close()
        return results, found

    results, found = asyncio.run(scenario())
    assert isinstance(results[1], IntegrityError) and not isinstance(results[0], Exception)
    assert found == ["fresh-1", "fresh-2"]


def test_a_cancelled_callers_write_still_lands(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        store = _store(tmp_path)
        await store.create_tables()
        await store.create_conversation("sessions", id="c")
        writes = [asyncio.ensure_future(store.add_message("c", "user", f"m{i}")) for i in range(50)]
        await asyncio.sleep(0)
        writes[7].cancel()  # the client left: its turn is stored all the same
        await asyncio.gather(*writes, return_exceptions=True)
        await asyncio.sleep(0.2)
        stored = [m.content for m in await store.messages("c")]
        await store.close()
        return stored

    assert asyncio.run(scenario()) == [f"m{i}" for i in range(50)]


def test_only_its_own_statements_go_through_the_group(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = _store(tmp_path)
        group = GroupCommit(store._writing, ())
        with pytest.raises(ValueError, match="not a statement"):
            await group.run([(text("SELECT 1"), {})])
        await store.close()

    asyncio.run(scenario())
