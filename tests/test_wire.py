"""Unit tests for `mockllm._wire`: the bytes on the wire and their deadlines, fed by a real plan and
the real OpenAI chat encoder. The HTTP framing is parsed here, by hand, so the tests see the SSE."""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass
from typing import Any

import pytest

from mockllm._config import parse_config
from mockllm._faults import parse_fault
from mockllm._plan import Plan, plan_response
from mockllm._request import ChatRequest, Message
from mockllm._wire import (
    HttpResponse,
    StreamFrames,
    WireSchedule,
    _any_stream,
    _plain_stream,
    body_schedule,
    immediate,
    stream_schedule,
)
from mockllm.dialects._base import Call, Encoding
from mockllm.dialects.openai_chat import OpenAIChat

DIALECT = OpenAIChat()
ANSWER = "one two three four five six seven"  # 7 tokens, so 7 content chunks
CHUNKS = ["one", " two", " three", " four", " five", " six", " seven"]
MULTIBYTE_ANSWER = "café Zürich 東京 데이터 🙂 👩\u200d💻 🇫🇷 naïve €42"
TTFT, ITL = 0.2, 0.02


# -- helpers -------------------------------------------------------------------------------------


def dechunk(data: bytes) -> tuple[list[bytes], bool]:
    """Parse HTTP/1.1 chunked framing (`%x\\r\\n<data>\\r\\n` ... `0\\r\\n\\r\\n`).

    Returns the chunks' data and whether the last-chunk terminator ended `data`. Anything that is
    not well-formed framing fails the test."""
    pieces: list[bytes] = []
    pos = 0
    while pos < len(data):
        eol = data.index(b"\r\n", pos)
        size_text = data[pos:eol]
        assert size_text and all(c in b"0123456789abcdef" for c in size_text), size_text
        size = int(size_text, 16)
        pos = eol + 2
        if size == 0:
            assert data[pos:] == b"\r\n", "bytes after the last chunk"
            return pieces, True
        assert size <= len(data) - pos - 2, "chunk shorter than its declared size"
        pieces.append(data[pos : pos + size])
        assert data[pos + size : pos + size + 2] == b"\r\n", "chunk data not followed by CRLF"
        pos += size + 2
    return pieces, False


@dataclass
class Wire:
    """A streamed schedule with its HTTP framing removed."""

    head: bytes  # status line and headers, up to the blank line
    writes: list[list[bytes]]  # per write: the SSE data of each HTTP chunk it carries
    terminated: bool  # the body ended with `0\r\n\r\n`

    @property
    def body(self) -> bytes:
        return b"".join(b"".join(pieces) for pieces in self.writes)


def unframe(schedule: WireSchedule) -> Wire:
    head, sep, first = schedule.payloads[0].partition(b"\r\n\r\n")
    assert sep, "no response head"
    writes: list[list[bytes]] = []
    terminated = False
    for i, payload in enumerate((first, *schedule.payloads[1:])):
        assert not terminated, "a write after the terminating chunk"
        pieces, terminated = dechunk(payload)
        writes.append(pieces)
        if terminated:
            assert i == len(schedule.payloads) - 1
    return Wire(head + b"\r\n\r\n", writes, terminated)


def events(body: bytes) -> list[bytes]:
    """The SSE events of a body, each `data: ...` without its blank-line separator."""
    assert body.endswith(b"\n\n") or body == b""
    return body.split(b"\n\n")[:-1]


def classify(event: bytes) -> str:
    assert event.startswith(b"data: "), event
    data = event[len(b"data: ") :]
    if data == b"[DONE]":
        return "done"
    try:
        obj = json.loads(data)
    except ValueError:
        return "malformed"
    if "error" in obj:
        return "error"
    if obj["choices"] == []:
        return "usage"
    choice = obj["choices"][0]
    if "role" in choice["delta"]:
        return "head"
    if choice["finish_reason"] is not None:
        return "finish"
    return "content"


def kinds(schedule: WireSchedule) -> list[str]:
    return [classify(event) for event in events(unframe(schedule).body)]


def contents(schedule: WireSchedule) -> list[str]:
    out = []
    for event in events(unframe(schedule).body):
        if classify(event) == "content":
            out.append(json.loads(event[len(b"data: ") :])["choices"][0]["delta"]["content"])
    return out


def timed_kinds(schedule: WireSchedule) -> list[tuple[float, str]]:
    """Each event with the offset of the write that carries it (writes hold whole events here)."""
    wire = unframe(schedule)
    out = []
    for at, pieces in zip(schedule.offsets, wire.writes, strict=True):
        out.extend((at, classify(event)) for event in events(b"".join(pieces)))
    return out


