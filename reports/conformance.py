"""The single-file HTML report of a conformance run: `RunResult.to_dict()` in, one offline page out.

Every byte a stream carried is untrusted text. The template escapes it (autoescape on), and the
page's Content-Security-Policy runs only the page's own script (by its hash) and loads nothing from
anywhere, so a missed escape stays inert and the file works attached to a CI run, offline.

The view model below is built from plain dicts by pure functions; the template only lays it out.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import contextlib
import itertools
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from contracts import CATALOG

from ._page import template, write_atomic

RAW_CAP = 64 * 1024  # bytes of a stream shown in its raw view; the JSON result keeps them all
TEXT_CAP = 16 * 1024  # characters of a request or response body shown
DATA_CAP = 2000  # characters of one event's data shown in the events table

PROBLEM_VERDICTS = frozenset({"failed", "warned", "error"})  # what "failed only" keeps
OPEN_VERDICTS = frozenset({"failed", "error"})  # scenarios whose <details> start open
SCENARIO_VERDICTS = ("passed", "failed", "warned", "not_applicable", "error")
CHECK_VERDICTS = ("passed", "failed", "not_checked", "expected_failure")
_CHECK_ORDER = {"failed": 0, "not_checked": 1, "expected_failure": 2, "passed": 3}
_FLAGGING = frozenset({"failed", "expected_failure"})  # check verdicts that label the event they name
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"})

# Printable ASCII needs no per-character look; everything else is decoded one character at a time.
_PLAIN_RUN = re.compile(rb"[\x20-\x7e]+")
# code point: (symbol in the text, label drawn over it, name in the tooltip)
_NAMED_CHARS = {
    0x00: ("␀", "NUL", "NUL"),
    0x09: ("␉", "TAB", "TAB"),
    0x0A: ("␊", "LF", "LF"),
    0x0D: ("␍", "CR", "CR"),
    0x7F: ("␡", "DEL", "DEL"),
    0xFEFF: ("BOM", "BOM", "byte order mark U+FEFF"),
}
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Zs", "Co", "Cs"})


# --- the view model --------------------------------------------------------------------------


@dataclass(slots=True)
class Piece:
    """A run of raw-view text with one look: plain, a made-visible control character, a bad byte.

    A control character's text is its Unicode symbol (what a copy or a search finds); `label` is what
    the page draws over it in plain ASCII, since few monospace fonts have the Control Pictures glyphs.
    """

    text: str
    cls: str = ""
    title: str = ""
    label: str = ""
    anchor: str = ""  # id of the first piece of a highlighted event, so its row can scroll to it


class Hit(NamedTuple):
    """A byte range of the raw view to highlight: an event that a check flagged."""

    start: int
    end: int
    label: str
    anchor: str = ""


@dataclass(slots=True)
class ReadView:
    """The bytes of one network read (or the part of it shown), marked by a tick with its time."""

    index: int | None  # None: bytes no recorded read covers
    offset: int
    size: int
    ms: float | None
    pieces: list[Piece] = field(default_factory=list)

    @property
    def tick(self) -> str:
        return "?" if self.index is None else f"#{self.index} +{self.ms:.1f}ms"

    @property
    def title(self) -> str:
        if self.index is None:
            return f"bytes from offset {self.offset} that no recorded read covers"
        return f"read {self.index}: offset {self.offset}, {self.size} B, +{self.ms:.1f} ms"


@dataclass(slots=True)
class Flag:
    """A check that names an event, as the event's row shows it."""

    check: str
    level: str
    verdict: str
    message: str


@dataclass(slots=True)
class EventRow:
    anchor: str
    index: int
    kind: str
    read: int | None
    time_ms: float | None
    start: int | None
    end: int | None
    data: str
    data_cut: int  # characters of data not shown
    flags: list[Flag] = field(default_factory=list)

    @property
    def raw_anchor(self) -> str:
        """The id of this event's first bytes in the raw view (present when a check flagged it)."""
        return f"{self.anchor}-raw"


@dataclass(slots=True)
class IssueView:
    """A wire issue the decoder reported, tied to a byte offset."""

    code: str
    severity: str
    message: str
    offset: Any
    read: Any


@dataclass(slots=True)
class StreamView:
    reads: list[ReadView]
    events: list[EventRow]
    issues: list[IssueView]
    ended: str
    total_bytes: int
    shown_bytes: int
    read_count: int


