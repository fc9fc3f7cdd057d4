"""The load harness's pure cores: histogram, event splitter, HTTP parser, stream meter, stats, shapes."""

from __future__ import annotations

import itertools
import math
import random
import statistics

import pytest

from contracts import EventSplitter, SpecError
from loadtests._config import resolve_profile
from loadtests._histogram import Histogram, bucket_bounds, bucket_of
from loadtests._http import ProtocolError, ResponseParser
from loadtests._measure import StreamMeter, StreamRules
from loadtests._shapes import arrivals, parse_shape
from loadtests._stats import LoadStats, Slo

MS = 1_000_000  # ns


# --- histogram ---------------------------------------------------------------------------------


def test_buckets_tile_the_integers_with_three_significant_digits():
    previous_high = -1
    for index in range(0, 40_000):
        low, high = bucket_bounds(index)
        assert low == previous_high + 1
        assert bucket_of(low) == index and bucket_of(high) == index
        assert (high - low + 1) <= max(1, low / 1024)
        previous_high = high


def test_percentiles_are_within_a_bucket_of_the_exact_ones():
    rng = random.Random(7)
    values = [int(rng.lognormvariate(10, 1.2)) for _ in range(20_000)]
    hist = Histogram()
    hist.record_many(values)
    ordered = sorted(values)
    for q in (50, 90, 99, 99.9):
        exact = ordered[max(0, math.ceil(q / 100 * len(values)) - 1)]
        assert abs(hist.percentile(q) - exact) <= exact / 1024 + 1
    assert hist.percentile(100) == max(values) and hist.percentile(0) == min(values)
    assert hist.mean == pytest.approx(statistics.fmean(values))


def test_merging_equals_recording_everything_in_one():
    rng = random.Random(3)
    parts = [[rng.randrange(0, 10**7) for _ in range(500)] for _ in range(3)]
    merged, whole = Histogram(), Histogram()
    for part in parts:
        one = Histogram()
        one.record_many(part)
        merged.merge(Histogram.from_dict(one.to_dict()))
        whole.record_many(part)
    assert merged == whole


# --- event splitter ----------------------------------------------------------------------------

STREAM = (
    '\ufeffdata: {"a": "caf\u00e9 \u2603"}\r\n\r\n: comment\n\nevent: custom\ndata: one\ndata: two\n\n'
    "data:no-space\r\rdata: last\n\n"
).encode()
EXPECTED = [("message", '{"a": "caf\u00e9 \u2603"}'), ("custom", "one\ntwo"), ("message", "no-space"),
            ("message", "last")]  # fmt: skip


@pytest.mark.parametrize("split", range(1, len(STREAM)))
def test_every_two_way_split_gives_the_same_events(split):
    splitter = EventSplitter()
    events = splitter.feed(STREAM[:split]) + splitter.feed(STREAM[split:])
    assert events == EXPECTED


def test_one_byte_reads_give_the_same_events():
    splitter = EventSplitter()
    events = [e for i in range(len(STREAM)) for e in splitter.feed(STREAM[i : i + 1])]
    assert events == EXPECTED
    assert splitter.pending == b""


def test_an_unfinished_event_is_pending():
    splitter = EventSplitter()
    assert splitter.feed(b"data: done\n\ndata: half") == [("message", "done")]
    assert splitter.pending == b"data: half"


# --- HTTP response parser -----------------------------------------------------------------------

CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" + (
    b"7\r\ndata: a\r\n2;ext=1\r\n\n\n\r\n0\r\n\r\n"
)


@pytest.mark.parametrize("size", [1, 2, 5, 64])
def test_chunked_body_in_any_read_size(size):
    parser = ResponseParser()
    body = b"".join(parser.feed(CHUNKED[i : i + size]) for i in range(0, len(CHUNKED), size))
    assert body == b"data: a\n\n" and parser.done
    assert parser.response.status == 200 and parser.response.headers["content-type"] == "text/event-stream"