def make_plan(
    fault: str | None = None,
    *,
    answer: str = ANSWER,
    stream: bool = True,
    ttft_ms: float = TTFT * 1000,
    itl_ms: float = ITL * 1000,
) -> tuple[Plan, ChatRequest]:
    config = parse_config({"timing": {"ttft_ms": ttft_ms, "itl_ms": itl_ms}, "answers": {"default": {"fixed": answer}}})
    request = ChatRequest("mock-gpt", (Message("user", "Count to seven."),), stream=stream)
    return plan_response(config, request, fault=None if fault is None else parse_fault(fault)), request


def encoding(request: ChatRequest, *, include_usage: bool = False) -> Encoding:
    call = Call("POST", "/v1/chat/completions", {}, {}, b"{}")
    return Encoding(request, call, "test", 1_700_000_000, {"include_usage": include_usage})


def streamed(fault: str | None = None, *, include_usage: bool = False, seed: int = 0, **plan_args: Any) -> WireSchedule:
    plan, request = make_plan(fault, **plan_args)
    frames = DIALECT.stream_frames(plan, encoding(request, include_usage=include_usage))
    return stream_schedule(plan, frames, DIALECT.stream_headers, random.Random(seed))


def non_decreasing(values: tuple[float, ...]) -> bool:
    return all(b >= a for a, b in itertools.pairwise(values))


# -- the helpers themselves ----------------------------------------------------------------------


def test_dechunk_parses_framing_and_terminator() -> None:
    assert dechunk(b"3\r\nabc\r\na\r\n0123456789\r\n0\r\n\r\n") == ([b"abc", b"0123456789"], True)
    assert dechunk(b"3\r\nabc\r\n") == ([b"abc"], False)
    assert dechunk(b"") == ([], False)
    with pytest.raises(AssertionError):
        dechunk(b"4\r\nabc\r\n")


# -- no fault ------------------------------------------------------------------------------------


def test_clean_stream_has_head_every_chunk_finish_and_done() -> None:
    schedule = streamed()
    wire = unframe(schedule)
    assert wire.head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\ncontent-type: text/event-stream; charset=utf-8\r\n" in wire.head
    assert wire.head.endswith(b"\r\ntransfer-encoding: chunked\r\n\r\n")
    assert kinds(schedule) == ["head"] + ["content"] * 7 + ["finish", "done"]
    assert contents(schedule) == CHUNKS
    assert wire.terminated
    assert schedule.payloads[-1].endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
    assert schedule.end == "complete"
    assert schedule.coalesce is True
    assert schedule.status == 200
    assert sum(schedule.content) == 7
    assert len(schedule.offsets) == len(schedule.payloads) == len(schedule.content)


def test_clean_stream_frames_are_exact_openai_chunks() -> None:
    body = unframe(streamed()).body
    envelope = (
        b'data: {"id":"chatcmpl-test","object":"chat.completion.chunk","created":1700000000,"model":"mock-gpt",'
        b'"service_tier":"default","system_fingerprint":"fp_mock0001","choices":['
    )
    assert body == (
        envelope + b'{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
        b'"logprobs":null,"finish_reason":null}]}\n\n'
        + b"".join(
            envelope + b'{"index":0,"delta":{"content":' + json.dumps(text).encode() + b'},"logprobs":null,'
            b'"finish_reason":null}]}\n\n'
            for text in CHUNKS
        )
        + envelope
        + b'{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}\n\n'
        + b"data: [DONE]\n\n"
    )


def test_clean_stream_writes_fall_due_on_the_plan() -> None:
    plan, _ = make_plan()
    schedule = streamed()
    # An empty first write at arrival carries the head; then the role chunk with the first content
    # chunk at TTFT, one write per chunk, and the finish + [DONE] with the last chunk.
    assert schedule.offsets[0] == 0.0
    assert schedule.offsets[1:] == plan.offsets
    assert schedule.content == (0, 1, 1, 1, 1, 1, 1, 1)
    assert timed_kinds(schedule)[:2] == [(plan.ttft, "head"), (plan.ttft, "content")]
    assert timed_kinds(schedule)[-2:] == [(plan.end_offset, "finish"), (plan.end_offset, "done")]
    assert non_decreasing(schedule.offsets)


