"""The mock's configuration: one immutable value, read from YAML, CLI flags or the admin API.

Every layer is a mapping merged over the one below (defaults < file < CLI < admin API), and the
result is parsed whole before it replaces the config in force: a bad value is refused with a
`ConfigError` naming its key, and nothing is half-applied.

    seed: 0
    models: [mock-gpt]               # listed by GET /v1/models; any name is accepted
    timing:
      ttft_ms: 200                   # a number or a distribution (see _distributions)
      itl_ms: 20                     # the gap between successive content chunks
      prefill_ms_per_token: 0        # added to TTFT per prompt token
      tokens_per_chunk: 1
      load: {max_streams: 256, ttft_factor: 1.0, itl_factor: 1.0}   # slow-down under load
    answers:
      default: {prose: {length_tokens: {dist: lognormal, median: 60, sigma: 0.5}}}
      rules:
        - match: {contains: "hello"}
          answer: {fixed: "Hello! How can I help?"}
    faults:
      - fault: "429"
        when: {every: 10}
    journal: {max_entries: 10000}
    contract: sessions               # also serve a contract profile's API as its agent (a name or a
                                     # profile file): the upstream of a proxy (see _contract_service)
    limits:                          # what a client may send and how long it may take (see _limits)
      max_header_bytes: 65536        # request line + header fields: over it, 431 and close
      max_headers: 100               # header fields of one request: over it, 431 and close
      max_body_bytes: 16777216       # over it, 413 in the route's own error shape
      max_json_depth: 128            # deeper JSON bodies: 400 in the route's own error shape
      header_timeout_s: 10           # a request's head not whole this long after its first byte: 408, close
      idle_timeout_s: 60             # a connection with no request in flight: closed after this
      max_connections: 10000         # one more connection is answered 503 at once and closed
    reasoning: {low: 24, medium: 48, high: 96}   # reasoning tokens a request asking for it gets, by
                                     # effort (also minimal, default); streamed or hidden, always timed
    strict: true                     # check requests as the provider does: refuse what it refuses
    recordings:                      # answer from `mockllm record` files (see _recording)
      dir: recordings                # every recording in this directory, found by its request's key
      missing: plan                  # none matches: plan an answer as usual (`error`: the dialect's 404)

The limits apply to connections at once when the admin API changes them (a new `max_connections`
closes no connection already open); `to_dict` shows them when any differs from its default.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts import SpecError, read_yaml

from ._agent_answers import DEFAULT_REASONING_TOKENS, parse_reasoning_tokens
from ._answers import AnswerRule, AnswerSource, ProseAnswer, parse_answer_rule, parse_source
from ._contract import load_contract
from ._distributions import Distribution, parse_distribution
from ._errors import ConfigError, ContractError
from ._faults import FaultRule, parse_fault_rule
from ._limits import Limits, parse_limits
from ._recording import Recordings, load_recordings

_SECTIONS = (
    "seed",
    "models",
    "timing",
    "answers",
    "faults",
    "journal",
    "contract",
    "limits",
    "reasoning",
    "strict",
    "recordings",
)
MAX_JOURNAL_ENTRIES = 10_000_000


@dataclass(frozen=True, slots=True)
class LoadSlowdown:
    """Latency grows linearly with active streams, reaching the factors at `max_streams`."""

    max_streams: int = 256
    ttft_factor: float = 1.0
    itl_factor: float = 1.0

    def factors(self, active_streams: int) -> tuple[float, float]:
        share = min(active_streams, self.max_streams) / self.max_streams
        return 1.0 + (self.ttft_factor - 1.0) * share, 1.0 + (self.itl_factor - 1.0) * share


@dataclass(frozen=True, slots=True)
class Timing:
    ttft_ms: Distribution = field(default_factory=lambda: Distribution.constant(200.0))
    itl_ms: Distribution = field(default_factory=lambda: Distribution.constant(20.0))
    prefill_ms_per_token: float = 0.0
    tokens_per_chunk: int = 1
    load: LoadSlowdown | None = None


@dataclass(frozen=True, slots=True)
class MockConfig:
    seed: int = 0
    models: tuple[str, ...] = ("mock-gpt", "gpt-4o-mini", "gpt-4o")
    timing: Timing = field(default_factory=Timing)
    default_answer: AnswerSource = field(default_factory=ProseAnswer)
    answer_rules: tuple[AnswerRule, ...] = ()
    fault_rules: tuple[FaultRule, ...] = ()
    journal_max_entries: int = 10_000
    contract: str | None = None  # the contract profile served, as the config names it
    contract_spec: Any = field(default=None, compare=False, repr=False)  # it compiled (a ContractSpec)
    limits: Limits = field(default_factory=Limits)
    # Tokens of reasoning a request that asks for it gets, by effort (`_agent_answers`).
    reasoning_tokens: Mapping[str, int] = field(default_factory=lambda: DEFAULT_REASONING_TOKENS)
    # Requests checked as the provider checks them (each dialect's `check`); false accepts what it would refuse.
    strict: bool = True
    recordings: Recordings | None = None  # answers recorded by `mockllm record`, found by request key

    def to_dict(self) -> dict[str, Any]:
        """The config as the mapping that parses back to it (what GET /_mock/config returns)."""
        timing = self.timing
        out_timing: dict[str, Any] = {
            "ttft_ms": timing.ttft_ms.to_config(),
            "itl_ms": timing.itl_ms.to_config(),
            "prefill_ms_per_token": timing.prefill_ms_per_token,
            "tokens_per_chunk": timing.tokens_per_chunk,
            "load": None
            if timing.load is None
            else {
                "max_streams": timing.load.max_streams,
                "ttft_factor": timing.load.ttft_factor,
                "itl_factor": timing.load.itl_factor,
            },
        }
        out = {
            "seed": self.seed,
            "models": list(self.models),
            "timing": out_timing,
            "answers": {
                "default": self.default_answer.to_config(),
                "rules": [rule.to_config() for rule in self.answer_rules],
            },
            "faults": [rule.to_config() for rule in self.fault_rules],
            "journal": {"max_entries": self.journal_max_entries},
        }
        if self.contract is not None:
            out["contract"] = self.contract
        out["limits"] = self.limits.to_config()  # always: a client asking the mock its config sees its limits
        out["reasoning"] = dict(self.reasoning_tokens)
        out["strict"] = self.strict
        if self.recordings is not None:
            out["recordings"] = self.recordings.to_config()
        return out


def parse_config(raw: Any) -> MockConfig:
    """Build a config from a mapping; every missing key takes its default."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("<root>", f"expected a mapping, got {type(raw).__name__}")
    _reject_unknown(raw, _SECTIONS, "")
    default = MockConfig()
    seed = raw.get("seed", default.seed)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError("seed", f"expected a whole number, got {seed!r}")
    models = raw.get("models", list(default.models))
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise ConfigError("models", "expected a list of model names")
    answers = _mapping(raw.get("answers"), "answers")
    _reject_unknown(answers, ("default", "rules"), "answers.")
    rules = answers.get("rules") or []
    if not isinstance(rules, list):
        raise ConfigError("answers.rules", "expected a list")
    faults = raw.get("faults") or []
    if not isinstance(faults, list):
        raise ConfigError("faults", "expected a list of {fault, when}")
    journal = _mapping(raw.get("journal"), "journal")
    _reject_unknown(journal, ("max_entries",), "journal.")
    max_entries = journal.get("max_entries", default.journal_max_entries)
    _whole(max_entries, "journal.max_entries", 1, MAX_JOURNAL_ENTRIES)
    contract = raw.get("contract")
    if contract is not None and (not isinstance(contract, str) or not contract):
        raise ConfigError("contract", f"expected a contract profile's name or file, got {contract!r}")
    strict = raw.get("strict", True)
    if not isinstance(strict, bool):
        raise ConfigError("strict", f"expected true or false, got {strict!r}")
    return MockConfig(
        seed=seed,
        models=tuple(models),
        timing=_parse_timing(_mapping(raw.get("timing"), "timing")),
        default_answer=parse_source(answers["default"], "answers.default")
        if "default" in answers
        else default.default_answer,
        answer_rules=tuple(parse_answer_rule(rule, f"answers.rules[{i}]") for i, rule in enumerate(rules)),
        fault_rules=tuple(parse_fault_rule(rule, f"faults[{i}]") for i, rule in enumerate(faults)),
        journal_max_entries=max_entries,
        contract=contract,
        contract_spec=_contract_spec(contract),
        limits=parse_limits(raw.get("limits")),
        reasoning_tokens=parse_reasoning_tokens(raw.get("reasoning"), "reasoning"),
        strict=strict,
        recordings=_parse_recordings(raw.get("recordings")),
    )


