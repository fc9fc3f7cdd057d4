"""Run figures: histograms, counters, errors and a per-second timeline, merged exactly across workers.

Each Locust process adds its streams to a `LoadStats`; a worker ships what it gathered since its
last report (`take`) and the master adds it (`merge`). Every part is a sum (histogram counts,
counters, per-second buckets keyed by wall-clock second), so the merged figures are exactly the
sum of the parts, whatever the order the reports arrive in. Pure: no clocks, no I/O.

Each process's own health (CPU, event-loop lag, events read) is also kept apart, by process, so
`capacity` can say how close each client process came to saturating: a client that saturates
measures its own delay, and a run's figures then describe the client, not the target.
"""

from __future__ import annotations

import itertools
import math
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._histogram import Histogram
from ._measure import StreamResult

NS_PER_US = 1_000
US_PER_MS = 1_000.0
# name in the result -> unit divisor for the summary (microseconds -> ms, tokens stay tokens)
METRICS: dict[str, float] = {
    "ttft_ms": US_PER_MS,
    "itl_ms": US_PER_MS,
    "tpot_ms": US_PER_MS,
    "e2e_ms": US_PER_MS,
    "e2e_close_ms": US_PER_MS,
    "headers_ms": US_PER_MS,
    "first_event_ms": US_PER_MS,
    "schedule_lag_ms": US_PER_MS,
    "ttft_from_schedule_ms": US_PER_MS,
    "e2e_from_schedule_ms": US_PER_MS,
    "output_tokens": 1.0,
}
COUNTERS = (
    "requests", "completed", "failed", "good", "late", "dropped", "interrupted",
    "tokens", "events", "text_checked", "text_mismatch", "usage_mismatch",
)  # fmt: skip
# timeline columns: started, completed, failed, tokens, active stream-microseconds
_T_STARTED, _T_COMPLETED, _T_FAILED, _T_TOKENS, _T_ACTIVE = range(5)
LATE_AFTER_NS = 10_000_000  # an open-loop request that started this much after its schedule is late
# A client process is saturated when its CPU reaches this share of one core (a Python process reads
# on one core: the GIL), or its event loop runs this late in a tenth of its samples (p90: sustained
# lag, not the one-off pause of spawning users; every timestamp taken then is that late).
CPU_LIMIT_PERCENT = 90.0
LOOP_LAG_LIMIT_MS = 10.0
BUSY_MACHINE_CPU_PERCENT = 50.0  # a late loop at less CPU than this is a process waiting for a core
CAPACITY_BASIS = (
    "per process: ceiling = events/s x {limit:g} / mean CPU % (the CPU a process spends taken as proportional "
    "to the events it reads, up to {limit:g}% of one core); headroom = 1 - events/s / ceiling, summed over "
    "processes; saturated when CPU max >= {limit:g}% or event-loop lag p90 > {lag:g} ms"
)


@dataclass(frozen=True, slots=True)
class Slo:
    """Bounds a request must meet to count toward goodput (None: no bound)."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None

    def met_by(self, result: StreamResult) -> bool:
        if not result.ok:
            return False
        for bound, value in ((self.ttft_ms, result.ttft), (self.tpot_ms, result.tpot), (self.e2e_ms, result.e2e)):
            if bound is not None and (value is None or value / 1e6 > bound):
                return False
        return True

    def to_dict(self) -> dict[str, float]:
        return {k: v for k, v in (("ttft_ms", self.ttft_ms), ("tpot_ms", self.tpot_ms), ("e2e_ms", self.e2e_ms)) if v}


def process_label() -> str:
    """This process's name in the capacity figures: host and process id (unique across a distributed run)."""
    return f"{platform.node() or 'host'}:{os.getpid()}"