def test_include_usage_adds_a_usage_chunk_before_done() -> None:
    plan, _ = make_plan()
    schedule = streamed(include_usage=True)
    assert kinds(schedule) == ["head"] + ["content"] * 7 + ["finish", "usage", "done"]
    frames = events(unframe(schedule).body)[:-1]
    for event in frames[:-1]:
        assert event.endswith(b',"usage":null}')
    parsed = [json.loads(event[6:]) for event in frames]
    usage = parsed[-1]
    assert usage["choices"] == []
    assert usage["usage"]["prompt_tokens"] == plan.prompt_tokens == 4 + 3 + 3
    assert usage["usage"]["completion_tokens"] == 7
    assert usage["usage"]["total_tokens"] == plan.prompt_tokens + 7
    assert b'"choices":[],"usage":{' in frames[-1]


def test_without_include_usage_no_frame_has_a_usage_field() -> None:
    for event in events(unframe(streamed()).body)[:-1]:
        assert "usage" not in json.loads(event[6:])


# -- in-stream faults ----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 3, 7, 20])
def test_error_after_n_sends_n_chunks_then_the_error(n: int) -> None:
    schedule = streamed(f"error-after={n}")
    sent = min(n, 7)
    assert kinds(schedule) == ["head"] + ["content"] * sent + ["error"]
    assert contents(schedule) == CHUNKS[:sent]
    error = json.loads(events(unframe(schedule).body)[-1][6:])
    assert error["error"]["type"] == "server_error"
    assert unframe(schedule).terminated
    assert schedule.end == "complete"
    assert sum(schedule.content) == sent


def test_error_is_due_when_the_next_chunk_was() -> None:
    plan, _ = make_plan()
    assert timed_kinds(streamed("error-after=3"))[-1] == (plan.offsets[3], "error")


@pytest.mark.parametrize("n", [0, 2, 6])
def test_disconnect_after_n_aborts_without_terminator(n: int) -> None:
    plan, _ = make_plan()
    schedule = streamed(f"disconnect-after={n}")
    assert kinds(schedule) == ["head"] + ["content"] * n
    assert contents(schedule) == CHUNKS[:n]
    assert not unframe(schedule).terminated
    assert not schedule.payloads[-1].endswith(b"0\r\n\r\n")
    assert schedule.end == "abort"
    assert schedule.offsets[-1] == plan.offsets[n]  # the close comes when chunk n was due


@pytest.mark.parametrize("n", [0, 4])
def test_stall_after_n_falls_silent(n: int) -> None:
    schedule = streamed(f"stall-after={n}")
    assert kinds(schedule) == ["head"] + ["content"] * n
    assert not unframe(schedule).terminated
    assert schedule.end == "stall"


@pytest.mark.parametrize(("n", "seconds"), [(0, 0.5), (2, 1.5), (6, 3.0), (7, 2.0)])
def test_stall_for_s_shifts_later_frames_by_exactly_s(n: int, seconds: float) -> None:
    clean = timed_kinds(streamed())
    paused_schedule = streamed(f"stall-after={n},for={seconds}")
    paused = timed_kinds(paused_schedule)
    assert [kind for _, kind in paused] == [kind for _, kind in clean]
    assert paused_schedule.end == "complete"
    assert unframe(paused_schedule).terminated
    content_seen = 0
    for (at_clean, kind), (at_paused, _) in zip(clean, paused, strict=True):
        later = kind in ("finish", "done") or (kind == "content" and content_seen >= n)
        assert at_paused - at_clean == pytest.approx(seconds if later else 0.0, abs=1e-9), (kind, content_seen)
        content_seen += kind == "content"
    assert non_decreasing(paused_schedule.offsets)


@pytest.mark.parametrize("n", [0, 3, 7])
def test_malformed_after_n_breaks_one_frame_then_goes_on(n: int) -> None:
    schedule = streamed(f"malformed-after={n}")
    assert kinds(schedule) == ["head"] + ["content"] * n + ["malformed"] + ["content"] * (7 - n) + ["finish", "done"]
    assert contents(schedule) == CHUNKS
    bad = events(unframe(schedule).body)[1 + n]
    with pytest.raises(json.JSONDecodeError):
        json.loads(bad[6:])
    assert unframe(schedule).terminated
    assert schedule.end == "complete"


@pytest.mark.parametrize(("spec", "sent"), [("truncate", 7), ("truncate-after=0", 0), ("truncate-after=4", 4)])
def test_truncate_ends_cleanly_without_finish_or_done(spec: str, sent: int) -> None:
    schedule = streamed(spec)
    assert kinds(schedule) == ["head"] + ["content"] * sent
    assert b"[DONE]" not in unframe(schedule).body
    assert unframe(schedule).terminated
    assert schedule.payloads[-1].endswith(b"\r\n0\r\n\r\n")
    assert schedule.end == "complete"


