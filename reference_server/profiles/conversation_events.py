"""`conversation-events` (seed 004): a conversation's answer as a stream of typed events with heartbeats.

Prefix `/api/v1/chat/conversations`; the JWT comes as `Authorization: Bearer` or as `?access_token=`
(a browser's EventSource cannot send headers), on every call. Every event is
`data: {"type", "timestamp", ...}` in the grammar
`connected heartbeat* (llm_chunk | heartbeat)* (llm_complete system? | error)`, with a heartbeat every
`heartbeat_s` while the LLM may still send, and `X-Accel-Buffering: no`.
Choices where the contract is silent:
- The token is checked before the path and the body are read. Conversation ids are UUIDs (8-4-4-4-12 hex,
  any case): a malformed id is 400; an unknown id, or another user's conversation, is 404.
- `GET /{id}/stream` answers the conversation's latest message if it is a user message not yet answered,
  with the whole conversation, in order, as the LLM's input. If the latest message is an answer (or there
  is none), it is 409 with a JSON body before any stream, which also stops a browser's EventSource from
  reconnecting. Two streams opened at once for one awaiting message would both answer it.
- The assistant message is stored once the answer is complete, just before `llm_complete` goes out (whose
  `messageId` names it), so a client that has seen `llm_complete` finds it in the next turn. A stream the
  client leaves, or that the LLM fails, stores no answer: the user message still awaits one, and opening
  the stream again answers it afresh.
- `system` follows `llm_complete` when the answer names a bet or odds as a word (`bet`, `bets`, `betting`,
  `odds`, any case; "better" or "alphabet" do not count): `{"message": "New bet recommendation available",
  "metadata": {"betId", "odds"}}`, `odds` being the first number after the word "odds" (else null).
- `error` is `{"message": "Failed to generate response", "error": <what the LLM did>}`, as in the seed.
- A new conversation's `title` is optional (1 to 200 characters); `content` is 1 to `message_max_chars`
  characters and not blank (both bounds this server's own: the contract states neither); unknown body
  fields are rejected (400). A user message may follow another one that awaits its answer: the stream
  then answers the latest, with both in the history.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.params import FromPath, JSONBody
from litestar.response import Stream

from .._body import NOT_BLANK
from .._chat import Answer, ChatCore
from .._sse_encoder import data_event, event_stream, with_heartbeats
from .._store import Conversation, iso, utc_now
from ._adapter import ContractAdapter

NAME = "conversation-events"
PREFIX = "/api/v1/chat/conversations"
UUID_FORM = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
BET_WORD = re.compile(r"\b(?:bets?|betting|odds)\b", re.IGNORECASE)
ODDS = re.compile(r"\bodds\b\D{0,30}?(\d+(?:\.\d+)?)", re.IGNORECASE)


class NewConversation(msgspec.Struct, forbid_unknown_fields=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None


class NewMessage(msgspec.Struct, forbid_unknown_fields=True):
    content: Annotated[str, msgspec.Meta(pattern=NOT_BLANK)]  # its length is a setting: checked by the handler


def event(kind: str, **fields: Any) -> bytes:
    return data_event({"type": kind, "timestamp": iso(utc_now()), **fields})


def bet_recommendation(text: str) -> dict[str, Any] | None:
    """The seed's `system` event payload if the answer names a bet or odds, else None."""
    if not BET_WORD.search(text):
        return None
    odds = ODDS.search(text)
    return {
        "message": "New bet recommendation available",
        "metadata": {"betId": f"bet-{uuid.uuid4()}", "odds": float(odds.group(1)) if odds else None},
    }


def conversation_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "title": conversation.title,
        "userId": conversation.owner,
        "createdAt": iso(conversation.created_at),
        "updatedAt": iso(conversation.updated_at),
    }


def handlers(core: ChatCore) -> list[Any]:
    settings, store = core.settings, core.store
    model = settings.default_model

    def user_of(connection: ASGIConnection) -> str:
        return core.auth.user(connection, query_token=True)

    authenticated = core.auth.guard(query_token=True)

    async def owned(request: Request, conversation_id: str) -> Conversation:
        """The caller's conversation `conversation_id`: 400 if the id is not a UUID, 404 if it is not theirs."""
        user = user_of(request)
        if not UUID_FORM.fullmatch(conversation_id):
            message = f"must be a UUID, got {conversation_id[:80]!r}"
            raise ValidationException(
                detail=f"conversationId: {message}", extra=[{"key": "conversationId", "message": message}]
            )
        found = await store.conversation(NAME, conversation_id.lower())
        if found is None or found.owner != user:
            raise NotFoundException(f"no conversation {conversation_id}")
        return found

    @post("/", status_code=201)
    async def create(request: Request, data: JSONBody[NewConversation | None] = None) -> dict[str, Any]:
        title = data.title if data else None
        return conversation_json(await store.create_conversation(NAME, owner=user_of(request), title=title))

    @post("/{conversation_id:str}/messages", status_code=201, opt={"refusals": (404,)})
    async def add_message(
        conversation_id: FromPath[str], data: JSONBody[NewMessage], request: Request
    ) -> dict[str, Any]:
        conversation = await owned(request, conversation_id)
        content = data.content
        problem = None
        if not content.strip():
            problem = "required and not blank"
        elif len(content) > settings.message_max_chars:
            problem = f"at most {settings.message_max_chars} characters, got {len(content)}"
        if problem:
            raise ValidationException(detail=f"content: {problem}", extra=[{"key": "content", "message": problem}])
        message = await store.add_message(conversation.id, "user", content)
        return {
            "id": message.id,
            "conversationId": conversation.id,
            "role": message.role,
            "content": message.content,
            "createdAt": iso(message.created_at),
        }

    @get("/{conversation_id:str}/stream", opt={"refusals": (404, 409)})
    async def stream(conversation_id: FromPath[str], request: Request) -> Stream:
        conversation = (await owned(request, conversation_id)).id
        messages = await core.llm_messages(conversation)
        if not messages or messages[-1]["role"] != "user":
            raise HTTPException(
                status_code=409, detail="no user message awaits an answer: POST one to /messages, then stream"
            )

        async def chunks(answer: Answer) -> AsyncIterator[bytes]:
            # store=False: this profile stores the answer itself, and only a complete one.
            async with aclosing(core.answer(conversation, model, messages, answer, store=False)) as text:
                async for chunk in text:
                    yield event("llm_chunk", content=chunk)

        async def events() -> AsyncIterator[bytes]:
            yield event("connected")
            answer = Answer()
            # Heartbeats only while the LLM may send: none may follow the terminal event.
            async with aclosing(
                with_heartbeats(chunks(answer), settings.heartbeat_s, lambda: event("heartbeat"))
            ) as body:
                async for item in body:
                    yield item
            if answer.outcome != "completed":
                yield event("error", message="Failed to generate response", error=answer.error or "the LLM failed")
                return
            stored = await store.add_message(conversation, "assistant", answer.text)
            yield event("llm_complete", content=answer.text, messageId=stored.id)
            bet = bet_recommendation(answer.text)
            if bet is not None:
                yield event("system", **bet)

        return event_stream(events())

    return [Router(PREFIX, route_handlers=[create, add_message, stream], guards=[authenticated])]


ADAPTER = ContractAdapter(NAME, "conversation stream of typed events with heartbeats, JWT header or query", handlers)
