"""Two load runs side by side: what got worse, by how much.

`compare_runs` is pure: each percentile of each metric and each of the totals' rates, as base, new,
delta, relative change, and whether it got worse. Higher latency, error rate or schedule lag is worse;
lower throughput or goodput is worse; output tokens have no better side. A figure that got worse by at
least the threshold (relative; any rise from zero) is a regression. The page lists the worst first.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._page import fmt, fmt_share, number, template, write_atomic
from .load import STATS, LoadRunError, error_rate, is_valid, metric_info, metric_keys, problems

THRESHOLD = 0.05
LOWER, HIGHER = "lower", "higher"
# Metrics with no better side: a change is shown, never judged.
NEUTRAL_METRICS = frozenset({"output_tokens"})


# (key, label, unit, better side, value from the totals)
RATE_FIGURES = (
    ("request_rate", "request rate", "req/s", HIGHER, lambda t: number(t.get("request_rate"))),
    ("token_rate", "token rate", "tok/s", HIGHER, lambda t: number(t.get("token_rate"))),
    ("goodput", "goodput", "req/s", HIGHER, lambda t: number(t.get("goodput"))),
    ("error_rate", "error rate", "%", LOWER, error_rate),
)


def _summary(doc: Mapping[str, Any]) -> dict[str, Any]:
    run = doc.get("run") or {}
    shape = run.get("shape") or {}
    return {
        "id": str(run.get("id", "")),
        "started_at": str(run.get("started_at", "")),
        "target": str(run.get("target", "")),
        "profile": str(run.get("profile", "")),
        "shape": str(shape.get("name", "")) if isinstance(shape, Mapping) else "",
        "valid": is_valid(doc),
    }


def _row(
    group: str, key: str, label: str, unit: str, better: str | None, base: Any, new: Any, threshold: float
) -> dict:
    b, n = number(base), number(new)
    delta = None if b is None or n is None else n - b
    relative = None if delta is None or b == 0 else delta / abs(b)
    sign = {LOWER: 1, HIGHER: -1}.get(better or "", 0)
    worse = bool(delta is not None and sign and sign * delta > 0)
    # How much worse, as a share of the base; a rise from zero is unbounded.
    badness = (math.inf if relative is None else sign * relative) if worse else 0.0
    return {
        "group": group,
        "key": key,
        "label": label,
        "unit": unit,
        "better": better,
        "base": b,
        "new": n,
        "delta": delta,
        "relative": relative,
        "worse": worse,
        "improved": bool(delta is not None and sign and sign * delta < 0),
        "regression": worse and badness >= threshold,
        "badness": None if math.isinf(badness) else badness,  # None: from zero (JSON has no infinity)
    }


def compare_runs(base: Mapping[str, Any], new: Mapping[str, Any], *, threshold: float = THRESHOLD) -> dict[str, Any]:
    """Every figure of `new` against `base`, regressions first (worst first), then the rest in report order.

    Raises LoadRunError when either document is not a readable load-run result.
    """
    for name, doc in (("base", base), ("new", new)):
        found = problems(doc)
        if found:
            raise LoadRunError(f"{name}: " + "; ".join(found))
    rows = []
    base_metrics, new_metrics = base["metrics"], new["metrics"]
    for key in metric_keys({**base_metrics, **new_metrics}):
        info = metric_info(key)
        better = None if key in NEUTRAL_METRICS else LOWER
        b, n = base_metrics.get(key) or {}, new_metrics.get(key) or {}
        for stat in STATS:
            rows.append(
                _row(
                    "metric",
                    f"{key}.{stat}",
                    f"{info.label} {stat}",
                    info.unit,
                    better,
                    b.get(stat),
                    n.get(stat),
                    threshold,
                )
            )
    for key, label, unit, better, value in RATE_FIGURES:
        rows.append(_row("totals", key, label, unit, better, value(base["totals"]), value(new["totals"]), threshold))

    def order(item: tuple[int, dict]) -> tuple:
        position, row = item
        rank = 0 if row["regression"] else 1 if row["worse"] else 2
        badness = math.inf if row["badness"] is None else row["badness"]
        return (rank, -badness if rank < 2 else 0, position)

    rows = [row for _, row in sorted(enumerate(rows), key=order)]
    summary_base, summary_new = _summary(base), _summary(new)
    warnings = [
        f"the {name} run is marked invalid"
        for name, s in (("base", summary_base), ("new", summary_new))
        if not s["valid"]
    ]
    warnings += [
        f"the runs differ in {field}: {summary_base[field]!r} vs {summary_new[field]!r}"
        for field in ("target", "profile", "shape")
        if summary_base[field] != summary_new[field]
    ]
    regressions = [row["key"] for row in rows if row["regression"]]
    return {
        "threshold": threshold,
        "base": summary_base,
        "new": summary_new,
        "rows": rows,
        "regressions": regressions,
        "regressed": bool(regressions),
        "worse": sum(row["worse"] for row in rows),
        "improved": sum(row["improved"] for row in rows),
        "warnings": warnings,
    }


# --- the page --------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class RowView:
    key: str
    label: str
    unit: str
    base: str
    new: str
    delta: str
    relative: str
    verdict: str  # regression | worse | better | same | missing


def _shown(value: float | None, unit: str) -> str:
    if unit == "%":
        return fmt_share(value)
    return fmt(value, unit)


def row_view(row: Mapping[str, Any]) -> RowView:
    unit, delta = row["unit"], row["delta"]
    if delta is None:
        delta_text = "—"
    elif unit == "%":
        delta_text = f"{100 * delta:+.2f} pp"
    else:
        delta_text = ("+" if delta > 0 else "") + _shown(delta, unit)
    if row["relative"] is None:
        relative = "new" if row["worse"] and row["base"] == 0 else "—"
    else:
        relative = f"{100 * row['relative']:+.1f}%"
    if row["base"] is None or row["new"] is None:
        verdict = "missing"
    elif row["regression"]:
        verdict = "regression"
    elif row["worse"]:
        verdict = "worse"
    elif row["improved"]:
        verdict = "better"
    else:
        verdict = "same"
    return RowView(
        row["key"],
        row["label"],
        unit,
        _shown(row["base"], unit),
        _shown(row["new"], unit),
        delta_text,
        relative,
        verdict,
    )


def render_compare(base: Mapping[str, Any], new: Mapping[str, Any], *, threshold: float = THRESHOLD) -> str:
    """The HTML page comparing two load runs; pure, no I/O."""
    result = compare_runs(base, new, threshold=threshold)
    return template("compare.html.j2").render(
        cmp=result, rows=[row_view(row) for row in result["rows"]], threshold_percent=f"{100 * threshold:g}"
    )


def write_compare(
    base: Mapping[str, Any], new: Mapping[str, Any], path: str | os.PathLike[str], *, threshold: float = THRESHOLD
) -> Path:
    """Render the comparison and write it to `path` atomically."""
    return write_atomic(path, render_compare(base, new, threshold=threshold))
