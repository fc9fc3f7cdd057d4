"""The saturation sweep: step the concurrent streams up, and say where the client saturated and where the target did.

A load figure means something only while the client keeps up: once the load client saturates, the
latencies it reports include its own delay. So the sweep gives two findings, not one: the stream
count where the *client* saturated (a client process's CPU reached its limit, or its event loop ran
late) and the one where the *target* did (its latency or its per-stream throughput degraded, or its
streams failed, at a step where the client still had headroom), each "not reached" when the steps
ran out first. A target is judged only at steps before the client saturated: after it, a slower
stream may be the client's doing.

Each step is its own closed-loop run of N users for `step_s` seconds through `run_locust`, so its
percentiles, events/s, CPU and loop lag are exactly that step's (no stream of one step counts in
the next), and each is a whole load-run document with its own `capacity`. That costs a Locust
start per step (a second or two); the sweep is bounded by its step count times the step's time
plus that start and the streams' drain. `judge` is the pure judgement over the steps' figures;
`run_sweep` is the I/O edge; `sweep_document` the JSON result that `reports.write_sweep` renders.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._config import VERSION, LoadSettings, UsageError, run_id
from ._runner import run_locust
from ._stats import BUSY_MACHINE_CPU_PERCENT, CPU_LIMIT_PERCENT, LOOP_LAG_LIMIT_MS

KIND = "load-sweep"
MAX_STEPS = 50


@dataclass(frozen=True, slots=True)
class Criteria:
    """When a step counts as saturated (every bound is a parameter of the sweep's command line)."""

    cpu_limit: float = CPU_LIMIT_PERCENT  # client: a process's CPU max reached this (percent of one core) ...
    lag_limit_ms: float = LOOP_LAG_LIMIT_MS  # ... or its event-loop lag p90 passed this
    latency_factor: float = 2.0  # target: ITL or TTFT p99 above this times the first step's ...
    latency_floor_ms: float = 5.0  # ... and at least this much above it (noise on a 1 ms p99 is no slow-down)
    per_stream_drop: float = 0.25  # target: events/s per stream fell by more than this share of the first step's
    failed_share: float = 0.05  # target: more than this share of a step's streams failed

    def __post_init__(self) -> None:
        if not self.cpu_limit > 0 or not self.lag_limit_ms > 0 or not self.latency_factor > 1:
            raise UsageError("sweep criteria: the CPU and lag limits must be positive and the latency factor above 1")
        if not 0 < self.per_stream_drop < 1 or not 0 <= self.failed_share < 1:
            raise UsageError("sweep criteria: the per-stream drop and the failed share are fractions (0-1)")


@dataclass(frozen=True, slots=True)
class Step:
    """One step's figures: what the judgement reads (from a load-run document, or made up in a test)."""

    streams: int
    events_per_s: float
    requests: int = 0
    failed: int = 0
    cpu_mean: float | None = None  # the client processes' CPU, percent of one core: mean of their means ...
    cpu_max: float | None = None  # ... and the highest any of them reached
    loop_lag_p90_ms: float | None = None  # the worst client process's
    loop_lag_p99_ms: float | None = None
    ttft_p50_ms: float | None = None
    ttft_p99_ms: float | None = None
    itl_p50_ms: float | None = None
    itl_p99_ms: float | None = None
    headroom: float | None = None  # the client's, from the run's capacity section
    valid: bool = True

    @property
    def events_per_stream_s(self) -> float:
        return self.events_per_s / self.streams if self.streams else 0.0

    @property
    def failed_share(self) -> float:
        return self.failed / self.requests if self.requests else 0.0

    @classmethod
    def of_result(cls, streams: int, result: Mapping[str, Any]) -> Step:
        """A step's figures from its load-run document."""
        metrics, totals = result.get("metrics", {}), result.get("totals", {})
        capacity = result.get("capacity", {})
        processes = capacity.get("processes", [])
        means = [p["cpu_percent"]["mean"] for p in processes if p["cpu_percent"]["mean"] is not None]
        peaks = [p["cpu_percent"]["max"] for p in processes if p["cpu_percent"]["samples"]]
        lag90 = [p["loop_lag_ms"]["p90"] for p in processes if p["loop_lag_ms"].get("p90") is not None]
        lag99 = [p["loop_lag_ms"]["p99"] for p in processes if p["loop_lag_ms"].get("p99") is not None]

        def metric(name: str, stat: str) -> float | None:
            return metrics.get(name, {}).get(stat)

        return cls(
            streams=streams,
            events_per_s=float(capacity.get("events_per_s", 0.0)),
            requests=int(totals.get("requests", 0)),
            failed=int(totals.get("failed", 0)),
            cpu_mean=round(sum(means) / len(means), 1) if means else None,
            cpu_max=max(peaks) if peaks else None,
            loop_lag_p90_ms=max(lag90) if lag90 else None,
            loop_lag_p99_ms=max(lag99) if lag99 else None,
            ttft_p50_ms=metric("ttft_ms", "p50"),
            ttft_p99_ms=metric("ttft_ms", "p99"),
            itl_p50_ms=metric("itl_ms", "p50"),
            itl_p99_ms=metric("itl_ms", "p99"),
            headroom=capacity.get("headroom"),
            valid=bool(result.get("validity", {}).get("valid", True)),
        )

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["events_per_stream_s"] = round(self.events_per_stream_s, 3)
        out["failed_share"] = round(self.failed_share, 4)
        return out


@dataclass(frozen=True, slots=True)
class Finding:
    """Where one side saturated: the first step's stream count and why, or not reached (`streams` None)."""

    side: str  # "client" or "target"
    streams: int | None = None
    step: int | None = None  # its index among the steps
    reasons: tuple[str, ...] = ()
    note: str = ""  # why it was not reached, or what limits the finding

    @property
    def reached(self) -> bool:
        return self.streams is not None

    def text(self) -> str:
        if self.reached:
            return f"the {self.side} saturated at {self.streams} streams ({'; '.join(self.reasons)})"
        return f"the {self.side} did not saturate: {self.note}"

    def to_dict(self) -> dict[str, Any]:
        return {"side": self.side, "reached": self.reached, "streams": self.streams, "step": self.step,
                "reasons": list(self.reasons), "note": self.note, "text": self.text()}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Judgement:
    client: Finding
    target: Finding
    verdict: str
    per_step: list[dict[str, list[str]]] = field(default_factory=list)  # each step's client and target reasons

    def to_dict(self) -> dict[str, Any]:
        return {"client": self.client.to_dict(), "target": self.target.to_dict(), "verdict": self.verdict,
                "per_step": self.per_step}  # fmt: skip


def client_reasons(step: Step, criteria: Criteria) -> list[str]:
    """Why the client was saturated at this step (empty: it had headroom)."""
    reasons = []
    if step.cpu_max is not None and step.cpu_max >= criteria.cpu_limit:
        reasons.append(f"client CPU reached {step.cpu_max:.0f}% (limit {criteria.cpu_limit:g}%)")
    if step.loop_lag_p90_ms is not None and step.loop_lag_p90_ms > criteria.lag_limit_ms:
        busy = step.cpu_mean is not None and step.cpu_mean < BUSY_MACHINE_CPU_PERCENT
        reasons.append(f"event-loop lag p90 {step.loop_lag_p90_ms:.1f} ms (limit {criteria.lag_limit_ms:g} ms)"
                       + (f" at {step.cpu_mean:.0f}% CPU: it waited for a core" if busy else ""))  # fmt: skip
    return reasons


def target_reasons(step: Step, base: Step | None, criteria: Criteria) -> list[str]:
    """How the target degraded at this step against the first one (`base`; None: this is the first,
    judged by its failures alone). Empty: it kept up."""
    reasons = []
    if step.failed_share > criteria.failed_share:
        reasons.append(f"{step.failed_share:.0%} of streams failed (limit {criteria.failed_share:.0%})")
    if base is None:
        return reasons
    for label, now, then in (("ITL p99", step.itl_p99_ms, base.itl_p99_ms),
                             ("TTFT p99", step.ttft_p99_ms, base.ttft_p99_ms)):  # fmt: skip
        if now is None or then is None:
            continue
        if now > criteria.latency_factor * then and now - then >= criteria.latency_floor_ms:
            reasons.append(f"{label} {now:.1f} ms, {now / max(then, 1e-9):.1f}x the first step's {then:.1f} ms")
    if base.events_per_stream_s > 0:
        share = step.events_per_stream_s / base.events_per_stream_s
        if share < 1 - criteria.per_stream_drop:
            reasons.append(f"events/s per stream {step.events_per_stream_s:.1f}, {share:.0%} of the first step's "
                           f"{base.events_per_stream_s:.1f}")  # fmt: skip
    return reasons


def judge(steps: Sequence[Step], criteria: Criteria | None = None) -> Judgement:
    """Where the client saturated and where the target did, from the steps' figures in order. Pure.

    The client saturates at the first step any client process passed its CPU or loop-lag limit. The
    target saturates at the first step, before that one, whose streams failed, or whose latency or
    per-stream throughput degraded against the first step's: the first step is the baseline, so a
    target already slow there (but not failing) is not seen.
    """
    criteria = criteria or Criteria()
    if not steps:
        raise ValueError("a sweep needs at least one step to judge")
    base = steps[0]
    client: Finding | None = None
    target: Finding | None = None
    per_step = []
    for i, step in enumerate(steps):
        mine = client_reasons(step, criteria)
        theirs = target_reasons(step, base if i else None, criteria)
        per_step.append({"client": mine, "target": theirs})
        if client is None and mine:
            client = Finding("client", step.streams, i, tuple(mine))
        if target is None and client is None and theirs:
            target = Finding("target", step.streams, i, tuple(theirs))
    last = steps[-1].streams
    if client is None:
        room = steps[-1].headroom
        note = f"up to {last} streams" + ("" if room is None else f" (headroom {room:.0%} at the last step)")
        client = Finding("client", note=note)
    if target is None:
        if client.reached and client.step == 0:
            note = "the client saturated at the first step: the target cannot be judged"
        elif client.reached:
            note = f"below {client.streams} streams, where the client saturated (no later step can judge it)"
        elif len(steps) == 1:
            note = "a single step: there is no first step to compare with"
        else:
            note = f"up to {last} streams"
        target = Finding("target", note=note)
    return Judgement(client, target, _verdict(client, target), per_step)


def _verdict(client: Finding, target: Finding) -> str:
    if target.reached:
        after = (f"; the client saturated later, at {client.streams} streams" if client.reached
                 else f"; the client did not, {client.note}")  # fmt: skip
        return f"the target saturated first, at {target.streams} streams ({'; '.join(target.reasons)}){after}"
    if client.reached and client.step == 0:
        return (f"the client saturated at the first step, {client.streams} streams ({'; '.join(client.reasons)}): "
                "nothing can be told of the target; start lower, or give the client more CPU (--workers)")  # fmt: skip
    if client.reached:
        return (
            f"the client saturated first, at {client.streams} streams ({'; '.join(client.reasons)}): the "
            "target was not seen to saturate below that; give the client more CPU (--workers) to load it further"
        )
    return f"neither saturated {client.note}"


def stream_counts(first: int, last: int, step: int) -> list[int]:
    """The stream count of each step: `first`, `first + step`, ... up to `last` (and `last` itself)."""
    if first < 1 or last < first or step < 1:
        raise UsageError(f"sweep: expected 1 <= --from <= --to and --step >= 1, got {first}, {last}, {step}")
    counts = list(range(first, last + 1, step))
    if counts[-1] != last:
        counts.append(last)
    if len(counts) > MAX_STEPS:
        raise UsageError(f"sweep: {len(counts)} steps; at most {MAX_STEPS} (a larger --step)")
    return counts


# --- the I/O edge --------------------------------------------------------------------------


def run_sweep(
    target: str,
    settings: LoadSettings,
    counts: Sequence[int],
    step_s: float,
    *,
    workers: int = 0,
    criteria: Criteria | None = None,
    stop_at_target: bool = False,
    steps_dir: str | None = None,
    run: Callable[..., dict[str, Any]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run each step (a closed loop of N users for `step_s` s) and return the sweep document.

    Stops after the step where the client saturated (no later step can judge the target), or with
    `stop_at_target` after the target saturated. With `steps_dir`, each step's whole result document
    and HTML report are kept there (step-01-100.json ...). `run` is `run_locust` unless a caller gives another.
    """
    run = run or run_locust
    if not step_s > 0:
        raise UsageError(f"sweep: --step-time must be positive, got {step_s!r}")
    criteria = criteria or Criteria()
    started = time.time()
    steps: list[Step] = []
    results: list[dict[str, Any]] = []
    for number, streams in enumerate(counts, 1):
        kept = Path(steps_dir) / f"step-{number:02d}-{streams}" if steps_dir else None
        step_settings = dataclasses.replace(settings, shape="closed", users=streams, rate=None, run_time_s=step_s,
                                            json_path=kept and str(kept.with_suffix(".json")),
                                            html_path=kept and str(kept.with_suffix(".html")), parts_dir=None,
                                            trace_dir=None)  # fmt: skip
        result = run(target, step_settings, workers, quiet=True)
        steps.append(Step.of_result(streams, result))
        results.append(result)
        judgement = judge(steps, criteria)
        if progress:
            progress(step_line(steps[-1], judgement.per_step[-1]))
        if judgement.client.reached or (stop_at_target and judgement.target.reached):
            break
    return sweep_document(target, settings, steps, results, judge(steps, criteria), criteria,
                          step_s=step_s, workers=workers, started_at=started, planned=list(counts))  # fmt: skip


def sweep_document(
    target: str,
    settings: LoadSettings,
    steps: Sequence[Step],
    results: Sequence[Mapping[str, Any]],
    judgement: Judgement,
    criteria: Criteria,
    *,
    step_s: float,
    workers: int,
    started_at: float,
    planned: Sequence[int],
) -> dict[str, Any]:
    """The sweep's JSON result: the run, the criteria, each step's figures (and its capacity), the findings."""
    rows = []
    for step, result, reasons in zip(steps, results, judgement.per_step, strict=True):
        rows.append({**step.to_dict(), "client_reasons": reasons["client"], "target_reasons": reasons["target"],
                     "capacity": result.get("capacity"), "run_id": result.get("run", {}).get("id")})  # fmt: skip
    tool = next((r.get("run", {}).get("tool") for r in results if r.get("run", {}).get("tool")), f"loadtests {VERSION}")
    return {
        "kind": KIND,
        "version": 1,
        "run": {
            "id": run_id(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)),
            "target": target,
            "profile": settings.profile,
            "workers": workers,
            "seed": settings.seed,
            "mock": settings.mock,
            "max_tokens": settings.max_tokens,
            "step_s": step_s,
            "planned_streams": list(planned),
            "tool": tool,
        },
        "criteria": dataclasses.asdict(criteria),
        "steps": rows,
        "findings": judgement.to_dict(),
    }


def step_line(step: Step, reasons: Mapping[str, list[str]]) -> str:
    """One step as a line of the command's output."""

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    cpu = "-" if step.cpu_max is None else f"{step.cpu_max:.0f}%"
    flags = [f"CLIENT: {'; '.join(reasons['client'])}"] if reasons["client"] else []
    flags += [f"TARGET: {'; '.join(reasons['target'])}"] if reasons["target"] else []
    return (f"{step.streams:6d} streams  {step.events_per_s:9,.0f} ev/s  CPU max {cpu:>4}  lag p90 "
            f"{ms(step.loop_lag_p90_ms)} ms  TTFT p50/p99 {ms(step.ttft_p50_ms)}/{ms(step.ttft_p99_ms)} ms  "
            f"ITL p50/p99 {ms(step.itl_p50_ms)}/{ms(step.itl_p99_ms)} ms  failed {step.failed}"
            + ("  " + " | ".join(flags) if flags else ""))  # fmt: skip


def sweep_summary(document: Mapping[str, Any]) -> str:
    findings = document["findings"]
    return "\n".join([findings["client"]["text"], findings["target"]["text"], "verdict: " + findings["verdict"]])
