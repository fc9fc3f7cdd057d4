"""Contract-stream mode at the edge: the mock as the agent behind a proxy, serving a contract
profile's calls (`contract: sessions` in the config, `--contract sessions` on the command line).

The profile's stream and send calls are chat routes, each a `ContractEndpoint` that the server's
chat path serves like any dialect: planned from the same config and seed as the LLM dialects (same
seed, same bytes, same delays), faulted the same ways (header, `when` schedules, armed faults matched
on the prompt), journalled and measured. Its other calls (open a conversation, post a message, read
the history, delete, health) are answered at once from the profile's `answer:` and `capture:` rules
by `ContractService`, which keeps the conversations (`_conversations`): the history the mock as
agent sends its "LLM" with each new message is what the journal shows as that request's `messages`.

A conversation changes when a request is planned, never when it is refused (a 4xx, or an HTTP or
reset fault before the stream): the user message and the answer are kept then, and the answer
dropped again when the client did not get it whole (any outcome but `completed`).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from contracts import Call as ProfileCall

from ._config import MockConfig
from ._contract import ContractSpec, Served, answer_body, choose_call, request_variables
from ._contract_events import Values, set_path
from ._contract_frames import stream_frames, words_of
from ._conversations import Conversation, Conversations
from ._errors import RequestError
from ._journal import ContractBody
from ._jsonbytes import dumps
from ._plan import Plan
from ._request import ChatRequest, Message, overrides_from_headers, request_seed
from ._wire import HttpResponse, StreamFrames
from .dialects import Call, Encoding, Endpoint, Route
from .dialects._base import HOOKS

JSON = (("content-type", "application/json"),)
STREAM_HEADERS = (
    ("content-type", "text/event-stream; charset=utf-8"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
)
_REFUSED_BEFORE = frozenset({"http", "reset", "refuse"})  # faults that end a request before its stream
_WHOLE = frozenset({None, "fragment", "pause"})  # effects after which the client has the whole answer
_HTTP_ERRORS = {
    429: "rate limit reached; retry later",
    500: "the agent failed; try again",
    502: "the agent's model is unreachable",
    503: "the agent is overloaded; retry later",
    504: "the agent's model timed out",
}


def timestamp(seed: int) -> str:
    """An ISO 8601 time from the request's seed, as the LLM dialects' `created` is."""
    return datetime.fromtimestamp(1_700_000_000 + seed % 100_000_000, UTC).isoformat()


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def error_response(status: int, message: str | None = None, retry_after: float | None = None) -> HttpResponse:
    """A JSON error body that names the problem, as contracts.md asks of bad input."""
    text = message or _HTTP_ERRORS.get(status) or ("the agent failed" if status >= 500 else "the request was refused")
    headers = JSON
    if retry_after is not None or status in (429, 503):
        wait = 1.0 if retry_after is None else retry_after
        headers = (*JSON, ("retry-after", str(int(wait)) if wait == int(wait) else f"{wait:g}"))
    return HttpResponse(status, headers, dumps({"error": text}))


class ContractService:
    """One server's contract: its routes, and the conversations its agent keeps."""

    def __init__(
        self, spec: ContractSpec, config: Callable[[], MockConfig], conversations: Conversations | None = None
    ) -> None:
        self.spec = spec
        self.name = f"contract:{spec.name}"
        self.conversations = conversations if conversations is not None else Conversations()
        self._config = config

    def routes(self) -> list[tuple[Route[Endpoint | None], ContractEndpoint | None]]:
        """Each served method and path: a chat route with its endpoint, or one answered at once."""
        out: list[tuple[Route[Endpoint | None], ContractEndpoint | None]] = []
        for served in self.spec.served:
            if served.role in ("stream", "send"):
                out.append((Route(served.method, served.path), ContractEndpoint(self, served)))
            else:
                out.append((Route(served.method, served.path, self._answerer(served)), None))
        return out

    # -- shared by the endpoints ------------------------------------------------------------------

    def variables(self, served: Served, call: Call) -> tuple[dict[str, Any], ProfileCall]:
        """The request's variables and the profile call that reads them; RequestError if it is not JSON."""
        body = None
        if any(c.json is not None for _, c in served.calls) and call.body:
            body = call.json_object()
        variables = {}
        for _, profile_call in served.calls:
            variables.update(request_variables(profile_call, call.path_params, call.query, body))
        _, chosen = choose_call(served, variables)
        return variables, chosen

    def message(self, variables: Mapping[str, Any]) -> str:
        message = variables.get("message")
        if not isinstance(message, str):
            got = "nothing" if message is None else type(message).__name__
            raise RequestError("message", f"the message ({self.spec.message_at}) must be a string; got {got}")
        return message

    def known(self, conversation_id: Any, *, create: bool) -> str:
        """The id of a known conversation; an unknown one is made when `create` and the profile lets
        clients choose ids, else a 404."""
        wanted = str(conversation_id)
        if self.conversations.messages(wanted) is not None:
            return wanted
        if create and self.spec.client_ids:
            self.conversations.open(wanted)
            return wanted
        raise RequestError("conversation", f"no conversation {str(conversation_id)!r}", status=404)

    def history(self, conversation_id: Any) -> tuple[Message, ...]:
        """The history a message under this id continues: none for an id the profile lets a client
        choose (the conversation is made once the request is planned), a 404 for another unknown id."""
        found = self.conversations.messages(str(conversation_id))
        if found is not None:
            return found
        if self.spec.client_ids:
            return ()
        raise RequestError("conversation", f"no conversation {str(conversation_id)!r}", status=404)

    def model(self, variables: Mapping[str, Any]) -> str:
        model = variables.get("model")
        return model if isinstance(model, str) and model else self._config().models[0]

    def values(self, seed: int, model: str, conversation: str | None, **extra: Any) -> Values:
        ident = conversation if conversation and _is_uuid(conversation) else None
        return Values(model, timestamp(seed), ident or str(uuid.UUID(int=seed << 64 | seed, version=4)), **extra)

    def error(
        self,
        status: int,
        message: str | None = None,
        *,
        param: str | None = None,
        retry_after: float | None = None,
        call: Call | None = None,
    ) -> HttpResponse:
        """An error in the contract's shape, as its endpoints answer one (a dialect's `error`)."""
        return error_response(status, message, retry_after)

    # -- answered at once ---------------------------------------------------------------------------

    def _answerer(self, served: Served) -> Endpoint:
        def answer(call: Call, config: MockConfig) -> HttpResponse:
            try:
                return self._answer(served, call, config)
            except RequestError as err:
                return error_response(err.status, err.message)

        return answer

    def _answer(self, served: Served, call: Call, config: MockConfig) -> HttpResponse:
        variables, chosen = self.variables(served, call)
        operation = next(op for op, c in served.calls if c is chosen)
        seed = config.seed
        conversations = self.conversations
        conversation: str | None = None
        if served.role == "message":
            message = self.message(variables)
            model = self.model(variables)
            seed = request_seed(config.seed, ChatRequest(model, (Message("user", message),)))
            if "conversation" in variables:
                conversation = self.known(variables["conversation"], create=True)
            else:
                conversation = conversations.new_id(seed, "conversation")
            conversations.append(conversation, Message("user", message))
        elif "conversation" in variables:
            conversation = self.known(variables["conversation"], create=call.method not in ("GET", "DELETE"))
        if conversation is not None:
            variables["conversation"] = conversation
        for variable in chosen.capture:
            if variable not in variables:
                made = conversations.new_id(seed, variable)
                if variable == "conversation":
                    conversations.open(made)
                    conversation = made
                variables[variable] = made
        key = self.spec.stream_key
        if served.role == "message" and key is not None and conversation is not None:
            conversations.expect_stream(key, str(variables[key]), conversation)
        if call.method == "DELETE" and conversation is not None:
            conversations.clear_messages(conversation)
        values = self.values(seed, self.model(variables), conversation)
        items = None
        if served.role == "history" and conversation is not None:
            items = []
            for message in conversations.messages(conversation) or ():
                item: dict[str, Any] = {}
                set_path(item, operation.role_field, message.role)
                set_path(item, operation.content_field, message.content)
                items.append(item)
        body = answer_body(chosen, variables, values, items_at=operation.messages, items=items)
        status = chosen.preferred_status or chosen.status[0]
        return HttpResponse(status, JSON, dumps(body))


