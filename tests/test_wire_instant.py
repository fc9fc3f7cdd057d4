"""The wire's shortcuts for streams whose events fall due together write what the general path writes.

A zero-delay stream is one write (`_instant_stream`, in constant time), and the general path merges
the writes due at one moment in a single pass (`_merge_same_time`): both must give the same bytes,
deadlines and content counts as listing every write and merging pairs one by one did.
"""

from __future__ import annotations

import itertools
import random

import pytest

from mockllm._config import parse_config
from mockllm._plan import Plan, plan_response
from mockllm._request import ChatRequest, Message, Overrides
from mockllm._wire import Part, StreamFrames, _any_stream, _instant_stream, _merge_same_time, stream_schedule
from mockllm.dialects._base import Call, Encoding
from mockllm.dialects.openai_chat import OpenAIChat

HEADERS = (("content-type", "text/event-stream"),)


def _pairwise_merge(
    offsets: list[float], parts: list[tuple[Part, ...]], content: list[int]
) -> tuple[list[float], list[tuple[Part, ...]], list[int]]:
    """The merge as it was first written: each write due with the one before joins it, last first."""
    same = [k for k, (a, b) in enumerate(itertools.pairwise(offsets), 1) if a == b]
    for k in reversed(same):
        parts[k - 1] += parts[k]
        content[k - 1] += content[k]
        del offsets[k], parts[k], content[k]
    return offsets, parts, content


@pytest.mark.parametrize("seed", range(20))
def test_the_one_pass_merge_joins_what_the_pairwise_merge_joined(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        n = rng.randint(1, 40)
        offsets = sorted(rng.choice([0.0, 0.1, 0.2, rng.random()]) for _ in range(n))
        parts = [tuple(rng.choice([b"x", 1, 2, b""]) for _ in range(rng.randint(0, 3))) for _ in range(n)]
        content = [rng.randint(0, 2) for _ in range(n)]
        expected = _pairwise_merge(list(offsets), list(parts), list(content))
        assert _merge_same_time(list(offsets), list(parts), list(content)) == expected


@pytest.mark.parametrize("n", [1, 2, 3, 200])
@pytest.mark.parametrize("head_on_arrival", [False, True])
@pytest.mark.parametrize(("head", "tail"), [(b"H\n\n", b"T\n\n"), (b"", b"T\n\n"), (b"H\n\n", b"")])
def test_a_zero_delay_stream_is_the_one_write_the_general_path_makes(
    n: int, head_on_arrival: bool, head: bytes, tail: bytes
) -> None:
    plan = Plan(1, "x" * n, ("x",) * n, (0.0,) * n, 0.0, "stop", 3, n)
    frames = StreamFrames(head, head_on_arrival, [b"c%d\n\n" % i for i in range(n)], tail, b"E", b"M")
    instant = _instant_stream(plan, frames, HEADERS)
    general = _any_stream(plan, frames, HEADERS, None)
    assert instant is not None
    assert len(instant.offsets) == 1
    assert (instant.offsets, instant.parts, instant.payloads, instant.content, instant.end) == (
        general.offsets,
        general.parts,
        general.payloads,
        general.content,
        general.end,
    )


@pytest.mark.parametrize(
    ("offsets", "ttft", "head_on_arrival"),
    [((0.0, 0.1), 0.0, True), ((0.1, 0.1), 0.1, True), ((0.0, 0.0), 0.1, False), ((), 0.0, True)],
)
def test_the_instant_stream_declines_a_stream_that_is_not_all_due_on_arrival(
    offsets: tuple[float, ...], ttft: float, head_on_arrival: bool
) -> None:
    n = len(offsets)
    plan = Plan(1, "x" * n, ("x",) * n, offsets, ttft, "stop", 3, n)
    frames = StreamFrames(b"H", head_on_arrival, [b"c"] * n, b"T", b"E", b"M")
    assert _instant_stream(plan, frames, HEADERS) is None


@pytest.mark.parametrize("tokens", [1, 7, 200])
def test_a_real_zero_delay_openai_stream_is_one_write_with_every_event(tokens: int) -> None:
    config = parse_config({"timing": {"ttft_ms": 0, "itl_ms": 0}})
    request = ChatRequest("m", (Message("user", "hi"),), stream=True, overrides=Overrides(answer_tokens=tokens))
    plan = plan_response(config, request)
    call = Call("POST", "/v1/chat/completions", {}, {}, b"{}")
    dialect = OpenAIChat()
    frames = dialect.stream_frames(plan, Encoding(request, call, "t", 1_700_000_000, {"include_usage": True}))
    schedule = stream_schedule(plan, frames, dialect.stream_headers, None)
    general = _any_stream(plan, frames, dialect.stream_headers, None)
    assert schedule.payloads == general.payloads
    assert schedule.content == (len(plan.chunks),)
    body = schedule.payloads[0].split(b"\r\n\r\n", 1)[1]
    assert body.count(b"data: ") == len(plan.chunks) + 4  # role, chunks, finish, usage, [DONE]
