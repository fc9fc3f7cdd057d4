"""Recorded answers: the file format `mockllm record` writes and the key a replay finds one by (the
wire schedule that plays one back is `_recorded_answers`'). No I/O but the load and save helpers,
which take paths.

Why a recording and not a transcript: a transcript (`_replay`) keeps the text and the pace of a
capture and lets the mock re-encode it in any dialect; a recording keeps the exact bytes a provider
sent to one request, so a suite recorded once against a real provider runs offline for ever and
its client sees what it saw then, byte for byte, at the pace it saw it.

One JSON Lines file per request. The header line is a transcript header (`"transcript":
"mockllm/1"`, `"dialect"`) with more fields:

    {"transcript": "mockllm/1", "dialect": "openai-chat", "recording": 1, "key": "<64 hex>",
     "match": {"dialect", "method", "path", "query", "model", "body"},   # what the key is made of
     "status": 200, "headers": [["content-type", "text/event-stream"], ...],
     "framing": "sse" | "reads" | "body", "complete": true, "head_at_ms": 1.2,
     "request_headers": [[name, value], ...], "note": "..."}

then one line per piece of the response, each with `at_ms`, the time since the request was
forwarded upstream:

- `sse` (a `text/event-stream` answer): one line per SSE event, `{"at_ms", "event", "data", "raw"}`,
  `event`/`data` as the existing transcript format has them (so `replay: {transcript: FILE}` loads a
  streamed recording as a transcript too) and `raw` the event's exact bytes (`raw_b64` when they are
  not UTF-8). An event ends at a blank line (LF or CRLF); blank lines before an event belong to it.
- `reads` (a chunked answer that is not SSE, such as Gemini's JSON-array stream): one line per
  read, `{"at_ms", "raw"}`, as the bytes came.
- `body` (an answer with a content-length): one line `{"at_ms", "body"}` (or `body_b64`), `at_ms`
  being when its last byte came.

A response that ended early (the upstream reset or closed mid-body) is kept with `"complete":
false`; its replay ends the same way, by closing the connection mid-body.

The key (`request_key`) is a SHA-256 over the canonical JSON of the `match`: the dialect, the
method, the path, the query string's parameters (see below), the model, and the request body as
canonical JSON (sorted keys, no whitespace; a body that is not JSON goes in as its text, or base64),
with these top-level fields left out because they vary from run to run and do not change the
answer: `user`, `metadata`, `store`, `safety_identifier` (`VOLATILE_FIELDS`). `stream` and
`stream_options` stay in: they change the bytes on the wire. Headers are not keyed: the same body
with another API key is the same question.

The query string is keyed without the parameters whose names look like credentials (`key=`,
`api_key=`, `token=`, ...: `_SECRET_NAME`): Gemini's `alt=sse` turns a JSON-array stream into SSE,
so it must tell two recordings apart, while `?key=AIza...` must never reach a file, nor the key.

Secrets are never written: request headers in `SECRET_HEADERS` or with `key`, `token` or `secret`
in their name are dropped, as are such response headers (`set-cookie` too) and hop-by-hop ones;
strings in the recorded body (and so in the key) that look like API keys (`sk-...`, `AIza...`) are
replaced by `"[redacted]"`. The response's own bytes are kept as they came: they are the recording.

A file is named `{dialect}-{model}-{key[:16]}.jsonl`: the same request always gets the same file
(recording it again overwrites it), never a name from the time of day.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

from ._dialect_registry import DIALECTS
from ._errors import ConfigError
from ._journal import SECRET_HEADERS
from ._replay import FORMAT, json_line

VERSION = 1
Framing = Literal["sse", "reads", "body"]
Missing = Literal["plan", "error"]
MISSING = ("plan", "error")

VOLATILE_FIELDS = frozenset({"user", "metadata", "store", "safety_identifier"})
"""Top-level body fields left out of the key: per-run identifiers that do not change the answer."""

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",  # a replay frames the body itself
        "host",
        "expect",  # `100-continue` is between the client and the recorder
    }
)
"""Headers of one connection, not of the answer: never recorded, never forwarded as they are."""

REDACTED = "[redacted]"
_SECRET_TEXT = re.compile(r"\b(?:sk-[A-Za-z0-9_\-]{6,}|AIza[0-9A-Za-z_\-]{8,})")
_SECRET_NAME = re.compile(r"key|token|secret|auth|passw|sig(nature)?$", re.IGNORECASE)
_SECRET_HEADER_NAME = re.compile(r"key|token|secret", re.IGNORECASE)
_MODEL_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_KEY = re.compile(r"[0-9a-f]{64}")


# -- the key ----------------------------------------------------------------------------------------


def redact_text(text: str) -> str:
    """`text` with anything that looks like an API key replaced by `[redacted]`."""
    return _SECRET_TEXT.sub(REDACTED, text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [_redact_value(item) for item in value]
    if isinstance(value, dict):
        return {name: _redact_value(item) for name, item in value.items()}
    return value


def secret_header(name: str) -> bool:
    """Whether a header carries a credential (or a cookie): such a header is never written."""
    lowered = name.lower()
    return lowered in SECRET_HEADERS or bool(_SECRET_HEADER_NAME.search(lowered))


def recordable_headers(headers: Sequence[tuple[str, str]]) -> list[list[str]]:
    """Headers as a recording keeps them: no hop-by-hop ones, no secret ones, names in lower case."""
    return [[name.lower(), value] for name, value in headers if not _dropped_header(name)]


def _dropped_header(name: str) -> bool:
    return name.lower() in HOP_BY_HOP or secret_header(name)


def _query(query: Mapping[str, str] | str | None) -> dict[str, str]:
    """The query parameters that key a request: sorted, none that looks like a credential."""
    if query is None:
        return {}
    items = dict(parse_qsl(query)) if isinstance(query, str) else dict(query)
    return {name: redact_text(value) for name, value in sorted(items.items()) if not _SECRET_NAME.search(name)}


@lru_cache(maxsize=256)
def _path_pattern(route_path: str) -> re.Pattern[str]:
    """A route path with `{name}` segments as a regex (as the server's route table makes it)."""
    return re.compile(re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(route_path)) + "$")


