"""Group commit: the writes that arrive while a SQLite transaction runs go out together in the next.

SQLite has one writer, and through aiosqlite every statement is a hop to the driver's thread: a
burst of turns ending at once — an abort storm, thousands of clients leaving mid-stream, each turn
stored as it was cut — queued its writes one transaction and two statements each (about 1,000
messages a second here), and the request tasks waiting on them piled up until the server shed load
with 503. Here a write is a list of steps, each a statement of `order` with its parameters; the
first write starts a flush, and every write queued while that transaction runs goes in the next,
up to `MAX_BATCH`: one `executemany` per statement, in `order` (conversations before the messages
that refer to them), one commit. A caller's await returns once its write is committed, so nothing
is answered before it is durable, and a caller cancelled meanwhile does not take its write back.
When a batch fails (a key already taken), it is rolled back and each of its writes is done again
alone, so only its own caller sees its error. A task's writes stay in order (each awaits the one
before); the writes of different tasks keep the order they were queued in, statement by statement.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.ext.asyncio import AsyncConnection

Step = tuple[Executable, dict[str, Any]]
Begin = Callable[[], AbstractAsyncContextManager[AsyncConnection]]

MAX_BATCH = 512  # writes in one transaction at most: a bound on how long one commit holds the writer


class GroupCommit:
    """Runs writes made of `order`'s statements in shared transactions opened by `begin`."""

    def __init__(self, begin: Begin, order: Sequence[Executable]) -> None:
        self._begin = begin
        self._order = tuple(order)
        self._pending: list[tuple[Sequence[Step], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def run(self, steps: Sequence[Step]) -> None:
        """Write `steps` in the next transaction; returns once it is committed."""
        unknown = [statement for statement, _ in steps if statement not in self._order]
        if unknown:
            raise ValueError(f"not a statement of this group commit: {unknown[0]}")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((steps, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        await done

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                await self._write([steps for steps, _ in batch])
            except Exception:
                for steps, done in batch:  # each alone: only the failing write's caller sees its error
                    try:
                        await self._write([steps])
                    except Exception as err:
                        _settle(done, err)
                    else:
                        _settle(done, None)
                continue
            for _, done in batch:
                _settle(done, None)

    async def _write(self, writes: Sequence[Sequence[Step]]) -> None:
        async with self._begin() as conn:
            for statement in self._order:
                rows = [params for steps in writes for step, params in steps if step is statement]
                if rows:
                    await conn.execute(statement, rows)


def _settle(done: asyncio.Future[None], error: Exception | None) -> None:
    if done.done():  # its caller was cancelled: the write stands, nobody waits for word of it
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
