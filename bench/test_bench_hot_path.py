"""pytest-benchmark of the work done once per request (plan, encode, schedule), the bound on the
mock's zero-delay throughput: `pytest bench/test_bench_hot_path.py --benchmark-enable`.

Two shapes: distinct deadlines (a write per token, the per-request work only) and zero delay (the
whole response one write, its bytes encoded too: what part (a) of bench.bench_mockllm costs per
event besides the socket)."""

from __future__ import annotations

import random

import pytest

from mockllm import Call, ChatRequest, Encoding, Message, Overrides, parse_config, plan_response, stream_schedule
from mockllm.dialects.openai_chat import OpenAIChat

CONFIG = parse_config({"timing": {"ttft_ms": 0, "itl_ms": 1}})  # distinct deadlines: a write each
ZERO_DELAY = parse_config({"timing": {"ttft_ms": 0, "itl_ms": 0}})  # everything due on arrival
DIALECT = OpenAIChat()


def request(i: int, tokens: int) -> ChatRequest:
    return ChatRequest(
        model="bench",
        messages=(Message("user", f"question {i}"),),
        stream=True,
        overrides=Overrides(answer_tokens=tokens),
    )


def respond(i: int, tokens: int, config: object = CONFIG) -> tuple[bytes, ...]:
    chat = request(i, tokens)
    plan = plan_response(config, chat)  # type: ignore[arg-type]
    call = Call("POST", "/v1/chat/completions", {}, {}, b"")
    enc = Encoding(chat, call, "x", 1_700_000_000, {"include_usage": True})
    schedule = stream_schedule(plan, DIALECT.stream_frames(plan, enc), DIALECT.stream_headers, random.Random(0))
    return schedule.payloads if config is ZERO_DELAY else schedule.offsets  # type: ignore[return-value]


def _report(benchmark, tokens: int, what: str) -> None:
    if benchmark.stats is not None:  # None under --benchmark-disable (pyproject's default): one plain call
        per_event_us = benchmark.stats.stats.median / tokens * 1e6  # the first call builds the prose pool
        print(f"\n{tokens} tokens: {per_event_us:.2f} us of {what} per event")


@pytest.mark.parametrize("tokens", [20, 200])
def test_plan_encode_schedule(benchmark, tokens: int) -> None:
    counter = iter(range(10**9))
    writes = benchmark(lambda: len(respond(next(counter), tokens)))
    assert writes == tokens  # the head rides with the first token, the tail with the last
    _report(benchmark, tokens, "per-request work")


@pytest.mark.parametrize("tokens", [20, 200])
def test_zero_delay_response_is_one_write(benchmark, tokens: int) -> None:
    counter = iter(range(10**9))
    payloads = benchmark(lambda: respond(next(counter), tokens, ZERO_DELAY))
    assert len(payloads) == 1  # every event due on arrival: one write
    assert payloads[0].count(b"\n\ndata: ") == tokens + 3  # role, tokens, finish, usage, [DONE]
    _report(benchmark, tokens, "plan, schedule and encoding")
