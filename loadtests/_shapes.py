"""Load shapes as data: how many users, or what arrival rate, at each moment of a run.

A shape file names a loop and a list of stages. A closed loop keeps N users busy (a user sends its
next request when the last one ends); an open loop starts requests on a schedule (Poisson or evenly
spaced arrivals at a target rate) whatever the target's latency, which is what real traffic does and
what exposes coordinated omission. Stage values are absolute (`users: 50`) or shares of the run's
`--users` / `--rate` / `--run-time` (`users: "20%"`), so one `spike` file serves any size of run; a
stage with `ramp: true` moves linearly from the previous stage's level. Pure: no clocks, no I/O.

    name: spike
    loop: closed
    stages:
      - {until: "40%", users: "20%"}
      - {until: "60%", users: "100%"}
      - {until: "100%", users: "20%"}
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts import Spec, find_spec_file, read_yaml

SHAPE_DIR = Path(__file__).parent / "shapes"
LOOPS = ("closed", "open")
ARRIVALS = ("poisson", "constant")


@dataclass(frozen=True, slots=True)
class Stage:
    until_s: float
    users: float
    rate: float
    ramp: bool


@dataclass(frozen=True, slots=True)
class Shape:
    """A shape resolved against the run's users, rate and run time."""

    name: str
    loop: str
    arrivals: str
    stages: tuple[Stage, ...]
    max_users: int  # open loop: the most requests in flight at once (the user pool)
    stop_at_saturation: bool
    params: dict[str, Any]

    @property
    def run_time_s(self) -> float:
        return self.stages[-1].until_s

    def stage_index(self, t: float) -> int | None:
        for i, stage in enumerate(self.stages):
            if t < stage.until_s:
                return i
        return None

    def level(self, t: float) -> tuple[float, float] | None:
        """(users, rate) at `t` seconds into the run; None once the run is over."""
        i = self.stage_index(t)
        if i is None:
            return None
        stage = self.stages[i]
        if not stage.ramp:
            return stage.users, stage.rate
        start = self.stages[i - 1].until_s if i else 0.0
        before = self.stages[i - 1] if i else Stage(0.0, 0.0, 0.0, False)
        share = (t - start) / (stage.until_s - start)
        return (
            before.users + (stage.users - before.users) * share,
            before.rate + (stage.rate - before.rate) * share,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.loop, "arrivals": self.arrivals, "params": self.params,
                "stages": [[s.until_s, s.users, s.rate, s.ramp] for s in self.stages]}  # fmt: skip


def builtin_shapes() -> list[str]:
    return sorted(p.stem for p in SHAPE_DIR.glob("*.yaml"))


def load_shape(name_or_path: str, *, users: int | None, rate: float | None, run_time_s: float | None) -> Shape:
    """A built-in shape by name or a shape file by path, resolved against the run's figures."""
    path = find_spec_file(name_or_path, SHAPE_DIR, what="shape")
    return parse_shape(read_yaml(path), str(path), users=users, rate=rate, run_time_s=run_time_s)


