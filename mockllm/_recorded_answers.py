"""A recorded answer played back: its plan, its wire schedule, and the journal fields of a request it
answers. No I/O.

The file format and the key are `_recording`'s; this module joins a recording to the planner and
the wire schedule, so the faults of planned answers apply to a replay as they are: a recorded frame
is one chunk (`disconnect-after=N` cuts after N frames), `error-after=N` sends the dialect's own
in-band error event there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ._dialect_registry import DIALECTS
from ._faults import Fault
from ._plan import Plan, rng_for
from ._recording import Recording, Recordings, request_key
from ._request import ChatRequest
from ._tokenizer import count_tokens
from ._wire import (
    HttpResponse,
    StreamFrames,
    WireSchedule,
    body_schedule,
    immediate,
    reset_schedule,
    response_head,
    stream_schedule,
)
from .dialects import Encoding


@dataclass(frozen=True, slots=True)
class Replayed:
    """A request answered from the recordings: its schedule and its journal entry's fields."""

    schedule: WireSchedule
    journal: dict[str, Any]


def replay_recording(
    recordings: Recordings,
    dialect: Any,
    call: Any,
    chat: ChatRequest,
    options: Mapping[str, Any],
    fault: Fault | None,
    seed: int,
) -> Replayed | None:
    """The answer to this request from the recordings (a `Dialect`, its `Call`, what it parsed),
    the fault applied; None when none matches and `missing` is `plan`."""
    key = request_key(dialect.name, call.method, call.path, call.body, call.query)
    recording = recordings.by_key.get(key)
    entry: dict[str, Any] = {"prompt": chat.prompt, "model": chat.model, "stream": chat.stream, "seed": seed}
    if recording is None:
        if recordings.missing == "plan":
            return None
        message = f"no recording for this request (key {key[:16]}) in {recordings.dir}"
        error = dialect.error(404, message, call=call)
        entry.update(status=error.status, answer=None, recording=None, error=message)
        return Replayed(immediate(error), entry)
    plan = recording_plan(recording, seed, fault)
    schedule = recording_schedule(recording, plan, dialect, call, chat, options)
    entry.update(status=schedule.status, answer=plan.answer, recording=recording.name, planned=plan)
    return Replayed(schedule, entry)


def recording_texts(recording: Recording) -> tuple[tuple[str, ...], str]:
    """Each frame's answer text (by its dialect's `text_of`) and the whole answer's."""
    text_of = DIALECTS.named(recording.dialect).text_of
    if recording.framing == "sse":
        texts = tuple(_text(text_of, frame.event, frame.data) for frame in recording.frames)
        return texts, "".join(texts)
    # A JSON-array stream or a whole body: its text is read from the whole, once.
    try:
        value = json.loads(recording.body)
    except (ValueError, RecursionError):
        value = None
    items = value if isinstance(value, list) else [value]
    answer = "".join(text_of(None, item) or "" for item in items if isinstance(item, dict))
    return ("",) * len(recording.frames), answer


def _text(text_of: Any, event: str | None, data: str | None) -> str:
    try:
        payload = json.loads(data or "")
    except ValueError:
        return ""
    return (text_of(event, payload) or "") if isinstance(payload, dict) else ""


def recording_plan(recording: Recording, seed: int, fault: Fault | None) -> Plan:
    """A plan whose chunks are the recording's frames, each due at its `at_ms`: the wire schedule
    plays the frames through the fault machinery of planned answers. A recording that ended early
    ends so again (a disconnect after its last frame), unless another fault is asked for."""
    texts, answer = recording_texts(recording)
    if recording.framing == "body" and recording.complete:
        texts = (answer,)  # one write: the content it carries is the whole answer
    offsets = tuple(frame.at_ms / 1000.0 for frame in recording.frames)
    if fault is None and not recording.complete:
        fault = Fault("disconnect", "recorded early end", after=len(recording.frames))
    return Plan(
        seed=seed,
        answer=answer,
        chunks=texts,
        offsets=offsets,
        ttft=offsets[0] if offsets else 0.0,
        finish_reason="stop",
        prompt_tokens=0,
        completion_tokens=count_tokens(answer),
        fault=fault,
    )


def recording_schedule(
    recording: Recording, plan: Plan, dialect: Any, call: Any, chat: ChatRequest, options: Mapping[str, Any]
) -> WireSchedule:
    """The recorded status, headers and bytes, each frame at its recorded time, with the plan's fault:
    `reset`/`refuse` and an HTTP status as for any answer; the others through `stream_schedule` (or
    `body_schedule`), where a recorded frame is one chunk (so `disconnect-after=N` cuts after N frames)."""
    fault = plan.fault
    if fault is not None and fault.kind in ("reset", "refuse"):
        return reset_schedule()
    if fault is not None and fault.kind == "http":
        return immediate(dialect.error(fault.status, retry_after=fault.retry_after, call=call))
    rng = rng_for(plan.seed, "wire") if fault is not None and fault.effect == "fragment" else None
    headers = recording.headers
    if recording.framing == "body" and recording.complete:
        ok = HttpResponse(recording.status, headers, recording.body)
        return body_schedule(plan, ok, dialect.error(500, call=call), rng)
    error = malformed = b""
    if fault is not None and fault.effect in ("error", "malformed"):
        ident = f"mock{plan.seed:016x}"
        enc = Encoding(request=chat, call=call, ident=ident, created=1_700_000_000, options=options)
        encoded = dialect.stream_frames(plan, enc)
        error, malformed = encoded.error, encoded.malformed
    raws = tuple(frame.raw for frame in recording.frames)
    frames = StreamFrames(head=b"", head_on_arrival=False, chunks=raws, tail=b"", error=error, malformed=malformed)
    schedule = stream_schedule(plan, frames, headers, rng)
    if recording.status != 200:
        schedule = replace(
            schedule, head=response_head(recording.status, headers, length=None), status=recording.status
        )
    return schedule