# -- fragment ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fragment_writes_the_same_stream_in_more_pieces(seed: int) -> None:
    clean = streamed(answer=MULTIBYTE_ANSWER)
    fragmented = streamed("fragment", answer=MULTIBYTE_ANSWER, seed=seed)
    assert len(fragmented.payloads) > len(clean.payloads)
    assert fragmented.coalesce is False
    assert clean.coalesce is True
    assert fragmented.end == "complete"
    # Without the HTTP framing, the concatenated writes are byte for byte the unfragmented stream.
    assert unframe(fragmented).head == unframe(clean).head
    assert unframe(fragmented).body == unframe(clean).body
    assert unframe(fragmented).terminated
    assert sum(fragmented.content) == sum(clean.content) == len(make_plan(answer=MULTIBYTE_ANSWER)[0].chunks)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fragment_cuts_inside_a_utf8_sequence(seed: int) -> None:
    wire = unframe(streamed("fragment", answer=MULTIBYTE_ANSWER, seed=seed))
    pieces = [piece for write in wire.writes for piece in write]
    assert any(0x80 <= piece[0] <= 0xBF for piece in pieces)
    with pytest.raises(UnicodeDecodeError):
        for piece in pieces:
            piece.decode("utf-8")


def test_fragment_of_an_ascii_stream_still_cuts_writes() -> None:
    clean = streamed()
    fragmented = streamed("fragment")
    assert len(fragmented.payloads) > len(clean.payloads)
    assert unframe(fragmented).body == unframe(clean).body


@pytest.mark.parametrize("itl_ms", [20.0, 1.0])
def test_fragment_pieces_fall_due_in_order(itl_ms: float) -> None:
    for seed in range(5):
        schedule = streamed("fragment", answer=MULTIBYTE_ANSWER, itl_ms=itl_ms, seed=seed)
        assert non_decreasing(schedule.offsets), (seed, schedule.offsets)


@pytest.mark.parametrize("fault", [None, "error-after=2", "malformed-after=3", "stall-after=1,for=0.5", "truncate"])
def test_offsets_are_non_decreasing(fault: str | None) -> None:
    schedule = streamed(fault, include_usage=True)
    assert non_decreasing(schedule.offsets)


def test_same_inputs_same_schedule() -> None:
    assert streamed("fragment", answer=MULTIBYTE_ANSWER, seed=4) == streamed(
        "fragment", answer=MULTIBYTE_ANSWER, seed=4
    )
    assert streamed("fragment", answer=MULTIBYTE_ANSWER, seed=4) != streamed(
        "fragment", answer=MULTIBYTE_ANSWER, seed=5
    )


# -- non-streamed bodies -------------------------------------------------------------------------


def split_response(data: bytes) -> tuple[str, dict[str, str], bytes]:
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return status_line, headers, body


def bodied(fault: str | None = None, *, seed: int = 0) -> tuple[WireSchedule, Plan, HttpResponse]:
    plan, request = make_plan(fault, stream=False)
    enc = encoding(request)
    ok = DIALECT.response(plan, enc)
    return body_schedule(plan, ok, DIALECT.error(500, None), random.Random(seed)), plan, ok


def test_body_ok_is_sent_whole_when_the_last_token_is_due() -> None:
    schedule, plan, ok = bodied()
    assert schedule.status == 200
    assert schedule.offsets == (plan.end_offset,)
    assert schedule.content == (7,)
    assert schedule.end == "complete"
    status_line, headers, body = split_response(schedule.payloads[0])
    assert status_line == "HTTP/1.1 200 OK"
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body) == len(ok.body)
    assert "transfer-encoding" not in headers
    parsed = json.loads(body)
    assert parsed["choices"][0]["message"]["content"] == ANSWER
    assert parsed["usage"]["completion_tokens"] == 7


def test_body_error_is_a_500() -> None:
    schedule, _, _ = bodied("error-after=2")
    assert schedule.status == 500
    assert schedule.content == (0,)
    status_line, headers, body = split_response(schedule.payloads[0])
    assert status_line == "HTTP/1.1 500 Internal Server Error"
    assert int(headers["content-length"]) == len(body)
    assert json.loads(body)["error"]["type"] == "server_error"


def test_body_disconnect_writes_nothing_and_aborts() -> None:
    schedule, plan, _ = bodied("disconnect-after=2")
    assert schedule.payloads == (b"",)
    assert schedule.end == "abort"
    assert schedule.offsets == (plan.offsets[2],)


