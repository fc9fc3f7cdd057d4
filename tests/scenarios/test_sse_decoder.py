"""The event-stream decoder against the web-platform-tests `eventsource/` cases, and at every split."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple

import pytest

from scenarios import Read, SSEComment, SSEDecoder, SSEEvent, WireIssue, parse_stream


def served(message: bytes, newline: bool = True) -> bytes:
    """The body WPT's resources/message.py sends: the message, "\\n\\n" unless newline=none, then "\\n"."""
    return message + (b"\n\n" if newline else b"") + b"\n"


class Case(NamedTuple):
    stream: bytes
    events: list[tuple[str, str, str, int | None]]  # (type, data, id, retry) per dispatched event
    comments: Sequence[str] = ()
    issues: Sequence[str] = ()  # issue codes, in order
    last_event_id: str = ""
    retry: int | None = None


LONG = b"x" * 2048

# Each case is named after the WPT file it comes from. Not ported: format-mime-* (the Content-Type
# check belongs to the HTTP layer, not the decoder), and the reconnection timing half of
# format-field-retry* (only the value the stream sets is checked here).
WPT = {
    "eventsource-onmessage": Case(served(b"data: data"), [("message", "data", "", None)]),
    "eventsource-onmessage-trusted": Case(served(b"data: data"), [("message", "data", "", None)]),
    "format-bom": Case(
        served(b"\xef\xbb\xbfdata:1\n\n\xef\xbb\xbfdata:2\n\ndata:3"),
        [("message", "1", "", None), ("message", "3", "", None)],
        issues=["unknown-field"],  # the second BOM is part of the field name "\ufeffdata"
    ),
    "format-bom-2": Case(
        served(b"\xef\xbb\xbf\xef\xbb\xbfdata:1\n\ndata:2\n\ndata:3"),
        [("message", "2", "", None), ("message", "3", "", None)],
        issues=["unknown-field"],
    ),
    "format-comments": Case(
        served(
            b"data:1\r:\0\n:\r\ndata:2\n:" + LONG + b"\rdata:3\n:data:fail\r:" + LONG + b"\ndata:4\n", newline=False
        ),
        [("message", "1\n2\n3\n4", "", None)],
        comments=["\0", "", LONG.decode(), "data:fail", LONG.decode()],
    ),
    "format-data-before-final-empty-line": Case(
        served(b"retry:1000\ndata:test1\n\nid:test\ndata:test2", newline=False),
        [("message", "test1", "", 1000)],
        issues=["unterminated-block"],
        last_event_id="",  # the id: of the discarded block never takes effect
        retry=1000,
    ),
    "format-field-data": Case(
        served(b"data:\n\ndata\ndata\n\ndata:test"),
        [("message", "", "", None), ("message", "\n", "", None), ("message", "test", "", None)],
    ),
    "format-field-event": Case(
        served(b"event:test\ndata:x\n\ndata:x"), [("test", "x", "", None), ("message", "x", "", None)]
    ),
    "format-field-event-empty": Case(served(b"event: \ndata:data"), [("message", "data", "", None)]),
    # format-field-id and -2: resources/last-event-id.py on the first connection.
    "format-field-id": Case(
        "id: …\nretry: 200\ndata: hello\n\n".encode(),
        [("message", "hello", "…", 200)],
        last_event_id="…",
        retry=200,
    ),
    "format-field-id-2": Case(
        "id: …\nretry: 200\ndata: hello\n\n".encode(),
        [("message", "hello", "…", 200)],
        last_event_id="…",
        retry=200,
    ),
    # format-field-id-3: resources/last-event-id2.py, its three types.
    "format-field-id-3-persists": Case(
        b"id: 1\ndata: 1\n\ndata:2\n\n",
        [("message", "1", "1", None), ("message", "2", "1", None)],
        last_event_id="1",
    ),
    "format-field-id-3-changes-and-persists": Case(
        b"id: 1\ndata: 1\n\nid: 2\ndata:2\n\ndata:3\n\n",
        [("message", "1", "1", None), ("message", "2", "2", None), ("message", "3", "2", None)],
        last_event_id="2",
    ),
    "format-field-id-3-resets": Case(
        b"id: 1\ndata: 1\n\nid:\ndata:2\n\ndata:3\n\n",
        [("message", "1", "1", None), ("message", "2", "", None), ("message", "3", "", None)],
        last_event_id="",
    ),
    "format-field-id-null": Case(
        b"id: \0\0\nretry: 200\ndata: hello\n\n",
        [("message", "hello", "", 200)],
        issues=["id-with-nul"],
        retry=200,
    ),
    "format-field-parsing": Case(
        served(
            b"data:\0\ndata:  2\rData:1\ndata\0:2\ndata:1\r\0data:4\nda-ta:3\rdata_5\ndata:3\rdata:\r\n"
            b" data:32\ndata:4\n",
            newline=False,
        ),
        [("message", "\0\n 2\n1\n3\n\n4", "", None)],
        issues=["unknown-field"] * 6,  # Data, data\0, \0data, da-ta, data_5, " data"
    ),
    "format-field-retry": Case(served(b"retry:02000\ndata:x"), [("message", "x", "", 2000)], retry=2000),
    "format-field-retry-bogus": Case(
        served(b"retry:2000\nretry:1000x\ndata:x"), [("message", "x", "", 2000)], issues=["bad-retry"], retry=2000
    ),
    "format-field-retry-empty": Case(
        served(b"retry\ndata:test"), [("message", "test", "", None)], issues=["bad-retry"]
    ),
    "format-field-unknown": Case(
        served(b"data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test"),
        [("message", "test\n\ntest", "", None)],
        comments=["thisisacommentyay"],
        issues=["unknown-field"] * 3,
    ),
    "format-leading-space": Case(served(b"data:\ttest\rdata: \ndata:test"), [("message", "\ttest\n\ntest", "", None)]),
    "format-newlines": Case(
        # message.py's own final LF completes the CRLF after the message's last CR.
        served(b"data:test\r\ndata\ndata:test\r\n\r", newline=False),
        [("message", "test\n\ntest", "", None)],
    ),
    "format-null-character": Case(served(b"data:\0\n\n"), [("message", "\0", "", None)]),
    "format-utf-8": Case(served("data:ok…".encode()), [("message", "ok…", "", None)]),
    # event-data: one round of resources/message2.py's loop.
    "event-data": Case(
        b"data:msg\ndata: msg\n\n:\nfalsefield:msg\n\nfalsefield:msg\nData:data\n\ndata\n\ndata:end\n\n",
        [("message", "msg\nmsg", "", None), ("message", "", "", None), ("message", "end", "", None)],
        comments=[""],
        issues=["unknown-field"] * 2,  # falsefield (once per name), Data
    ),
}