class ContractTurn:
    """One chat request of a contract: what it asked, and what the conversation keeps of it
    (`RequestHooks` for the server's chat path)."""

    def __init__(
        self,
        service: ContractService,
        served: Served,
        call: Call,
        variables: dict[str, Any],
        conversation: str | None,
        message: str | None,
        pending: tuple[str, str] | None,
    ) -> None:
        self.service = service
        self.served = served
        self.call = call
        self.variables = variables
        self.conversation = conversation  # None: a new one, named once the request's seed is known
        self.message = message  # None: posted earlier (a two-call profile), already in the history
        self.pending = pending  # (variable, value) of the posted message this stream answers
        self.messages: tuple[Message, ...] = ()
        self._kept: tuple[str, int] | None = None  # where the answer went in the history

    def planned(self, plan: Plan) -> tuple[Plan, dict[str, Any]]:
        service, spec = self.service, self.service.spec
        fault = plan.fault
        if fault is None or fault.effect not in _REFUSED_BEFORE:
            conversations = service.conversations
            if self.pending is not None:
                conversations.take_stream(*self.pending)
            conversation = str(self.variables["conversation"])
            conversations.open(conversation)
            if self.message is not None:
                conversations.append(conversation, Message("user", self.message))
            if fault is None or fault.effect in _WHOLE:
                self._kept = (conversation, conversations.append(conversation, Message("assistant", plan.answer)))
        if spec.stream.join == "words":
            words, offsets = words_of(plan.chunks, plan.offsets)
            plan = dataclasses.replace(plan, chunks=words, offsets=offsets)
        messages = [{"role": m.role, "content": m.content} for m in self.messages]
        return plan, {
            "contract": spec.name,
            "operation": self.served.operation.name,
            "conversation": self.variables["conversation"],
            "messages": messages,
            "body": ContractBody(self.call.body, messages),
        }

    def finished(self, outcome: str) -> None:
        if outcome != "completed" and self._kept is not None:
            conversation, at = self._kept
            # the client did not get it whole: not a turn of the conversation
            self.service.conversations.drop_answer(conversation, at)
            self._kept = None