def _parse_recordings(raw: Any) -> Recordings | None:
    """The `recordings` section, its directory read now: a bad file is refused with the config."""
    if raw is None:
        return None
    spec = _mapping(raw, "recordings")
    _reject_unknown(spec, ("dir", "missing"), "recordings.")
    directory = spec.get("dir")
    if not isinstance(directory, str) or not directory:
        raise ConfigError("recordings.dir", f"expected the directory `mockllm record --out` wrote, got {directory!r}")
    missing = spec.get("missing", "plan")
    if missing not in ("plan", "error"):
        raise ConfigError("recordings.missing", f"expected plan or error, got {missing!r}")
    return load_recordings(directory, missing)


def _contract_spec(name: str | None) -> Any:
    """The contract profile compiled for serving; a ConfigError says why it cannot be served."""
    if name is None:
        return None
    try:
        return load_contract(name)
    except (ContractError, SpecError) as err:
        raise ConfigError("contract", str(err)) from None


def _parse_timing(raw: dict[str, Any]) -> Timing:
    _reject_unknown(raw, ("ttft_ms", "itl_ms", "prefill_ms_per_token", "tokens_per_chunk", "load"), "timing.")
    default = Timing()
    prefill = raw.get("prefill_ms_per_token", 0.0)
    if isinstance(prefill, bool) or not isinstance(prefill, int | float) or prefill < 0:
        raise ConfigError("timing.prefill_ms_per_token", f"expected a number >= 0, got {prefill!r}")
    per_chunk = raw.get("tokens_per_chunk", 1)
    _whole(per_chunk, "timing.tokens_per_chunk", 1)
    load = None
    if raw.get("load") is not None:
        spec = _mapping(raw["load"], "timing.load")
        _reject_unknown(spec, ("max_streams", "ttft_factor", "itl_factor"), "timing.load.")
        max_streams = spec.get("max_streams", 256)
        _whole(max_streams, "timing.load.max_streams", 1)
        factors = {}
        for name in ("ttft_factor", "itl_factor"):
            value = spec.get(name, 1.0)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
                raise ConfigError(f"timing.load.{name}", f"expected a number > 0, got {value!r}")
            factors[name] = float(value)
        load = LoadSlowdown(max_streams, **factors)
    return Timing(
        ttft_ms=parse_distribution(raw["ttft_ms"], "timing.ttft_ms") if "ttft_ms" in raw else default.ttft_ms,
        itl_ms=parse_distribution(raw["itl_ms"], "timing.itl_ms") if "itl_ms" in raw else default.itl_ms,
        prefill_ms_per_token=float(prefill),
        tokens_per_chunk=per_chunk,
        load=load,
    )


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a mapping, got {value!r}")
    return value


def _reject_unknown(raw: dict[str, Any], known: tuple[str, ...], prefix: str) -> None:
    unknown = sorted(str(k) for k in set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}", f"unknown key; expected one of {', '.join(known)}")


def _whole(value: Any, key: str, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(key, f"expected a whole number >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(key, f"expected a whole number <= {maximum}, got {value!r}")


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `patch` over `base` (mappings merge, anything else replaces); inputs untouched."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a mapping; errors name the file."""
    try:
        raw = read_yaml(Path(path))
    except SpecError as err:  # it names the file: "cannot read: ...", "not valid YAML: ..."
        raise ConfigError("<file>", str(err)) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError("<root>", f"{path}: expected a mapping at the top level")
    return raw