def decode(reads: list[bytes]) -> tuple[list[SSEEvent | SSEComment], SSEDecoder]:
    decoder = SSEDecoder()
    items: list[SSEEvent | SSEComment] = []
    for index, chunk in enumerate(reads):
        items += decoder.feed(chunk, time=float(index))
    items += decoder.close()
    return items, decoder


def signature(items: list[SSEEvent | SSEComment], decoder: SSEDecoder) -> tuple:
    """What must not depend on how the stream was cut into reads."""
    parts = [
        ("event", i.type, i.data, i.id, i.retry, i.index, i.start)
        if isinstance(i, SSEEvent)
        else ("comment", i.text, i.start)
        for i in items
    ]
    issues = [(i.code, i.severity, i.offset) for i in decoder.issues]
    return parts, issues, decoder.last_event_id, decoder.retry


@pytest.mark.parametrize("case", WPT.values(), ids=WPT.keys())
def test_wpt_case(case: Case) -> None:
    items, decoder = decode([case.stream])
    assert [(e.type, e.data, e.id, e.retry) for e in items if isinstance(e, SSEEvent)] == case.events
    assert [c.text for c in items if isinstance(c, SSEComment)] == list(case.comments)
    assert [i.code for i in decoder.issues] == list(case.issues)
    assert decoder.last_event_id == case.last_event_id
    assert decoder.retry == case.retry
    assert [e.index for e in items if isinstance(e, SSEEvent)] == list(range(len(case.events)))


