"""The catalogue of checks (contracts/checks.yaml): every id a scenario may name, its default
level and the one-line rule it enforces, as reports show it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ._spec import read_yaml


@dataclass(frozen=True)
class CheckInfo:
    id: str
    level: str
    summary: str


def _load() -> dict[str, CheckInfo]:
    raw = read_yaml(Path(__file__).parent / "checks.yaml")
    return {name: CheckInfo(name, entry["level"], entry["summary"]) for name, entry in raw.items()}


CATALOG: dict[str, CheckInfo] = _load()