@dataclass(slots=True)
class ClientFigures:
    """One client process's own health: CPU samples (count, sum, max percent), events read, loop lag (µs)."""

    cpu: list[float] = field(default_factory=lambda: [0, 0.0, 0.0])
    events: int = 0
    loop_lag: Histogram = field(default_factory=Histogram)

    def to_dict(self) -> dict[str, Any]:
        return {"cpu": list(self.cpu), "events": self.events, "loop_lag": self.loop_lag.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClientFigures:
        lag = Histogram.from_dict(data["loop_lag"]) if "loop_lag" in data else Histogram()
        return cls(list(data.get("cpu", [0, 0.0, 0.0])), int(data.get("events", 0)), lag)

    def merge(self, other: ClientFigures) -> None:
        samples, total, peak = other.cpu
        self.cpu = [self.cpu[0] + samples, self.cpu[1] + total, max(self.cpu[2], peak)]
        self.events += other.events
        self.loop_lag.merge(other.loop_lag)


class LoadStats:
    """The figures of one process (or, on the master, of all of them)."""

    def __init__(self, epoch_offset_ns: int = 0, slo: Slo | None = None, process: str | None = None) -> None:
        """`epoch_offset_ns` maps the monotonic clock to wall-clock time, for the per-second timeline;
        `process` names this process in the capacity figures (default: host and process id)."""
        self.epoch_offset_ns = epoch_offset_ns
        self.process = process or process_label()
        self.slo = slo or Slo()
        self.histograms: dict[str, Histogram] = {name: Histogram() for name in METRICS}
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.errors: dict[str, list[Any]] = {}  # kind -> [count, example]
        self.timeline: dict[int, list[int]] = {}  # wall-clock second -> columns
        # The client's own health: a saturated client measures its own delay, not the target's.
        self.cpu: list[float] = [0, 0.0, 0.0]  # samples, sum, max of one process's CPU percent
        self.loop_lag = Histogram()  # event-loop lag samples, microseconds
        self.clients: dict[str, ClientFigures] = {}  # merged from other processes: name -> their own health

    # --- recording ---------------------------------------------------------------------------

    def add(self, result: StreamResult, *, scheduled: bool = False) -> None:
        """One finished stream (`scheduled`: an open-loop request, whose schedule lag counts)."""
        h, c = self.histograms, self.counters
        c["requests"] += 1
        c["events"] += result.events
        lag = result.t0 - result.t_sched
        if scheduled:
            h["schedule_lag_ms"].record(lag // NS_PER_US)
            if lag > LATE_AFTER_NS:
                c["late"] += 1
        self._bucket(result.t0)[_T_STARTED] += 1
        end = result.t_end if result.t_end is not None else result.t0
        self._active(result.t0, end)
        if not result.ok:
            c["failed"] += 1
            self._bucket(end)[_T_FAILED] += 1
            self.error(result.error_kind or "protocol", result.error_detail)
            return
        c["completed"] += 1
        c["tokens"] += result.output_tokens
        c["good"] += self.slo.met_by(result)
        if result.usage_tokens is not None and result.usage_tokens != result.tokenizer_tokens:
            c["usage_mismatch"] += 1
        self._bucket(end)[_T_COMPLETED] += 1
        t0 = result.t0
        if result.t_headers is not None:
            h["headers_ms"].record((result.t_headers - t0) // NS_PER_US)
        if result.t_first_event is not None:
            h["first_event_ms"].record((result.t_first_event - t0) // NS_PER_US)
        times = result.token_times
        if times:
            h["ttft_ms"].record((times[0] - t0) // NS_PER_US)
            h["e2e_ms"].record((times[-1] - t0) // NS_PER_US)
            if scheduled:
                h["ttft_from_schedule_ms"].record((times[0] - result.t_sched) // NS_PER_US)
                h["e2e_from_schedule_ms"].record((times[-1] - result.t_sched) // NS_PER_US)
            h["itl_ms"].record_many([(t - previous) // NS_PER_US for previous, t in itertools.pairwise(times)])
            # Each token's share of the output counted in its second: one row lookup per second.
            share = result.output_tokens / len(times)
            offset = self.epoch_offset_ns
            for second, run in itertools.groupby(times, lambda t: (t + offset) // 1_000_000_000):
                self._row(second)[_T_TOKENS] += share * sum(1 for _ in run)
        tpot = result.tpot
        if tpot is not None:
            h["tpot_ms"].record(int(tpot) // NS_PER_US)
        if result.t_end is not None:
            h["e2e_close_ms"].record((result.t_end - t0) // NS_PER_US)
        h["output_tokens"].record(result.output_tokens)

    def error(self, kind: str, detail: str, count: int = 1) -> None:
        entry = self.errors.setdefault(kind, [0, detail])
        entry[0] += count

    def dropped(self, t_sched: int) -> None:
        """An open-loop arrival that never started: no user was free before it was too late."""
        self.counters["requests"] += 1
        self.counters["dropped"] += 1
        self.counters["failed"] += 1
        self._bucket(t_sched)[_T_FAILED] += 1
        self.error("dropped", "no free user within the drop limit after the scheduled start")

    def interrupted(self) -> None:
        """A stream cut by the end of the run: neither a success nor a failure of the target."""
        self.counters["interrupted"] += 1

    def text_checked(self, matched: bool, detail: str = "") -> None:
        self.counters["text_checked"] += 1
        if not matched:
            self.counters["text_mismatch"] += 1
            self.error("text-mismatch", detail)

    def client_sample(self, cpu_percent: float | None = None, loop_lag_ns: int | None = None) -> None:
        if cpu_percent is not None:
            self.cpu[0] += 1
            self.cpu[1] += cpu_percent
            self.cpu[2] = max(self.cpu[2], cpu_percent)
        if loop_lag_ns is not None:
            self.loop_lag.record(loop_lag_ns // NS_PER_US)

    def _second(self, t: int) -> int:
        return (t + self.epoch_offset_ns) // 1_000_000_000

    def _bucket(self, t: int) -> list[int]:
        return self._row(self._second(t))

    def _row(self, second: int) -> list[int]:
        row = self.timeline.get(second)
        if row is None:
            row = self.timeline[second] = [0, 0, 0, 0, 0]
        return row

    def _active(self, start: int, end: int) -> None:
        """Add the stream's open time to each second it overlaps (stream-microseconds)."""
        start_abs, end_abs = start + self.epoch_offset_ns, end + self.epoch_offset_ns
        second = start_abs // 1_000_000_000
        while True:
            edge = (second + 1) * 1_000_000_000
            piece = min(end_abs, edge) - max(start_abs, second * 1_000_000_000)
            self._row(second)[_T_ACTIVE] += max(piece, 0) // NS_PER_US
            if end_abs <= edge:
                break
            second += 1

    # --- shipping and merging ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "histograms": {name: hist.to_dict() for name, hist in self.histograms.items() if hist},
            "counters": {k: v for k, v in self.counters.items() if v},
            "errors": {kind: list(entry) for kind, entry in self.errors.items()},
            "timeline": {str(second): row for second, row in self.timeline.items()},
            "cpu": list(self.cpu),
            "loop_lag": self.loop_lag.to_dict(),
            "process": self.process,
            "clients": {name: figures.to_dict() for name, figures in self.client_figures().items()},
        }

    def client_figures(self) -> dict[str, ClientFigures]:
        """Each client process's own health: the processes merged in (on a master), else this one's own."""
        if self.clients:
            return self.clients
        return {self.process: ClientFigures(self.cpu, self.counters["events"], self.loop_lag)}

    def take(self) -> dict[str, Any]:
        """What was gathered since the last `take`, and start afresh (a worker's report)."""
        part = self.to_dict()
        self.histograms = {name: Histogram() for name in METRICS}
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.errors = {}
        self.timeline = {}
        self.cpu = [0, 0.0, 0.0]
        self.loop_lag = Histogram()
        self.clients = {}
        return part

    def merge(self, part: Mapping[str, Any]) -> None:
        for name, data in part.get("histograms", {}).items():
            self.histograms[name].merge(Histogram.from_dict(data))
        for key, value in part.get("counters", {}).items():
            self.counters[key] = self.counters.get(key, 0) + value
        for kind, (count, example) in part.get("errors", {}).items():
            self.error(kind, example, count)
        for second, row in part.get("timeline", {}).items():
            mine = self._row(int(second))
            for i, value in enumerate(row):
                mine[i] += value
        if "cpu" in part:
            samples, total, peak = part["cpu"]
            self.cpu = [self.cpu[0] + samples, self.cpu[1] + total, max(self.cpu[2], peak)]
        if "loop_lag" in part:
            self.loop_lag.merge(Histogram.from_dict(part["loop_lag"]))
        clients = part.get("clients")
        if clients is None:  # a part from a writer that kept no per-process figures: it is one process
            own = {"cpu": part.get("cpu", [0, 0.0, 0.0]), "events": part.get("counters", {}).get("events", 0)}
            clients = {str(part.get("process", "unnamed")): {**own, "loop_lag": part.get("loop_lag", {})}}
        for name, data in clients.items():
            self.clients.setdefault(name, ClientFigures()).merge(ClientFigures.from_dict(data))

    def validity(self, cpu_limit: float = CPU_LIMIT_PERCENT) -> dict[str, Any]:
        """Whether the client kept up: a run whose client CPU passed `cpu_limit` percent is invalid."""
        samples, total, peak = self.cpu
        lag = self.loop_lag.summary(US_PER_MS)
        reasons = []
        if peak > cpu_limit:
            reasons.append(f"client CPU reached {peak:.0f}% (limit {cpu_limit:.0f}%): it measured its own delay")
        return {
            "valid": not reasons,
            "reasons": reasons,
            "client_cpu_percent": {"mean": round(total / samples, 1) if samples else None, "max": round(peak, 1)},
            "loop_lag_ms": {"p50": lag["p50"], "p99": lag["p99"], "max": lag["max"]},
        }

    def capacity(
        self, window_s: float, cpu_limit: float = CPU_LIMIT_PERCENT, lag_limit_ms: float = LOOP_LAG_LIMIT_MS
    ) -> dict[str, Any]:
        """The events/s the run read, each client process's headroom, and whether the client was the bottleneck."""
        return capacity(self.client_figures(), window_s, cpu_limit=cpu_limit, lag_limit_ms=lag_limit_ms)

    def stage_rates(self, start_epoch_s: float, from_s: float, until_s: float) -> dict[str, float]:
        """Started, completed and failed requests per second in a span of the run (whole seconds inside it)."""
        first = math.ceil(start_epoch_s + from_s)
        last = math.floor(start_epoch_s + until_s)  # exclusive
        seconds = max(last - first, 1)
        sums = [0, 0, 0]
        for second in range(first, last):
            row = self.timeline.get(second)
            if row:
                for i in range(3):
                    sums[i] += row[i]
        started, completed, failed = (value / seconds for value in sums)
        return {"started_per_s": round(started, 3), "completed_per_s": round(completed, 3),
                "failed_per_s": round(failed, 3)}  # fmt: skip

    # --- the result document -----------------------------------------------------------------

    def figures(self, window_s: float) -> dict[str, Any]:
        """totals, metrics, distributions, timeline and errors of the result document."""
        c = self.counters
        window = max(window_s, 1e-9)
        totals = dict(c)
        totals["request_rate"] = round(c["completed"] / window, 3)
        totals["token_rate"] = round(c["tokens"] / window, 3)
        totals["goodput"] = round(c["good"] / window, 3)
        histograms = self.histograms
        metrics = {name: histograms[name].summary(scale) for name, scale in METRICS.items() if histograms[name]}
        distributions = {
            name: self.histograms[name].bars(US_PER_MS) for name in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms")
        }
        first = min(self.timeline, default=0)
        last = max(self.timeline, default=-1)
        timeline = []
        for second in range(first, last + 1):
            row = self.timeline.get(second, [0, 0, 0, 0, 0])
            timeline.append(
                {
                    "t": second - first,
                    "started": row[_T_STARTED],
                    "completed": row[_T_COMPLETED],
                    "failed": row[_T_FAILED],
                    "tokens": math.floor(row[_T_TOKENS] + 0.5),
                    "active": round(row[_T_ACTIVE] / 1e6, 3),
                }
            )
        errors = [
            {"kind": kind, "count": count, "example": example}
            for kind, (count, example) in sorted(self.errors.items(), key=lambda item: (-item[1][0], item[0]))
        ]
        return {"totals": totals, "metrics": metrics, "distributions": distributions, "timeline": timeline,
                "errors": errors}  # fmt: skip


# --- capacity --------------------------------------------------------------------------------


def capacity(
    clients: Mapping[str, ClientFigures],
    window_s: float,
    *,
    cpu_limit: float = CPU_LIMIT_PERCENT,
    lag_limit_ms: float = LOOP_LAG_LIMIT_MS,
) -> dict[str, Any]:
    """The `capacity` section of a result: events/s read, and per process its CPU, ceiling and headroom.

    A process's ceiling is estimated linearly, events/s x `cpu_limit` / mean CPU %: its CPU taken as
    proportional to the events it reads (the fixed cost of an idle client makes it conservative at a
    low load). The run's headroom is the share of the summed ceilings it did not use. The client was
    the bottleneck when any process's CPU reached `cpu_limit` or its event-loop lag p90 passed
    `lag_limit_ms`: then its latencies include its own delay, and more client processes are needed.
    """
    window = max(window_s, 1e-9)
    processes = [_process_capacity(name, figures, window, cpu_limit, lag_limit_ms)
                 for name, figures in sorted(clients.items())]  # fmt: skip
    events = sum(p["events"] for p in processes)
    rate = events / window
    # A process that read nothing has no ceiling to estimate and adds nothing; one that read without a
    # CPU sample leaves the whole unknown.
    reading = [p for p in processes if p["events"]]
    ceilings = [p["ceiling_events_per_s"] for p in reading]
    ceiling = sum(ceilings) if reading and None not in ceilings else None  # type: ignore[arg-type]
    headroom = _headroom(rate, ceiling)
    bound = [p for p in processes if p["saturated"]]
    if bound:
        causes = "; ".join(f"{p['process']}: {', '.join(p['reasons'])}" for p in bound)
        verdict = (
            f"the client was the bottleneck ({causes}): its latencies include its own delay; give it "
            "more CPU (client processes: --workers, or a quieter machine) before judging the target"
        )
    elif headroom is None:
        verdict = "the client's headroom is unknown: no CPU was sampled (the run was shorter than a second)"
    else:
        verdict = (f"the client was not the bottleneck: it read {rate:,.0f} events/s with {headroom:.0%} headroom "
                   f"(ceiling about {ceiling:,.0f} events/s)")  # fmt: skip
    return {
        "events": events,
        "events_per_s": round(rate, 1),
        "ceiling_events_per_s": None if ceiling is None else round(ceiling, 1),
        "headroom": headroom,
        "client_bound": bool(bound),
        "verdict": verdict,
        "basis": CAPACITY_BASIS.format(limit=cpu_limit, lag=lag_limit_ms),
        "limits": {"cpu_percent": cpu_limit, "loop_lag_p90_ms": lag_limit_ms},
        "processes": processes,
    }


def _process_capacity(
    name: str, figures: ClientFigures, window: float, cpu_limit: float, lag_limit_ms: float
) -> dict[str, Any]:
    samples, total, peak = figures.cpu
    mean = total / samples if samples else None
    rate = figures.events / window
    lag = figures.loop_lag.summary(US_PER_MS)
    # nothing read, or no CPU seen: no basis for an estimate; CPU under psutil's 0.1% counts as 0.1%
    ceiling = None if mean is None or figures.events == 0 else rate * cpu_limit / max(mean, 0.1)
    reasons = []
    if samples and peak >= cpu_limit:
        reasons.append(f"CPU reached {peak:.0f}% (limit {cpu_limit:g}%)")
    if lag["p90"] is not None and lag["p90"] > lag_limit_ms:
        busy = mean is not None and mean < BUSY_MACHINE_CPU_PERCENT
        reasons.append(f"event-loop lag p90 {lag['p90']:.1f} ms (limit {lag_limit_ms:g} ms)"
                       + (f" at {mean:.0f}% CPU: it waited for a core (a busy machine)" if busy else ""))  # fmt: skip
    return {
        "process": name,
        "events": figures.events,
        "events_per_s": round(rate, 1),
        "cpu_percent": {"mean": None if mean is None else round(mean, 1), "max": round(peak, 1), "samples": samples},
        "loop_lag_ms": {"p50": lag["p50"], "p90": lag["p90"], "p99": lag["p99"], "max": lag["max"]},
        "ceiling_events_per_s": None if ceiling is None else round(ceiling, 1),
        "headroom": _headroom(rate, ceiling),
        "saturated": bool(reasons),
        "reasons": reasons,
    }


def _headroom(rate: float, ceiling: float | None) -> float | None:
    """The share of the ceiling left unused, 0..1 (None: no ceiling to compare with)."""
    if ceiling is None:
        return None
    if ceiling <= 0:
        return 0.0
    return round(min(1.0, max(0.0, 1.0 - rate / ceiling)), 3)