@pytest.mark.parametrize("case", WPT.values(), ids=WPT.keys())
def test_wpt_case_split_in_two_at_every_offset(case: Case) -> None:
    whole = signature(*decode([case.stream]))
    for cut in range(len(case.stream) + 1):
        assert signature(*decode([case.stream[:cut], case.stream[cut:]])) == whole, f"cut at byte {cut}"


@pytest.mark.parametrize("case", WPT.values(), ids=WPT.keys())
def test_wpt_case_one_byte_per_read(case: Case) -> None:
    items, decoder = decode([case.stream[i : i + 1] for i in range(len(case.stream))])
    assert signature(items, decoder) == signature(*decode([case.stream]))
    for event in (e for e in items if isinstance(e, SSEEvent)):
        # One byte per read: the read that completed the blank line is the blank line's last byte.
        assert event.read == event.end - 1
        assert event.time == decoder.reads[event.read].time == float(event.read)


def test_reconnection_seeds_the_last_event_id() -> None:
    # format-field-id's second connection: the server echoes the Last-Event-ID it was sent.
    decoder = SSEDecoder(last_event_id="…")
    (event,) = decoder.feed("data: …\n\n".encode())
    assert (event.data, event.id) == ("…", "…")


# Line ends split across reads


def test_crlf_split_across_reads_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r", 1.0) == []
    assert decoder.feed(b"\ndata: b\r", 2.0) == []  # an extra empty line here would dispatch "a"
    (event,) = decoder.feed(b"\n\r", 3.0)  # the CR alone ends the blank line: dispatched at once
    assert (event.data, event.read, event.time, event.start, event.end) == ("a\nb", 2, 3.0, 0, 19)
    assert decoder.feed(b"\ndata: c\r\n\r\n", 4.0)[0].start == 20  # the LF after it is skipped, not a line
    assert decoder.close() == [] and decoder.issues == []


def test_cr_then_a_non_lf_read_is_a_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert [e.data for e in decoder.feed(b"\r")] == ["a"]
    assert decoder.feed(b"data: b\n\n")[0].start == 9


def test_mixed_line_ends_in_one_read() -> None:
    events, issues = parse_stream(b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r")
    assert [e.data for e in events] == ["a\nb\nc", "d"]
    assert issues == []


# UTF-8 across reads


EMOJI = "😀".encode()  # four bytes


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_four_byte_character_split_across_two_reads(cut: int) -> None:
    stream = b"data: <" + EMOJI + b">\n\n"
    at = stream.index(EMOJI) + cut
    events, issues = parse_stream([stream[:at], stream[at:]])
    assert [e.data for e in events] == ["<😀>"]
    assert issues == []


def test_four_byte_character_one_byte_per_read() -> None:
    events, issues = parse_stream([b"data: ", *(EMOJI[i : i + 1] for i in range(4)), b"\n\n"])
    assert [e.data for e in events] == ["😀"]
    assert issues == []


def test_bom_split_across_reads_is_stripped() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"\xef") == [] and decoder.feed(b"\xbb") == []
    (event,) = decoder.feed(b"\xbfdata: x\n\n")
    assert (event.data, event.start, event.end) == ("x", 3, 12)
    assert decoder.close() == [] and decoder.issues == []
    assert decoder.raw == b"\xef\xbb\xbfdata: x\n\n"


# Offsets, reads and times


