"""The single-file HTML report of a load run: the `load-run` JSON document in, one offline page out.

The charts are drawn in the page by uPlot (reports/vendor/, MIT), inlined, so the file needs no network.
The page's Content-Security-Policy runs only the scripts whose SHA-256 it lists: the shared page script,
uPlot and the chart script. Each chart's data travels as JSON in a <script type="application/json">
block, escaped so that no string in it can end the block; every other string is autoescaped.

The view model is built from the plain dict by pure functions; the template only lays it out.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import markupsafe

from ._page import fmt, fmt_rate, fmt_share, number, render_chart_page, write_atomic

KIND = "load-run"
VERSION = 1
STATS = ("p50", "p90", "p95", "p99", "p99.9", "min", "mean", "max")


class MetricInfo(NamedTuple):
    """What a figure means here, and what vLLM bench serve, GuideLLM and AIPerf call the nearest figure."""

    label: str
    unit: str
    meaning: str
    vllm: str
    guidellm: str
    aiperf: str


# Names checked against vLLM `vllm/benchmarks/serve.py` (`calculate_metrics`, `BenchmarkMetrics`), GuideLLM
# `src/guidellm/schemas/request_stats.py` (`GenerativeRequestStats`) and `schemas/benchmark/goodput.py`, and
# AIPerf `docs/metrics_reference.md` and its goodput tutorial. "—": the tool reports no such figure.
METRICS: dict[str, MetricInfo] = {
    "ttft_ms": MetricInfo(
        "TTFT",
        "ms",
        "request sent → first event that carries non-empty answer text (a role-only or metadata event is no token)",
        "TTFT (`ttft`, `mean_ttft_ms`, `p99_ttft_ms`)",
        "`time_to_first_token_ms`",
        "Time to First Token (`time_to_first_token`); empty first responses are disregarded",
    ),
    "itl_ms": MetricInfo(
        "ITL",
        "ms",
        "every gap between consecutive token events, pooled over all requests (one sample per gap)",
        "ITL (`itl`, `mean_itl_ms`): the same pooled gaps (`itls += output.itl`)",
        "— (its `inter_token_latency_ms` is one mean per request: our TPOT)",
        "Inter Chunk Latency (`inter_chunk_latency`): the gaps between consecutive SSE messages",
    ),
    "tpot_ms": MetricInfo(
        "TPOT",
        "ms",
        "per request: (t_last − t_first) / (N − 1), N = output tokens; undefined for N ≤ 1",
        "TPOT (`tpot`): (latency − TTFT) / (N − 1), measured to the response's end rather than the last token",
        "`inter_token_latency_ms` = (last − first token) / (N − 1); not `time_per_output_token_ms`, "
        "which is (last token − request start) / N and so includes TTFT",
        "Inter Token Latency (`inter_token_latency`) = (request latency − TTFT) / (OSL − 1)",
    ),
    "e2e_ms": MetricInfo(
        "E2E (last token)",
        "ms",
        "request sent → last token event",
        "— (E2EL runs to the response's end: see E2E (close))",
        "— (`request_latency` runs to the request's end)",
        "— (Request Latency runs to the final response)",
    ),
    "e2e_close_ms": MetricInfo(
        "E2E (close)",
        "ms",
        "request sent → terminal event or stream close",
        "E2EL (`e2el`, `mean_e2el_ms`)",
        "`request_latency` (in seconds)",
        "Request Latency (`request_latency`): to the final response received",
    ),
    "headers_ms": MetricInfo("Time to headers", "ms", "request sent → response headers", "—", "—", "—"),
    "first_event_ms": MetricInfo(
        "First event",
        "ms",
        "request sent → first SSE event of any kind (a session id or `connected` event counts here, not in TTFT)",
        "—",
        "—",
        "—",
    ),
    "schedule_lag_ms": MetricInfo(
        "Schedule lag",
        "ms",
        "actual start − intended start; open-loop latencies count from the intended start (coordinated omission)",
        "—",
        "—",
        "—",
    ),
    "output_tokens": MetricInfo(
        "Output tokens",
        "tokens",
        "per request: the server's usage count, else a tokenizer on the text; never the number of events",
        "output length: usage, else the tokenizer on the generated text",
        "`output_tokens`: usage, else the number of token iterations (events)",
        "Output Token Count (`output_token_count`): the tokenizer on the text",
    ),
}

RATES: dict[str, MetricInfo] = {
    "request_rate": MetricInfo(
        "Request throughput",
        "req/s",
        "completed requests / measurement window",
        "`request_throughput`",
        "`requests_per_second`",
        "Request Throughput (`request_throughput`)",
    ),
    "token_rate": MetricInfo(
        "Token throughput",
        "tok/s",
        "output tokens / measurement window",
        "`output_throughput`",
        "`output_tokens_per_second`",
        "Output Token Throughput (`output_token_throughput`)",
    ),
    "goodput": MetricInfo(
        "Goodput",
        "req/s",
        "requests that met every SLO (TTFT, TPOT, E2E) / window; a failed request is never good",
        "`request_goodput` (`--goodput ttft:… tpot:… e2el:…`, in ms)",
        "goodput against `GoodputSLO` (`ttft_ms`, `tpot_ms` checked against `inter_token_latency_ms`, `e2el_ms`)",
        'Goodput (`--goodput "time_to_first_token:… inter_token_latency:…"`)',
    ),
    "active": MetricInfo(
        "Active streams",
        "streams",
        "streams open in each second of the run",
        "`max_concurrent_requests` (the peak only)",
        "`request_concurrency`",
        "—",
    ),
}

SOURCES = (
    "vLLM vllm/benchmarks/serve.py (calculate_metrics, BenchmarkMetrics)",
    "GuideLLM src/guidellm/schemas/request_stats.py (GenerativeRequestStats) and schemas/benchmark/goodput.py",
    "AIPerf docs/metrics_reference.md and its goodput tutorial",
)


class LoadRunError(ValueError):
    """The document is not a load-run result this reader understands; the message says why."""


# --- reading the document --------------------------------------------------------------------

_SECTIONS = {"run": dict, "totals": dict, "metrics": dict}
_OPTIONAL_SECTIONS = {"validity": dict, "capacity": dict, "distributions": dict, "timeline": list, "errors": list}


def problems(doc: Any) -> list[str]:
    """What makes `doc` unreadable as a load-run result (empty: it can be rendered)."""
    if not isinstance(doc, Mapping):
        return [f"a load-run result is a JSON object, not {type(doc).__name__}"]
    if doc.get("kind") != KIND:
        return [f"'kind' is {doc.get('kind')!r}, not {KIND!r}"]
    found: list[str] = []
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
        found.append(f"'version' is {version!r}; this reader knows version {VERSION}")
    for name, kind in _SECTIONS.items():
        if not isinstance(doc.get(name), kind):
            found.append(f"'{name}' is missing or not a JSON {_json_type(kind)}")
    for name, kind in _OPTIONAL_SECTIONS.items():
        if doc.get(name) is not None and not isinstance(doc.get(name), kind):
            found.append(f"'{name}' is not a JSON {_json_type(kind)}")
    metrics = doc.get("metrics")
    if isinstance(metrics, dict):
        found += [
            f"metric {name!r} is not a JSON object" for name, value in metrics.items() if not isinstance(value, dict)
        ]
    return found


def _json_type(kind: type) -> str:
    return "object" if kind is dict else "array"


def _section(doc: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = doc.get(name)
    return value if isinstance(value, Mapping) else {}


def metric_keys(metrics: Mapping[str, Any]) -> list[str]:
    """The run's metrics, the known ones in their usual order first, then any others by name."""
    known = [key for key in METRICS if key in metrics]
    return known + sorted(key for key in metrics if key not in METRICS)


