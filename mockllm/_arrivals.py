"""Arrival work in bounded slices, so a burst of requests is read as it comes in.

A response's deadlines are anchored on the moment its request was read off the socket. When a
thousand requests arrive at once and each costs a few hundred microseconds to plan, planning them
back to back would leave the last ones unread (and their clocks unstarted) for a large fraction of
a second. Here every request's arrival work waits in one queue; a single task runs it in slices
of at most `budget_s`, giving the loop a turn to poll its sockets between two slices.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_BUDGET_S = 0.001


class ArrivalQueue:
    """Runs callables in arrival order, in time slices between which the loop polls its sockets."""

    def __init__(self, budget_s: float = DEFAULT_BUDGET_S) -> None:
        self._budget_s = budget_s
        self._pending: deque[tuple[asyncio.Future[Any], Callable[..., Any], tuple[Any, ...]]] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._waiting = 0

    @property
    def busy(self) -> bool:
        """Whether a caller is waiting for its work, queued or done but not yet resumed."""
        return self._waiting > 0

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """The result of `work(*args)`, run when its turn comes; its exception, if it raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending.append((future, work, args))
        if self._worker is None:
            self._worker = loop.create_task(self._drain())
        self._waiting += 1
        try:
            return await future
        finally:
            self._waiting -= 1

    async def _drain(self) -> None:
        pending, budget = self._pending, self._budget_s
        try:
            while pending:
                until = perf_counter() + budget
                while pending:
                    future, work, args = pending.popleft()
                    if not future.cancelled():  # its client left while it waited
                        try:
                            future.set_result(work(*args))
                        except Exception as err:
                            future.set_exception(err)
                    if perf_counter() >= until:
                        break
                await asyncio.sleep(0)  # the loop polls its sockets: new arrivals are read now
        finally:
            self._worker = None
