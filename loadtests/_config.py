"""A load run's settings and its result document, independent of Locust.

The same settings come from the `python -m loadtests run` flags or from Locust's own command line
(`locust -f loadtests/locustfile.py --lt-profile ...`): this module turns them into a profile, a
shape and SLOs, and builds the JSON result document the reports read: the figures, whether the
client kept up (`validity`) and how much more it could have read (`capacity`, see `_stats.capacity`).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from contracts import Profile, SpecError, contract_profiles, load_profile, profile_file
from mockllm.dialects import DIALECTS
from reports import write_atomic

from ._shapes import Shape, load_shape, saturated
from ._stats import LoadStats, Slo

VERSION = "0.1"


class UsageError(ValueError):
    """A load run cannot start: a bad flag, a target that is not on loopback (exit status 2)."""


def builtin_profiles() -> dict[str, Path]:
    """What `--profile` takes by name: the contract profiles, then each mock dialect's load profile."""
    found = {name: path for name in contract_profiles() if (path := profile_file(name)) is not None}
    found.update({d.load_profile.stem: d.load_profile for d in DIALECTS if d.load_profile is not None})
    return found


def resolve_profile(name_or_path: str) -> Profile:
    """A contract profile or a mock dialect by name, or a profile file by path."""
    path = builtin_profiles().get(name_or_path)
    if path is None and not Path(name_or_path).is_file():
        known = ", ".join(builtin_profiles())
        raise SpecError(name_or_path, "", f"no such profile file, and not a built-in profile ({known})")
    return load_profile(str(path or name_or_path))


@dataclass
class LoadSettings:
    """Everything a load run needs besides the target URL."""

    profile: str = "openai-chat"
    shape: str = "closed"
    users: int | None = None
    rate: float | None = None
    run_time_s: float | None = None
    seed: int = 1
    mock: str | None = None
    turns: int = 1  # turns per conversation
    think_s: float = 0.0  # between a conversation's turns
    max_tokens: int = 64  # asked of a mock dialect
    check_every: int = 10  # compare every Nth stream's text with the mock's journal (0: never)
    jwt_secret: str | None = None
    variables: dict[str, str] = field(default_factory=dict)  # model, project ... for the profile's templates
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None
    slo_e2e_ms: float | None = None
    drop_after_s: float = 5.0  # open loop: an arrival no user could take within this is dropped
    stream_timeout_s: float = 120.0
    json_path: str | None = None
    html_path: str | None = None
    parts_dir: str | None = None  # each process writes the figures it shipped (for the merge check)
    trace_dir: str | None = None  # each process writes every stream's marker, TTFT and gaps (the self-test)

    def load_shape(self) -> Shape:
        return load_shape(self.shape, users=self.users, rate=self.rate, run_time_s=self.run_time_s)

    def load_profile(self) -> Profile:
        return resolve_profile(self.profile)

    @property
    def slo(self) -> Slo:
        return Slo(self.slo_ttft_ms, self.slo_tpot_ms, self.slo_e2e_ms)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LoadSettings:
        return cls(**json.loads(text))


def run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def build_result(
    stats: LoadStats,
    settings: LoadSettings,
    *,
    target: str,
    shape: Shape,
    started_at: float,
    window_s: float,
    workers: int,
    tool: str,
    identifier: str | None = None,
) -> dict[str, Any]:
    """The load-run result document (see reports/load.py for how it is shown)."""
    figures = stats.figures(window_s)
    stages = []
    if shape.loop == "open" and len(shape.stages) > 1:
        begin = 0.0
        for stage in shape.stages:
            end = min(stage.until_s, window_s)
            if end <= begin:
                break
            rates = stats.stage_rates(started_at, begin, end)
            stages.append({"from_s": begin, "until_s": end, "offered_per_s": stage.rate, **rates,
                           "saturated": saturated(stage.rate, rates)})  # fmt: skip
            begin = stage.until_s
    return {
        "kind": "load-run",
        "version": 1,
        "run": {
            "id": identifier or run_id(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)),
            "duration_s": round(window_s, 3),
            "target": target,
            "profile": settings.profile,
            "shape": shape.to_dict(),
            "workers": workers,
            "seed": settings.seed,
            "mock": settings.mock,
            "turns": settings.turns,
            "tool": tool,
            "slo": settings.slo.to_dict(),
            "stages": stages,
            "saturation_rate": next((s["offered_per_s"] for s in stages if s["saturated"]), None),
        },
        "validity": stats.validity(),
        "capacity": stats.capacity(window_s),
        **figures,
    }


def write_json(document: Any, path: str | os.PathLike[str]) -> Path:
    """Write atomically (the reports' writer): a reader never sees half a file, a failed write keeps the old one."""
    return write_atomic(Path(path), json.dumps(document, indent=1))