def test_offsets_reads_and_times() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n", 1.5) == []
    first = decoder.feed(b"\n: hb\nid: 7\ndata: b\n\n", 2.5)
    assert decoder.feed(b"", 3.0) == []
    second = decoder.feed(b"event: done\ndata: {}\n", 4.0) + decoder.feed(b"\n", 5.0)
    assert first == [
        SSEEvent("message", "a", "", None, index=0, read=1, time=2.5, start=0, end=9),
        SSEComment(" hb", read=1, time=2.5, start=9, end=14),
        SSEEvent("message", "b", "7", None, index=1, read=1, time=2.5, start=9, end=29),
    ]
    assert second == [SSEEvent("done", "{}", "7", None, index=2, read=4, time=5.0, start=29, end=51)]
    assert decoder.reads == [
        Read(0, 0, 8, 1.5),
        Read(1, 8, 21, 2.5),
        Read(2, 29, 0, 3.0),
        Read(3, 29, 21, 4.0),
        Read(4, 50, 1, 5.0),
    ]
    assert decoder.raw == b"data: a\n\n: hb\nid: 7\ndata: b\n\nevent: done\ndata: {}\n\n"


def test_block_start_counts_comments_and_skips_blank_lines() -> None:
    decoder = SSEDecoder()
    items = decoder.feed(b"\n\n:x\n\n\r\n:keep\ndata: a\n\n")
    event = items[-1]
    assert isinstance(event, SSEEvent)
    assert (event.start, event.end) == (8, 23)
    assert [c.text for c in items if isinstance(c, SSEComment)] == ["x", "keep"]


def test_retry_and_id_per_block() -> None:
    decoder = SSEDecoder()
    items = decoder.feed(b"retry: 500\nid: a\ndata: 1\n\nid: b\n\ndata: 2\n\n")
    assert [(e.data, e.id, e.retry) for e in items] == [("1", "a", 500), ("2", "b", None)]
    assert (decoder.retry, decoder.last_event_id) == (500, "b")


def test_blank_line_without_data_updates_the_id_but_dispatches_nothing() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 5\nevent: x\n\n") == []
    assert decoder.last_event_id == "5"
    (event,) = decoder.feed(b"data: y\n\n")
    assert (event.type, event.id, event.index) == ("message", "5", 0)  # the type buffer was reset


# Comments


def test_comments_in_stream_order_with_their_text_as_sent() -> None:
    events_and_comments = SSEDecoder().feed(b":  two spaces\ndata: a\n:\n\n: ping\n")
    assert [(type(i).__name__, getattr(i, "text", None) or getattr(i, "data", "")) for i in events_and_comments] == [
        ("SSEComment", "  two spaces"),
        ("SSEComment", ""),
        ("SSEEvent", "a"),
        ("SSEComment", " ping"),
    ]


def test_a_last_comment_without_line_end_comes_out_at_close() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n\n:bye", 1.0)
    assert decoder.close() == [SSEComment("bye", read=0, time=1.0, start=9, end=13)]
    assert decoder.issues == []


# Issues


def test_invalid_utf8_is_replaced_and_reported_as_an_error() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: ok\n\n")
    (event,) = decoder.feed(b"data: caf\xe9!\n\n")
    assert event.data == "caf\ufffd!"
    (issue,) = decoder.issues
    assert (issue.code, issue.severity, issue.offset, issue.read) == ("invalid-utf8", "error", 19, 1)
    assert "19" in issue.message


def test_truncated_character_at_a_line_end_is_invalid_utf8() -> None:
    events, issues = parse_stream([b"data: \xf0\x9f", b"\n\n"])
    assert [e.data for e in events] == ["\ufffd"]
    assert [(i.code, i.offset) for i in issues] == [("invalid-utf8", 6)]


def test_unterminated_final_block_with_data_is_discarded_with_an_error() -> None:
    decoder = SSEDecoder()
    assert [e.data for e in decoder.feed(b"data: a\n\nid: 9\ndata: b\n")] == ["a"]
    assert decoder.close() == []
    (issue,) = decoder.issues
    assert (issue.code, issue.severity, issue.offset, issue.read) == ("unterminated-block", "error", 9, 0)
    assert decoder.last_event_id == ""