@dataclass(slots=True)
class Body:
    text: str
    cut: int  # characters not shown


@dataclass(slots=True)
class ExchangeView:
    anchor: str
    step: Any
    operation: str
    method: str
    url: str
    request_headers: list[tuple[str, str]]
    request_body: Body | None
    status: Any
    response_headers: list[tuple[str, str]]
    response_body: Body | None
    elapsed_ms: float
    stream: StreamView | None
    open: bool


@dataclass(slots=True)
class CheckRow:
    check: str
    level: str
    verdict: str
    message: str
    step: Any
    event: Any
    link: str  # fragment of the event row (or the step) it points at; "" when none


@dataclass(slots=True)
class ScenarioView:
    anchor: str
    name: str
    summary: str
    tags: list[str]
    verdict: str
    reason: str
    duration_ms: float
    checks: list[CheckRow]
    exchanges: list[ExchangeView]

    @property
    def problem(self) -> bool:
        return self.verdict in PROBLEM_VERDICTS

    @property
    def open(self) -> bool:
        return self.verdict in OPEN_VERDICTS


@dataclass(slots=True)
class CheckTally:
    """One check id at one level, counted over the run."""

    check: str
    level: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHECK_VERDICTS, 0))
    failed_in: list[tuple[str, str]] = field(default_factory=list)  # (anchor, scenario name)

    @property
    def rule(self) -> str:
        """The catalogue's rule for the check and the contracts.md sentences it cites ("" if unknown)."""
        info = CATALOG.get(self.check)
        if info is None:
            return ""
        cited = [f"contracts.md, {c.section}: \u201c{c.text}\u201d" for c in info.cites]
        return "\n".join([info.summary, *cited])


@dataclass(slots=True)
class RunView:
    target: str
    profile: str
    started: str
    duration_s: float
    settings: list[tuple[str, str]]
    ok: bool
    scenario_counts: list[tuple[str, int]]
    check_counts: list[tuple[str, int]]
    must_failed: int
    must_not_checked: int
    tallies: list[CheckTally]
    scenarios: list[ScenarioView]


# --- building it -----------------------------------------------------------------------------


def build_view(run: Mapping[str, Any]) -> RunView:
    """The report's content, computed from a `RunResult.to_dict()` mapping (nothing is read or written)."""
    scenarios = [_scenario_view(i, s) for i, s in enumerate(run.get("scenarios") or ())]
    checks = [c for s in scenarios for c in s.checks]
    must_failed = sum(c.verdict == "failed" and c.level == "MUST" for c in checks)
    harness_errors = any(s.verdict == "error" for s in scenarios)
    # The dict's own `ok` can only make the verdict stricter: a hand-edited "ok": true cannot hide a failed MUST.
    ok = not must_failed and not harness_errors and bool(run.get("ok", True))
    scenario_counts = {v: 0 for v in SCENARIO_VERDICTS}
    for s in scenarios:
        scenario_counts[s.verdict] = scenario_counts.get(s.verdict, 0) + 1
    check_counts = {v: 0 for v in CHECK_VERDICTS}
    for c in checks:
        check_counts[c.verdict] = check_counts.get(c.verdict, 0) + 1
    return RunView(
        target=str(run.get("target", "")),
        profile=str(run.get("profile", "")),
        started=str(run.get("started", "")),
        duration_s=float(run.get("duration_s") or 0.0),
        settings=[(str(k), str(v)) for k, v in sorted((run.get("settings") or {}).items())],
        ok=ok,
        scenario_counts=list(scenario_counts.items()),
        check_counts=list(check_counts.items()),
        must_failed=must_failed,
        must_not_checked=sum(c.verdict == "not_checked" and c.level == "MUST" for c in checks),
        tallies=_tallies(scenarios),
        scenarios=scenarios,
    )


def _tallies(scenarios: Sequence[ScenarioView]) -> list[CheckTally]:
    tallies: dict[tuple[str, str], CheckTally] = {}
    for scenario in scenarios:
        for check in scenario.checks:
            tally = tallies.setdefault((check.check, check.level), CheckTally(check.check, check.level))
            tally.counts[check.verdict] = tally.counts.get(check.verdict, 0) + 1
            if check.verdict == "failed" and (scenario.anchor, scenario.name) not in tally.failed_in:
                tally.failed_in.append((scenario.anchor, scenario.name))
    return [tallies[key] for key in sorted(tallies)]


