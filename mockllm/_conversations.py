"""The conversations the mock keeps when it plays a contract's agent: history by id, and the messages
posted for a stream still to be opened.

An agent behind a proxy holds each conversation's turns and sends them to its LLM with the new
message; the mock, in that agent's place, keeps them here so the journal shows what the agent would
have asked (and the conformance suite judges whether the proxy carried the conversation id from turn
to turn). Ids are UUIDs drawn from the request's seed and the number of conversations that request
has made before, so a fresh server with the same seed makes the same ids (same bytes), and two equal
requests still make two conversations. State at the edge: only the server's contract routes use it.

Every operation names a conversation by id and hands back copies, never a live object, so the same
operations can be served from another process: the workers of `mockllm serve --workers N` use
`RemoteConversations`, each call a round trip to the supervisor, which keeps the one `Conversations`
they all see (a conversation's turns may land on different workers).
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from ._request import Message

Conversation = tuple[str, tuple[Message, ...]]  # an id and its messages, as they were when asked
_LENGTH = struct.Struct("!I")


def seeded_uuid(seed: int, purpose: str, n: int = 0) -> str:
    """A version-4 UUID from a request's seed: the same seed, purpose and count, the same id."""
    bits = random.Random(f"{seed}:{purpose}:{n}").getrandbits(128)
    return str(uuid.UUID(int=bits, version=4))


class Conversations:
    """Every conversation by id, and the pending streams: (variable, value) -> the conversation whose
    latest user message that stream answers (a two-call profile: message first, stream after)."""

    def __init__(self) -> None:
        self._by_id: dict[str, list[Message]] = {}
        self._pending: dict[tuple[str, str], str] = {}
        self._made: Counter[tuple[int, str]] = Counter()

    def new_id(self, seed: int, purpose: str) -> str:
        """A fresh id for `purpose` (a conversation, a stream session) from the request's seed."""
        key = (seed, purpose)
        while True:
            candidate = seeded_uuid(seed, purpose, self._made[key])
            self._made[key] += 1
            if candidate not in self._by_id:
                return candidate

    def open(self, conversation_id: str) -> None:
        """Make the conversation of this id, empty, if it is new."""
        self._by_id.setdefault(conversation_id, [])

    def messages(self, conversation_id: str) -> tuple[Message, ...] | None:
        """The conversation's messages; None if there is no conversation of this id."""
        found = self._by_id.get(conversation_id)
        return None if found is None else tuple(found)

    def append(self, conversation_id: str, message: Message) -> int:
        """Add a message (the conversation is made if new); its index."""
        found = self._by_id.setdefault(conversation_id, [])
        found.append(message)
        return len(found) - 1

    def clear_messages(self, conversation_id: str) -> None:
        found = self._by_id.get(conversation_id)
        if found is not None:
            found.clear()

    def drop_answer(self, conversation_id: str, at: int) -> None:
        """Remove the assistant message at `at` (one the client did not get whole), if it is still there."""
        found = self._by_id.get(conversation_id)
        if found is not None and at < len(found) and found[at].role == "assistant":
            del found[at]

    def expect_stream(self, variable: str, value: str, conversation_id: str) -> None:
        """A message was posted: the stream call that names `variable=value` will answer it."""
        self._pending[(variable, value)] = conversation_id

    def waiting(self, variable: str, value: str) -> Conversation | None:
        """The conversation a stream call would answer, left waiting (the request may yet be refused)."""
        conversation_id = self._pending.get((variable, value))
        found = None if conversation_id is None else self._by_id.get(conversation_id)
        return None if found is None or conversation_id is None else (conversation_id, tuple(found))

    def take_stream(self, variable: str, value: str) -> str | None:
        """The id of the conversation a stream call answers, once: a second stream of it finds none."""
        conversation_id = self._pending.pop((variable, value), None)
        return conversation_id if conversation_id in self._by_id else None

    def clear(self) -> None:
        self._by_id.clear()
        self._pending.clear()
        self._made.clear()

    # -- served to other processes ----------------------------------------------------------------

    def serve(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer a `RemoteConversations` call: {"op": NAME, "args": [...]} -> {"result": ...}."""
        operation = _OPERATIONS.get(request.get("op", ""))
        if operation is None:
            return {"error": f"no conversation operation {request.get('op')!r}"}
        args = [_message(arg) if isinstance(arg, dict) else arg for arg in request.get("args", ())]
        return {"result": _plain(operation(self, *args))}


_OPERATIONS: dict[str, Callable[..., Any]] = {
    name: getattr(Conversations, name)
    for name in (
        "new_id", "open", "messages", "append", "clear_messages", "drop_answer", "expect_stream", "waiting",
        "take_stream", "clear",
    )
}  # fmt: skip


def _plain(value: Any) -> Any:
    """A result as JSON: messages as {role, content}."""
    if isinstance(value, Message):
        return {"role": value.role, "content": value.content}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def _message(value: dict[str, Any]) -> Message:
    return Message(value["role"], value["content"])


def send_frame(sock: socket.socket, value: Any) -> None:
    """One length-prefixed JSON frame, blocking."""
    data = json.dumps(value, ensure_ascii=False).encode()
    sock.sendall(_LENGTH.pack(len(data)) + data)


def receive_frame(sock: socket.socket) -> Any:
    """One length-prefixed JSON frame, blocking; ConnectionError if the peer closed."""
    size = _LENGTH.unpack(_receive_exactly(sock, _LENGTH.size))[0]
    return json.loads(_receive_exactly(sock, size))


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(left)
        if not chunk:
            raise ConnectionError("the conversation store closed its socket")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class RemoteConversations(Conversations):
    """The same operations, each a blocking round trip over `sock` to the process that keeps the
    conversations (a few tens of microseconds; a contract request makes a handful)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self._lock = threading.Lock()  # one call at a time on the socket

    def _call(self, op: str, *args: Any) -> Any:
        with self._lock:
            send_frame(self._sock, {"op": op, "args": [_plain(arg) for arg in args]})
            reply = receive_frame(self._sock)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply["result"]

    def new_id(self, seed: int, purpose: str) -> str:
        return str(self._call("new_id", seed, purpose))

    def open(self, conversation_id: str) -> None:
        self._call("open", conversation_id)

    def messages(self, conversation_id: str) -> tuple[Message, ...] | None:
        found = self._call("messages", conversation_id)
        return None if found is None else tuple(_message(m) for m in found)

    def append(self, conversation_id: str, message: Message) -> int:
        return int(self._call("append", conversation_id, message))

    def clear_messages(self, conversation_id: str) -> None:
        self._call("clear_messages", conversation_id)

    def drop_answer(self, conversation_id: str, at: int) -> None:
        self._call("drop_answer", conversation_id, at)

    def expect_stream(self, variable: str, value: str, conversation_id: str) -> None:
        self._call("expect_stream", variable, value, conversation_id)

    def waiting(self, variable: str, value: str) -> Conversation | None:
        found = self._call("waiting", variable, value)
        return None if found is None else (found[0], tuple(_message(m) for m in found[1]))

    def take_stream(self, variable: str, value: str) -> str | None:
        found = self._call("take_stream", variable, value)
        return None if found is None else str(found)

    def clear(self) -> None:
        self._call("clear")
