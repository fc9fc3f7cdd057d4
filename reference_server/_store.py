"""Conversations and their messages, in SQLite (a WAL file) or PostgreSQL through one code path.

SQLAlchemy's async engine, Core only: one table layout and one set of statements for both
databases (aiosqlite and asyncpg underneath), with no ORM session bookkeeping per request.
Every profile keeps its conversations here, tagged with the profile, so two profiles served by
one process never see each other's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    event,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ._group_commit import GroupCommit, Step

WAL_SWITCH_TIMEOUT_S = 30.0  # as long as a connection waits for the writer (its busy timeout)
metadata = MetaData()

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("profile", String(32), nullable=False, index=True),
    Column("owner", String(255), nullable=True),
    Column("title", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

messages = Table(
    "messages",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),  # order of the conversation
    Column("id", String(36), nullable=False, unique=True),
    Column("conversation_id", String(64), ForeignKey("conversations.id", ondelete="CASCADE"), index=True),
    Column("role", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """ISO-8601 with milliseconds and a Z, as JavaScript's Date.toISOString() writes it."""
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; they were written in UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    profile: str
    owner: str | None
    title: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    conversation_id: str
    role: str  # "user" | "assistant" | "system"
    content: str
    created_at: datetime


class Store:
    """The database: `Store(url)`, `await create_tables()`, then conversations and messages."""

    def __init__(self, url: str) -> None:
        url = async_driver_url(url)
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30}  # wait for the writer instead of "database is locked"
        elif url.startswith("postgresql"):
            kwargs.update(pool_size=20, max_overflow=80)
        try:
            self._engine: AsyncEngine = create_async_engine(url, **kwargs)
        except Exception as err:  # a malformed URL or an unknown driver
            raise ValueError(f"database_url {url!r}: {err}") from None
        self._write_lock = asyncio.Lock() if url.startswith("sqlite") else None
        # SQLite's one writer: the hot writes (a conversation made, a message stored) share transactions
        self._group = GroupCommit(self._writing, _GROUPED) if url.startswith("sqlite") else None
        if url.startswith("sqlite"):
            event.listen(self._engine.sync_engine, "connect", _sqlite_pragmas)

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction. SQLite has one writer at a time: in-process writers take turns on a
        lock instead of polling the file lock (whose back-off sleeps would stall a burst of turns)."""
        if self._write_lock is None:
            async with self._engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self._engine.begin() as conn:
            yield conn

    async def _write(self, steps: Sequence[Step]) -> None:
        """One write of `_GROUPED` statements: in a shared transaction on SQLite (`GroupCommit`), in a
        transaction of its own on PostgreSQL (whose writers do not wait for each other)."""
        if self._group is not None:
            await self._group.run(steps)
            return
        async with self._writing() as conn:
            for statement, params in steps:
                await conn.execute(statement, params)

    async def create_tables(self) -> None:
        """Create the tables if missing; safe when several workers start at once on one database."""
        if self._engine.dialect.name == "sqlite":
            await self._use_wal()
        async with self._engine.begin() as conn:
            # Otherwise two workers both find a table missing and both create it (SQLite: "table already
            # exists"; PostgreSQL: a unique violation in its catalog). One at a time, the next finds them.
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CREATE_TABLES_LOCK})
            elif conn.dialect.name == "sqlite":
                await conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, before the existence checks
            await conn.run_sync(metadata.create_all)

    async def _use_wal(self) -> None:
        """Put the file in WAL mode (readers never wait for the writer; it stays set in the file).

        The switch takes the file's exclusive lock, and SQLite answers a switch that meets another
        connection's lock with "database is locked" at once, its busy timeout notwithstanding: workers
        that start together on a new file race for it, so the loser waits its turn here."""
        deadline = time.monotonic() + WAL_SWITCH_TIMEOUT_S
        while True:
            try:
                async with self._engine.connect() as conn:
                    await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                return
            except OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.01)

    async def close(self) -> None:
        await self._engine.dispose()

    async def create_conversation(
        self,
        profile: str,
        *,
        owner: str | None = None,
        title: str | None = None,
        id: str | None = None,
        at: datetime | None = None,
    ) -> Conversation:
        now = at or utc_now()
        row = Conversation(id or str(uuid.uuid4()), profile, owner, title, now, now)
        values = {
            "id": row.id,
            "profile": profile,
            "owner": owner,
            "title": title,
            "created_at": now,
            "updated_at": now,
        }
        await self._write([(_INSERT_CONVERSATION, values)])
        return row

    async def ensure_conversation(self, profile: str, id: str) -> bool:
        """Make conversation `id` of `profile` unless it exists; False if the id is another profile's.

        Insert first, then look: two requests that name one new id at once both succeed (one inserts,
        the other meets the key and finds the row), where look-then-insert fails the second."""
        if await self.conversation(profile, id) is not None:
            return True
        with contextlib.suppress(IntegrityError):
            await self.create_conversation(profile, id=id)
        return await self.conversation(profile, id) is not None

    async def conversation(self, profile: str, id: str) -> Conversation | None:
        async with self._engine.connect() as conn:
            found = (
                await conn.execute(
                    select(conversations).where(conversations.c.id == id, conversations.c.profile == profile)
                )
            ).first()
        return Conversation(**found._mapping) if found else None

    async def add_message(
        self, conversation_id: str, role: str, content: str, *, at: datetime | None = None
    ) -> Message:
        """Store a message; `at` dates one whose storing was deferred (default: now)."""
        now = at or utc_now()
        message = Message(str(uuid.uuid4()), conversation_id, role, content, now)
        row = {
            "id": message.id,
            "conversation_id": conversation_id,
            "role": role,
            "content": content,
            "created_at": now,
        }
        await self._write([(_INSERT_MESSAGE, row), (_TOUCH_CONVERSATION, {"conversation": conversation_id, "at": now})])
        return message

    async def messages(self, conversation_id: str, *, last: int | None = None) -> list[Message]:
        """The conversation's messages in order; only the `last` N if given."""
        query = select(messages).where(messages.c.conversation_id == conversation_id)
        if last is not None:
            query = query.order_by(messages.c.seq.desc()).limit(last)
        else:
            query = query.order_by(messages.c.seq)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        if last is not None:
            rows.reverse()
        return [
            Message(row.id, row.conversation_id, row.role, row.content, row.created_at)
            for row in rows  # the seq column stays inside
        ]

    async def clear_messages(self, conversation_id: str) -> int:
        async with self._writing() as conn:
            result = await conn.execute(delete(messages).where(messages.c.conversation_id == conversation_id))
        return result.rowcount or 0

    async def delete_conversation(self, profile: str, id: str) -> bool:
        async with self._writing() as conn:
            await conn.execute(delete(messages).where(messages.c.conversation_id == id))
            result = await conn.execute(
                delete(conversations).where(conversations.c.id == id, conversations.c.profile == profile)
            )
        return bool(result.rowcount)


# The hot writes, in the order a shared transaction runs them (a conversation before its messages).
_INSERT_CONVERSATION = insert(conversations)
_INSERT_MESSAGE = insert(messages)
_TOUCH_CONVERSATION = (
    update(conversations).where(conversations.c.id == bindparam("conversation")).values(updated_at=bindparam("at"))
)
_GROUPED = (_INSERT_CONVERSATION, _INSERT_MESSAGE, _TOUCH_CONVERSATION)

_CREATE_TABLES_LOCK = 0x7E7E_5E55  # an arbitrary advisory-lock id of create_tables

_ASYNC_DRIVERS = {"postgres": "postgresql+asyncpg", "postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}


def async_driver_url(url: str) -> str:
    """`postgresql://...` (as DATABASE_URL is usually written) -> `postgresql+asyncpg://...`; same for SQLite."""
    scheme, sep, rest = url.partition("://")
    return f"{_ASYNC_DRIVERS.get(scheme, scheme)}{sep}{rest}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