def chat_route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The registered dialect whose chat endpoint `method path` is, and the path's `{name}` values;
    None for any other request (a model list, a token count)."""
    path = path.partition("?")[0]
    for dialect in DIALECTS:
        for route in dialect.routes:
            if route.handler is not None or route.method != method:
                continue
            found = _path_pattern(route.path).match(path)
            if found:
                return dialect.name, found.groupdict()
    return None


def request_match(
    dialect: str, method: str, path: str, body: bytes, query: Mapping[str, str] | str | None = None
) -> dict[str, Any]:
    """What the key of a request is made of, human-readable: it goes in the recording's header."""
    path = path.partition("?")[0]  # a query is given apart, and never with its credentials
    match: dict[str, Any] = {"dialect": dialect, "method": method.upper(), "path": path}
    keyed_query = _query(query)
    if keyed_query:
        match["query"] = keyed_query
    body_fields = _body_match(body)
    match["model"] = _model(dialect, method, path, body_fields.get("body"))
    match.update(body_fields)
    return match


def _body_match(body: bytes) -> dict[str, Any]:
    if not body:
        return {"body": None}
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        try:
            return {"body_text": redact_text(bytes(body).decode("utf-8"))}
        except UnicodeDecodeError:
            return {"body_b64": base64.b64encode(body).decode("ascii")}
    if isinstance(value, dict):
        value = {name: item for name, item in value.items() if name not in VOLATILE_FIELDS}
    return {"body": _redact_value(value)}


def _model(dialect: str, method: str, path: str, body: Any) -> str | None:
    """The model a request names: a `{model}` path segment of its chat route, else the body's."""
    route = chat_route(method.upper(), path)
    if route is not None and route[0] == dialect and route[1].get("model"):
        return route[1]["model"]
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: equal values, equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


def key_of(match: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(match)).hexdigest()


def request_key(dialect: str, method: str, path: str, body: bytes, query: Mapping[str, str] | str | None = None) -> str:
    """The key a recording of this request is found by (64 hex digits); see the module docstring."""
    return key_of(request_match(dialect, method, path, body, query))


def recording_name(dialect: str, model: str | None, key: str) -> str:
    """`{dialect}-{model}-{key[:16]}.jsonl`, the model made safe for a file name."""
    safe = _MODEL_CHARS.sub("_", (model or "").rsplit("/", 1)[-1]).strip("._-")[:64] or "unknown"
    return f"{dialect}-{safe}-{key[:16]}.jsonl"


