"""Unit tests for config parsing: `_config`, `_distributions`, `_faults` and `_answers.parse_source`."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import yaml

from mockllm._answers import EchoAnswer, FixedAnswer, ProseAnswer, TemplateAnswer, parse_source
from mockllm._config import MockConfig, merge, parse_config
from mockllm._distributions import Distribution, parse_distribution
from mockllm._errors import ConfigError
from mockllm._faults import Fault, FaultSyntaxError, parse_fault, parse_fault_rule

# -- bad configs: the error names the exact dotted key ---------------------------------------------

GOOD_RULE = {"match": {"contains": "hi"}, "answer": {"fixed": "Hello"}}
GOOD_FAULT = {"fault": "429", "when": {"every": 2}}

BAD_CONFIGS = [
    # (id, raw config, key named by the error, a fragment of the problem it states)
    ("root-not-mapping", [1, 2], "<root>", "expected a mapping, got list"),
    ("unknown-top-level", {"sede": 1}, "sede", "unknown key; expected one of seed, models, timing"),
    ("first-unknown-top-level", {"zeta": 1, "alpha": 2}, "alpha", "unknown key"),
    ("seed-string", {"seed": "7"}, "seed", "expected a whole number, got '7'"),
    ("seed-bool", {"seed": True}, "seed", "expected a whole number, got True"),
    ("models-string", {"models": "mock-gpt"}, "models", "expected a list of model names"),
    ("models-empty-name", {"models": ["a", ""]}, "models", "expected a list of model names"),
    ("timing-not-mapping", {"timing": 5}, "timing", "expected a mapping, got 5"),
    ("timing-unknown", {"timing": {"tttf_ms": 5}}, "timing.tttf_ms", "unknown key"),
    (
        "ttft-unknown-dist",
        {"timing": {"ttft_ms": {"dist": "poisson", "value": 3}}},
        "timing.ttft_ms.dist",
        "must be one of ['constant', 'lognormal', 'normal', 'uniform'], got 'poisson'",
    ),
    ("ttft-no-dist", {"timing": {"ttft_ms": {"mean": 3}}}, "timing.ttft_ms.dist", "got None"),
    (
        "ttft-string",
        {"timing": {"ttft_ms": "fast"}},
        "timing.ttft_ms",
        "expected a number or a distribution mapping, got 'fast'",
    ),
    ("ttft-bool", {"timing": {"ttft_ms": True}}, "timing.ttft_ms", "got True"),
    ("ttft-negative", {"timing": {"ttft_ms": -5}}, "timing.ttft_ms", "must be >= 0, got -5"),
    ("ttft-nan", {"timing": {"ttft_ms": math.nan}}, "timing.ttft_ms", "must be >= 0, got nan"),
    (
        "itl-uniform-max-below-min",
        {"timing": {"itl_ms": {"dist": "uniform", "min": 80, "max": 20}}},
        "timing.itl_ms.max",
        "must be >= min (80.0), got 20.0",
    ),
    (
        "itl-uniform-missing-max",
        {"timing": {"itl_ms": {"dist": "uniform", "min": 80}}},
        "timing.itl_ms.max",
        "required for dist 'uniform'",
    ),
    (
        "itl-normal-missing-std",
        {"timing": {"itl_ms": {"dist": "normal", "mean": 20}}},
        "timing.itl_ms.std",
        "required for dist 'normal'",
    ),
    (
        "itl-normal-foreign-field",
        {"timing": {"itl_ms": {"dist": "normal", "mean": 20, "std": 5, "median": 3}}},
        "timing.itl_ms.median",
        "unknown field for dist 'normal'",
    ),
    (
        "itl-normal-std-string",
        {"timing": {"itl_ms": {"dist": "normal", "mean": 20, "std": "5"}}},
        "timing.itl_ms.std",
        "expected a number, got '5'",
    ),
    (
        "itl-normal-clip-inverted",
        {"timing": {"itl_ms": {"dist": "normal", "mean": 20, "std": 5, "min": 30, "max": 10}}},
        "timing.itl_ms.max",
        "must be >= min (30.0), got 10.0",
    ),
    (
        "itl-normal-negative-min",
        {"timing": {"itl_ms": {"dist": "normal", "mean": 20, "std": 5, "min": -1}}},
        "timing.itl_ms.min",
        "must be >= 0, got -1",
    ),
    (
        "itl-lognormal-zero-median",
        {"timing": {"itl_ms": {"dist": "lognormal", "median": 0, "sigma": 1}}},
        "timing.itl_ms.median",
        "must be > 0",
    ),
    (
        "prefill-negative",
        {"timing": {"prefill_ms_per_token": -0.5}},
        "timing.prefill_ms_per_token",
        "expected a number >= 0, got -0.5",
    ),
    (
        "tokens-per-chunk-zero",
        {"timing": {"tokens_per_chunk": 0}},
        "timing.tokens_per_chunk",
        "expected a whole number >= 1, got 0",
    ),
    (
        "tokens-per-chunk-float",
        {"timing": {"tokens_per_chunk": 1.5}},
        "timing.tokens_per_chunk",
        "expected a whole number >= 1, got 1.5",
    ),
    ("load-not-mapping", {"timing": {"load": 3}}, "timing.load", "expected a mapping, got 3"),
    ("load-unknown", {"timing": {"load": {"burst": 2}}}, "timing.load.burst", "unknown key"),
    (
        "load-max-streams-zero",
        {"timing": {"load": {"max_streams": 0}}},
        "timing.load.max_streams",
        "expected a whole number >= 1, got 0",
    ),
    (
        "load-itl-factor-zero",
        {"timing": {"load": {"itl_factor": 0}}},
        "timing.load.itl_factor",
        "expected a number > 0, got 0",
    ),
    (
        "load-ttft-factor-inf",
        {"timing": {"load": {"ttft_factor": math.inf}}},
        "timing.load.ttft_factor",
        "expected a number > 0, got inf",
    ),
    ("answers-list", {"answers": []}, "answers", "expected a mapping, got []"),
    (
        "answers-unknown",
        {"answers": {"fallback": {}}},
        "answers.fallback",
        "unknown key; expected one of default, rules",
    ),
    (
        "default-fixed-not-string",
        {"answers": {"default": {"fixed": 1}}},
        "answers.default.fixed",
        "expected a string, got 1",
    ),
    (
        "default-two-sources",
        {"answers": {"default": {"fixed": "a", "echo": True}}},
        "answers.default",
        "expected exactly one of fixed, template, echo, prose",
    ),
    (
        "default-unknown-source",
        {"answers": {"default": {"poem": "x"}}},
        "answers.default.poem",
        "unknown answer source",
    ),
    ("default-echo-not-true", {"answers": {"default": {"echo": "yes"}}}, "answers.default.echo", "expected true"),
    (
        "default-template-syntax",
        {"answers": {"default": {"template": "{{ last_user "}}},
        "answers.default.template",
        "template syntax error",
    ),
    (
        "prose-multibyte-out-of-range",
        {"answers": {"default": {"prose": {"multibyte": 1.5}}}},
        "answers.default.prose.multibyte",
        "expected a probability in [0, 1], got 1.5",
    ),
    (
        "prose-length-dist",
        {"answers": {"default": {"prose": {"length_tokens": {"dist": "gamma"}}}}},
        "answers.default.prose.length_tokens.dist",
        "got 'gamma'",
    ),
    (
        "prose-unknown-field",
        {"answers": {"default": {"prose": {"colour": "red"}}}},
        "answers.default.prose.colour",
        "unknown field",
    ),
    (
        "prose-paragraph-zero",
        {"answers": {"default": {"prose": {"paragraph_sentences": 0}}}},
        "answers.default.prose.paragraph_sentences",
        "expected a whole number >= 1, got 0",
    ),
    ("prose-not-mapping", {"answers": {"default": {"prose": 5}}}, "answers.default.prose", "expected a mapping"),
    ("rules-not-list", {"answers": {"rules": {"a": 1}}}, "answers.rules", "expected a list"),
    (
        "rule-without-answer",
        {"answers": {"rules": [{"match": {"contains": "x"}}]}},
        "answers.rules[0]",
        "expected a mapping with 'match' and 'answer'",
    ),
    (
        "rule-bad-regex",
        {"answers": {"rules": [{"match": {"regex": "("}, "answer": {"fixed": "x"}}]}},
        "answers.rules[0].match.regex",
        "invalid regex '('",
    ),
    (
        "second-rule-turn-zero",
        {"answers": {"rules": [GOOD_RULE, {"match": {"turn": 0}, "answer": {"fixed": "x"}}]}},
        "answers.rules[1].match.turn",
        "expected a whole number >= 1, got 0",
    ),
    (
        "rule-contains-not-string",
        {"answers": {"rules": [{"match": {"contains": 5}, "answer": {"fixed": "x"}}]}},
        "answers.rules[0].match.contains",
        "expected a string, got 5",
    ),
    (
        "rule-match-unknown",
        {"answers": {"rules": [{"match": {"role": "user"}, "answer": {"fixed": "x"}}]}},
        "answers.rules[0].match.role",
        "unknown match field",
    ),
    (
        "rule-unknown-field",
        {"answers": {"rules": [{"priority": 1, "answer": {"fixed": "x"}}]}},
        "answers.rules[0].priority",
        "unknown field",
    ),
    (
        "rule-answer-bad",
        {"answers": {"rules": [{"answer": {"fixed": None}}]}},
        "answers.rules[0].answer.fixed",
        "expected a string, got None",
    ),
    ("faults-mapping", {"faults": GOOD_FAULT}, "faults", "expected a list of {fault, when}"),
    ("fault-rule-string", {"faults": ["429"]}, "faults[0]", "expected a mapping with 'fault' and 'when'"),
    ("fault-spec-missing", {"faults": [{"when": {"every": 2}}]}, "faults[0].fault", "required: a fault spec"),
    ("fault-spec-bogus", {"faults": [{"fault": "bogus"}]}, "faults[0].fault", "unknown fault 'bogus'"),
    (
        "fault-unknown-field",
        {"faults": [{"fault": "429", "often": True}]},
        "faults[0].often",
        "unknown field; use 'fault' and 'when'",
    ),
    (
        "second-fault-probability",
        {"faults": [GOOD_FAULT, {"fault": "500", "when": {"probability": 1.5}}]},
        "faults[1].when.probability",
        "expected a number in [0, 1], got 1.5",
    ),
    (
        "fault-every-zero",
        {"faults": [{"fault": "500", "when": {"every": 0}}]},
        "faults[0].when.every",
        "expected a whole number >= 1, got 0",
    ),
    (
        "fault-first-bool",
        {"faults": [{"fault": "500", "when": {"first": True}}]},
        "faults[0].when.first",
        "expected a whole number >= 1, got True",
    ),
    (
        "fault-when-bad-regex",
        {"faults": [{"fault": "500", "when": {"regex": "["}}]},
        "faults[0].when.regex",
        "invalid regex '['",
    ),
    (
        "fault-when-unknown",
        {"faults": [{"fault": "500", "when": {"sometimes": True}}]},
        "faults[0].when.sometimes",
        "unknown match field",
    ),
    # A `when` that is not a mapping must be refused as such, not crash in dict().
    ("fault-when-number", {"faults": [{"fault": "500", "when": 5}]}, "faults[0].when", "expected a mapping"),
    ("fault-when-string", {"faults": [{"fault": "500", "when": "often"}]}, "faults[0].when", "expected a mapping"),
    # A count that is not finite must be refused as a bad spec, not crash in int().
    ("fault-spec-inf", {"faults": [{"fault": "error-after=inf"}]}, "faults[0].fault", "'error-after=inf'"),
    ("journal-not-mapping", {"journal": 5}, "journal", "expected a mapping, got 5"),
    (
        "journal-max-entries-zero",
        {"journal": {"max_entries": 0}},
        "journal.max_entries",
        "expected a whole number >= 1, got 0",
    ),
    ("journal-unknown", {"journal": {"size": 3}}, "journal.size", "unknown key; expected one of max_entries"),
]


@pytest.mark.parametrize(("raw", "key", "fragment"), [row[1:] for row in BAD_CONFIGS], ids=[r[0] for r in BAD_CONFIGS])
def test_bad_config_names_its_key(raw: Any, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert info.value.key == key
    assert fragment in info.value.problem
    assert str(info.value) == f"config key {key!r}: {info.value.problem}"


# -- good configs --------------------------------------------------------------------------------

DOCSTRING_EXAMPLE = """
seed: 0
models: [mock-gpt]
timing:
  ttft_ms: 200
  itl_ms: 20
  prefill_ms_per_token: 0
  tokens_per_chunk: 1
  load: {max_streams: 256, ttft_factor: 1.0, itl_factor: 1.0}