def metric_info(key: str) -> MetricInfo:
    unit = "ms" if key.endswith("_ms") else ""
    return METRICS.get(key) or MetricInfo(key, unit, "", "—", "—", "—")


def is_valid(doc: Mapping[str, Any]) -> bool:
    """The run's verdict: its own flag can only make it stricter (a stated reason always makes it invalid)."""
    validity = _section(doc, "validity")
    return validity.get("valid") is True and not validity.get("reasons")


def error_rate(totals: Mapping[str, Any]) -> float | None:
    """Failed / requests; None when no request ran."""
    requests, failed = number(totals.get("requests")), number(totals.get("failed"))
    return failed / requests if requests and failed is not None else None


# --- the view model --------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Figure:
    """A headline figure of the totals."""

    label: str
    value: str
    note: str = ""
    bad: bool = False


@dataclass(slots=True, frozen=True)
class Cell:
    text: str
    over_slo: bool = False


@dataclass(slots=True)
class PercentileRow:
    key: str
    label: str
    unit: str
    count: str
    slo: str  # "≤ 1,000.0 ms" when an SLO bounds this metric
    cells: list[Cell]


@dataclass(slots=True)
class Chart:
    """One chart: its data (uPlot's column arrays) and how to draw it, as the page script reads them."""

    key: str
    title: str
    note: str
    empty_message: str
    spec: dict[str, Any]

    @property
    def empty(self) -> bool:
        data = self.spec.get("data") or [[]]
        return not data[0]

    @property
    def json(self) -> markupsafe.Markup:
        return json_script(self.spec)


