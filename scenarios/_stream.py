"""A decoded event stream seen through a profile: each event's kind, payload and the joined text.

Pure: the runner feeds it the decoder's events; the checks read the `StreamView` it builds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from contracts import StreamSpec, field_value

from ._sse_decoder import SSEComment, SSEEvent

SENTINEL = "sentinel"  # the kind of an allowed `[DONE]`-style line that is not one of the profile's kinds


@dataclass(slots=True)
class Classified:
    """One SSE event read as a profile event."""

    event: SSEEvent
    kind: str | None  # None: not JSON, or no kind could be read from it
    payload: Any = None
    problem: str = ""  # why `kind` is None


@dataclass(slots=True)
class StreamView:
    events: list[Classified] = field(default_factory=list)
    comments: list[SSEComment] = field(default_factory=list)
    terminal: int | None = None  # position in `events` of the first terminal event
    text: str = ""  # joined from the text events before the terminal one
    text_events: list[int] = field(default_factory=list)  # positions of the text events

    @property
    def terminal_kind(self) -> str | None:
        return None if self.terminal is None else self.events[self.terminal].kind

    def first_time(self) -> float | None:
        return self.events[0].event.time if self.events else None


def classify(spec: StreamSpec, event: SSEEvent) -> Classified:
    data = event.data
    for rule in spec.kinds:
        if rule.data is not None and data == rule.data:
            return Classified(event, rule.kind)
    if spec.sentinel is not None and data == spec.sentinel:
        return Classified(event, SENTINEL)
    try:
        payload = json.loads(data)
    except ValueError:
        return Classified(event, None, None, f"data is not JSON: {data[:80]!r}")
    if not isinstance(payload, dict):
        return Classified(event, None, payload, f"data is JSON but not an object: {data[:80]!r}")
    if spec.kind_field is not None:
        kind = payload.get(spec.kind_field)
        if isinstance(kind, str):
            return Classified(event, kind, payload)
    for rule in spec.kinds:
        if rule.has is not None and field_value(payload, rule.has) is not None:
            return Classified(event, rule.kind, payload)
    where = f"no string `{spec.kind_field}` field" if spec.kind_field else "no rule of `kinds` matches"
    return Classified(event, None, payload, f"cannot tell the event's kind ({where}): {data[:80]!r}")


def view(spec: StreamSpec, items: list[SSEEvent | SSEComment]) -> StreamView:
    out = StreamView()
    pieces: list[str] = []
    for item in items:
        if isinstance(item, SSEComment):
            out.comments.append(item)
            continue
        classified = classify(spec, item)
        position = len(out.events)
        out.events.append(classified)
        if out.terminal is not None:
            continue
        if classified.kind in spec.terminal:
            out.terminal = position
        elif classified.kind in spec.text_kinds and isinstance(classified.payload, dict):
            piece = field_value(classified.payload, spec.text_field)
            if isinstance(piece, str):
                pieces.append(piece)
                out.text_events.append(position)
    out.text = spec.join_text(pieces)
    return out
