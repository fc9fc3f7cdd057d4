"""`conversations` (seed 001): JWT-owned conversations, a POST stream of raw LLM chunks.

Stream grammar `chunk* (done | error)`: `data: {"content": TEXT}` per LLM chunk (the client
concatenates them as they are), then `data: [DONE]`; a failure is `data: {"error": MESSAGE}` and the
end. The LLM gets the whole conversation, the system prompt folded into the first user turn as the
seed's Gemini adapter does (Gemini has no system role in a chat history).

Choices where the contract is silent:
- Auth (401) is checked before anything else, the body included; on `POST /chat/stream` the rate
  limit (per user) comes next, before the body is read, as the seed's throttler guard would: a
  refused request of any kind counts toward it.
- `title`: 1 to 200 characters, not only whitespace. `message`: 1 to `message_max_chars` characters
  (not empty, as the seed's `@IsNotEmpty`; the upper limit is this server's own, the contract states
  none). Unknown body fields are rejected (400), as elsewhere in this server.
- Another user's conversation and an unknown one get the same 404, so ids do not leak.
- No endpoint lists conversations or reads their messages back: the seed exposes none. What was
  stored shows in the next turn's request to the LLM, which carries the whole conversation.
- An LLM failure keeps the user message (it was stored before the call) and stores no assistant
  message; the next turn sends both user messages.
- A comment line (`: keep-alive`) goes out whenever the LLM is silent for `heartbeat_s`, as the
  contract recommends (the seed sends none); clients skip comments.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Request, post
from litestar.connection import ASGIConnection
from litestar.exceptions import NotFoundException, ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.params import JSONBody
from litestar.response import Stream

from .._body import NOT_BLANK
from .._chat import Answer, ChatCore
from .._sse_encoder import DONE, data_event, event_stream, text_event, with_heartbeats
from .._store import iso
from ._adapter import ContractAdapter

NAME = "conversations"
TITLE_MAX_CHARS = 200
content_event = text_event({}, "content")  # the per-token event, templated once
HEARTBEAT = b": keep-alive\n\n"


class ConversationBody(msgspec.Struct, forbid_unknown_fields=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=TITLE_MAX_CHARS, pattern=NOT_BLANK)]


class StreamBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    conversation_id: uuid.UUID
    message: Annotated[str, msgspec.Meta(min_length=1)]


def fold_system(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The messages without system turns, their text put in front of the first user turn (as the seed does)."""
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    rest = [m for m in messages if m["role"] != "system"]
    if not system:
        return rest
    if rest and rest[0]["role"] == "user":
        return [{"role": "user", "content": f"{system}\n\n{rest[0]['content']}"}, *rest[1:]]
    return [{"role": "user", "content": system}, *rest]


def invalid(key: str, message: str) -> ValidationException:
    return ValidationException(detail=f"{key}: {message}", extra=[{"key": key, "message": message}])


def handlers(core: ChatCore) -> list[Any]:
    settings, store = core.settings, core.store
    model = settings.default_model

    user_of = core.auth.user
    authenticated = core.auth.guard()

    async def rate_limited(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        await core.limits.check(NAME, user_of(connection))

    @post("/chat/conversation", status_code=201, guards=[authenticated])
    async def create_conversation(data: JSONBody[ConversationBody], request: Request) -> dict[str, Any]:
        if not data.title.strip():
            raise invalid("title", "must not be only whitespace")
        user = user_of(request)
        row = await store.create_conversation(NAME, owner=user, title=data.title)
        return {
            "id": row.id,
            "title": row.title,
            "userId": row.owner,
            "createdAt": iso(row.created_at),
            "updatedAt": iso(row.updated_at),
        }

    @post(
        "/chat/stream",
        status_code=200,
        guards=[authenticated, rate_limited],
        opt={"refusals": (404,), "rate_limited": True},
    )
    async def stream_message(data: JSONBody[StreamBody], request: Request) -> Stream:
        if len(data.message) > settings.message_max_chars:
            raise invalid("message", f"at most {settings.message_max_chars} characters, got {len(data.message)}")
        conversation_id = str(data.conversation_id)
        conversation = await store.conversation(NAME, conversation_id)
        if conversation is None or conversation.owner != user_of(request):
            raise NotFoundException(f"no conversation {conversation_id}")
        await store.add_message(conversation_id, "user", data.message)
        messages = fold_system(await core.llm_messages(conversation_id))

        async def events() -> AsyncIterator[bytes]:
            answer = Answer()
            async for chunk in core.answer(conversation_id, model, messages, answer):
                yield content_event(chunk)
            if answer.outcome == "completed":
                yield DONE
            else:
                yield data_event({"error": answer.error or "the LLM failed"})

        return event_stream(with_heartbeats(events(), settings.heartbeat_s, lambda: HEARTBEAT))

    return [create_conversation, stream_message]


ADAPTER = ContractAdapter(NAME, "JWT-owned conversations, POST stream of raw LLM chunks", handlers)