def test_last_line_without_line_end_is_processed_but_cannot_dispatch() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n\nretry: 300")
    assert decoder.close() == []
    assert decoder.retry == 300
    assert [(i.code, i.severity, i.offset) for i in decoder.issues] == [("unterminated-block", "warning", 9)]


def test_clean_end_has_no_issues() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n\n:tail\n")
    assert decoder.close() == [] and decoder.issues == []


def test_unknown_field_is_a_warning_once_per_name() -> None:
    events, issues = parse_stream(b"type: a\ndata: 1\n\ntype: b\nDATA: 2\ndata: 3\n\n")
    assert [e.data for e in events] == ["1", "3"]
    assert [(i.code, i.severity, i.offset) for i in issues] == [
        ("unknown-field", "warning", 0),
        ("unknown-field", "warning", 25),
    ]
    assert "'type'" in issues[0].message and "'DATA'" in issues[1].message


@pytest.mark.parametrize("value", [b"1000x", b"-1", b"  5", b"", b"1.5", "１２".encode()])
def test_bogus_retry_is_ignored_with_a_warning(value: bytes) -> None:
    decoder = SSEDecoder()
    (event,) = decoder.feed(b"retry:" + value + b"\ndata: x\n\n")
    assert event.retry is None and decoder.retry is None
    assert [(i.code, i.severity) for i in decoder.issues] == [("bad-retry", "warning")]


def test_id_with_nul_is_ignored_with_a_warning() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"id: 1\ndata: a\n\nid: 2\0\ndata: b\n\n")
    assert [e.id for e in events] == ["1", "1"]
    assert [(i.code, i.severity, i.offset) for i in decoder.issues] == [("id-with-nul", "warning", 15)]


def test_issue_read_is_the_read_holding_the_offset() -> None:
    # Both lines start in one read and end in a later one; an empty read sits in between.
    decoder = SSEDecoder()
    for chunk in (b"data: a\n", b"", b"\nfo", b"o: 1\ndata: \xff", b"", b"x\n\n"):
        decoder.feed(chunk)
    unknown, invalid = decoder.issues
    assert unknown == WireIssue("unknown-field", "warning", unknown.message, offset=9, read=2)
    assert invalid == WireIssue("invalid-utf8", "error", invalid.message, offset=22, read=3)


# API edges


def test_parse_stream_takes_bytes_or_reads_and_returns_only_events() -> None:
    stream = b":c\ndata: a\n\ndata: b\n\n"
    events, issues = parse_stream(stream)
    assert [(e.data, e.read, e.start) for e in events] == [("a", 0, 0), ("b", 0, 12)] and issues == []
    events, issues = parse_stream(iter([stream[:5], stream[5:]]))
    assert [(e.data, e.read, e.start) for e in events] == [("a", 1, 0), ("b", 1, 12)] and issues == []


def test_feed_after_close_is_refused_and_close_is_idempotent() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n")
    decoder.close()
    assert decoder.close() == []
    assert [i.code for i in decoder.issues] == ["unterminated-block"]
    with pytest.raises(ValueError, match="after close"):
        decoder.feed(b"\n")


def test_stream_shorter_than_a_bom() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"\xef\xbb") == []
    assert decoder.close() == []
    assert [i.code for i in decoder.issues] == ["invalid-utf8", "unknown-field", "unterminated-block"]


# Linear time: a quadratic decoder takes minutes on these, this one well under a second.


def test_many_events_in_one_read_and_one_long_line_in_many_reads_are_linear() -> None:
    began = time.perf_counter()
    events, _ = parse_stream(b"data: x\n\n" * 100_000)
    assert len(events) == 100_000
    line = b"data: " + b"y" * 1_000_000 + b"\n\n"
    events, _ = parse_stream(line[i : i + 100] for i in range(0, len(line), 100))
    assert len(events[0].data) == 1_000_000
    assert time.perf_counter() - began < 10
