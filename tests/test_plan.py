"""Unit tests for the planning core, `mockllm._plan.plan_response`, and the distributions it draws from."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import statistics
from typing import Any

import pytest

from mockllm._config import MockConfig, merge, parse_config
from mockllm._distributions import parse_distribution
from mockllm._faults import parse_fault
from mockllm._plan import Plan, plan_response
from mockllm._request import ChatRequest, Message, Overrides
from mockllm._tokenizer import count_prompt_tokens, count_tokens, tokenize

FIXED = "one two three four five six seven"  # 7 tokens: "one", " two", ..., " seven"
FIXED_TOKENS = ["one", " two", " three", " four", " five", " six", " seven"]
CONSTANT_TIMING = {"ttft_ms": 150, "itl_ms": 25}


def config(**sections: Any) -> MockConfig:
    return parse_config(sections)


def fixed_config(answer: str = FIXED, **timing: Any) -> MockConfig:
    return config(timing=timing or CONSTANT_TIMING, answers={"default": {"fixed": answer}})


def chat(
    *texts: str,
    model: str = "mock-gpt",
    stream: bool = False,
    max_tokens: int | None = None,
    overrides: Overrides | None = None,
    system: str | None = None,
) -> ChatRequest:
    """A conversation whose user turns are `texts`, with an assistant reply between them."""
    messages: list[Message] = [] if system is None else [Message("system", system)]
    for i, text in enumerate(texts or ("Tell me something about rivers.",)):
        if i:
            messages.append(Message("assistant", f"Reply {i}."))
        messages.append(Message("user", text))
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        stream=stream,
        max_tokens=max_tokens,
        overrides=overrides or Overrides(),
    )


def gaps(plan: Plan) -> list[float]:
    return [b - a for a, b in itertools.pairwise(plan.offsets)]


# -- determinism ---------------------------------------------------------------------------------


def test_same_config_and_request_give_an_identical_plan() -> None:
    cfg = config(timing={"ttft_ms": {"dist": "lognormal", "median": 200, "sigma": 0.4}, "itl_ms": 20})
    first = plan_response(cfg, chat())
    second = plan_response(parse_config(cfg.to_dict()), chat())
    assert first == second  # every field, the offsets included
    assert first.completion_tokens > 0
    assert len(set(first.offsets)) == len(first.offsets)  # the draws are not all alike


def test_different_global_seed_gives_a_different_answer() -> None:
    plans = [plan_response(config(seed=seed), chat()) for seed in (0, 1, 2)]
    assert len({plan.answer for plan in plans}) == 3
    assert len({plan.seed for plan in plans}) == 3


def test_different_override_seed_gives_a_different_answer() -> None:
    plans = [plan_response(config(), chat(overrides=Overrides(seed=seed))) for seed in (None, "a", "b")]
    assert len({plan.answer for plan in plans}) == 3
    assert plan_response(config(), chat(overrides=Overrides(seed="a"))) == plans[1]


def test_different_messages_give_a_different_answer() -> None:
    assert plan_response(config(), chat("Hi")).answer != plan_response(config(), chat("Hi!")).answer


def test_stream_flag_changes_neither_answer_nor_timing() -> None:
    cfg = config(timing={"itl_ms": {"dist": "uniform", "min": 5, "max": 50}})
    streamed = plan_response(cfg, chat(stream=True))
    whole = plan_response(cfg, chat(stream=False))
    assert streamed == whole
    assert streamed.answer == whole.answer
    assert streamed.offsets == whole.offsets


def test_timing_config_does_not_change_the_text() -> None:
    slow = config(timing={"ttft_ms": 900, "itl_ms": {"dist": "lognormal", "median": 40, "sigma": 1}})
    fast = config(timing={"ttft_ms": 10, "itl_ms": {"dist": "uniform", "min": 1, "max": 2}, "prefill_ms_per_token": 3})
    a, b = plan_response(slow, chat()), plan_response(fast, chat())
    assert (a.answer, a.chunks, a.completion_tokens) == (b.answer, b.chunks, b.completion_tokens)
    assert a.offsets != b.offsets


def test_fault_is_carried_and_changes_nothing_else() -> None:
    fault = parse_fault("error-after=2")
    faulty = plan_response(fixed_config(), chat(), fault=fault)
    clean = plan_response(fixed_config(), chat())
    assert faulty.fault is fault
    assert clean.fault is None
    assert dataclasses.replace(faulty, fault=None) == clean


# -- chunks and offsets --------------------------------------------------------------------------


@pytest.mark.parametrize("per_chunk", [1, 2, 5])
def test_chunks_join_to_the_answer_and_offsets_match(per_chunk: int) -> None:
    cfg = config(
        timing={"tokens_per_chunk": per_chunk, "itl_ms": {"dist": "normal", "mean": 20, "std": 15}},
        answers={"default": {"prose": {"length_tokens": 80}}},
    )
    plan = plan_response(cfg, chat())
    assert plan.completion_tokens == 80
    assert "".join(plan.chunks) == plan.answer
    assert len(plan.offsets) == len(plan.chunks) == math.ceil(80 / per_chunk)
    assert all(b >= a for a, b in itertools.pairwise(plan.offsets))
    assert plan.offsets[0] == plan.ttft
    assert plan.end_offset == plan.offsets[-1]


def test_constant_timing_gives_exact_offsets() -> None:
    plan = plan_response(fixed_config(), chat())
    assert plan.ttft == pytest.approx(0.150, abs=1e-9)
    assert len(plan.offsets) == 7
    for i, offset in enumerate(plan.offsets):
        assert offset == pytest.approx(0.150 + i * 0.025, abs=1e-9)
    assert plan.end_offset == pytest.approx(0.300, abs=1e-9)


def test_prefill_adds_per_prompt_token() -> None:
    request = chat("Hello there", system="You are terse.")
    # "You are terse." 4 tokens, "Hello there" 2, framing 3 per message and 3 for the reply.
    assert count_prompt_tokens(["You are terse.", "Hello there"]) == 15
    base = plan_response(fixed_config(), request)
    slowed = plan_response(fixed_config(ttft_ms=150, itl_ms=25, prefill_ms_per_token=2.5), request)
    assert base.prompt_tokens == slowed.prompt_tokens == 15
    assert slowed.ttft == pytest.approx(0.150 + 15 * 0.0025, abs=1e-9)
    assert [b - a for a, b in zip(base.offsets, slowed.offsets, strict=True)] == pytest.approx([15 * 0.0025] * 7)


def test_tokens_per_chunk_groups_tokens() -> None:
    plan = plan_response(fixed_config(ttft_ms=150, itl_ms=25, tokens_per_chunk=3), chat())
    assert plan.chunks == ("one two three", " four five six", " seven")
    assert plan.completion_tokens == 7
    assert plan.offsets == pytest.approx([0.150, 0.175, 0.200], abs=1e-9)


def test_empty_answer_has_no_chunks_and_ends_at_ttft() -> None:
    plan = plan_response(fixed_config(""), chat())
    assert (plan.answer, plan.chunks, plan.offsets, plan.completion_tokens) == ("", (), (), 0)
    assert plan.end_offset == plan.ttft == pytest.approx(0.150, abs=1e-9)
    assert plan.finish_reason == "stop"


# -- lengths -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_tokens", "answer", "finish_reason", "completion_tokens"),
    [
        (1, "one", "length", 1),
        (4, "one two three four", "length", 4),
        (6, "one two three four five six", "length", 6),
        (7, FIXED, "stop", 7),
        (8, FIXED, "stop", 7),
        (None, FIXED, "stop", 7),
    ],
)
def test_max_tokens_cuts_the_answer(
    max_tokens: int | None, answer: str, finish_reason: str, completion_tokens: int
) -> None:
    plan = plan_response(fixed_config(), chat(max_tokens=max_tokens))
    assert plan.answer == answer
    assert plan.finish_reason == finish_reason
    assert plan.completion_tokens == completion_tokens
    assert list(plan.chunks) == FIXED_TOKENS[:completion_tokens]
    assert len(plan.offsets) == completion_tokens


def test_max_tokens_cuts_prose() -> None:
    plan = plan_response(config(), chat(max_tokens=10, overrides=Overrides(answer_tokens=50)))
    assert plan.finish_reason == "length"
    assert plan.completion_tokens == 10
    assert len(plan.chunks) == 10
    full = plan_response(config(), chat(max_tokens=10, overrides=Overrides(answer_tokens=500)))
    assert full.completion_tokens == 10


ANSWER_LENGTHS = [1, 2, 3, 7, 42, 60, 97, 137, 255, 300]


@pytest.mark.parametrize("n", ANSWER_LENGTHS)
def test_answer_tokens_override_gives_exactly_n_tokens(n: int) -> None:
    plan = plan_response(config(), chat(overrides=Overrides(answer_tokens=n)))
    assert plan.completion_tokens == n
    assert count_tokens(plan.answer) == n
    assert plan.finish_reason == "stop"


@pytest.mark.parametrize("n", ANSWER_LENGTHS)
def test_answer_tokens_override_is_exact_with_multibyte_words(n: int) -> None:
    plan = plan_response(config(), chat(overrides=Overrides(answer_tokens=n, multibyte=0.3)))
    assert plan.completion_tokens == n
    assert count_tokens(plan.answer) == n


def test_answer_tokens_zero_gives_an_empty_answer() -> None:
    plan = plan_response(config(), chat(overrides=Overrides(answer_tokens=0)))
    assert (plan.answer, plan.chunks, plan.completion_tokens) == ("", (), 0)


def test_prose_length_follows_the_configured_distribution() -> None:
    cfg = config(answers={"default": {"prose": {"length_tokens": {"dist": "uniform", "min": 20, "max": 30}}}})
    lengths = [plan_response(cfg, chat(overrides=Overrides(seed=str(i)))).completion_tokens for i in range(12)]
    assert all(20 <= n <= 30 for n in lengths), lengths
    assert len(set(lengths)) > 1


def test_multibyte_one_gives_non_ascii_text() -> None:
    plain = plan_response(config(), chat(overrides=Overrides(answer_tokens=40)))
    rich = plan_response(config(), chat(overrides=Overrides(answer_tokens=40, multibyte=1.0)))
    assert plain.answer.isascii()
    assert not rich.answer.isascii()
    assert len(rich.answer.encode()) > len(rich.answer)
    configured = config(answers={"default": {"prose": {"multibyte": 1.0}}})
    assert not plan_response(configured, chat(overrides=Overrides(answer_tokens=40))).answer.isascii()


# -- answer rules --------------------------------------------------------------------------------


def rules_config(*rules: dict[str, Any], default: dict[str, Any] | None = None) -> MockConfig:
    return config(answers={"default": default or {"fixed": "DEFAULT"}, "rules": list(rules)})


def test_fixed_answer() -> None:
    plan = plan_response(rules_config(default={"fixed": "Hello! How can I help?"}), chat("hi"))
    assert plan.answer == "Hello! How can I help?"
    assert plan.chunks == ("Hello", "!", " How", " can", " I", " help", "?")


def test_template_answer_renders_last_user_turn_and_model() -> None:
    cfg = rules_config(default={"template": "Turn {{ turn }} on {{ model }}: you said {{ last_user }}"})
    plan = plan_response(cfg, chat("first", "second question", model="gpt-4o"))
    assert plan.answer == "Turn 2 on gpt-4o: you said second question"
    assert plan.completion_tokens == len(tokenize(plan.answer))


def test_template_answer_sees_messages_and_seed() -> None:
    cfg = rules_config(default={"template": "{{ messages | length }} {{ messages[0].role }} {{ seed }}"})
    request = chat("a", "b", system="sys")
    plan = plan_response(cfg, request)
    assert plan.answer == f"4 system {plan.seed}"


def test_echo_answer_repeats_the_last_user_message() -> None:
    plan = plan_response(rules_config(default={"echo": True}), chat("first", "say  this\tback 🙂"))
    assert plan.answer == "say  this\tback 🙂"


@pytest.mark.parametrize(
    ("match", "request_", "matches"),
    [
        ({"contains": "weather"}, chat("What is the weather?"), True),
        ({"contains": "weather"}, chat("What is the Weather?"), False),
        ({"contains": "weather"}, chat("weather", "and now?"), False),  # only the last user message
        ({"regex": r"^\d+ \+ \d+$"}, chat("2 + 2"), True),
        ({"regex": r"^\d+ \+ \d+$"}, chat("2 + 2 = ?"), False),
        ({"model": "gpt-4o.*"}, chat(model="gpt-4o-mini"), True),
        ({"model": "gpt-4o"}, chat(model="gpt-4o-mini"), False),  # a full match
        ({"turn": 2}, chat("a", "b"), True),
        ({"turn": 2}, chat("a"), False),
        ({"contains": "x", "turn": 1}, chat("x"), True),
        ({"contains": "x", "turn": 1}, chat("y", "x"), False),  # every condition must hold
    ],
)
def test_rule_matching(match: dict[str, Any], request_: ChatRequest, matches: bool) -> None:
    plan = plan_response(rules_config({"match": match, "answer": {"fixed": "RULE"}}), request_)
    assert plan.answer == ("RULE" if matches else "DEFAULT")


def test_first_matching_rule_wins() -> None:
    cfg = rules_config(
        {"match": {"contains": "zebra"}, "answer": {"fixed": "ZEBRA"}},
        {"match": {"contains": "cat"}, "answer": {"fixed": "FIRST"}},
        {"match": {"regex": "c.t"}, "answer": {"fixed": "SECOND"}},
        {"answer": {"fixed": "CATCH-ALL"}},
    )
    assert plan_response(cfg, chat("a cat")).answer == "FIRST"
    assert plan_response(cfg, chat("a cot")).answer == "SECOND"
    assert plan_response(cfg, chat("a zebra and a cat")).answer == "ZEBRA"
    assert plan_response(cfg, chat("a dog")).answer == "CATCH-ALL"


# -- distributions -------------------------------------------------------------------------------

DISTRIBUTIONS = {
    "uniform": ({"dist": "uniform", "min": 20, "max": 80}, 50.0),
    "normal": ({"dist": "normal", "mean": 50, "std": 10}, 50.0),
    "lognormal": ({"dist": "lognormal", "median": 50, "sigma": 0.5}, 50 * math.exp(0.5**2 / 2)),
}


@pytest.mark.parametrize("spec", [spec for spec, _ in DISTRIBUTIONS.values()], ids=DISTRIBUTIONS.keys())
def test_distribution_draws_are_seeded(spec: dict[str, Any]) -> None:
    dist = parse_distribution(spec, "d")
    a = [dist.sample(random.Random(7)) for _ in range(3)]
    rng_a, rng_b, rng_c = random.Random(7), random.Random(7), random.Random(8)
    draws_a = [dist.sample(rng_a) for _ in range(50)]
    draws_b = [dist.sample(rng_b) for _ in range(50)]
    draws_c = [dist.sample(rng_c) for _ in range(50)]
    assert draws_a == draws_b
    assert draws_a != draws_c
    assert a[0] == a[1] == a[2] == draws_a[0]
    assert len(set(draws_a)) == 50


@pytest.mark.parametrize(("spec", "mean"), DISTRIBUTIONS.values(), ids=DISTRIBUTIONS.keys())
def test_distribution_sample_mean_is_near_the_configured_mean(spec: dict[str, Any], mean: float) -> None:
    dist = parse_distribution(spec, "d")
    rng = random.Random(12345)
    draws = [dist.sample(rng) for _ in range(2000)]
    assert statistics.fmean(draws) == pytest.approx(mean, rel=0.05)


@pytest.mark.parametrize(
    ("spec", "low", "high", "clipped_to"),
    [
        ({"dist": "uniform", "min": 20, "max": 80}, 20.0, 80.0, set()),
        ({"dist": "normal", "mean": 50, "std": 40, "min": 30, "max": 60}, 30.0, 60.0, {30.0, 60.0}),
        ({"dist": "normal", "mean": 5, "std": 40}, 0.0, math.inf, {0.0}),  # clipped at 0 by default
        ({"dist": "lognormal", "median": 50, "sigma": 2, "min": 10, "max": 100}, 10.0, 100.0, {10.0, 100.0}),
        ({"dist": "constant", "value": 500, "max": 100}, 100.0, 100.0, {100.0}),
    ],
)
def test_distribution_draws_are_clipped(spec: dict[str, Any], low: float, high: float, clipped_to: set[float]) -> None:
    dist = parse_distribution(spec, "d")
    rng = random.Random(3)
    draws = [dist.sample(rng) for _ in range(2000)]
    assert min(draws) >= low
    assert max(draws) <= high
    # Wide distributions land on their bounds: the clip, not luck, keeps them inside.
    assert clipped_to <= set(draws)


def test_itl_distribution_drives_the_offsets() -> None:
    cfg = config(
        timing={"ttft_ms": 0, "itl_ms": {"dist": "uniform", "min": 10, "max": 30}},
        answers={"default": {"prose": {"length_tokens": 400}}},
    )
    plan = plan_response(cfg, chat())
    steps = gaps(plan)
    assert len(steps) == 399
    assert all(0.010 - 1e-12 <= step <= 0.030 + 1e-12 for step in steps)
    assert statistics.fmean(steps) == pytest.approx(0.020, rel=0.1)
    assert plan_response(cfg, chat()).offsets == plan.offsets


def test_override_ttft_and_itl_replace_the_distributions() -> None:
    cfg = config(
        timing={
            "ttft_ms": {"dist": "lognormal", "median": 300, "sigma": 1},
            "itl_ms": {"dist": "normal", "mean": 9, "std": 5},
        },
        answers={"default": {"fixed": FIXED}},
    )
    plan = plan_response(cfg, chat(overrides=Overrides(ttft_ms=40.0, itl_ms=5.0)))
    assert plan.offsets == pytest.approx([0.040 + i * 0.005 for i in range(7)], abs=1e-9)


# -- load slow-down ------------------------------------------------------------------------------


def load_config(**load: Any) -> MockConfig:
    return parse_config(merge(fixed_config().to_dict(), {"timing": {"load": load}}))


def test_load_at_max_streams_multiplies_by_the_factors() -> None:
    cfg = load_config(max_streams=10, ttft_factor=2.0, itl_factor=3.0)
    base = plan_response(fixed_config(), chat())
    loaded = plan_response(cfg, chat(), active_streams=10)
    assert loaded.ttft == pytest.approx(2.0 * base.ttft, abs=1e-9)
    assert gaps(loaded) == pytest.approx([3.0 * 0.025] * 6, abs=1e-9)
    assert loaded.answer == base.answer
    # Beyond max_streams the factors stay at their maximum.
    assert plan_response(cfg, chat(), active_streams=50).offsets == loaded.offsets


def test_load_grows_linearly_with_active_streams() -> None:
    cfg = load_config(max_streams=10, ttft_factor=2.0, itl_factor=3.0)
    half = plan_response(cfg, chat(), active_streams=5)
    assert half.ttft == pytest.approx(1.5 * 0.150, abs=1e-9)
    assert gaps(half) == pytest.approx([2.0 * 0.025] * 6, abs=1e-9)


def test_no_active_streams_leaves_timing_unchanged() -> None:
    cfg = load_config(max_streams=10, ttft_factor=2.0, itl_factor=3.0)
    assert plan_response(cfg, chat(), active_streams=0) == plan_response(fixed_config(), chat())


def test_without_load_config_active_streams_change_nothing() -> None:
    assert plan_response(fixed_config(), chat(), active_streams=1000) == plan_response(fixed_config(), chat())