def test_body_truncate_promises_more_than_it_sends() -> None:
    schedule, _, ok = bodied("truncate")
    assert schedule.end == "abort"
    _, headers, body = split_response(schedule.payloads[0])
    assert int(headers["content-length"]) == len(ok.body)
    assert len(body) < len(ok.body)
    assert ok.body.startswith(body)


def test_body_malformed_is_not_json() -> None:
    schedule, _, ok = bodied("malformed-after=1")
    assert schedule.end == "complete"
    _, headers, body = split_response(schedule.payloads[0])
    assert int(headers["content-length"]) == len(body)
    assert ok.body.startswith(body) and body != ok.body
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


def test_body_stall() -> None:
    forever, plan, _ = bodied("stall-after=1")
    assert (forever.payloads, forever.end, forever.offsets) == ((b"",), "stall", (plan.offsets[1],))
    paused, plan, ok = bodied("stall-after=1,for=2")
    assert paused.end == "complete"
    assert paused.offsets == (pytest.approx(plan.end_offset + 2.0, abs=1e-9),)
    assert split_response(paused.payloads[0])[2] == ok.body


def test_body_fragment_cuts_the_response_into_pieces() -> None:
    schedule, plan, _ = bodied("fragment")
    whole, _, _ = bodied()
    assert len(schedule.payloads) > 1
    assert b"".join(schedule.payloads) == whole.payloads[0]
    assert schedule.coalesce is False
    assert schedule.offsets[0] == plan.end_offset
    assert non_decreasing(schedule.offsets)
    assert schedule.content[-1] == 7 and sum(schedule.content) == 7


# -- immediate -----------------------------------------------------------------------------------


def test_immediate_sends_a_whole_response_on_arrival() -> None:
    error = DIALECT.error(429, None, retry_after=2)
    schedule = immediate(error)
    assert schedule.offsets == (0.0,)
    assert schedule.content == (0,)
    assert schedule.status == 429
    assert schedule.end == "complete"
    status_line, headers, body = split_response(schedule.payloads[0])
    assert status_line == "HTTP/1.1 429 Too Many Requests"
    assert headers["retry-after"] == "2"
    assert int(headers["content-length"]) == len(body) == len(error.body)
    assert json.loads(body)["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize(
    ("status", "status_line"),
    [
        (500, "HTTP/1.1 500 Internal Server Error"),
        (503, "HTTP/1.1 503 Service Unavailable"),
        (529, "HTTP/1.1 529 Overloaded"),
    ],
)
def test_immediate_status_lines(status: int, status_line: str) -> None:
    schedule = immediate(DIALECT.error(status, None))
    assert schedule.status == status
    assert split_response(schedule.payloads[0])[0] == status_line


@pytest.mark.parametrize("n", [1, 2, 3, 40])
@pytest.mark.parametrize("head_on_arrival", [False, True])
@pytest.mark.parametrize(("head", "tail"), [(b"H\n\n", b"T\n\n"), (b"", b"T\n\n"), (b"H\n\n", b"")])
def test_the_constant_time_plain_stream_writes_what_the_general_path_writes(
    n: int, head_on_arrival: bool, head: bytes, tail: bytes
) -> None:
    plan = Plan(1, "x" * n, ("x",) * n, tuple(0.1 + i * 0.01 for i in range(n)), 0.1, "stop", 3, n)
    frames = StreamFrames(head, head_on_arrival, [b"c%d\n\n" % i for i in range(n)], tail, b"E", b"M")
    plain = _plain_stream(plan, frames, (("content-type", "text/event-stream"),))
    general = _any_stream(plan, frames, (("content-type", "text/event-stream"),), None)
    assert plain is not None
    assert (plain.offsets, plain.payloads, plain.content, plain.end) == (
        general.offsets,
        general.payloads,
        general.content,
        general.end,
    )


@pytest.mark.parametrize("offsets", [(0.0, 0.1), (0.1, 0.1, 0.2), (0.1, 0.3, 0.2)])
def test_the_plain_stream_declines_what_it_cannot_do_in_constant_time(offsets: tuple[float, ...]) -> None:
    n = len(offsets)
    plan = Plan(1, "x" * n, ("x",) * n, offsets, offsets[0], "stop", 3, n)
    frames = StreamFrames(b"H", False, [b"c"] * n, b"T", b"E", b"M")
    assert _plain_stream(plan, frames, ()) is None
