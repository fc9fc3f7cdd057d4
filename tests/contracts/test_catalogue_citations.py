"""Every MUST check cites the sentence of contracts.md it enforces, and every citation is really there.

A citation (`cites:` in contracts/checks.yaml) quotes contracts.md verbatim, with runs of whitespace
folded to one space (the page wraps its lines), under the heading of the section it names. A SHOULD
may cite too. The MUSTs that no sentence supports wait, listed below, for a maintainer's decision.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from contracts import CATALOG, Citation, SpecError, contract_profiles, load_profile
from contracts._catalog import parse_catalog

CONTRACTS_MD = Path(__file__).resolve().parents[2].parent / "shared" / "contracts.md"


CITATIONS = [
    pytest.param(info.id, citation, id=f"{info.id}-{n}")
    for info in CATALOG.values()
    for n, citation in enumerate(info.cites)
]


def fold(text: str) -> str:
    return " ".join(text.split())


def sections(markdown: str) -> dict[str, str]:
    """Heading -> the section's text, whitespace-folded. A heading is a `#` line, or a paragraph of
    one unindented line that ends in a colon (`Common to all five:`); its colon is not part of it."""
    lines = markdown.splitlines()
    found: dict[str, list[str]] = {}
    current: list[str] = found.setdefault("", [])
    for i, line in enumerate(lines):
        heading = re.fullmatch(r"#{1,6}\s+(.+?)\s*#*\s*", line)
        lone = (
            re.fullmatch(r"[^\s#|>*-].*:", line)
            and (i == 0 or not lines[i - 1].strip())
            and (i + 1 == len(lines) or not lines[i + 1].strip())
        )
        if heading or lone:
            name = heading.group(1) if heading else line.rstrip(":")
            current = found.setdefault(name.strip(), [])
        else:
            current.append(line)
    return {name: fold("\n".join(body)) for name, body in found.items()}


@pytest.fixture(scope="module")
def contract_sections() -> dict[str, str]:
    if not CONTRACTS_MD.is_file():
        pytest.skip(f"{CONTRACTS_MD} is not there (the shared contracts live beside the repository); CI has it")
    return sections(CONTRACTS_MD.read_text(encoding="utf-8"))


def test_every_must_check_cites_the_contract() -> None:
    uncited = sorted(info.id for info in CATALOG.values() if info.level == "MUST" and not info.cites)
    assert uncited == [], "a MUST check cites no sentence of contracts.md: cite one, or make it a SHOULD"


@pytest.mark.parametrize("name", contract_profiles())
def test_a_check_a_profile_raises_to_must_cites_the_contract(name: str) -> None:
    raised = [check for check, level in load_profile(name).levels.items() if level == "MUST"]
    assert [check for check in raised if not CATALOG[check].cites] == []


@pytest.mark.parametrize(("check", "citation"), CITATIONS)
def test_the_cited_sentence_stands_in_the_named_section(
    check: str, citation: Citation, contract_sections: dict[str, str]
) -> None:
    assert citation.section in contract_sections, (
        f"{check}: contracts.md has no section {citation.section!r}; it has {sorted(contract_sections)}"
    )
    assert fold(citation.text) in contract_sections[citation.section], (
        f"{check}: {citation.text!r} is not (verbatim, whitespace folded) in section {citation.section!r}"
    )


def test_the_section_reader_finds_the_common_rules_and_the_five_profiles(contract_sections: dict[str, str]) -> None:
    assert "Common to all five" in contract_sections
    assert "Every stream ends with exactly one **terminal** event" in contract_sections["Common to all five"]
    numbered = [name for name in contract_sections if re.match(r"[1-5]\. `", name)]
    assert len(numbered) == 5, numbered


def test_a_citation_spanning_a_line_break_is_found() -> None:
    found = sections("# Top\n\nLead:\n\n- one rule that\n  wraps here.\n\n## Next\n\nother\n")
    assert found["Lead"] == "- one rule that wraps here."
    assert "rule that wraps" not in found["Next"]


# -- the loader ---------------------------------------------------------------------------------------


def test_a_citation_is_parsed_whitespace_folded() -> None:
    one = {"level": "MUST", "summary": "s", "cites": {"section": "Common", "text": "two\n  lines"}}
    many = {"level": "MUST", "summary": "s", "cites": [{"section": "A", "text": "a"}, {"section": "B", "text": "b"}]}
    catalog = parse_catalog({"x.one": one, "x.many": many, "x.none": {"level": "SHOULD", "summary": "s"}}, "c.yaml")
    assert catalog["x.one"].cites == (Citation("Common", "two lines"),)
    assert [c.section for c in catalog["x.many"].cites] == ["A", "B"]
    assert catalog["x.none"].cites == ()


@pytest.mark.parametrize(
    ("entry", "complaint"),
    [
        ({"level": "MUST", "summary": "s", "cite": {}}, r"x\.y\.cite: unknown field"),
        ({"level": "MUST", "summary": "s", "cites": {"section": "A", "text": "a", "page": 3}}, r"x\.y\.cites\.page"),
        ({"level": "MUST", "summary": "s", "cites": [{"section": "A"}]}, r"x\.y\.cites\[0\]\.text: required"),
        ({"level": "MUST", "summary": "s", "cites": [{"section": "A", "text": " "}]}, r"x\.y\.cites\[0\]\.text"),
        ({"level": "MUST", "summary": "s", "cites": []}, r"x\.y\.cites: an empty list"),
        ({"level": "MUST", "summary": "s", "cites": "A"}, r"x\.y\.cites: expected"),
        ({"level": "MAY", "summary": "s"}, r"x\.y\.level: expected one of MUST, SHOULD"),
        ({"level": "MUST"}, r"x\.y\.summary: required"),
    ],
)
def test_the_loader_refuses_a_wrong_entry_naming_the_check(entry: dict[str, object], complaint: str) -> None:
    with pytest.raises(SpecError, match=complaint):
        parse_catalog({"x.y": entry}, "checks.yaml")
