"""The control channel between the supervisor of `mockllm serve --workers N` and each worker: JSON
frames, each prefixed by its length, over a Unix socket pair, in both directions, on the loop the
process already runs.

Either side may call the other and await the reply (a worker hands the supervisor an admin call;
the supervisor asks every worker to apply it, or for its journal) or send a note that wants none
(a worker's `refuse` fault). A call is answered in a task of its own, so a worker can answer the
supervisor while it awaits the supervisor's answer to its own call. Only admin calls and once-a-
request notes travel here, never anything per token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from ._wire import HttpResponse

_LENGTH = struct.Struct("!I")
Message = dict[str, Any]
Answer = Callable[[Message], Awaitable[Message | None]]


class ChannelClosed(ConnectionError):
    """The process at the other end has gone."""


class CallFailed(RuntimeError):
    """The other end failed to answer a call (a bug there); the message is its error."""


class Channel:
    """One end of a control connection: `call` and `note` the other end, answer its calls with `answer`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer: Answer) -> None:
        self._reader = reader
        self._writer = writer
        self._answer = answer
        self._calls = 0
        self._waiting: dict[int, asyncio.Future[Message]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed = False

    @classmethod
    async def over(cls, sock: Any, answer: Answer) -> Channel:
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer, answer)

    async def call(self, message: Message) -> Message:
        """Send `message`, return the other end's reply; ChannelClosed if it goes first."""
        if self.closed:
            raise ChannelClosed("the control channel is closed")
        self._calls += 1
        number = self._calls
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[number] = future
        self._send({"call": number, **message})
        try:
            return await future
        finally:
            self._waiting.pop(number, None)

    def note(self, message: Message) -> None:
        """Send `message`; no reply. Dropped if the channel is closed."""
        if not self.closed:
            self._send(message)

    def _send(self, message: Message) -> None:
        data = json.dumps(message, ensure_ascii=False).encode()
        self._writer.write(_LENGTH.pack(len(data)) + data)

    async def run(self) -> None:
        """Read until the other end closes: replies resolve calls, calls and notes are answered."""
        try:
            while True:
                head = await self._reader.readexactly(_LENGTH.size)
                message = json.loads(await self._reader.readexactly(_LENGTH.unpack(head)[0]))
                if "reply" in message:
                    future = self._waiting.get(message.pop("reply"))
                    if future is None or future.done():
                        continue
                    if "failed" in message:
                        future.set_exception(CallFailed(str(message["failed"])))
                    else:
                        future.set_result(message)
                    continue
                task = asyncio.get_running_loop().create_task(self._respond(message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.closed = True
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(ChannelClosed("the other process closed the control channel"))
            self._writer.close()

    async def _respond(self, message: Message) -> None:
        number = message.pop("call", None)
        try:
            reply = await self._answer(message)
        except Exception as err:  # a bug: the caller hears of it rather than waiting forever
            reply = {"failed": f"{type(err).__name__}: {err}"[:1000]}
            if number is None:
                raise
        if number is not None and not self.closed:
            with contextlib.suppress(ConnectionError):
                self._send({"reply": number, **(reply or {})})

    def close(self) -> None:
        self.closed = True
        self._writer.close()


def response_message(response: HttpResponse) -> Message:
    """An HTTP response as a JSON-ready message (its body as latin-1 text: any bytes round-trip)."""
    return {
        "status": response.status,
        "headers": [list(header) for header in response.headers],
        "body": response.body.decode("latin-1"),
    }


def message_response(message: Message) -> HttpResponse:
    return HttpResponse(
        int(message["status"]),
        tuple((str(name), str(value)) for name, value in message["headers"]),
        str(message["body"]).encode("latin-1"),
    )