answers:
  default: {prose: {length_tokens: {dist: lognormal, median: 60, sigma: 0.5}}}
  rules:
    - match: {contains: "hello"}
      answer: {fixed: "Hello! How can I help?"}
faults:
  - fault: "429"
    when: {every: 10}
journal: {max_entries: 10000}
"""

GOOD_CONFIGS = {
    "none": None,
    "empty": {},
    "docstring-example": yaml.safe_load(DOCSTRING_EXAMPLE),
    "distributions": {
        "seed": -3,
        "timing": {
            "ttft_ms": {"dist": "normal", "mean": 300, "std": 50, "min": 100, "max": 900},
            "itl_ms": {"dist": "uniform", "min": 10, "max": 30},
            "prefill_ms_per_token": 0.25,
            "tokens_per_chunk": 3,
        },
        "answers": {
            "default": {
                "prose": {
                    "length_tokens": {"dist": "constant", "value": 50, "min": 60},
                    "multibyte": 0.2,
                    "paragraph_sentences": 2,
                }
            }
        },
    },
    "every-source-and-match": {
        "models": ["a", "b"],
        "answers": {
            "default": {"echo": True},
            "rules": [
                {"match": {"regex": r"^\d+$", "model": "gpt-.*", "turn": 2}, "answer": {"template": "{{ turn }}"}},
                {"answer": {"prose": None}},
                {"match": {"contains": "x", "path": "/v1/chat/completions"}, "answer": {"fixed": ""}},
            ],
        },
    },
    "every-schedule": {
        "timing": {"load": {}},
        "faults": [
            {"fault": 503, "when": {"probability": 0.25, "contains": "retry"}},
            {"fault": "stall-after=2,for=1.5", "when": {"first": 3, "model": "m.*"}},
            {"fault": "fragment"},
            {"fault": "429,retry-after=2", "when": {"every": 4, "turn": 1}},
        ],
        "journal": {"max_entries": 1},
    },
}


@pytest.mark.parametrize("raw", GOOD_CONFIGS.values(), ids=GOOD_CONFIGS.keys())
def test_good_config_round_trips_through_to_dict(raw: Any) -> None:
    snapshot = copy.deepcopy(raw)
    config = parse_config(raw)
    first = config.to_dict()
    again = parse_config(first)
    assert again.to_dict() == first
    assert again == config
    assert raw == snapshot  # parsing does not touch its input


def test_docstring_example_to_dict_is_exact() -> None:
    assert parse_config(yaml.safe_load(DOCSTRING_EXAMPLE)).to_dict() == {
        "seed": 0,
        "models": ["mock-gpt"],
        "timing": {
            "ttft_ms": 200.0,
            "itl_ms": 20.0,
            "prefill_ms_per_token": 0.0,
            "tokens_per_chunk": 1,
            "load": {"max_streams": 256, "ttft_factor": 1.0, "itl_factor": 1.0},
        },
        "answers": {
            "default": {
                "prose": {
                    "length_tokens": {"dist": "lognormal", "median": 60.0, "sigma": 0.5},
                    "multibyte": 0.0,
                    "paragraph_sentences": 4,
                }
            },
            "rules": [{"match": {"contains": "hello"}, "answer": {"fixed": "Hello! How can I help?"}}],
        },
        "faults": [{"fault": "429", "when": {"every": 10}}],
        "journal": {"max_entries": 10000},
        "limits": {
            "max_header_bytes": 65536,
            "max_headers": 100,
            "max_body_bytes": 16777216,
            "max_json_depth": 128,
            "header_timeout_s": 10.0,
            "idle_timeout_s": 60.0,
            "max_connections": 10000,
        },
        "reasoning": {"minimal": 8, "low": 24, "medium": 48, "high": 96, "default": 48},
        "strict": True,
    }


def test_missing_keys_take_defaults() -> None:
    config = parse_config({"seed": 9})
    default = MockConfig()
    assert config.seed == 9
    assert config.models == default.models == ("mock-gpt", "gpt-4o-mini", "gpt-4o")
    assert config.timing == default.timing
    assert config.default_answer == ProseAnswer()
    assert config.default_answer.length_tokens == Distribution("lognormal", 60.0, 0.5, 5.0, 400.0)
    assert config.answer_rules == ()
    assert config.fault_rules == ()
    assert config.journal_max_entries == 10_000
    assert parse_config(None) == parse_config({}) == default


def test_fault_rule_fields() -> None:
    config = parse_config(GOOD_CONFIGS["every-schedule"])
    first, second, third, fourth = config.fault_rules
    assert (first.fault.status, first.probability, first.match.contains) == (503, 0.25, "retry")
    assert (second.fault.kind, second.fault.after, second.fault.seconds, second.first) == ("stall", 2, 1.5, 3)
    assert second.match.model is not None and second.match.model.pattern == "m.*"
    assert (third.fault.kind, third.probability, third.first, third.every) == ("fragment", None, None, None)
    assert (fourth.fault.retry_after, fourth.every, fourth.match.turn) == (2.0, 4, 1)


# -- merge ---------------------------------------------------------------------------------------


def test_merge_deep_merges_mappings_and_replaces_the_rest() -> None:
    base = {"seed": 1, "timing": {"ttft_ms": 100, "load": {"max_streams": 8}}, "models": ["a", "b"]}
    patch = {"timing": {"itl_ms": 5, "load": {"itl_factor": 2.0}}, "models": ["c"], "journal": {"max_entries": 3}}
    assert merge(base, patch) == {
        "seed": 1,
        "timing": {"ttft_ms": 100, "itl_ms": 5, "load": {"max_streams": 8, "itl_factor": 2.0}},
        "models": ["c"],
        "journal": {"max_entries": 3},
    }


def test_merge_replaces_a_mapping_with_a_scalar_and_back() -> None:
    assert merge({"timing": {"ttft_ms": {"dist": "normal"}}}, {"timing": {"ttft_ms": 7}}) == {"timing": {"ttft_ms": 7}}
    assert merge({"timing": {"ttft_ms": 7}}, {"timing": {"ttft_ms": {"dist": "constant"}}}) == {
        "timing": {"ttft_ms": {"dist": "constant"}}
    }


def test_merge_leaves_its_inputs_untouched() -> None:
    base = {"timing": {"ttft_ms": 100, "load": {"max_streams": 8}}, "models": ["a"], "faults": [{"fault": "429"}]}
    patch = {"timing": {"load": {"itl_factor": 2.0}}, "answers": {"rules": [{"answer": {"fixed": "x"}}]}}
    base_before, patch_before = copy.deepcopy(base), copy.deepcopy(patch)
    merged = merge(base, patch)
    assert base == base_before
    assert patch == patch_before
    # The result shares no mutable part with either input.
    merged["timing"]["load"]["max_streams"] = 99
    merged["models"].append("b")
    merged["faults"][0]["fault"] = "500"
    merged["answers"]["rules"][0]["answer"]["fixed"] = "y"
    assert base == base_before
    assert patch == patch_before


# -- distributions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected", "as_config"),
    [
        (50, Distribution("constant", 50.0, 0.0, 0.0, math.inf), 50.0),
        (0.5, Distribution("constant", 0.5, 0.0, 0.0, math.inf), 0.5),
        ({"dist": "constant", "value": 7}, Distribution("constant", 7.0, 0.0, 0.0, math.inf), 7.0),
        (
            {"dist": "constant", "value": 7, "max": 5},
            Distribution("constant", 7.0, 0.0, 0.0, 5.0),
            {"dist": "constant", "value": 7.0, "max": 5.0},
        ),
        (
            {"dist": "uniform", "min": 20, "max": 80},
            Distribution("uniform", 20.0, 80.0, 20.0, 80.0),
            {"dist": "uniform", "min": 20.0, "max": 80.0},
        ),
        (
            {"dist": "normal", "mean": 50, "std": 10},
            Distribution("normal", 50.0, 10.0, 0.0, math.inf),
            {"dist": "normal", "mean": 50.0, "std": 10.0},
        ),
        (
            {"dist": "normal", "mean": 50, "std": 10, "min": 30, "max": 70},
            Distribution("normal", 50.0, 10.0, 30.0, 70.0),
            {"dist": "normal", "mean": 50.0, "std": 10.0, "min": 30.0, "max": 70.0},
        ),
        (
            {"dist": "lognormal", "median": 50, "sigma": 0.5, "max": 400},
            Distribution("lognormal", 50.0, 0.5, 0.0, 400.0),
            {"dist": "lognormal", "median": 50.0, "sigma": 0.5, "max": 400.0},
        ),
    ],
)
def test_parse_distribution(value: Any, expected: Distribution, as_config: Any) -> None:
    dist = parse_distribution(value, "x")
    assert dist == expected
    assert dist.to_config() == as_config
    assert parse_distribution(dist.to_config(), "x") == dist


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (None, "t"),
        ([1], "t"),
        (False, "t"),
        (-1, "t"),
        ({"dist": "zipf"}, "t.dist"),
        ({"dist": "uniform", "min": 1, "max": 2, "mean": 3}, "t.mean"),
        ({"dist": "lognormal", "median": 1}, "t.sigma"),
        ({"dist": "lognormal", "median": 1, "sigma": -1}, "t.sigma"),
        ({"dist": "constant", "value": 1, "max": "big"}, "t.max"),
    ],
)
def test_parse_distribution_errors_name_the_field(value: Any, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_distribution(value, "t")
    assert info.value.key == key


# -- fault specs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("429", Fault("http", "429", status=429)),
        ("429,retry-after=2", Fault("http", "429,retry-after=2", status=429, retry_after=2.0)),
        (" 503 , retry-after = 0.5 ", Fault("http", "503 , retry-after = 0.5", status=503, retry_after=0.5)),
        ("400", Fault("http", "400", status=400)),
        ("599", Fault("http", "599", status=599)),
        ("error-after=3", Fault("error", "error-after=3", after=3)),
        ("stall-after=2", Fault("stall", "stall-after=2", after=2)),
        ("stall-after=2,for=1.5", Fault("stall", "stall-after=2,for=1.5", after=2, seconds=1.5)),
        ("truncate", Fault("truncate", "truncate")),
        ("truncate-after=4", Fault("truncate", "truncate-after=4", after=4)),
        ("fragment", Fault("fragment", "fragment")),
        ("malformed-after=0", Fault("malformed", "malformed-after=0", after=0)),
        ("disconnect-after=1", Fault("disconnect", "disconnect-after=1", after=1)),
        ("error-after=2.0", Fault("error", "error-after=2.0", after=2)),
    ],
)
def test_parse_fault_valid(spec: str, expected: Fault) -> None:
    fault = parse_fault(spec)
    assert fault == expected
    assert type(fault.after) is type(expected.after)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("", "unknown fault"),
        ("42", "status must be 400-599"),
        ("600", "status must be 400-599"),
        ("error-after", "error-after needs a count"),
        ("error-after=x", "error-after must be a number, got 'x'"),
        ("error-after=1.5", "error-after takes a whole number"),
        ("error-after=-1", "error-after must be >= 0"),
        ("stall-after=2,for", "option 'for' needs a value"),
        ("stall-after=2,for=-1", "for must be >= 0"),
        ("bogus", "unknown fault"),
        ("fragment=2", "unknown fault"),
        ("truncate=1", "unknown fault"),
        ("500,for=3", "unknown option 'for'"),
        ("error-after=3,retry-after=1", "unknown option 'retry-after'"),
        ("429=1", "a status takes no '='"),
        # Non-finite counts and digits int() does not read must fail as bad specs, not crash.
        ("error-after=inf", "error-after"),
        ("²", "unknown fault"),
    ],
)
def test_parse_fault_invalid_quotes_the_spec(spec: str, fragment: str) -> None:
    with pytest.raises(FaultSyntaxError) as info:
        parse_fault(spec)
    message = str(info.value)
    assert repr(spec) in message
    assert fragment in message


def test_parse_fault_rule_schedule_and_match() -> None:
    rule = parse_fault_rule(
        {"fault": "error-after=3", "when": {"probability": 0.5, "every": 2, "regex": "^hi", "turn": 2}}, "f"
    )
    assert rule.fault == Fault("error", "error-after=3", after=3)
    assert (rule.probability, rule.first, rule.every) == (0.5, None, 2)
    assert rule.match.regex is not None and rule.match.regex.pattern == "^hi"
    assert rule.match.turn == 2
    assert rule.to_config() == {
        "fault": "error-after=3",
        "when": {"regex": "^hi", "turn": 2, "probability": 0.5, "every": 2},
    }


def test_parse_fault_rule_accepts_an_integer_status() -> None:
    rule = parse_fault_rule({"fault": 503}, "f")
    assert rule.fault == Fault("http", "503", status=503)
    assert rule.to_config() == {"fault": "503", "when": {}}


def test_parse_fault_rule_wraps_syntax_errors_with_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        parse_fault_rule({"fault": "error-after=x"}, "faults[4]")
    assert info.value.key == "faults[4].fault"
    assert "'error-after=x'" in info.value.problem


# -- answer sources ------------------------------------------------------------------------------


def test_parse_source_kinds() -> None:
    assert parse_source({"fixed": "Hi there"}, "k") == FixedAnswer("Hi there")
    assert parse_source({"echo": True}, "k") == EchoAnswer()
    template = parse_source({"template": "You said {{ last_user }}"}, "k")
    assert isinstance(template, TemplateAnswer)
    assert template.source == "You said {{ last_user }}"
    assert parse_source({"prose": {}}, "k") == ProseAnswer()
    assert parse_source({"prose": None}, "k") == ProseAnswer()
    assert parse_source({"prose": {"multibyte": 1, "paragraph_sentences": 2, "length_tokens": 10}}, "k") == (
        ProseAnswer(Distribution.constant(10.0), 1.0, 2)
    )


@pytest.mark.parametrize(
    ("value", "key", "fragment"),
    [
        ("hello", "k", "expected exactly one of fixed, template, echo, prose"),
        ({}, "k", "expected exactly one of"),
        ({"fixed": "a", "echo": True}, "k", "expected exactly one of"),
        ({"fixed": 3}, "k.fixed", "expected a string, got 3"),
        ({"template": None}, "k.template", "expected a string, got None"),
        ({"template": "{% if %}"}, "k.template", "template syntax error"),
        ({"echo": 1}, "k.echo", "expected true"),
        ({"prose": {"multibyte": -0.1}}, "k.prose.multibyte", "expected a probability in [0, 1], got -0.1"),
        ({"prose": {"multibyte": True}}, "k.prose.multibyte", "got True"),
        ({"prose": {"length_tokens": -3}}, "k.prose.length_tokens", "must be >= 0, got -3"),
        ({"prose": {"words": 3}}, "k.prose.words", "unknown field"),
        ({"limerick": "x"}, "k.limerick", "use fixed, template, echo, prose, replay, blocks or tool_call"),
    ],
)
def test_parse_source_errors(value: Any, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_source(value, "k")
    assert info.value.key == key
    assert fragment in info.value.problem