@dataclass(slots=True, frozen=True)
class Share:
    """A part of all requests, as a segment of the goodput bar."""

    cls: str
    label: str
    count: int
    percent: float


@dataclass(slots=True)
class GoodputView:
    rate: str
    slos: list[tuple[str, str]]
    shares: list[Share]
    requests: int


@dataclass(slots=True, frozen=True)
class ErrorRow:
    kind: str
    count: str
    share: str
    example: str


@dataclass(slots=True, frozen=True)
class ProcessRow:
    """One client process's share of the reading, and how close it came to saturating."""

    name: str
    events_per_s: str
    cpu_mean: str
    cpu_max: str
    lag_p90: str
    ceiling: str
    headroom: str
    saturated: bool
    reasons: str


@dataclass(slots=True)
class CapacityView:
    """The events/s the run read and the client's headroom (the result's `capacity` section)."""

    events_per_s: str
    ceiling: str
    headroom: str
    client_bound: bool
    verdict: str
    basis: str
    processes: list[ProcessRow]


@dataclass(slots=True, frozen=True)
class GlossaryRow:
    key: str
    label: str
    meaning: str
    vllm: str
    guidellm: str
    aiperf: str


@dataclass(slots=True)
class LoadView:
    run_id: str
    target: str
    profile: str
    facts: list[tuple[str, str]]
    valid: bool
    reasons: list[str]
    client: list[tuple[str, str]]
    figures: list[Figure]
    percentiles: list[PercentileRow]
    charts: list[Chart]
    goodput: GoodputView
    errors: list[ErrorRow]
    capacity: CapacityView | None = None
    glossary: list[GlossaryRow] = field(default_factory=list)
    sources: Sequence[str] = SOURCES

    @property
    def drawn_charts(self) -> int:
        """How many charts have data: the page sets `data-charts-rendered` to this once it drew them."""
        return sum(not chart.empty for chart in self.charts)


def build_view(doc: Mapping[str, Any]) -> LoadView:
    """The report's content, computed from a load-run document (nothing is read or written).

    Raises LoadRunError when the document is not a load-run result of a version this reader knows.
    """
    found = problems(doc)
    if found:
        raise LoadRunError("; ".join(found))
    run, totals, metrics = _section(doc, "run"), _section(doc, "totals"), _section(doc, "metrics")
    validity = _section(doc, "validity")
    reasons = [str(r) for r in validity.get("reasons") or ()]
    if not validity:
        reasons.append("the result carries no validity section")
    slo = {k: v for k, v in _section(run, "slo").items() if number(v) is not None}
    capacity = _capacity(_section(doc, "capacity"))
    return LoadView(
        run_id=str(run.get("id", "")),
        target=str(run.get("target", "")),
        profile=str(run.get("profile", "")),
        facts=_facts(run),
        valid=is_valid(doc),
        reasons=reasons,
        client=_client(validity),
        figures=_figures(totals, metrics) + _capacity_figures(capacity),
        percentiles=[_percentile_row(key, metrics[key], slo) for key in metric_keys(metrics)],
        charts=_charts(doc),
        goodput=_goodput(totals, slo),
        errors=_errors(doc.get("errors") or (), totals),
        capacity=capacity,
        glossary=[
            GlossaryRow(key, info.label, info.meaning, info.vllm, info.guidellm, info.aiperf)
            for key, info in {**METRICS, **RATES}.items()
        ],
    )