def _scenario_view(position: int, scenario: Mapping[str, Any]) -> ScenarioView:
    anchor = f"s{position}"
    raw_checks = list(scenario.get("checks") or ())
    raw_exchanges = list(scenario.get("exchanges") or ())
    exchanges = [_exchange_view(f"{anchor}-x{j}", x, raw_checks) for j, x in enumerate(raw_exchanges)]
    checks = [_check_row(c, exchanges) for c in raw_checks]
    # Failed first; sort is stable, so the run's order holds within a verdict.
    checks.sort(key=lambda c: _CHECK_ORDER.get(c.verdict, len(_CHECK_ORDER)))
    return ScenarioView(
        anchor=anchor,
        name=str(scenario.get("name", f"scenario {position}")),
        summary=str(scenario.get("summary", "")),
        tags=[str(t) for t in scenario.get("tags") or ()],
        verdict=str(scenario.get("verdict", "")),
        reason=str(scenario.get("reason", "")),
        duration_ms=float(scenario.get("duration_ms") or 0.0),
        checks=checks,
        exchanges=exchanges,
    )


def _check_row(check: Mapping[str, Any], exchanges: Sequence[ExchangeView]) -> CheckRow:
    step, event = check.get("step"), check.get("event")
    link = ""
    in_step = [x for x in exchanges if step is not None and x.step == step]
    if event is not None:
        link = next((row.anchor for x in in_step if x.stream for row in _rows_for(x.stream, event)), "")
    if not link and in_step:
        link = in_step[0].anchor
    return CheckRow(
        check=str(check.get("check", "")),
        level=str(check.get("level", "")),
        verdict=str(check.get("verdict", "")),
        message=str(check.get("message", "")),
        step=step,
        event=event,
        link=link,
    )


def _rows_for(stream: StreamView, event: Any) -> list[EventRow]:
    """The rows a check's event index names: the event itself, not a comment that shares the number."""
    rows = [row for row in stream.events if row.index == event]
    return [row for row in rows if row.kind != "comment"] or rows


def _exchange_view(anchor: str, exchange: Mapping[str, Any], checks: Sequence[Mapping[str, Any]]) -> ExchangeView:
    step = exchange.get("step")
    flagging = [c for c in checks if c.get("step") == step and c.get("verdict") in _FLAGGING]
    stream = exchange.get("stream")
    return ExchangeView(
        anchor=anchor,
        step=step,
        operation=str(exchange.get("operation", "")),
        method=str(exchange.get("method", "")),
        url=str(exchange.get("url", "")),
        request_headers=_headers(exchange.get("request_headers")),
        request_body=_body(exchange.get("request_body")),
        status=exchange.get("status"),
        response_headers=_headers(exchange.get("response_headers")),
        response_body=_body(exchange.get("response_body")),
        elapsed_ms=float(exchange.get("elapsed_ms") or 0.0),
        stream=_stream_view(anchor, stream, flagging) if stream else None,
        open=any(c.get("verdict") == "failed" for c in flagging),
    )