class ContractEndpoint:
    """A contract's stream or send call as a dialect of the server's chat path."""

    load_profile = None
    probe = None
    tool_call_prefix = ""  # a contract's stream carries no tool calls
    stream_headers = STREAM_HEADERS

    def __init__(self, service: ContractService, served: Served) -> None:
        self.service = service
        self.served = served
        self.name = service.name
        self.routes = (Route(served.method, served.path),)

    def parse(self, call: Call) -> tuple[ChatRequest, Mapping[str, Any]]:
        service, spec = self.service, self.service.spec
        variables, _ = service.variables(self.served, call)
        streamed = self.served.role == "stream"
        overrides = overrides_from_headers(call.headers)
        pending = None
        if streamed and spec.stream_key is not None:
            key = spec.stream_key
            if key not in variables:
                raise RequestError(key, f"the stream call names no {key}")
            conversation, history = self._posted(key, str(variables[key]))
            variables.setdefault("conversation", conversation)
            pending, message = (key, str(variables[key])), None
            messages = history
            given: str | None = conversation
        else:
            message = service.message(variables)
            given = variables.get("conversation")
            history = service.history(given) if given is not None else ()
            messages = (*history, Message("user", message))
        chat = ChatRequest(service.model(variables), messages, stream=streamed, overrides=overrides)
        if given is None:  # a new conversation: its id from the request's seed
            seed = request_seed(service._config().seed, chat)
            given = service.conversations.new_id(seed, "conversation")
        variables["conversation"] = str(given)
        turn = ContractTurn(service, self.served, call, variables, str(given), message, pending)
        turn.messages = messages
        return chat, {HOOKS: turn}

    def _posted(self, key: str, value: str) -> Conversation:
        """The conversation whose posted message this stream answers (taken once the stream is planned)."""
        found = self.service.conversations.waiting(key, value)
        if found is None:
            problem = f"no message is waiting for {key} {value!r} (unknown, or streamed already)"
            raise RequestError(key, problem, status=404)
        return found

    def _values(self, plan: Plan, enc: Encoding, texts: tuple[str, ...]) -> Values:
        turn: ContractTurn = enc.options[HOOKS]
        stream = self.service.spec.stream
        joined = stream.join_text(list(texts))
        tokens = plan.completion_tokens
        return self.service.values(plan.seed, enc.request.model, turn.conversation, tokens=tokens, joined=joined)

    def stream_frames(self, plan: Plan, enc: Encoding) -> StreamFrames:
        turn: ContractTurn = enc.options[HOOKS]
        spec = self.service.spec
        return stream_frames(spec.stream, spec.kinds, plan.chunks, self._values(plan, enc, plan.chunks), turn.variables)

    def response(self, plan: Plan, enc: Encoding) -> HttpResponse:
        turn: ContractTurn = enc.options[HOOKS]
        operation, call = self.served.operation, self.served.call
        values = self._values(plan, enc, plan.chunks)
        body = answer_body(call, turn.variables, values, text_at=operation.text, text=plan.answer)
        return HttpResponse(call.preferred_status or call.status[0], JSON, dumps(body))

    def error(
        self,
        status: int,
        message: str | None = None,
        *,
        param: str | None = None,
        retry_after: float | None = None,
        call: Call | None = None,
    ) -> HttpResponse:
        return self.service.error(status, message, retry_after=retry_after)

    def text_of(self, event: str | None, payload: dict[str, Any]) -> str | None:
        stream = self.service.spec.stream
        kind = payload.get(stream.kind_field) if stream.kind_field else None
        text = payload.get(stream.text_field)
        return text if isinstance(text, str) and (kind is None or kind in stream.text_kinds) else None