def _facts(run: Mapping[str, Any]) -> list[tuple[str, str]]:
    shape = _section(run, "shape")
    params = ", ".join(f"{k}={v}" for k, v in sorted(_section(shape, "params").items()))
    name, kind = str(shape.get("name", "")), str(shape.get("kind", ""))
    shape_text = f"{name} ({kind})" if kind and kind != name else name or kind
    duration = number(run.get("duration_s"))
    facts = [
        ("target", str(run.get("target", ""))),
        ("profile", str(run.get("profile", ""))),
        ("shape", f"{shape_text}: {params}" if params else shape_text),
        ("started", str(run.get("started_at", ""))),
        ("window", "—" if duration is None else f"{duration:g} s"),
        ("workers", str(run.get("workers", ""))),
        ("seed", str(run.get("seed", ""))),
        ("mock", str(run.get("mock") or "—")),
        ("tool", str(run.get("tool", ""))),
    ]
    return [(label, value) for label, value in facts if value]


def _client(validity: Mapping[str, Any]) -> list[tuple[str, str]]:
    cpu, lag = _section(validity, "client_cpu_percent"), _section(validity, "loop_lag_ms")
    pairs = [
        ("client CPU mean", cpu.get("mean"), "%"),
        ("client CPU max", cpu.get("max"), "%"),
        ("event-loop lag p50", lag.get("p50"), " ms"),
        ("event-loop lag p99", lag.get("p99"), " ms"),
        ("event-loop lag max", lag.get("max"), " ms"),
    ]
    return [(label, f"{fmt_rate(value)}{unit}") for label, value, unit in pairs if number(value) is not None]


def _capacity(capacity: Mapping[str, Any]) -> CapacityView | None:
    """The capacity section as the page shows it; None when the result has none (an older writer)."""
    if not capacity:
        return None
    rows = []
    for process in capacity.get("processes") or ():
        if not isinstance(process, Mapping):
            continue
        cpu, lag = _section(process, "cpu_percent"), _section(process, "loop_lag_ms")
        rows.append(
            ProcessRow(
                name=str(process.get("process", "")),
                events_per_s=fmt_rate(process.get("events_per_s")),
                cpu_mean=_percent(cpu.get("mean")),
                cpu_max=_percent(cpu.get("max")),
                lag_p90=fmt(lag.get("p90")),
                ceiling=fmt_rate(process.get("ceiling_events_per_s")),
                headroom=_headroom(process.get("headroom")),
                saturated=process.get("saturated") is True,
                reasons="; ".join(str(r) for r in process.get("reasons") or ()),
            )
        )
    return CapacityView(
        events_per_s=fmt_rate(capacity.get("events_per_s")),
        ceiling=fmt_rate(capacity.get("ceiling_events_per_s")),
        headroom=_headroom(capacity.get("headroom")),
        client_bound=capacity.get("client_bound") is True,
        verdict=str(capacity.get("verdict", "")),
        basis=str(capacity.get("basis", "")),
        processes=rows,
    )


def _percent(value: Any) -> str:
    return "—" if number(value) is None else f"{fmt_rate(value)}%"


def _headroom(value: Any) -> str:
    n = number(value)
    return "—" if n is None else f"{100 * n:.0f}%"


def _capacity_figures(capacity: CapacityView | None) -> list[Figure]:
    if capacity is None:
        return []
    return [
        Figure("events read", f"{capacity.events_per_s} /s", "SSE events per second, every client process"),
        Figure(
            "client headroom",
            capacity.headroom,
            "the client was the bottleneck" if capacity.client_bound else f"ceiling ≈ {capacity.ceiling} events/s",
            bad=capacity.client_bound,
        ),
    ]