def _headers(headers: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Header pairs, credentials masked: a report travels further than the run that made it."""
    out = []
    for name, value in (headers or {}).items():
        text = str(value)
        if name.lower() in _SECRET_HEADERS:
            scheme, _, rest = text.partition(" ")
            keep_scheme = rest and name.lower().endswith("authorization") and scheme.isalpha()  # "Bearer", "Basic"
            text = f"{scheme} [redacted, {len(rest)} chars]" if keep_scheme else f"[redacted, {len(text)} chars]"
        out.append((str(name), text))
    return out


def _body(body: Any) -> Body | None:
    """A body as text, JSON pretty-printed (it is easier to read and to compare), long ones cut."""
    if body is None:
        return None
    text = body if isinstance(body, str) else json.dumps(body)
    with contextlib.suppress(ValueError):
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    return Body(text[:TEXT_CAP], max(0, len(text) - TEXT_CAP))


# --- the stream timeline ---------------------------------------------------------------------


def _stream_view(anchor: str, stream: Mapping[str, Any], flagging: Sequence[Mapping[str, Any]]) -> StreamView:
    raw = _raw_bytes(stream)
    reads = [(int(o), int(s), float(ms)) for o, s, ms in stream.get("reads") or ()]
    rows = [_event_row(anchor, e) for e in stream.get("events") or ()]
    view = StreamView(
        reads=[],
        events=rows,
        issues=[_issue_view(i) for i in stream.get("issues") or ()],
        ended=str(stream.get("ended", "")),
        total_bytes=len(raw),
        shown_bytes=min(len(raw), RAW_CAP),
        read_count=len(reads),
    )
    for check in flagging:
        for row in _rows_for(view, check.get("event")):
            row.flags.append(_flag(check))
    hits = [
        Hit(row.start, row.end, "event {}: {}".format(row.index, ", ".join(f.check for f in row.flags)), row.raw_anchor)
        for row in rows
        if row.flags and row.start is not None and row.end is not None
    ]
    view.reads = raw_view(raw, reads, hits=hits, issues=stream.get("issues") or ())
    return view


def _flag(check: Mapping[str, Any]) -> Flag:
    return Flag(
        check=str(check.get("check", "")),
        level=str(check.get("level", "")),
        verdict=str(check.get("verdict", "")),
        message=str(check.get("message", "")),
    )


def _issue_view(issue: Mapping[str, Any]) -> IssueView:
    return IssueView(
        code=str(issue.get("code", "")),
        severity=str(issue.get("severity", "")),
        message=str(issue.get("message", "")),
        offset=issue.get("offset"),
        read=issue.get("read"),
    )


def _raw_bytes(stream: Mapping[str, Any]) -> bytes:
    try:
        return base64.b64decode(stream.get("raw") or "", validate=True)
    except (binascii.Error, ValueError):
        return str(stream.get("raw_text") or "").encode("utf-8")


def _event_row(anchor: str, event: Mapping[str, Any]) -> EventRow:
    data = str(event.get("data", ""))
    index = event.get("index")
    return EventRow(
        anchor=f"{anchor}-e{index}",
        index=index,  # type: ignore[arg-type]
        kind=str(event.get("kind", "?")),
        read=event.get("read"),
        time_ms=event.get("time_ms"),
        start=event.get("start"),
        end=event.get("end"),
        data=data[:DATA_CAP],
        data_cut=max(0, len(data) - DATA_CAP),
    )


def raw_view(
    raw: bytes,
    reads: Sequence[tuple[int, int, float]],
    *,
    hits: Sequence[Hit] = (),
    issues: Sequence[Mapping[str, Any]] = (),
    cap: int = RAW_CAP,
) -> list[ReadView]:
    """The first `cap` bytes of a stream, cut at network-read boundaries, with every character visible.

    CR, LF, NUL, a BOM and other invisible characters become labelled symbols (LF and a lone CR also
    break the line, as they end a line on the wire); a byte that is not UTF-8 shows as its hex value;
    a character whose bytes span two reads is shown whole, in the read where it starts, marked split.
    `hits` are byte ranges to highlight (the first piece of each gets its anchor as id); `issues` get a
    marker at their offset.
    """
    starts = sorted({o for o, _, _ in reads})
    by_offset = {o: (i, s, ms) for i, (o, s, ms) in enumerate(reads)}
    issue_at: dict[int, list[str]] = {}
    for issue in issues:
        if isinstance(issue.get("offset"), int):
            issue_at.setdefault(issue["offset"], []).append(f"{issue.get('code')}: {issue.get('message', '')}")
    cuts = sorted({*starts, *issue_at, *(p for hit in hits for p in (hit.start, hit.end))})
    anchored: set[str] = set()

    views: list[ReadView] = []

    def read_of(pos: int) -> ReadView:
        k = bisect.bisect_right(starts, pos) - 1
        offset = starts[k] if k >= 0 else 0
        if not views or views[-1].offset != offset or (k < 0) != (views[-1].index is None):
            index, size, ms = by_offset[offset] if k >= 0 else (None, starts[0] if starts else len(raw), None)
            views.append(ReadView(index, offset, size, ms))
        return views[-1]

    def hit_of(pos: int) -> Hit | None:
        return next((hit for hit in hits if hit.start <= pos < hit.end), None)

    def anchor_first(read: ReadView, first: int, hit: Hit | None) -> None:
        if hit and hit.anchor and hit.anchor not in anchored and first < len(read.pieces):
            read.pieces[first].anchor = hit.anchor
            anchored.add(hit.anchor)

    def mark_issues(read: ReadView, positions: Iterable[int]) -> None:
        read.pieces.extend(Piece("", "issue", mark) for p in positions for mark in issue_at.get(p, ()))

    for start, end, char in _tokens(raw, cap):
        if char is None:  # a run of printable ASCII: cut wherever a read, a highlight or an issue starts
            inner = cuts[bisect.bisect_right(cuts, start) : bisect.bisect_left(cuts, end)]
            for a, b in itertools.pairwise([start, *inner, end]):
                read, hit = read_of(a), hit_of(a)
                mark_issues(read, (a,))
                first = len(read.pieces)
                _append(read, raw[a:b].decode("ascii"), "", "", hit.label if hit else "")
                anchor_first(read, first, hit)
            continue
        read, hit = read_of(start), hit_of(start)
        mark_issues(read, range(start, end))
        first = len(read.pieces)
        split = bisect.bisect_right(starts, start) < bisect.bisect_left(starts, end)
        _append_char(read, raw, start, end, char, hit.label if hit else "", split)
        anchor_first(read, first, hit)
    return views


def _tokens(raw: bytes, cap: int) -> Iterator[tuple[int, int, str | None]]:
    """(start, end, char) for each character starting before `cap`: char is None for a run of printable
    ASCII, "" for a byte that starts no valid UTF-8 character, else the decoded character."""
    i, limit = 0, min(cap, len(raw))
    while i < limit:
        plain = _PLAIN_RUN.match(raw, i, limit)
        if plain:
            yield i, plain.end(), None
            i = plain.end()
            continue
        size = _utf8_size(raw[i])
        try:
            char = raw[i : i + size].decode("utf-8") if size else ""  # strict: no overlongs, surrogates, short tails
        except UnicodeDecodeError:
            char, size = "", 1
        size = size or 1
        yield i, i + size, char
        i += size


def _utf8_size(lead: int) -> int:
    """How many bytes a UTF-8 character starting with this byte has; 0 when no character starts so."""
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    return 4 if 0xF0 <= lead <= 0xF4 else 0


def _append_char(read: ReadView, raw: bytes, start: int, end: int, char: str, hit: str, split: bool) -> None:
    extra = " split" if split else ""
    note = f" (bytes {start}-{end - 1} span two reads)" if split else ""
    if not char:
        _append(read, f"\\x{raw[start]:02X}", "bad" + extra, f"byte 0x{raw[start]:02X} at {start}: not UTF-8", hit)
        return
    shown = _visible(char)
    if shown is None:
        _append(read, char, ("char" + extra) if split else "", note.strip(), hit)
        return
    symbol, label, name = shown
    _append(read, symbol, "ctl" + extra, f"{name} at {start}{note}", hit, label)
    lone_cr = char == "\r" and raw[end : end + 1] != b"\n"
    if char == "\n" or lone_cr:
        _append(read, "\n", "", "", hit)


def _visible(char: str) -> tuple[str, str, str] | None:
    """(symbol, label, name) for a character that would be invisible or move the text; None for others."""
    code = ord(char)
    if code in _NAMED_CHARS:
        return _NAMED_CHARS[code]
    if code < 0x20:
        return chr(0x2400 + code), f"0x{code:02X}", f"control 0x{code:02X}"
    if char != " " and unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        return f"⟨U+{code:04X}⟩", f"U+{code:04X}", unicodedata.name(char, f"U+{code:04X}")
    return None


def _append(read: ReadView, text: str, cls: str, title: str, hit: str, label: str = "") -> None:
    """Add text to a read, merged into the last piece when it looks the same (fewer elements to lay out)."""
    if hit:
        cls = f"{cls} hit".strip()
        title = f"{hit}; {title}" if title else hit
    last = read.pieces[-1] if read.pieces else None
    if last and last.cls == cls and last.title == title and cls in ("", "hit"):
        last.text += text
    else:
        read.pieces.append(Piece(text, cls, title, label))


# --- rendering and writing -------------------------------------------------------------------


def render_conformance(run: Mapping[str, Any]) -> str:
    """The HTML page of a conformance run (a `RunResult.to_dict()` mapping); pure, no I/O."""
    return template("conformance.html.j2").render(run=build_view(run))


def write_conformance(run: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Render the run and write it to `path` atomically: a reader sees the old file or the new one."""
    return write_atomic(path, render_conformance(run))
