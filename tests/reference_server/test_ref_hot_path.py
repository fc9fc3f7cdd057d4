"""The reference server's per-token path as pure parts: the upstream SSE splitter it reads with
(`contracts.EventSplitter`, shared with the load client), the typed read of an OpenAI chunk, the
templated token events, and the stall watch that replaced aiohttp's per-chunk read timer.

The splitter is checked against a plain line-by-line reading of the rules LLM APIs use (the one the
server used before), with the body cut at every byte offset, fed a byte at a time, and whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from contracts import EventSplitter
from reference_server._llm import OpenAIChat, StreamState, _json
from reference_server._sse_encoder import data_event, text_event
from reference_server._stall import StallWatch


def reference_events(body: bytes) -> list[tuple[str, str]]:
    """The WHATWG rules an LLM API uses, read line by line over the whole body."""
    events, kind, data = [], "", []
    *lines, _ = body.split(b"\n")  # an unfinished last line is never a blank line
    for raw in lines:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data:
                events.append((kind or "message", "\n".join(data)))
            kind, data = "", []
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
    return events


def decoded(pieces: list[bytes]) -> list[tuple[str, str]]:
    splitter = EventSplitter()
    return [event for piece in pieces for event in splitter.feed(piece)]


BODIES = [
    b'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\ndata: {"choices":[]}\n\ndata: [DONE]\n\n',
    b'event: content_block_delta\r\ndata: {"a":1}\r\n\r\nevent: message_stop\r\ndata: {}\r\n\r\n',
    b"data: one\ndata: two\n\n: a comment\n\nid: 7\nretry: 10\ndata:no-space\n\ndata:  two spaces\n\n",
    b"data: \n\ndata\n\nevent: only-kind\n\ndata: caf\xc3\xa9 \xff\n\ndata: cut off at the end",
    b"data: x\r\n\ndata: y\n\r\n\n\n\ndata: z\n\n",
]


@pytest.mark.parametrize("body", BODIES)
def test_splitter_gives_the_line_by_line_events_however_the_body_is_cut(body: bytes) -> None:
    expected = reference_events(body)
    assert expected  # every body has events
    assert decoded([body]) == expected
    assert decoded([body[i : i + 1] for i in range(len(body))]) == expected
    for cut in range(len(body) + 1):
        assert decoded([body[:cut], body[cut:]]) == expected, cut


def test_one_whole_data_event_per_chunk_is_the_fast_path_and_the_same_event() -> None:
    chunks = [b'data: {"n":1}\n\n', b"data:  lead\n\n", b"data: a:b\n\n", b"data: \n\n", b"data: \xe2\x82\n\n"]
    for chunk in chunks:
        assert decoded([chunk]) == reference_events(chunk), chunk


def test_a_cut_bodys_last_bytes_give_the_events_they_complete_and_leave_the_unfinished_one() -> None:
    """What the stream reads from a body cut off by an error: the events completed, never the rest."""
    splitter = EventSplitter()
    assert splitter.feed(b"data: a\n\ndata: b") == [("message", "a")]
    assert splitter.feed(b"\n\ndata: c") == [("message", "b")]
    assert splitter.pending == b"data: c"  # unfinished: the stream raises instead of reading on


@pytest.mark.parametrize("text", ["", "plain", 'quo"te \\ back', "line\nbreak\t\x00", "é ☃ \u2028 😀"])
def test_text_event_is_data_event_byte_for_byte(text: str) -> None:
    assert text_event({"type": "token"}, "content")(text) == data_event({"type": "token", "content": text})
    assert text_event({}, "content")(text) == data_event({"content": text})
    assert text_event({"content": "", "type": "t"}, "content")(text) == data_event({"content": text, "type": "t"})


def stall_times(feed_at: list[float], timeout_s: float, run_s: float) -> list[float]:
    """When the watch called a stall, for a body fed one byte at each of `feed_at` (seconds from start)."""

    async def run() -> list[float]:
        loop = asyncio.get_running_loop()
        content = aiohttp.StreamReader(aiohttp.client_proto.ResponseHandler(loop), 2**16, loop=loop)
        start, stalls = loop.time(), []
        watch = StallWatch(content, timeout_s, lambda: stalls.append(loop.time() - start))
        for at in feed_at:
            loop.call_at(start + at, content.feed_data, b"x")
        await asyncio.sleep(run_s)
        watch.cancel()
        return stalls

    return asyncio.run(run())


def test_stall_watch_calls_a_stall_once_never_early_at_most_a_quarter_late() -> None:
    stalls = stall_times([0.05, 0.1], timeout_s=0.2, run_s=0.6)
    assert len(stalls) == 1
    assert 0.1 + 0.2 <= stalls[0] <= 0.1 + 0.25 + 0.05  # the last byte + timeout, + a look, + slack


def test_stall_watch_stays_quiet_while_bytes_keep_coming() -> None:
    assert stall_times([0.03 * i for i in range(1, 12)], timeout_s=0.15, run_s=0.4) == []


def plain_openai_read(data: str, state: StreamState) -> str | None:
    """How an OpenAI chunk was read before the typed fast path, and still is off it: the whole value
    as dicts and lists."""
    if data == "[DONE]":
        state.done = True
        return None
    return OpenAIChat()._read_value(_json(data), state)


OPENAI_CHUNKS = [
    '{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":"hi"},"finish_reason":null}]}',
    '{"choices":[{"delta":{}}]}',
    '{"choices":[{"delta":{"content":null}}]}',
    '{"choices":[{"delta":{"content":""}}]}',
    '{"choices":[{"index":0}]}',
    '{"choices":[]}',
    '{"choices":{}}',
    '{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}',
    '{"usage":{}}',
    '{"usage":{"prompt_tokens":null}}',
    '{"error":null}',
    '{"error":{"message":"boom","type":"server_error"}}',
    '{"error":"x"}',
    "not json",
    "[]",
    '{"choices":[{"delta":{"content":5}}]}',
    "[DONE]",
]


def outcome(read: Callable[[StreamState], str | None]) -> tuple[Any, ...]:
    state = StreamState()
    try:
        result: tuple[Any, ...] = ("text", read(state))
    except Exception as err:  # the two readings must fail alike too
        result = (type(err).__name__, str(err))
    return (*result, state.usage, state.done)


@pytest.mark.parametrize("data", OPENAI_CHUNKS)
def test_openai_typed_read_agrees_with_the_plain_read(data: str) -> None:
    typed = outcome(lambda state: OpenAIChat().read("message", data, state))
    assert typed == outcome(lambda state: plain_openai_read(data, state))