def test_content_length_and_close_delimited_bodies():
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope+extra") == b"nope"
    assert parser.done and parser.response.status == 404
    parser = ResponseParser()
    assert parser.feed(b"HTTP/1.1 200 OK\r\n\r\nabc") == b"abc"
    parser.eof()
    assert parser.done and not parser.response.keep_alive


@pytest.mark.parametrize(
    ("data", "problem"),
    [(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
     (b"SMTP ready\r\n\r\n", "bad status line"),
     (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "bad Content-Length")],
)  # fmt: skip
def test_malformed_responses_are_named(data, problem):
    with pytest.raises(ProtocolError, match=problem):
        ResponseParser().feed(data)


def test_a_body_cut_short_is_an_error():
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(ProtocolError, match="closed in a length body"):
        parser.eof()


# --- the stream meter ----------------------------------------------------------------------------


def _sessions_rules() -> StreamRules:
    return StreamRules.of(resolve_profile("sessions").stream)


def _event(obj: str) -> bytes:
    return f"data: {obj}\n\n".encode()


def test_ttft_is_the_first_text_event_not_the_first_event():
    meter = StreamMeter(_sessions_rules(), 0, 0)
    meter.headers(1 * MS)
    meter.read(_event('{"type": "session", "session_id": "s1"}'), 2 * MS)
    meter.read(_event('{"type": "content", "content": "Hello", "index": 0}'), 300 * MS)
    meter.read(_event('{"type": "content", "content": "world", "index": 1}') * 1, 320 * MS)
    meter.read(_event('{"type": "content", "content": "again", "index": 2}') + _event('{"type": "done"}'), 345 * MS)
    result = meter.finish(350 * MS)
    assert result.ok
    assert (result.t_headers, result.t_first_event, result.ttft) == (1 * MS, 2 * MS, 300 * MS)
    assert result.gaps == [20 * MS, 25 * MS]
    assert result.text == "Hello world again" and result.output_tokens == 3
    assert result.tpot == pytest.approx(45 * MS / 2)
    assert result.captured == {"conversation": "s1"}
    assert result.e2e_close == 350 * MS


@pytest.mark.parametrize(
    ("events", "kind"),
    [
        (['{"type": "content", "content": "x", "index": 0}'], "grammar"),  # no session event first
        (['{"type": "session", "session_id": "s"}', '{"type": "content", "content": "x", "index": 0}'], "no-terminal"),
        (['{"type": "session", "session_id": "s"}', '{"type": "error", "error": "upstream"}'], "error-event"),
        (['{"type": "session", "session_id": "s"}', "not json"], "protocol"),
        (['{"type": "session", "session_id": "s"}', '{"type": "done"}', '{"type": "content", "content": "late"}'],
         "grammar"),
    ],
)  # fmt: skip
def test_a_broken_stream_is_a_failure_of_its_kind(events, kind):
    from loadtests._measure import StreamFailure

    meter = StreamMeter(_sessions_rules(), 0, 0)
    try:
        for i, data in enumerate(events):
            meter.read(_event(data), (i + 1) * MS)
        result = meter.finish(10 * MS)
    except StreamFailure as failure:
        result = meter.fail(10 * MS, failure)
    assert result.error_kind == kind


def test_usage_count_beats_the_tokenizer_and_a_mismatch_is_flagged():
    rules = StreamRules.of(resolve_profile("openai-chat").stream)
    meter = StreamMeter(rules, 0, 0)
    chunk = '{"choices": [{"delta": {"content": "%s"}}], "usage": null}'
    meter.read(_event(chunk % "Hi") + _event(chunk % " there"), 5 * MS)
    meter.read(_event('{"choices": [], "usage": {"completion_tokens": 7}}') + b"data: [DONE]\n\n", 9 * MS)
    result = meter.finish(9 * MS)
    assert result.ok and result.usage_tokens == 7 and result.tokenizer_tokens == 2 and result.output_tokens == 7
    stats = LoadStats()
    stats.add(result)
    assert stats.counters["usage_mismatch"] == 1 and stats.counters["tokens"] == 7


# --- stats -------------------------------------------------------------------------------------


def _result(t0: int, ttft: int, gaps: list[int], *, failed: bool = False):
    meter = StreamMeter(_sessions_rules(), t0, t0)
    t = t0 + ttft
    meter.read(_event('{"type": "session", "session_id": "s"}'), t0 + MS)
    for i, gap in enumerate([0, *gaps]):
        t += gap
        meter.read(_event(f'{{"type": "content", "content": "w{i}", "index": {i}}}'), t)
    if not failed:
        meter.read(_event('{"type": "done"}'), t)
    return meter.finish(t + MS)


def test_stats_merged_from_parts_equal_stats_of_the_whole():
    rng = random.Random(1)
    whole, merged = LoadStats(slo=Slo(ttft_ms=250)), LoadStats(slo=Slo(ttft_ms=250))
    for _worker in range(3):
        part = LoadStats(slo=Slo(ttft_ms=250))
        for _ in range(40):
            result = _result(rng.randrange(0, 5_000) * MS, rng.randrange(150, 350) * MS,
                             [rng.randrange(5, 40) * MS for _ in range(rng.randrange(0, 8))],
                             failed=rng.random() < 0.1)  # fmt: skip
            part.add(result)
            whole.add(result)
        merged.merge(part.take())
        assert part.counters["requests"] == 0  # take() starts afresh
    assert merged.to_dict() == whole.to_dict()
    figures = merged.figures(5.0)
    assert figures["totals"]["requests"] == 120
    assert figures["totals"]["good"] < figures["totals"]["completed"]  # the TTFT SLO excluded some
    assert sum(row["started"] for row in figures["timeline"]) == 120


def test_failures_stay_out_of_the_latency_figures():
    stats = LoadStats()
    stats.add(_result(0, 100 * MS, [10 * MS]))
    stats.add(_result(0, 900 * MS, [10 * MS], failed=True))
    figures = stats.figures(1.0)
    assert figures["metrics"]["ttft_ms"]["count"] == 1 and figures["metrics"]["ttft_ms"]["max"] == 100.0
    assert figures["totals"]["failed"] == 1 and figures["errors"][0]["kind"] == "no-terminal"


def test_an_invalid_run_is_marked_by_its_client_cpu():
    stats = LoadStats()
    stats.client_sample(cpu_percent=40.0)
    stats.client_sample(cpu_percent=95.0)
    validity = stats.validity()
    assert not validity["valid"] and "95%" in validity["reasons"][0]


# --- shapes ------------------------------------------------------------------------------------


def test_open_loop_rate_is_divided_across_workers():
    shape = parse_shape({"name": "o", "loop": "open", "rate": 200, "run_time_s": 20}, "o.yaml")
    alone = len(list(arrivals(shape, seed=5)))
    split = sum(len(list(arrivals(shape, seed=5, share=1 / 4, stream=w))) for w in range(4))
    assert abs(alone - 4000) < 4 * math.sqrt(4000)
    assert abs(split - 4000) < 4 * math.sqrt(4000)  # not 4 x 4000
    assert list(arrivals(shape, seed=5)) == list(arrivals(shape, seed=5))  # same seed, same schedule


def test_constant_arrivals_of_two_workers_interleave():
    shape = parse_shape({"name": "c", "loop": "open", "arrivals": "constant", "rate": 10, "run_time_s": 1}, "c")
    a = list(arrivals(shape, seed=1, share=0.5, stream=0))
    b = list(arrivals(shape, seed=1, share=0.5, stream=1))
    merged = sorted(a + b)
    assert len(merged) == 9 and max(y - x for x, y in itertools.pairwise(merged)) == pytest.approx(0.1)


def test_shares_and_ramps_resolve_against_the_run():
    data = {"name": "s", "loop": "closed", "stages": [{"until": "50%", "users": "10%"},
                                                       {"until": "100%", "users": "100%", "ramp": True}]}  # fmt: skip
    shape = parse_shape(data, "s.yaml", users=100, run_time_s=60)
    assert shape.level(10) == (10, 0) and shape.level(45)[0] == pytest.approx(55) and shape.level(60) is None


@pytest.mark.parametrize(
    ("data", "problem"),
    [({"name": "x", "loop": "sideways"}, "loop"),
     ({"name": "x", "loop": "open", "stages": [{"until": "50%"}, {"until": "20%"}]}, "increasing"),
     ({"name": "x", "loop": "closed", "stages": [{"until": "10 s"}]}, "share like"),
     ({"name": "x", "loop": "closed", "speed": 3}, "speed")],
)  # fmt: skip
def test_bad_shape_files_name_the_problem(data, problem):
    with pytest.raises(SpecError, match=problem):
        parse_shape(data, "bad.yaml")


def test_every_builtin_profile_and_dialect_loads():
    from loadtests._config import builtin_profiles

    names = builtin_profiles()
    assert {"sessions", "conversations", "start-stream", "query-stream", "conversation-events", "openai-chat",
            "openai-responses", "anthropic", "gemini"} <= set(names)  # fmt: skip
    for name in names:
        assert StreamRules.of(resolve_profile(name).stream).text_kinds


def test_self_test_pairs_streams_with_the_journal_by_marker():
    from loadtests._selftest import pair_errors

    traces = [
        {"marker": "m1z", "ttft_ns": 101 * MS, "first_token_ns": 5_000 * MS, "gaps_ns": [10 * MS, 11 * MS]},
        {"marker": "m2z", "ttft_ns": 99 * MS, "first_token_ns": 7_000 * MS, "gaps_ns": [9 * MS]},
        {"marker": "lost", "ttft_ns": 1, "first_token_ns": 1, "gaps_ns": []},
    ]
    journal = [
        {"prompt": "m1z hello", "achieved": {"first_token_s": 4.9995, "itl_ms": [10.0, 10.0]}},
        {"prompt": "m2z hello", "achieved": {"first_token_s": 6.9990, "itl_ms": [9.5]}},
        {"prompt": "m1z hello\nlater turn", "achieved": {"first_token_s": 99.0, "itl_ms": [1.0, 1.0]}},
    ]
    errors = pair_errors(traces, journal)
    assert errors["streams"] == 2 and errors["gaps"] == 3 and errors["unpaired"] == 1
    assert errors["ttft_p50"] == pytest.approx(0.5) and errors["ttft_p99"] == pytest.approx(1.0)
    assert errors["itl_p50"] == pytest.approx(0.0) and errors["itl_p99"] == pytest.approx(1.0)


def test_a_streams_tokens_land_in_the_seconds_they_arrived_and_its_gaps_in_the_histogram():
    stats = LoadStats()
    stats.epoch_offset_ns = 0  # second k of the timeline is [k s, k+1 s) of the client's clock
    # Two gaps of 300 ms from 0.5 s: tokens at 0.5, 0.8 (second 0) and 1.1 (second 1), one at 9 s.
    result = _result(400 * MS, 100 * MS, [300 * MS, 300 * MS, 7_900 * MS])
    stats.add(result)
    rows = {row["t"]: row["tokens"] for row in stats.figures(10.0)["timeline"]}
    share = result.output_tokens / 4  # each token event's share of the output
    assert (rows[0], rows[1], rows[9]) == (2 * share, share, share), rows
    assert sum(rows.values()) == result.output_tokens
    one_by_one = Histogram()
    for gap in (300_000, 300_000, 7_900_000):
        one_by_one.record(gap)
    assert stats.histograms["itl_ms"].to_dict() == one_by_one.to_dict()


def test_recording_many_values_is_recording_each():
    rng = random.Random(5)
    values = [rng.choice([-3, 0, 1, 2047, 2048, rng.randrange(10**9)]) for _ in range(500)]
    each, many = Histogram(), Histogram()
    for value in values:
        each.record(value)
    many.record_many(values)
    many.record_many([])
    assert many.to_dict() == each.to_dict()
