"""pytest-benchmark of the work done once per request (plan, encode, schedule), the bound on the
mock's zero-delay throughput: `pytest bench/test_bench_hot_path.py --benchmark-enable`."""

from __future__ import annotations

import random

import pytest

from mockllm import Call, ChatRequest, Encoding, Message, Overrides, parse_config, plan_response, stream_schedule
from mockllm.dialects.openai_chat import OpenAIChat

CONFIG = parse_config({"timing": {"ttft_ms": 0, "itl_ms": 1}})  # distinct deadlines: a write each
DIALECT = OpenAIChat()


def request(i: int, tokens: int) -> ChatRequest:
    return ChatRequest(
        model="bench",
        messages=(Message("user", f"question {i}"),),
        stream=True,
        overrides=Overrides(answer_tokens=tokens),
    )


def respond(i: int, tokens: int) -> int:
    chat = request(i, tokens)
    plan = plan_response(CONFIG, chat)
    call = Call("POST", "/v1/chat/completions", {}, {}, b"")
    enc = Encoding(chat, call, "x", 1_700_000_000, {"include_usage": True})
    schedule = stream_schedule(plan, DIALECT.stream_frames(plan, enc), DIALECT.stream_headers, random.Random(0))
    return len(schedule.payloads)


@pytest.mark.parametrize("tokens", [20, 200])
def test_plan_encode_schedule(benchmark, tokens: int) -> None:
    counter = iter(range(10**9))
    writes = benchmark(lambda: respond(next(counter), tokens))
    assert writes == tokens  # the head rides with the first token, the tail with the last
    if benchmark.stats is not None:  # None under --benchmark-disable (pyproject's default): one plain call
        per_event_us = benchmark.stats.stats.mean / tokens * 1e6
        print(f"\n{tokens} tokens: {per_event_us:.2f} us of per-request work per event")