# -- the recording ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """One piece of a recorded response: an SSE event (`event`, `data` set), a read, or the body."""

    at_ms: float
    raw: bytes
    event: str | None = None
    data: str | None = None  # None: not an SSE event


@dataclass(frozen=True, slots=True)
class Recording:
    """One request's recorded answer."""

    dialect: str
    key: str
    match: Mapping[str, Any]
    status: int
    headers: tuple[tuple[str, str], ...]
    framing: Framing
    frames: tuple[Frame, ...]
    complete: bool = True
    head_at_ms: float = 0.0
    request_headers: tuple[tuple[str, str], ...] = ()
    note: str = ""
    path: str = ""  # the file it was loaded from ("" when not saved yet)

    @property
    def name(self) -> str:
        """The file name this recording is saved under."""
        return recording_name(self.dialect, self.match.get("model"), self.key)

    @property
    def body(self) -> bytes:
        """The response body as it came (de-chunked)."""
        return b"".join(frame.raw for frame in self.frames)


def parse_event(raw: bytes) -> tuple[str | None, str]:
    """An SSE event's type (None when it has none) and its data (data lines joined by LF)."""
    event: str | None = None
    data: list[str] = []
    for line in raw.decode("utf-8", "replace").split("\n"):
        line = line.removesuffix("\r")
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    return event, "\n".join(data)


class SseSplitter:
    """Cuts a byte stream into whole SSE events as it arrives: an event ends at a blank line (LF or
    CRLF line ends); blank lines before an event's first field belong to that event."""

    __slots__ = ("_buffer", "_fields", "_scan")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scan = 0  # where the next unread line starts
        self._fields = False  # the current event has a non-blank line

    def feed(self, data: bytes) -> list[bytes]:
        """The events `data` completes, each with its exact bytes."""
        buffer = self._buffer
        buffer += data
        events: list[bytes] = []
        start, pos = 0, self._scan
        while True:
            end = buffer.find(b"\n", pos)
            if end < 0:
                break
            blank = end == pos or (end == pos + 1 and buffer[pos] == 0x0D)
            if not blank:
                self._fields = True
            elif self._fields:
                events.append(bytes(buffer[start : end + 1]))
                start = end + 1
                self._fields = False
            pos = end + 1
        del buffer[:start]
        self._scan = pos - start
        return events

    def rest(self) -> bytes:
        """What came after the last whole event (a stream cut mid-event, or one with no final blank line)."""
        return bytes(self._buffer)


class Capture:
    """One response being recorded, as it arrives: `head`, then `feed` each read, then `finish`."""

    def __init__(
        self,
        dialect: str,
        method: str,
        path: str,
        query: Mapping[str, str] | str | None,
        body: bytes,
        request_headers: Sequence[tuple[str, str]] = (),
        note: str = "",
    ) -> None:
        self.match = request_match(dialect, method, path, body, query)
        self.key = key_of(self.match)
        self.dialect = dialect
        self.request_headers = tuple((n, v) for n, v in recordable_headers(request_headers))
        self.note = note
        self.status = 0
        self.headers: tuple[tuple[str, str], ...] = ()
        self.framing: Framing = "body"
        self.head_at_ms = 0.0
        self._frames: list[Frame] = []
        self._splitter = SseSplitter()
        self._last_ms = 0.0

    def head(self, status: int, headers: Sequence[tuple[str, str]], at_ms: float) -> None:
        """The response head came: its framing follows from its headers."""
        self.status = status
        self.headers = tuple((n, v) for n, v in recordable_headers(headers))
        self.head_at_ms = round(at_ms, 3)
        names = {name.lower(): value for name, value in headers}
        if "text/event-stream" in names.get("content-type", "").lower():
            self.framing = "sse"
        elif "content-length" in names and "transfer-encoding" not in names:
            self.framing = "body"
        else:
            self.framing = "reads"

    def feed(self, data: bytes, at_ms: float) -> None:
        """One read of the body, `at_ms` after the request went upstream."""
        at = self._last_ms = round(max(at_ms, self._last_ms), 3)
        if self.framing == "sse":
            for raw in self._splitter.feed(data):
                event, text = parse_event(raw)
                self._frames.append(Frame(at, raw, event, text))
        else:  # a read as it came; a body's reads are joined when it ends
            self._frames.append(Frame(at, data))

    def finish(self, complete: bool) -> Recording:
        """The recording; `complete` False when the response ended before its end."""
        frames = list(self._frames)
        rest = self._splitter.rest()
        if self.framing == "sse" and rest:
            event, text = parse_event(rest)
            frames.append(Frame(self._last_ms, rest, event, text))
        if self.framing == "body" and frames:
            frames = [Frame(frames[-1].at_ms, b"".join(frame.raw for frame in frames))]
        return Recording(
            dialect=self.dialect,
            key=self.key,
            match=self.match,
            status=self.status,
            headers=self.headers,
            framing=self.framing,
            frames=tuple(frames),
            complete=complete,
            head_at_ms=self.head_at_ms,
            request_headers=self.request_headers,
            note=self.note,
        )


