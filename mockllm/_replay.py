"""Captured streams, replayed: the text and the pace of a recorded SSE response. No I/O but the load.

A transcript is a JSON Lines file. The first line is a header; each following line is one SSE
event as it arrived, with the time since the request was sent:

    {"transcript": "mockllm/1", "dialect": "anthropic-messages", "note": "free text"}
    {"at_ms": 0.0, "event": "message_start", "data": "{\"type\":\"message_start\", ...}"}
    {"at_ms": 412.5, "event": "content_block_delta", "data": "{\"type\":\"content_block_delta\", ...}"}

`dialect` names the wire format the events are in, a registered dialect (`openai-chat`,
`openai-completions`, `openai-responses`, `anthropic-messages`, `gemini`), whose `text_of` reads the
text out of each event; `event` is the SSE event type, if the event had one; `data` is the event's
data field as text. Events that carry no answer text (starts, pings, usage, `[DONE]`) are kept in
the file as captured and skipped on load. The answer is the text of the remaining events, one
chunk per event, each due at its `at_ms` divided by the replay's speed; the mock re-encodes the
chunks in whatever dialect the request asks for.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._dialect_registry import DIALECTS
from ._errors import ConfigError

FORMAT = "mockllm/1"
BUILTIN_DIR = Path(__file__).parent / "transcripts"

TextOf = Callable[[str | None, dict[str, Any]], str | None]


class _TextReaders(Mapping[str, TextOf]):
    """Each registered dialect's name -> its `text_of`, read from the registry on every lookup."""

    def __getitem__(self, name: str) -> TextOf:
        dialect = DIALECTS.named(name)
        if dialect is None:
            raise KeyError(name)
        return dialect.text_of

    def __iter__(self) -> Iterator[str]:
        return iter(DIALECTS.names())

    def __len__(self) -> int:
        return len(DIALECTS)


TEXT_OF: Mapping[str, TextOf] = _TextReaders()
"""Per wire format, the answer text an event carries (None: it carries none)."""


@dataclass(frozen=True, slots=True)
class Transcript:
    """The answer chunks of a captured stream and when each arrived (ms after the request)."""

    path: str
    dialect: str
    chunks: tuple[str, ...]
    at_ms: tuple[float, ...]

    @property
    def text(self) -> str:
        return "".join(self.chunks)


def resolve(name: str) -> Path:
    """A file path, or the bare name of a transcript shipped with the mock (e.g. `anthropic-haiku`)."""
    path = Path(name)
    if not path.exists() and path.parent == Path(".") and not path.suffix:
        return BUILTIN_DIR / f"{name}.jsonl"
    return path


def load_transcript(name: str, key: str) -> Transcript:
    """Read and check a transcript; a `ConfigError` at `key` names the line and the problem."""
    path = resolve(name)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        shipped = ", ".join(sorted(p.stem for p in BUILTIN_DIR.glob("*.jsonl")))
        raise ConfigError(key, f"cannot read transcript {name!r}: {err.strerror}; shipped: {shipped}") from None
    records = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    if not records:
        raise ConfigError(key, f"{path}: the transcript is empty")
    header = json_line(path, *records[0], key)
    if header.get("transcript") != FORMAT:
        raise ConfigError(key, f'{path}:{records[0][0]}: the first line must be a header with "transcript": {FORMAT!r}')
    dialect = header.get("dialect")
    if dialect not in TEXT_OF:
        raise ConfigError(key, f'{path}:{records[0][0]}: "dialect" must be one of {sorted(TEXT_OF)}, got {dialect!r}')
    text_of = TEXT_OF[dialect]
    chunks: list[str] = []
    times: list[float] = []
    previous = 0.0
    for number, line in records[1:]:
        record = json_line(path, number, line, key)
        at, event, data = record.get("at_ms"), record.get("event"), record.get("data")
        where = f"{path}:{number}"
        if isinstance(at, bool) or not isinstance(at, int | float) or at < previous:
            raise ConfigError(key, f'{where}: "at_ms" must be a number >= the line before\'s ({previous}), got {at!r}')
        if event is not None and not isinstance(event, str):
            raise ConfigError(key, f'{where}: "event" must be a string or absent, got {event!r}')
        if not isinstance(data, str):
            raise ConfigError(key, f'{where}: "data" must be the event\'s data as a string, got {data!r}')
        previous = float(at)
        try:
            payload = json.loads(data)
        except ValueError:
            continue  # `[DONE]` and other non-JSON data carry no text
        text = text_of(event, payload) if isinstance(payload, dict) else None
        if text:
            chunks.append(text)
            times.append(float(at))
    if not chunks:
        raise ConfigError(key, f"{path}: no event carries answer text in the {dialect} format")
    return Transcript(str(path), dialect, tuple(chunks), tuple(times))


def json_line(path: Path, number: int, line: str, key: str) -> dict[str, Any]:
    """One line of a JSON Lines file as an object; a `ConfigError` at `key` names the file and line."""
    try:
        value = json.loads(line)
    except ValueError as err:
        raise ConfigError(key, f"{path}:{number}: not a JSON object: {err}") from None
    if not isinstance(value, dict):
        raise ConfigError(key, f"{path}:{number}: expected a JSON object, got {type(value).__name__}")
    return value
