"""The single-file HTML report of a saturation sweep: the `load-sweep` JSON document in, one offline page out.

A sweep steps the concurrent streams up (`python -m loadtests sweep`) and finds two points: where the
load client saturated and where the target did. The page leads with those two findings, then a row
per step (streams, events/s, client CPU and loop lag, TTFT and ITL percentiles, headroom), the step
where each side saturated marked, and the criteria the judgement used. The view is built from the
plain dict by pure functions; the template only lays it out (every string autoescaped).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import markupsafe

from ._page import fmt, fmt_rate, number, render_chart_page, write_atomic
from .load import json_script

KIND = "load-sweep"
VERSION = 1


class SweepError(ValueError):
    """The document is not a sweep result this reader understands; the message says why."""


@dataclass(slots=True, frozen=True)
class FindingView:
    side: str
    reached: bool
    text: str


@dataclass(slots=True, frozen=True)
class StepRow:
    streams: str
    events_per_s: str
    per_stream: str
    cpu_mean: str
    cpu_max: str
    lag_p90: str
    ttft: str  # "p50 / p99"
    itl: str
    failed: str
    headroom: str
    marks: tuple[str, ...]  # "client", "target": the side that saturated at this step
    notes: str


@dataclass(slots=True)
class SweepView:
    run_id: str
    target: str
    profile: str
    facts: list[tuple[str, str]]
    client: FindingView
    target_finding: FindingView
    verdict: str
    steps: list[StepRow]
    criteria: list[tuple[str, str]]
    chart: dict[str, Any]

    @property
    def chart_json(self) -> markupsafe.Markup:
        return json_script(self.chart)


def problems(doc: Any) -> list[str]:
    """What makes `doc` unreadable as a sweep result (empty: it can be rendered)."""
    if not isinstance(doc, Mapping):
        return [f"a sweep result is a JSON object, not {type(doc).__name__}"]
    if doc.get("kind") != KIND:
        return [f"'kind' is {doc.get('kind')!r}, not {KIND!r}"]
    found = []
    if doc.get("version") != VERSION:
        found.append(f"'version' is {doc.get('version')!r}; this reader knows version {VERSION}")
    for name, kind in (("run", Mapping), ("findings", Mapping), ("steps", list)):
        if not isinstance(doc.get(name), kind):
            found.append(f"'{name}' is missing or of the wrong type")
    return found


def _section(doc: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = doc.get(name)
    return value if isinstance(value, Mapping) else {}


def _percent(value: Any) -> str:
    return "—" if number(value) is None else f"{fmt_rate(value)}%"


def build_view(doc: Mapping[str, Any]) -> SweepView:
    """The report's content from a sweep document (nothing read or written); SweepError if unreadable."""
    found = problems(doc)
    if found:
        raise SweepError("; ".join(found))
    run, findings = _section(doc, "run"), _section(doc, "findings")
    client, target = _section(findings, "client"), _section(findings, "target")
    marks: dict[int, list[str]] = {}
    for side, finding in (("client", client), ("target", target)):
        if finding.get("reached") and isinstance(finding.get("step"), int):
            marks.setdefault(finding["step"], []).append(side)
    rows = []
    for i, step in enumerate(doc["steps"]):
        if not isinstance(step, Mapping):
            continue
        headroom = number(step.get("headroom"))
        notes = [f"client: {r}" for r in step.get("client_reasons") or ()]
        notes += [f"target: {r}" for r in step.get("target_reasons") or ()]
        rows.append(
            StepRow(
                streams=fmt(step.get("streams"), ""),
                events_per_s=fmt_rate(step.get("events_per_s")),
                per_stream=fmt_rate(step.get("events_per_stream_s")),
                cpu_mean=_percent(step.get("cpu_mean")),
                cpu_max=_percent(step.get("cpu_max")),
                lag_p90=fmt(step.get("loop_lag_p90_ms")),
                ttft=f"{fmt(step.get('ttft_p50_ms'))} / {fmt(step.get('ttft_p99_ms'))}",
                itl=f"{fmt(step.get('itl_p50_ms'))} / {fmt(step.get('itl_p99_ms'))}",
                failed=fmt(step.get("failed"), ""),
                headroom="—" if headroom is None else f"{100 * headroom:.0f}%",
                marks=tuple(marks.get(i, ())),
                notes="; ".join(str(n) for n in notes),
            )
        )
    planned = run.get("planned_streams") or []
    facts = [
        ("target", str(run.get("target", ""))),
        ("profile", str(run.get("profile", ""))),
        ("started", str(run.get("started_at", ""))),
        ("steps", f"{len(rows)} of {len(planned)} planned, {fmt_rate(run.get('step_s'))} s each"),
        ("workers", str(run.get("workers", ""))),
        ("seed", str(run.get("seed", ""))),
        ("mock", str(run.get("mock") or "—")),
        ("tool", str(run.get("tool", ""))),
    ]
    chart = _chart([step for step in doc["steps"] if isinstance(step, Mapping)])
    criteria = [(str(k), fmt_rate(v) if number(v) is not None else str(v))
                for k, v in _section(doc, "criteria").items()]  # fmt: skip
    return SweepView(
        run_id=str(run.get("id", "")),
        target=str(run.get("target", "")),
        profile=str(run.get("profile", "")),
        facts=[(label, value) for label, value in facts if value],
        client=FindingView("client", client.get("reached") is True, str(client.get("text", ""))),
        target_finding=FindingView("target", target.get("reached") is True, str(target.get("text", ""))),
        verdict=str(findings.get("verdict", "")),
        steps=rows,
        criteria=criteria,
        chart=chart,
    )


def _chart(steps: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Events/s (left axis) and the p99 latencies (right axis) against the streams, as uPlot columns."""
    clean = sorted((s for s in steps if number(s.get("streams")) is not None), key=lambda s: number(s["streams"]))
    columns = [[number(s["streams"]) for s in clean]]
    for key in ("events_per_s", "itl_p99_ms", "ttft_p99_ms"):
        columns.append([number(s.get(key)) for s in clean])
    return {
        "kind": "lines",
        "x": "streams",
        "xlabel": "streams",
        "xaxis": "concurrent streams",
        "axes": [{"scale": "ev", "label": "events/s"}, {"scale": "ms", "label": "ms", "side": 1}],
        "series": [
            {"label": "events/s", "scale": "ev", "color": "#1f4fbf"},
            {"label": "ITL p99 ms", "scale": "ms", "color": "#6941c6"},
            {"label": "TTFT p99 ms", "scale": "ms", "color": "#b26b00"},
        ],
        "data": columns,
    }


def render_sweep(doc: Mapping[str, Any]) -> str:
    """The HTML page of a sweep; pure."""
    return render_chart_page("sweep.html.j2", sweep=build_view(doc))


def write_sweep(doc: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Render the sweep and write it to `path` atomically."""
    return write_atomic(path, render_sweep(doc))
