"""The catalogue of checks (scenarios/checks.yaml): every id a scenario may name, its default
level and the one-line rule it enforces, as reports show it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class CheckInfo:
    id: str
    level: str
    summary: str


def _load() -> dict[str, CheckInfo]:
    raw = yaml.safe_load((Path(__file__).parent / "checks.yaml").read_text(encoding="utf-8"))
    return {name: CheckInfo(name, entry["level"], entry["summary"]) for name, entry in raw.items()}


CATALOG: dict[str, CheckInfo] = _load()
