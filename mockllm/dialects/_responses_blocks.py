"""OpenAI Responses: the bytes of its response objects and output items, and a plan with blocks as
its stream of numbered events.

`_Objects` is the JSON of one request's response object (the fields that echo the request encoded
once per request shape, `_echoed`, cached) and output message; `_event`, `_part`, `_status` and
`_usage` are the pieces `openai_responses.OpenAIResponses` builds its plain text stream and answer
from. A plan with blocks (or with hidden reasoning only) is `_Items`: one output item per block,
each with its own `output_index`, and `sequence_number` running on through every event:

- text: a `message` item (`response.output_item.added`, `response.content_part.added`,
  `response.output_text.delta`..., `.done`, `response.content_part.done`, `response.output_item.done`);
- a tool call: a `function_call` item (`id` `fc_...`, `call_id` `call_...`, `name`, `arguments: ""`,
  `status: in_progress`), its arguments in `response.function_call_arguments.delta` pieces, then
  `response.function_call_arguments.done` and `response.output_item.done`; the response is completed;
- reasoning: a `reasoning` item (`rs_...`). It is visible only when `reasoning.summary` is set (auto,
  concise, detailed): `response.reasoning_summary_part.added`, `response.reasoning_summary_text.delta`
  pieces, `.done`, `response.reasoning_summary_part.done`. Without a summary the reasoning is hidden,
  as the API hides it: the item is added on arrival and done, with an empty summary, when the first
  visible token is due (a rule's reasoning block streams nothing for its time); redacted reasoning is
  an item with `encrypted_content`. `usage.output_tokens_details.reasoning_tokens` counts it all;
- structured output: the `message` text is the JSON instance, in pieces like any text.

`response.completed` carries every item as its `response.output_item.done` did. An in-band `error`
(and `response.failed`, with the items sent so far, the one cut short `incomplete`) and a malformed
event (a delta of the block being streamed, cut inside its JSON string) are numbered where the cut
falls, inside any block. The events are numbered once per response (`_NumberedBlockFrames`): per
chunk, only the sequence number and the text are encoded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from .._agent import Block
from .._jsonbytes import json_string
from .._plan import Plan
from .._wire import StreamFrames
from ._base import Encoding, dumps

_MESSAGE = "The server had an error while processing your request. Sorry about that!"
_ERROR_FIELDS = dumps({"code": "server_error", "message": _MESSAGE, "param": None})[1:-1]  # the `error` event's
_FAILED = dumps({"code": "server_error", "message": _MESSAGE})  # the failed response's `error`
_INCOMPLETE = b'{"reason":"max_output_tokens"}'
_DEFAULT_REASONING = {"effort": None, "summary": None}
_DEFAULT_TEXT = {"format": {"type": "text"}, "verbosity": "medium"}


Echo = tuple[
    str | None, int | None, float, float, bool, str | None, str | None, tuple[tuple[str, str], ...], str | None
]


class _Objects:
    """The JSON of one request's response objects and output message, in the API's field order.

    The fields that echo the request are encoded once per request shape (cached), so building a
    response object is a handful of concatenations around the status, output and usage.
    """

    __slots__ = ("_before_output", "_before_usage", "_end", "_head", "_message_head", "_offset")

    def __init__(self, enc: Encoding) -> None:
        ident = enc.ident.encode()
        self._head = b'{"id":"resp_%b","object":"response","created_at":%d,' % (ident, enc.created)
        self._message_head = b'{"id":"msg_%b","type":"message","status":"' % ident
        self._before_output, self._before_usage, self._end = _echoed(enc.request.model, enc.options["echo"])
        self._offset = enc.created

    def response(self, status: str, output: bytes, *, usage: bytes = b"null", error: bytes = b"null",
                 completed_at: bytes = b"null", incomplete: bytes = b"null") -> bytes:  # fmt: skip
        return b'%b"status":"%b","background":false,"completed_at":%b,"error":%b,"incomplete_details":%b%b%b%b%b%b' % (
            self._head, status.encode(), completed_at, error, incomplete,
            self._before_output, output, self._before_usage, usage, self._end,
        )  # fmt: skip

    def final(self, plan: Plan, status: str, output: bytes) -> bytes:
        """The finished response (`output`: its items' JSON array): completed, or incomplete when
        max_output_tokens cut the answer."""
        if status == "completed":
            return self.response(status, output, usage=_usage(plan),
                                 completed_at=b"%d" % (self._offset + round(plan.end_offset)))  # fmt: skip
        return self.response(status, output, usage=_usage(plan), incomplete=_INCOMPLETE)

    def message(self, status: str, content: bytes = b"[]", head: bytes | None = None) -> bytes:
        return (head or self._message_head) + status.encode() + b'","content":' + content + b',"role":"assistant"}'


@lru_cache(maxsize=1024)
def _echoed(model: str, echo: Echo) -> tuple[bytes, bytes, bytes]:
    """The response object's echoed fields, in three runs: up to `output`, up to `usage`, to the end."""
    instructions, max_tokens, temperature, top_p, store, previous, user, metadata, agent = echo
    settings = {} if agent is None else json.loads(agent)
    to_output = _fields(instructions=instructions, max_output_tokens=max_tokens, max_tool_calls=None, model=model)
    to_usage = _fields(
        parallel_tool_calls=settings.get("parallel_tool_calls", True),
        previous_response_id=previous,
        reasoning=settings.get("reasoning", _DEFAULT_REASONING),
        service_tier="default",
        store=store,
        temperature=temperature,
        text=settings.get("text", _DEFAULT_TEXT),
        tool_choice=settings.get("tool_choice", "auto"),
        tools=settings.get("tools", []),
        top_logprobs=0,
        top_p=top_p,
        truncation="disabled",
    )
    end = _fields(user=user, metadata=dict(metadata))
    return b"," + to_output + b',"output":', b"," + to_usage + b',"usage":', b"," + end + b"}"


def _fields(**values: Any) -> bytes:
    """JSON object members without the braces."""
    return dumps(values)[1:-1]


def _event(kind: bytes, number: int, fields: bytes) -> bytes:
    return b'event: %b\ndata: {"type":"%b","sequence_number":%d,%b}\n\n' % (kind, kind, number, fields)


def _part(text: bytes) -> bytes:
    """An output_text content part around an already escaped JSON string."""
    return b'{"type":"output_text","annotations":[],"logprobs":[],"text":%b}' % text


def _status(plan: Plan) -> str:
    return "incomplete" if plan.finish_reason == "length" else "completed"


def _usage(plan: Plan) -> bytes:
    return (
        b'{"input_tokens":%d,"input_tokens_details":{"cached_tokens":0,"cache_write_tokens":0},"output_tokens":%d,'
        b'"output_tokens_details":{"reasoning_tokens":%d},"total_tokens":%d}'
    ) % (plan.prompt_tokens, plan.completion_tokens, plan.reasoning_tokens, plan.prompt_tokens + plan.completion_tokens)


# -- a plan with blocks: one output item per block -----------------------------------------------

_ADDED = b"response.output_item.added"
_DONE = b"response.output_item.done"
Events = list[tuple[bytes, bytes]]  # (event type, its fields after the sequence number)


class _Item:
    """One output item: a block's (a message, a reasoning item, a function call), or the item of
    hidden reasoning, which has no chunks. Its events, item JSON and delta template, in bytes."""

    __slots__ = ("at", "call_id", "id", "kind", "name", "objects")

    def __init__(self, objects: _Objects, kind: str, at: int, ident: str, block: Block | None) -> None:
        self.objects = objects
        self.kind = kind  # message, reasoning, silent (reasoning shown as nothing), redacted, function_call
        self.at = b"%d" % at  # its output_index
        self.call_id = self.name = b""
        if kind == "function_call":
            assert block is not None and block.call_id is not None
            self.id = b"fc_" + block.call_id.encode()
            self.call_id = b"call_" + block.call_id.encode()
            self.name = dumps(block.name)
        else:
            prefix = "msg" if kind == "message" else "rs"
            self.id = (f"{prefix}_{ident}" if at == 0 else f"{prefix}_{ident}_{at}").encode()

    def _where(self) -> bytes:
        return b'"item_id":"%b","output_index":%b' % (self.id, self.at)

    def item(self, text: bytes, status: str) -> bytes:
        """The item's JSON, with its text (escaped) and status."""
        kind = self.kind
        if kind == "message":
            head = b'{"id":"%b","type":"message","status":"' % self.id
            return self.objects.message(status, b"[%b]" % _part(text) if text else b"[]", head)
        if kind == "function_call":
            return b'{"id":"%b","type":"function_call","status":"%b","arguments":%b,"call_id":"%b","name":%b}' % (
                self.id,
                status.encode(),
                text,
                self.call_id,
                self.name,
            )
        if kind == "reasoning" and text:
            return b'{"id":"%b","type":"reasoning","summary":[{"type":"summary_text","text":%b}]}' % (self.id, text)
        if kind == "redacted" and text:
            return b'{"id":"%b","type":"reasoning","summary":[],"encrypted_content":%b}' % (self.id, text)
        return b'{"id":"%b","type":"reasoning","summary":[]}' % self.id

    def opening(self) -> Events:
        at_item = b'"output_index":%b,"item":' % self.at
        if self.kind == "message":
            return [
                (_ADDED, at_item + self.item(b"", "in_progress")),
                (b"response.content_part.added", self._where() + b',"content_index":0,"part":' + _part(b'""')),
            ]
        if self.kind == "function_call":
            return [(_ADDED, at_item + self.item(b'""', "in_progress"))]
        events = [(_ADDED, at_item + self.item(b"", "in_progress"))]
        if self.kind == "reasoning":
            events.append(
                (
                    b"response.reasoning_summary_part.added",
                    self._where() + b',"summary_index":0,"part":{"type":"summary_text","text":""}',
                )
            )
        return events

    def closing(self, text: bytes, status: str) -> Events:
        """The events that finish the item, its whole text (escaped) known."""
        done = (_DONE, b'"output_index":%b,"item":' % self.at + self.item(text, status))
        where = self._where()
        if self.kind == "message":
            where += b',"content_index":0'
            return [
                (b"response.output_text.done", where + b',"text":' + text + b',"logprobs":[]'),
                (b"response.content_part.done", where + b',"part":' + _part(text)),
                done,
            ]
        if self.kind == "function_call":
            return [(b"response.function_call_arguments.done", where + b',"arguments":' + text), done]
        if self.kind == "reasoning":
            where += b',"summary_index":0'
            return [
                (b"response.reasoning_summary_text.done", where + b',"text":' + text),
                (b"response.reasoning_summary_part.done", where + b',"part":{"type":"summary_text","text":%b}' % text),
                done,
            ]
        if self.kind == "redacted":
            return []  # its one chunk is its done event
        return [done]

    def template(self) -> tuple[bytes, bytes, bytes] | None:
        """Each chunk's event as (before, middle, after): `before + number + middle + JSON string +
        after`; None: its chunks send nothing (reasoning not shown)."""
        kind = self.kind
        if kind == "message":
            return (
                b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":',
                b"," + self._where() + b',"content_index":0,"delta":',
                b',"logprobs":[]}\n\n',
            )
        if kind == "reasoning":
            return (
                b"event: response.reasoning_summary_text.delta\ndata: "
                b'{"type":"response.reasoning_summary_text.delta","sequence_number":',
                b"," + self._where() + b',"summary_index":0,"delta":',
                b"}\n\n",
            )
        if kind == "function_call":
            return (
                b"event: response.function_call_arguments.delta\ndata: "
                b'{"type":"response.function_call_arguments.delta","sequence_number":',
                b"," + self._where() + b',"delta":',
                b"}\n\n",
            )
        if kind == "redacted":
            return (
                b'event: response.output_item.done\ndata: {"type":"response.output_item.done","sequence_number":',
                b',"output_index":%b,"item":{"id":"%b","type":"reasoning","summary":[],"encrypted_content":'
                % (self.at, self.id),
                b"}}\n\n",
            )
        return None

    def broken(self, number: int) -> bytes:
        """An event of this item cut off inside its JSON, as a broken proxy sends it."""
        template = self.template()
        if template is None:
            return (
                b'event: response.output_item.done\ndata: {"type":"response.output_item.done","sequence_number":%d,'
                b'"output_index":%b,"item":{"id":"%b","type":"reasoning","summary":[\n\n' % (number, self.at, self.id)
            )
        before, middle, _ = template
        return before + b"%d" % number + middle + b'"\n\n'


def _numbered(events: Events, first: int) -> tuple[bytes, int]:
    """The events numbered from `first`, and the number after them."""
    return b"".join(_event(kind, first + k, fields) for k, (kind, fields) in enumerate(events)), first + len(events)


class _Items:
    """A plan with blocks (or with hidden reasoning only) as the API's output items: the stream's
    frames, numbered once, and the whole response."""

    __slots__ = ("blocks", "hidden", "items", "objects", "plan", "status")

    def __init__(self, plan: Plan, enc: Encoding) -> None:
        self.plan = plan
        self.objects = objects = _Objects(enc)
        self.status = _status(plan)
        # Reasoning not streamed (no summary asked for, or a rule's for a request that asked for none):
        # an item of its own, with an empty summary, ahead of the blocks.
        self.hidden = bool(enc.options.get("hidden_reasoning")) or (
            plan.reasoning_tokens > 0 and not any(b.kind in ("reasoning", "redacted_reasoning") for b in plan.blocks)
        )
        shown = bool(enc.options.get("summary"))
        self.items: list[_Item] = []
        self.blocks: list[Block | None] = []
        if self.hidden:
            self.items.append(_Item(objects, "hidden", 0, enc.ident, None))
            self.blocks.append(None)
        for block in plan.blocks:
            kind = {"text": "message", "tool_call": "function_call", "redacted_reasoning": "redacted"}.get(
                block.kind, "reasoning" if shown else "silent"
            )
            self.items.append(_Item(objects, kind, len(self.items), enc.ident, block))
            self.blocks.append(block)

    def _text(self, k: int, stop: int | None = None) -> bytes:
        """Item `k`'s text, escaped: whole, or its chunks before chunk `stop`."""
        block = self.blocks[k]
        if block is None:
            return b""
        if stop is None:
            return dumps(block.text)
        return dumps("".join(self.plan.chunks[block.start : stop]))

    def _item_status(self, k: int) -> str:
        return "incomplete" if self.status == "incomplete" and k == len(self.items) - 1 else "completed"

    def _output(self) -> bytes:
        return b"[%b]" % b",".join(item.item(self._text(k), self._item_status(k)) for k, item in enumerate(self.items))

    def whole(self) -> bytes:
        return self.objects.final(self.plan, self.status, self._output())

    def stream(self) -> StreamFrames:
        plan, items, objects = self.plan, self.items, self.objects
        first = 1 if self.hidden else 0  # the first block's item
        pending = b'"response":' + objects.response("in_progress", b"[]")
        # The first item is added on arrival: hidden reasoning starts at once, text as the plain path's.
        head, number = _numbered(
            [(b"response.created", pending), (b"response.in_progress", pending), *items[0].opening()], 0
        )
        n = len(plan.chunks)
        numbers = [0] * n
        starts: dict[int, int] = {}  # a block's first chunk: the number of its opening's first event
        openings: dict[int, bytes] = {}
        templates: list[tuple[bytes, bytes, bytes] | None] = []
        for j, block in enumerate(plan.blocks):
            k = first + j
            item = items[k]
            template = item.template()
            templates.append(template)
            if k:
                starts[block.start] = number
                events = items[k - 1].closing(self._text(k - 1), "completed") + item.opening()
                openings[block.start], number = _numbered(events, number)
            step = 0 if template is None else 1
            for i in range(block.start, block.stop):
                numbers[i] = number
                number += step
        last = len(items) - 1
        tail, _ = _numbered(
            [
                *items[last].closing(self._text(last), self._item_status(last)),
                (
                    b"response." + self.status.encode(),
                    b'"response":' + objects.final(plan, self.status, self._output()),
                ),
            ],
            number,
        )
        fault = plan.fault
        cut = n if fault is None or fault.after is None else min(fault.after, n)
        at = number if cut == n else starts.get(cut, numbers[cut])  # the number the next event would have
        error = malformed = b""
        if fault is not None and fault.kind == "error":
            failed = objects.response("failed", self._sent(cut), error=_FAILED)
            error = _event(b"error", at, _ERROR_FIELDS) + _event(b"response.failed", at + 1, b'"response":' + failed)
        elif fault is not None and fault.kind == "malformed":
            malformed = items[self._streaming(cut)].broken(at)
        return StreamFrames(
            head=head,
            head_on_arrival=True,
            chunks=_NumberedBlockFrames(plan.chunks, plan.block_of_chunks(), templates, numbers, openings),
            tail=tail,
            error=error,
            malformed=malformed,
        )

    def _streaming(self, cut: int) -> int:
        """The item being streamed when the first `cut` chunks have gone out (its end not sent)."""
        if cut == 0:
            return 0  # the item added on arrival
        return (1 if self.hidden else 0) + self.plan.block_of_chunks()[cut - 1]

    def _sent(self, cut: int) -> bytes:
        """The output of a response that failed after `cut` chunks: the items finished, then the one
        cut short, as far as it went (incomplete)."""
        k = self._streaming(cut)
        done = [self.items[j].item(self._text(j), "completed") for j in range(k)]
        block = self.blocks[k]
        partial = self._text(k, max(cut, block.start)) if block is not None else b""
        item = self.items[k]
        if item.kind != "function_call" and partial == b'""':
            partial = b""  # nothing of it went out: no text part, no summary part
        done.append(item.item(partial, "incomplete"))
        return b"[%b]" % b",".join(done)


class _NumberedBlockFrames(Sequence[bytes]):
    """`BlockFrames` with a sequence number in each event: chunk `i` is `openings[i] + before +
    numbers[i] + middle + JSON string + after`, its block's template (None: the chunk sends nothing
    but its opening). Everything but the escape and the number is made once per response."""

    __slots__ = ("_afters", "_befores", "_middles", "_numbers", "_texts")

    def __init__(
        self,
        texts: Sequence[str],
        block_of: Sequence[int],
        templates: Sequence[tuple[bytes, bytes, bytes] | None],
        numbers: Sequence[int],
        openings: Mapping[int, bytes],
    ) -> None:
        self._texts = texts
        self._numbers = numbers
        # Laid out per chunk once per response: a write looks up its pieces, it decides nothing.
        laid = [templates[block] or _SILENT for block in block_of]
        self._befores = [template[0] for template in laid]
        self._middles = [template[1] for template in laid]
        self._afters = [template[2] for template in laid]
        for index, opening in openings.items():
            self._befores[index] = opening + self._befores[index]

    def __len__(self) -> int:
        return len(self._texts)

    def __getitem__(self, index: int) -> bytes:  # type: ignore[override]
        after = self._afters[index]
        if after is None:
            return self._befores[index]  # a silent block's chunk: its opening only
        return b"%b%d%b%b%b" % (
            self._befores[index],
            self._numbers[index],
            self._middles[index],
            json_string(self._texts[index]),
            after,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _NumberedBlockFrames):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]


_SILENT: tuple[bytes, bytes, None] = (b"", b"", None)
