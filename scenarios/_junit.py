"""JUnit XML of a run: one testsuite per run, one testcase per scenario, one failure per failed check."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from ._results import RunResult


def junit_xml(run: RunResult) -> bytes:
    suite = ET.Element(
        "testsuite",
        name=f"conformance:{run.profile}",
        tests=str(len(run.scenarios)),
        failures=str(sum(s.verdict == "failed" for s in run.scenarios)),
        errors=str(sum(s.verdict == "error" for s in run.scenarios)),
        skipped=str(sum(s.verdict in ("not_applicable", "not_checked") for s in run.scenarios)),
        time=f"{run.duration_s:.3f}",
        timestamp=run.started,
    )
    ET.SubElement(ET.SubElement(suite, "properties"), "property", name="target", value=run.target)
    for scenario in run.scenarios:
        case = ET.SubElement(
            suite, "testcase", classname=f"{run.profile}", name=scenario.name, time=f"{scenario.duration_ms / 1000:.3f}"
        )
        if scenario.verdict in ("not_applicable", "not_checked"):
            ET.SubElement(case, "skipped", message=scenario.reason)
        elif scenario.verdict == "error":
            ET.SubElement(case, "error", message=scenario.reason)
        for check in scenario.checks:
            if check.verdict == "failed" and check.level == "MUST":
                where = f"step {check.step}" + (f", event {check.event}" if check.event is not None else "")
                failure = ET.SubElement(case, "failure", message=f"{check.check}: {check.message}", type=check.check)
                failure.text = f"[{check.level}] {check.check} ({where}): {check.message}"
        warnings = [c for c in scenario.checks if c.verdict == "failed" and c.level == "SHOULD"]
        if warnings:
            ET.SubElement(case, "system-out").text = "\n".join(f"[SHOULD] {c.check}: {c.message}" for c in warnings)
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)