def recording_text(recording: Recording) -> str:
    """The recording as its file's text."""
    header: dict[str, Any] = {
        "transcript": FORMAT,
        "dialect": recording.dialect,
        "recording": VERSION,
        "key": recording.key,
        "match": recording.match,
        "status": recording.status,
        "headers": [list(pair) for pair in recording.headers],
        "framing": recording.framing,
        "complete": recording.complete,
        "head_at_ms": recording.head_at_ms,
        "request_headers": [list(pair) for pair in recording.request_headers],
        "note": recording.note,
    }
    lines = [json.dumps(header, ensure_ascii=False)]
    for frame in recording.frames:
        line: dict[str, Any] = {"at_ms": frame.at_ms}
        if recording.framing == "body":
            line.update(_bytes_field("body", frame.raw))
        else:
            if frame.data is not None:
                if frame.event is not None:
                    line["event"] = frame.event
                line["data"] = frame.data
            line.update(_bytes_field("raw", frame.raw))
        lines.append(json.dumps(line, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def _bytes_field(name: str, data: bytes) -> dict[str, str]:
    try:
        return {name: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{name}_b64": base64.b64encode(data).decode("ascii")}


def save_recording(directory: Path, recording: Recording) -> Path:
    """Write the recording into `directory` under its name, atomically (a temporary file, then
    `os.replace`): a reader never sees half a file, and recording the request again replaces it."""
    target = directory / recording.name
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{recording.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as sink:
            sink.write(recording_text(recording))
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


# -- loading ----------------------------------------------------------------------------------------


def load_recording(path: Path, key: str = "recordings.dir") -> Recording | None:
    """Read one file; None when its header is not a recording's (a plain transcript, say). A bad
    recording is a `ConfigError` at `key` naming the file, the line and the problem."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(key, f"{path}: cannot read the recording: {err}") from None
    records = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    if not records:
        return None
    number, line = records[0]
    header = json_line(path, number, line, key)
    if "recording" not in header:
        return None
    where = f"{path}:{number}"

    def bad(problem: str, at: str = where) -> ConfigError:
        return ConfigError(key, f"{at}: {problem}")

    if header.get("transcript") != FORMAT:
        raise bad(f'a recording\'s header needs "transcript": {FORMAT!r}')
    if header.get("recording") != VERSION:
        raise bad(f'"recording" must be {VERSION}, got {header.get("recording")!r}')
    dialect = header.get("dialect")
    if not isinstance(dialect, str) or DIALECTS.named(dialect) is None:
        raise bad(f'"dialect" must be one of {sorted(DIALECTS.names())}, got {dialect!r}')
    request = header.get("key")
    if not isinstance(request, str) or not _KEY.fullmatch(request):
        raise bad(f'"key" must be 64 hex digits (request_key), got {request!r}')
    match = header.get("match")
    if not isinstance(match, dict):
        raise bad(f'"match" must be an object, got {match!r}')
    status = header.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise bad(f'"status" must be an HTTP status, got {status!r}')
    headers = _pairs(header.get("headers", []), '"headers"', bad)
    request_headers = _pairs(header.get("request_headers", []), '"request_headers"', bad)
    complete = header.get("complete", True)
    if not isinstance(complete, bool):
        raise bad(f'"complete" must be true or false, got {complete!r}')
    framing = header.get("framing")
    frames: list[Frame] = []
    previous = 0.0
    for number, line in records[1:]:
        record = json_line(path, number, line, key)
        at = f"{path}:{number}"
        at_ms = record.get("at_ms")
        if isinstance(at_ms, bool) or not isinstance(at_ms, int | float) or at_ms < previous:
            raise bad(f'"at_ms" must be a number >= the line before\'s ({previous}), got {at_ms!r}', at)
        previous = float(at_ms)
        if framing is None:
            framing = "body" if "body" in record or "body_b64" in record else "sse" if "data" in record else "reads"
        frames.append(_frame(record, float(at_ms), framing, bad, at))
    if framing is None:
        framing = "body"
    if framing not in ("sse", "reads", "body"):
        raise bad(f'"framing" must be "sse", "reads" or "body", got {framing!r}')
    if framing == "body" and len(frames) > 1:
        raise bad(f"a body recording has one line after its header, this one has {len(frames)}")
    return Recording(
        dialect=dialect,
        key=request,
        match=match,
        status=status,
        headers=headers,
        framing=framing,
        frames=tuple(frames),
        complete=complete,
        head_at_ms=float(header.get("head_at_ms") or 0.0),
        request_headers=request_headers,
        note=str(header.get("note") or ""),
        path=str(path),
    )


def _frame(record: dict[str, Any], at_ms: float, framing: str, bad: Any, at: str) -> Frame:
    name = "body" if framing == "body" else "raw"
    raw = _bytes_of(record, name, bad, at)
    if framing != "sse":
        if raw is None:
            raise bad(f'each line needs "{name}" (or "{name}_b64"): the bytes as they came', at)
        return Frame(at_ms, raw)
    event, data = record.get("event"), record.get("data")
    if event is not None and not isinstance(event, str):
        raise bad(f'"event" must be a string or absent, got {event!r}', at)
    if data is not None and not isinstance(data, str):
        raise bad(f'"data" must be the event\'s data as a string, got {data!r}', at)
    if raw is None:  # a line written by hand: its event as a server would send it
        if data is None:
            raise bad('an event needs "raw" (its bytes) or at least "data"', at)
        lines = ([f"event: {event}"] if event is not None else []) + [f"data: {part}" for part in data.split("\n")]
        raw = ("\n".join(lines) + "\n\n").encode("utf-8")
    if data is None:
        event, data = parse_event(raw)
    return Frame(at_ms, raw, event, data)


def _bytes_of(record: dict[str, Any], name: str, bad: Any, at: str) -> bytes | None:
    text, encoded = record.get(name), record.get(f"{name}_b64")
    if text is not None:
        if not isinstance(text, str):
            raise bad(f'"{name}" must be a string, got {text!r}', at)
        return text.encode("utf-8")
    if encoded is not None:
        try:
            return base64.b64decode(encoded, validate=True)
        except (ValueError, TypeError):
            raise bad(f'"{name}_b64" must be base64, got {encoded!r}', at) from None
    return None


def _pairs(value: Any, what: str, bad: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair) for pair in value
    ):
        raise bad(f"{what} must be a list of [name, value] strings, got {value!r}")
    return tuple((name, text) for name, text in value)


def load_recordings(directory: str | Path, missing: Missing = "plan", key: str = "recordings.dir") -> Recordings:
    """Every recording in `directory` (its `*.jsonl` files whose header is a recording's), by key;
    of two files with the same key, the first by name."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ConfigError(key, f"{directory!r} is not a directory (record one with: mockllm record --out DIR)")
    by_key: dict[str, Recording] = {}
    for path in sorted(folder.glob("*.jsonl")):
        recording = load_recording(path, key)
        if recording is not None:
            by_key.setdefault(recording.key, recording)
    return Recordings(str(directory), missing, by_key)


@dataclass(frozen=True, slots=True)
class Recordings:
    """The config's `recordings`: a directory's recordings by key, and what to do when none matches
    (`plan`: answer as usual; `error`: the dialect's 404)."""

    dir: str
    missing: Missing = "plan"
    by_key: Mapping[str, Recording] = field(default_factory=dict, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.by_key)

    def to_config(self) -> dict[str, Any]:
        return {"dir": self.dir, "missing": self.missing}

    def find(
        self, dialect: str, method: str, path: str, body: bytes, query: Mapping[str, str] | str | None = None
    ) -> Recording | None:
        return self.by_key.get(request_key(dialect, method, path, body, query))