def parse_shape(
    data: Any, source: str, *, users: int | None = None, rate: float | None = None, run_time_s: float | None = None
) -> Shape:
    spec = Spec(data, source)
    spec.only("name", "summary", "loop", "arrivals", "users", "rate", "run_time_s", "max_users", "stages",
              "stop_at_saturation")  # fmt: skip
    loop = spec.get("loop", str)
    if loop not in LOOPS:
        raise spec.error("loop", f"expected one of {', '.join(LOOPS)}, got {loop!r}")
    arrivals = spec.get("arrivals", str, "poisson")
    if arrivals not in ARRIVALS:
        raise spec.error("arrivals", f"expected one of {', '.join(ARRIVALS)}, got {arrivals!r}")
    base_users = users if users is not None else spec.get("users", int, 10)
    base_rate = rate if rate is not None else float(spec.get("rate", (int, float), 5.0))
    base_time = run_time_s if run_time_s is not None else float(spec.get("run_time_s", (int, float), 30.0))
    for name, value in (("users", base_users), ("rate", base_rate), ("run_time_s", base_time)):
        if not value > 0:
            raise spec.error(name, f"must be positive, got {value!r}")
    raw_stages = spec.get("stages", list, [{"until": "100%", "users": "100%", "rate": "100%"}])
    if not raw_stages:
        raise spec.error("stages", "a shape needs at least one stage")
    stages: list[Stage] = []
    for i, raw in enumerate(raw_stages):
        stage = Spec(raw, source, f"stages[{i}]")
        stage.only("until", "users", "rate", "ramp")
        until = _amount(stage, "until", base_time, None)
        if until <= (stages[-1].until_s if stages else 0.0):
            raise stage.error("until", "stages must end in increasing order, after 0")
        stage_users = _amount(stage, "users", base_users, "100%" if loop == "closed" else 0)
        stage_rate = _amount(stage, "rate", base_rate, "100%" if loop == "open" else 0)
        stages.append(Stage(until, stage_users, stage_rate, stage.get("ramp", bool, False)))
    peak_rate = max(s.rate for s in stages)
    default_cap = max(base_users, math.ceil(peak_rate * 4))
    max_users = spec.get("max_users", int, default_cap if loop == "open" else max(math.ceil(s.users) for s in stages))
    params: dict[str, Any] = {"users": base_users, "run_time_s": base_time}
    if loop == "open":
        params["rate"] = base_rate
    return Shape(
        name=spec.get("name", str),
        loop=loop,
        arrivals=arrivals,
        stages=tuple(stages),
        max_users=max_users,
        stop_at_saturation=spec.get("stop_at_saturation", bool, False),
        params=params,
    )


def _amount(spec: Spec, key: str, base: float, default: Any) -> float:
    raw = spec.get(key, (int, float, str), default)
    if raw is None:
        raise spec.error(key, "required")
    if isinstance(raw, str):
        text = raw.strip()
        if not text.endswith("%"):
            raise spec.error(key, f"expected a number or a share like '50%', got {raw!r}")
        try:
            value = float(text[:-1]) / 100.0 * base
        except ValueError:
            raise spec.error(key, f"expected a number or a share like '50%', got {raw!r}") from None
    else:
        value = float(raw)
    if value < 0:
        raise spec.error(key, f"must not be negative, got {raw!r}")
    return value


def arrivals(shape: Shape, *, seed: int, share: float = 1.0, stream: int = 0) -> Iterator[float]:
    """Scheduled start times (seconds into the run) of one process's part of an open-loop run.

    Each of `1/share` processes draws its own Poisson process at `share` of the rate, from its own
    seeded generator (`stream`: the worker index); the union of independent Poisson processes is a
    Poisson process at the summed rate, so the total is the shape's rate, not the rate times the
    number of processes. Ramps use thinning: candidates at the segment's peak rate, each kept with
    probability rate(t)/peak, which is exact for a Poisson process.
    """
    rng = random.Random(f"loadtests:{seed}:{stream}")
    poisson = shape.arrivals == "poisson"
    phase = stream * share  # evenly spaced arrivals: the processes take turns instead of arriving together
    t = 0.0
    for i, stage in enumerate(shape.stages):
        before = shape.stages[i - 1].rate if i else 0.0
        peak = max(stage.rate, before if stage.ramp else 0.0) * share
        if peak <= 0:
            t = stage.until_s
            continue
        while True:
            gap = rng.expovariate(peak) if poisson else 1.0 / peak
            if not poisson and phase:
                gap, phase = gap * phase, 0.0
            candidate = t + gap
            if candidate >= stage.until_s:
                t = stage.until_s  # memoryless: restart at the boundary with the next stage's rate
                break
            t = candidate
            if stage.ramp:
                level = shape.level(t)
                if level is None or rng.random() * peak > level[1] * share:
                    continue
            yield t


SATURATED_STARTED_SHARE = 0.9  # a step is saturated when fewer than 90% of its arrivals start ...
SATURATED_FAILED_SHARE = 0.05  # ... or more than 5% of what started fails


def saturated(offered_per_s: float, rates: dict[str, float]) -> bool:
    """Whether an open-loop step's target could not keep up with its arrival rate."""
    started, failed = rates["started_per_s"], rates["failed_per_s"]
    return started < SATURATED_STARTED_SHARE * offered_per_s or failed > SATURATED_FAILED_SHARE * max(started, 1e-9)
