"""`query-stream` (seed 003): GET streaming with query parameters under `/api/v1`, JWT bearer on every call.

Stream grammar `conversationId token* (complete | error)`; `token` texts are concatenated as they are.
The LLM gets the last `history_limit` (10) stored messages of the conversation, then the new one.
Choices where the contract is silent:
- The token is read from `Authorization: Bearer` only (a query `access_token` is not a credential here),
  checked before the parameters and the body are read: a call without a valid token is 401 whatever it sends.
- Ids are UUIDs in the 8-4-4-4-12 hex form (any case; the project list is compared case-insensitively).
  A malformed or missing `projectId`, a malformed `conversationId`, a missing or blank `message`, or one
  over `message_max_chars` is 400; a well-formed but unknown `conversationId`, or another user's, is 404
  (as an unknown project is), so a client cannot probe for other users' conversations.
- A conversation belongs to its user, not to a project: it may be continued under any known project.
- A conversation is made only once the request is valid. Its row is written beside the LLM call, not
  before it: once the first token has gone out (or when the answer ends, if none came), so that no
  database work stands between the request and its first token. A request that names it meanwhile
  starts that write if it has not begun and waits for it: a client that stops the stream and at once
  sends the next message with the id it was given continues the conversation, never a 404.
  The turn is stored when the answer ends, as the seed does: the user message (dated when it was asked),
  then the assistant message: whole when complete, what was streamed when the client leaves (stop
  button), nothing when the LLM fails (the user message is stored all the same).
- `POST /api/v1/ai/chat` answers 502 (the gateway's upstream failed) when the LLM fails; its `metadata`
  is `{"model", "conversationId", "timestamp"}`. Unknown body fields are rejected (400).
- Until the last token the stream carries a comment line (`: heartbeat`) every `heartbeat_s` (a slow LLM
  must not look like a dead stream to a proxy); to an SSE client a comment is not an event.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, get, post
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.params import JSONBody, QueryParameter
from litestar.response import Stream

from .._body import NOT_BLANK
from .._chat import Answer, ChatCore, reply
from .._sse_encoder import data_event, event_stream, text_event, with_heartbeats
from .._store import iso, utc_now
from ._adapter import ContractAdapter

NAME = "query-stream"
PREFIX = "/api/v1"
UUID_FORM = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
token_event = text_event({"type": "token"}, "content")  # the per-token event, templated once
HEARTBEAT = b": heartbeat\n\n"


# Declared optional so that a missing one is this profile's 400, not the framework's; documented in OpenAPI.
ProjectIdQuery = Annotated[str | None, QueryParameter(name="projectId", description="the project's UUID (required)")]
MessageQuery = Annotated[
    str | None,
    QueryParameter(description="the user's message (required; at most 2000 characters by default)", pattern=NOT_BLANK),
]
ConversationIdQuery = Annotated[
    str | None, QueryParameter(name="conversationId", description="a conversation's UUID; none: a new conversation")
]


class ChatBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    project_id: str
    message: Annotated[str, msgspec.Meta(pattern=NOT_BLANK)]
    conversation_id: str | None = None


def invalid(key: str, message: str) -> ValidationException:
    return ValidationException(detail=f"{key}: {message}", extra=[{"key": key, "message": message}])


def uuid_param(key: str, value: str | None, *, required: bool) -> str | None:
    """The id in canonical (lower-case) form; 400 if it is missing (when required) or not a UUID."""
    if value is None:
        if required:
            raise invalid(key, "required")
        return None
    if not UUID_FORM.fullmatch(value):
        raise invalid(key, f"must be a UUID, got {value[:80]!r}")
    return value.lower()


def handlers(core: ChatCore) -> list[Any]:
    settings, store = core.settings, core.store
    model = settings.default_model
    projects = {project.lower() for project in settings.projects}

    authenticated = core.auth.guard()
    creating: dict[str, Callable[[], asyncio.Task[Any]]] = {}  # new conversations whose row is not yet written

    def create(conversation_id: str, user: str, at: datetime) -> Callable[[], asyncio.Task[Any]]:
        """A new conversation, its row not yet written: the function returned starts the write at
        its first call and gives the write's task at every call."""
        task: asyncio.Task[Any] | None = None

        def write() -> asyncio.Task[Any]:
            nonlocal task
            if task is None:
                task = asyncio.ensure_future(store.create_conversation(NAME, owner=user, id=conversation_id, at=at))
                task.add_done_callback(lambda _: creating.pop(conversation_id, None))
            return task

        creating[conversation_id] = write
        return write

    async def turn(
        user: str, project_id: str | None, message: str | None, conversation_id: str | None
    ) -> tuple[str, list[dict[str, str]], Callable[[], Awaitable[None]], Callable[[], asyncio.Task[Any]] | None]:
        """Validate a chat request: (conversation id, messages for the LLM, the turn's deferred writes,
        and for a new conversation the function that starts its row's write, else None).

        The turn is stored when the answer ends, as the seed does ("saves complete messages to
        database after streaming"); a new conversation's row is written beside the LLM call."""
        project = uuid_param("projectId", project_id, required=True)
        conversation = uuid_param("conversationId", conversation_id, required=False)
        if message is None or not message.strip():
            raise invalid("message", "required and not blank")
        if len(message) > settings.message_max_chars:
            raise invalid("message", f"at most {settings.message_max_chars} characters, got {len(message)}")
        if project not in projects:
            raise NotFoundException(f"no project {project}")
        asked = utc_now()
        created: Callable[[], asyncio.Task[Any]] | None = None
        if conversation is None:
            conversation = str(uuid.uuid4())
            history = core.preamble()
            created = create(conversation, user, asked)
        else:
            if (pending := creating.get(conversation)) is not None:
                await asyncio.shield(pending())
            found = await store.conversation(NAME, conversation)
            if found is None or found.owner != user:
                raise NotFoundException(f"no conversation {conversation}")
            history = await core.llm_messages(conversation, last=settings.history_limit)
        conversation_id = conversation

        async def store_question() -> None:
            if created is not None:
                await created()
            await store.add_message(conversation_id, "user", message, at=asked)

        return conversation, [*history, {"role": "user", "content": message}], store_question, created

    @get("/ai/chat/stream", opt={"refusals": (404,)})
    async def chat_stream(
        request: Request,
        project_id: ProjectIdQuery = None,
        message: MessageQuery = None,
        conversation_id: ConversationIdQuery = None,
    ) -> Stream:
        conversation, messages, store_question, created = await turn(
            core.auth.user(request), project_id, message, conversation_id
        )

        async def tokens(answer: Answer) -> AsyncIterator[bytes]:
            write_row = created
            async with aclosing(core.answer(conversation, model, messages, answer, deferred=store_question)) as chunks:
                async for chunk in chunks:
                    yield token_event(chunk)
                    if write_row is not None:  # resumed for the next token: the first has been handed on
                        write_row()
                        write_row = None

        async def events() -> AsyncIterator[bytes]:
            yield data_event({"type": "conversationId", "conversationId": conversation})
            answer = Answer()
            # Heartbeats only while tokens may come: nothing but the terminal event follows the last token.
            async with aclosing(with_heartbeats(tokens(answer), settings.heartbeat_s, lambda: HEARTBEAT)) as body:
                async for event in body:
                    yield event
            if answer.outcome == "completed":
                metadata = {"model": model, "conversationId": conversation}
                yield data_event({"type": "complete", "timestamp": iso(utc_now()), "metadata": metadata})
            else:
                yield data_event({"type": "error", "message": answer.error or "the LLM failed"})

        return event_stream(events())

    @post("/ai/chat", status_code=200, opt={"refusals": (404, 502)})
    async def chat(data: JSONBody[ChatBody], request: Request) -> dict[str, Any]:
        conversation, messages, store_question, _ = await turn(
            core.auth.user(request), data.project_id, data.message, data.conversation_id
        )
        answer = await reply(core, conversation, model, messages, deferred=store_question)
        if answer.outcome != "completed":
            raise HTTPException(status_code=502, detail=f"the LLM failed: {answer.error}")
        return {
            "conversationId": conversation,
            "response": answer.text,
            "metadata": {"model": model, "conversationId": conversation, "timestamp": iso(utc_now())},
        }

    return [Router(PREFIX, route_handlers=[chat_stream, chat], guards=[authenticated])]


ADAPTER = ContractAdapter(NAME, "GET stream with query parameters under /api/v1, JWT bearer", handlers)
