"""The catalogue of checks (contracts/checks.yaml): every id a scenario may name, its default
level, the one-line rule it enforces, as reports show it, and the sentences of contracts.md that
make it a rule (`cites`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._spec import Spec, SpecError, read_yaml

LEVELS = ("MUST", "SHOULD")
CATALOG_FILE = Path(__file__).parent / "checks.yaml"


@dataclass(frozen=True)
class Citation:
    """A sentence (or self-contained clause) of contracts.md, verbatim, and the section it stands in."""

    section: str
    text: str


@dataclass(frozen=True)
class CheckInfo:
    id: str
    level: str
    summary: str
    # The contracts.md sentences the check enforces: one, or one per profile section where the
    # rule is stated profile by profile (a stream grammar). Empty when none is cited.
    cites: tuple[Citation, ...] = ()


def _citation(spec: Spec) -> Citation:
    spec.only("section", "text")
    section, text = spec.get("section", str), spec.get("text", str)
    for key, value in (("section", section), ("text", text)):
        if not value.strip():
            raise spec.error(key, "must not be empty")
    return Citation(section, " ".join(text.split()))


def _cites(spec: Spec) -> tuple[Citation, ...]:
    raw = spec.get("cites", (dict, list), [])
    if isinstance(raw, dict):
        return (_citation(spec.sub("cites")),)
    out = []
    for i, item in enumerate(raw):
        out.append(_citation(Spec(item, spec.source, f"{spec.path}.cites[{i}]")))
    if not out and spec.data.get("cites") is not None:
        raise spec.error("cites", "an empty list; leave `cites` out instead")
    return tuple(out)


def parse_catalog(raw: Any, source: str) -> dict[str, CheckInfo]:
    """The catalogue from its YAML mapping; SpecError (naming the check id) on any unknown or wrong field."""
    if not isinstance(raw, dict):
        raise SpecError(source, "", "expected a mapping of check ids")
    catalog: dict[str, CheckInfo] = {}
    for name, entry in raw.items():
        spec = Spec(entry, source, str(name))
        spec.only("level", "summary", "cites")
        level = spec.get("level", str)
        if level not in LEVELS:
            raise spec.error("level", f"expected one of {', '.join(LEVELS)}, got {level!r}")
        catalog[str(name)] = CheckInfo(str(name), level, spec.get("summary", str), _cites(spec))
    return catalog


CATALOG: dict[str, CheckInfo] = parse_catalog(read_yaml(CATALOG_FILE), str(CATALOG_FILE))
