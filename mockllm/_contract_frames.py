"""One contract request's stream in bytes: the `StreamFrames` the wire schedule plays, and the
answer regrouped into words where the profile joins words.

Each event is built once per request as a JSON object and encoded once; the text event is encoded
with marker strings where its text and its counter go and cut there, so per token there is one JSON
string escape (usually a cache hit) and one short join: the same cost as the LLM dialects'.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from contracts import StreamSpec

from ._contract_events import COUNTER_SLOT, TEXT_SLOT, EventKinds, Values, encode, payload
from ._jsonbytes import json_string
from ._wire import StreamFrames

_TEXT, _COUNTER = 0, 1
_SLOTS = ((json.dumps(TEXT_SLOT, ensure_ascii=False).encode(), _TEXT),
          (json.dumps(COUNTER_SLOT, ensure_ascii=False).encode(), _COUNTER))  # fmt: skip


# -- frames --------------------------------------------------------------------------------------------


class SlotFrames(Sequence[bytes]):
    """Text events from pieces made once per request: fixed bytes, the text's JSON string, the
    event's number (from 0) where the profile has a counter. The pieces become one bytes format
    (`%b` the text, `%d` the number), so a token costs one escape and one formatting."""

    __slots__ = ("_format", "_order", "_texts")

    def __init__(self, pieces: tuple[bytes | int, ...], texts: Sequence[str]) -> None:
        self._format = b"".join(
            piece.replace(b"%", b"%%") if isinstance(piece, bytes) else (b"%b" if piece == _TEXT else b"%d")
            for piece in pieces
        )
        self._order = tuple(piece for piece in pieces if isinstance(piece, int))
        self._texts = texts

    def __len__(self) -> int:
        return len(self._texts)

    def __getitem__(self, index: int) -> bytes:  # type: ignore[override]
        order = self._order
        text = json_string(self._texts[index])
        if order == (_TEXT,):
            return self._format % text
        if order == (_TEXT, _COUNTER):
            return self._format % (text, index)
        return self._format % tuple(text if slot == _TEXT else index for slot in order)


def _split(event: bytes) -> tuple[bytes | int, ...]:
    """An encoded text event cut at its slot markers."""
    pieces: list[bytes | int] = [event]
    for marker, slot in _SLOTS:
        cut: list[bytes | int] = []
        for piece in pieces:
            if isinstance(piece, int):
                cut.append(piece)
                continue
            parts = piece.split(marker)
            for i, part in enumerate(parts):
                if i:
                    cut.append(slot)
                if part:
                    cut.append(part)
        pieces = cut
    return tuple(pieces)


def stream_frames(
    spec: StreamSpec, kinds: EventKinds, texts: Sequence[str], values: Values, variables: Mapping[str, Any]
) -> StreamFrames:
    """One request's stream: the head events on arrival, a text event per piece, the done event."""
    head = b"".join(encode(payload(spec, kind, values, variables)) for kind in kinds.head)
    text_event = encode(payload(spec, kinds.text, values, variables))
    pieces = _split(text_event)
    before = b"".join(p for p in pieces[: pieces.index(_TEXT)] if isinstance(p, bytes)) if _TEXT in pieces else b""
    return StreamFrames(
        head=head,
        head_on_arrival=True,  # an agent names the conversation at once, before the model's first token
        chunks=SlotFrames(pieces, texts),
        tail=encode(payload(spec, kinds.done, values, variables)),
        error=encode(payload(spec, kinds.error, values, variables)),
        # A text event cut off inside its JSON string, as a broken proxy or a buggy agent sends it.
        malformed=before + b'"' + b"\n\n",
    )


def words_of(chunks: Sequence[str], offsets: Sequence[float]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """The answer as whitespace-free words (a `words` join), each due when the chunk that shows it
    complete is due: the one with the whitespace after it, or the last (a word cut between chunks
    goes out whole; an agent that splits the LLM's stream into words can send it no sooner)."""
    words: list[str] = []
    due: list[float] = []
    pending = ""
    for chunk, at in zip(chunks, offsets, strict=True):
        pending += chunk
        found = pending.split()
        pending = found.pop() if pending and not pending[-1].isspace() and found else ""
        words += found
        due += [at] * len(found)
    if pending:
        words.append(pending)
        due.append(offsets[-1])
    return tuple(words), tuple(due)