def _figures(totals: Mapping[str, Any], metrics: Mapping[str, Any]) -> list[Figure]:
    requests = number(totals.get("requests")) or 0
    rate = error_rate(totals)
    good = number(totals.get("good"))
    late, dropped = number(totals.get("late")) or 0, number(totals.get("dropped")) or 0
    mismatches = sum(number(totals.get(k)) or 0 for k in ("text_mismatch", "usage_mismatch"))
    ttft, itl = _section(metrics, "ttft_ms"), _section(metrics, "itl_ms")
    return [
        Figure(
            "requests",
            fmt(totals.get("requests"), ""),
            f"{fmt(totals.get('completed'), '')} completed, {fmt(totals.get('failed'), '')} failed",
        ),
        Figure("error rate", fmt_share(rate), "failed / requests", bad=bool(rate)),
        Figure("request rate", f"{fmt_rate(totals.get('request_rate'))} req/s", "completed / window"),
        Figure("token rate", f"{fmt_rate(totals.get('token_rate'))} tok/s", f"{fmt(totals.get('tokens'), '')} tokens"),
        Figure(
            "goodput",
            f"{fmt_rate(totals.get('goodput'))} req/s",
            f"{fmt_share(good / requests if requests and good is not None else None)} of requests met every SLO",
        ),
        Figure("TTFT p50 / p99", f"{fmt(ttft.get('p50'))} / {fmt(ttft.get('p99'))} ms"),
        Figure("ITL p50 / p99", f"{fmt(itl.get('p50'))} / {fmt(itl.get('p99'))} ms"),
        Figure("events", fmt(totals.get("events"), ""), "SSE events read"),
        Figure(
            "late / dropped",
            f"{fmt(late, '')} / {fmt(dropped, '')}",
            "open loop: started > 10 ms after schedule / never started",
            bad=bool(late or dropped),
        ),
        Figure(
            "text checked",
            fmt(totals.get("text_checked"), ""),
            f"{fmt(totals.get('text_mismatch'), '')} text, {fmt(totals.get('usage_mismatch'), '')} usage mismatches",
            bad=bool(mismatches),
        ),
    ]


def _percentile_row(key: str, values: Mapping[str, Any], slo: Mapping[str, Any]) -> PercentileRow:
    info = metric_info(key)
    bound = number(slo.get(key))  # an SLO is named after the metric it bounds
    cells = []
    for stat in STATS:
        value = number(values.get(stat))
        cells.append(Cell(fmt(value, info.unit), bound is not None and value is not None and value > bound))
    return PercentileRow(
        key=key,
        label=info.label,
        unit=info.unit,
        count=fmt(values.get("count"), ""),
        slo="" if bound is None else f"≤ {fmt(bound, info.unit)} {info.unit}",
        cells=cells,
    )


# --- the charts ------------------------------------------------------------------------------

_BLUE, _GREEN, _RED, _PURPLE, _AMBER = "#1f4fbf", "#11772f", "#b42318", "#6941c6", "#b26b00"


def histogram_columns(buckets: Iterable[Any]) -> list[list[float]]:
    """uPlot columns [x, y] that draw the buckets as a stepped, filled histogram (the x of a bar is its left edge).

    Buckets are [lower ms, upper ms, count]; a gap between two buckets drops to zero, and the last
    bucket closes at its upper bound. Malformed buckets are left out.
    """
    clean = []
    for bucket in buckets:
        if isinstance(bucket, Sequence) and len(bucket) >= 3:
            lo, hi, count = (number(v) for v in bucket[:3])
            if lo is not None and hi is not None and count is not None and hi >= lo:
                clean.append((lo, hi, count))
    xs: list[float] = []
    ys: list[float] = []
    previous_hi: float | None = None
    for lo, hi, count in sorted(clean):
        if previous_hi is not None and lo > previous_hi:
            xs.append(previous_hi)
            ys.append(0)
        if xs and lo <= xs[-1]:  # overlapping or repeated edge: keep x strictly increasing
            ys[-1] = ys[-1] + count
        else:
            xs.append(lo)
            ys.append(count)
        previous_hi = hi if previous_hi is None else max(previous_hi, hi)
    if previous_hi is not None and previous_hi > xs[-1]:
        xs.append(previous_hi)
        ys.append(0)
    return [xs, ys]


def timeline_columns(rows: Iterable[Any], fields: Sequence[str]) -> list[list[float | None]]:
    """uPlot columns [t, field...] from the per-second timeline rows, in time order."""
    clean = [row for row in rows if isinstance(row, Mapping) and number(row.get("t")) is not None]
    clean.sort(key=lambda row: number(row["t"]))  # type: ignore[arg-type,return-value]
    return [[number(row["t"]) for row in clean]] + [[number(row.get(name)) for row in clean] for name in fields]


