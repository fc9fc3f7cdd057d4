"""Seeded random distributions for delays and answer lengths.

A distribution is written in config as a plain number (a constant) or as a mapping:

    {dist: constant, value: 50}
    {dist: uniform, min: 20, max: 80}
    {dist: normal, mean: 50, std: 10}             # clipped at 0
    {dist: lognormal, median: 50, sigma: 0.5}     # right-skewed, as real ITL is

`min` and `max` clip any kind. Samples come from a caller-supplied `random.Random`, so the plan
that owns the generator fixes every draw.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from ._errors import ConfigError

_PARAMS: dict[str, tuple[str, ...]] = {
    "constant": ("value",),
    "uniform": ("min", "max"),
    "normal": ("mean", "std"),
    "lognormal": ("median", "sigma"),
}


@dataclass(frozen=True, slots=True)
class Distribution:
    """A distribution over non-negative numbers, clipped to [low, high]."""

    kind: str
    a: float = 0.0
    b: float = 0.0
    low: float = 0.0
    high: float = math.inf

    @classmethod
    def constant(cls, value: float) -> Distribution:
        return cls("constant", value, 0.0, 0.0, math.inf)

    @property
    def is_constant(self) -> bool:
        return self.kind == "constant"

    def sample(self, rng: random.Random | None) -> float:
        """One draw; a constant needs no generator (`rng` may then be None)."""
        kind = self.kind
        if kind == "constant":
            return min(max(self.a, self.low), self.high)
        assert rng is not None, f"a {kind} distribution draws from a generator"
        if kind == "uniform":
            value = rng.uniform(self.a, self.b)
        elif kind == "normal":
            value = rng.gauss(self.a, self.b)
        else:
            value = self.a * math.exp(self.b * rng.gauss(0.0, 1.0))
        return min(max(value, self.low), self.high)

    def to_config(self) -> Any:
        if self.kind == "constant" and self.low == 0.0 and self.high == math.inf:
            return self.a
        names = _PARAMS[self.kind]
        out: dict[str, Any] = {"dist": self.kind, names[0]: self.a}
        if len(names) > 1:
            out[names[1]] = self.b
        if self.kind != "uniform":
            if self.low != 0.0:
                out["min"] = self.low
            if self.high != math.inf:
                out["max"] = self.high
        return out


def parse_distribution(value: Any, key: str) -> Distribution:
    """Read a distribution from config, raising `ConfigError` that names `key` on any fault."""
    if isinstance(value, bool):
        raise ConfigError(key, f"expected a number or a distribution mapping, got {value!r}")
    if isinstance(value, int | float):
        return Distribution.constant(_non_negative(value, key))
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a number or a distribution mapping, got {value!r}")
    kind = value.get("dist")
    if not isinstance(kind, str) or kind not in _PARAMS:
        raise ConfigError(f"{key}.dist", f"must be one of {sorted(_PARAMS)}, got {kind!r}")
    allowed = {"dist", "min", "max", *_PARAMS[kind]}
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", f"unknown field for dist {kind!r}")
    for name in _PARAMS[kind]:
        if name not in value:
            raise ConfigError(f"{key}.{name}", f"required for dist {kind!r}")
    params = [_non_negative(value[name], f"{key}.{name}") for name in _PARAMS[kind]]
    low = _non_negative(value.get("min", 0.0), f"{key}.min")
    high = _non_negative(value.get("max", math.inf), f"{key}.max")
    if kind == "uniform":
        low, high = params[0], params[1]
        if high < low:
            raise ConfigError(f"{key}.max", f"must be >= min ({low}), got {high}")
    if high < low:
        raise ConfigError(f"{key}.max", f"must be >= min ({low}), got {high}")
    if kind == "lognormal" and params[0] <= 0:
        raise ConfigError(f"{key}.median", "must be > 0")
    return Distribution(kind, params[0], params[1] if len(params) > 1 else 0.0, low, high)


def _non_negative(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"expected a number, got {value!r}")
    if value < 0 or math.isnan(value):
        raise ConfigError(key, f"must be >= 0, got {value!r}")
    return float(value)