def _charts(doc: Mapping[str, Any]) -> list[Chart]:
    distributions = _section(doc, "distributions")
    timeline = doc.get("timeline") or ()
    hist = {
        "kind": "histogram",
        "x": "ms",
        "axes": [{"scale": "y", "label": "requests"}],
    }
    return [
        Chart(
            "ttft",
            "TTFT distribution",
            "requests per TTFT bucket",
            "No TTFT samples in this run.",
            {
                **hist,
                "series": [{"label": "requests", "scale": "y", "color": _BLUE}],
                "data": histogram_columns(distributions.get("ttft_ms") or ()),
            },
        ),
        Chart(
            "itl",
            "ITL distribution",
            "gaps between token events per bucket, all requests pooled",
            "No ITL samples in this run (no stream carried two token events).",
            {
                **hist,
                "axes": [{"scale": "y", "label": "gaps"}],
                "series": [{"label": "gaps", "scale": "y", "color": _PURPLE}],
                "data": histogram_columns(distributions.get("itl_ms") or ()),
            },
        ),
        Chart(
            "throughput",
            "Throughput over time",
            "per second of the run: output tokens (left axis), completed and failed requests (right axis)",
            "No timeline in this run.",
            {
                "kind": "lines",
                "x": "s",
                "axes": [{"scale": "tok", "label": "tokens/s"}, {"scale": "req", "label": "requests/s", "side": 1}],
                "series": [
                    {"label": "tokens/s", "scale": "tok", "color": _BLUE},
                    {"label": "completed/s", "scale": "req", "color": _GREEN},
                    {"label": "failed/s", "scale": "req", "color": _RED},
                ],
                "data": timeline_columns(timeline, ("tokens", "completed", "failed")),
            },
        ),
        Chart(
            "active",
            "Active streams over time",
            "streams open in each second, and requests started in it",
            "No timeline in this run.",
            {
                "kind": "lines",
                "x": "s",
                "axes": [{"scale": "n", "label": "streams"}],
                "series": [
                    {"label": "active", "scale": "n", "color": _PURPLE, "fill": True},
                    {"label": "started/s", "scale": "n", "color": _AMBER},
                ],
                "data": timeline_columns(timeline, ("active", "started")),
            },
        ),
    ]


def json_script(value: Any) -> markupsafe.Markup:
    """JSON to put inside <script type="application/json">: `<`, `>` and `&` escaped, so no string in
    the data can end the block or open a comment, and JSON.parse still reads the same value."""
    text = json.dumps(_finite(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escape in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return markupsafe.Markup(text)


def _finite(value: Any) -> Any:
    """NaN and infinities become null: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# --- goodput and errors ----------------------------------------------------------------------


def _goodput(totals: Mapping[str, Any], slo: Mapping[str, Any]) -> GoodputView:
    def count(name: str) -> int:
        return max(0, int(number(totals.get(name)) or 0))

    requests, completed, failed, good = count("requests"), count("completed"), count("failed"), count("good")
    parts = [
        ("good", "met every SLO", good),
        ("missed", "completed, missed an SLO", max(0, completed - good)),
        ("failed", "failed", failed),
        ("unfinished", "unfinished at the end", max(0, requests - completed - failed)),
    ]
    whole = max(requests, sum(n for _, _, n in parts)) or 1
    slo_rows = []
    for key, value in slo.items():
        info = metric_info(key)
        slo_rows.append((info.label, f"≤ {fmt(value, info.unit)} {info.unit}".strip()))
    return GoodputView(
        rate=fmt_rate(totals.get("goodput")),
        slos=slo_rows,
        shares=[Share(cls, label, n, 100 * n / whole) for cls, label, n in parts if n],
        requests=requests,
    )


def _errors(errors: Iterable[Any], totals: Mapping[str, Any]) -> list[ErrorRow]:
    requests = number(totals.get("requests"))
    rows = [e for e in errors if isinstance(e, Mapping)]
    rows.sort(key=lambda e: -(number(e.get("count")) or 0))  # most frequent first, whatever the writer did
    return [
        ErrorRow(
            kind=str(e.get("kind", "")),
            count=fmt(e.get("count"), ""),
            share=fmt_share((number(e.get("count")) or 0) / requests if requests else None),
            example=str(e.get("example", "")),
        )
        for e in rows
    ]


# --- rendering and writing -------------------------------------------------------------------


def render_load(doc: Mapping[str, Any]) -> str:
    """The HTML page of a load run (a load-run document); pure, no I/O but reading the vendored chart library."""
    return render_chart_page("load.html.j2", run=build_view(doc))


def write_load(doc: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Render the run and write it to `path` atomically: a reader sees the old file or the new one."""
    return write_atomic(path, render_load(doc))
