"""Realistic synthetic load-run documents (the `loadtests` → `reports` contract) for the report tests.

`load_run()` simulates a closed-loop run of streaming requests from a seeded generator: per-request TTFT,
token gaps, TPOT and E2E, summarised as the writer does (exact count/min/mean/max, percentiles),
bucketed into distributions, and counted per second into a timeline. `slowdown` stretches every
latency and `speedup` the throughput, so two runs can be compared.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}


def summary(samples: Sequence[float]) -> dict[str, Any]:
    """count/min/mean/max and nearest-rank percentiles, to the microsecond (as the result document has them)."""
    if not samples:
        return {"count": 0, "min": None, "mean": None, "max": None, **dict.fromkeys(PERCENTILES)}
    ordered = sorted(samples)
    out: dict[str, Any] = {
        "count": len(ordered),
        "min": round(ordered[0], 3),
        "mean": round(sum(ordered) / len(ordered), 3),
        "max": round(ordered[-1], 3),
    }
    for name, p in PERCENTILES.items():
        out[name] = round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 3)
    return out


def buckets(samples: Sequence[float], width: float) -> list[list[float]]:
    """[lower, upper, count] for each non-empty bucket of `width` ms (an empty bucket is left out)."""
    counts: dict[int, int] = {}
    for value in samples:
        counts[int(value // width)] = counts.get(int(value // width), 0) + 1
    return [[round(k * width, 3), round((k + 1) * width, 3), n] for k, n in sorted(counts.items())]


def load_run(
    *,
    seed: int = 1,
    slowdown: float = 1.0,
    speedup: float = 1.0,
    requests: int = 600,
    failed: int = 10,
    duration_s: float = 30.0,
    valid: bool = True,
    slo: dict[str, float] | None = None,
    itl: bool = True,
    timeline: bool = True,
) -> dict[str, Any]:
    rng = random.Random(seed)
    slo = {"ttft_ms": 260.0, "tpot_ms": 25.0, "e2e_ms": 30000.0} if slo is None else slo
    completed = requests - failed
    per_request: list[dict[str, Any]] = []
    gaps_pooled: list[float] = []
    for i in range(completed):
        ttft = (200.0 + rng.expovariate(1 / 15.0)) * slowdown
        tokens = rng.randint(40, 120) if itl else 1
        gaps = [(18.0 + rng.gammavariate(2.0, 1.5)) * slowdown for _ in range(tokens - 1)]
        if i % 97 == 0 and gaps:
            gaps[len(gaps) // 2] += 250.0 * slowdown  # an occasional stall
        gaps_pooled += gaps
        e2e = ttft + sum(gaps)
        start = rng.uniform(0, duration_s - e2e / 1000) if e2e / 1000 < duration_s else 0.0
        per_request.append(
            {
                "start": start,
                "ttft": ttft,
                "tokens": tokens,
                "tpot": sum(gaps) / (tokens - 1) if tokens > 1 else None,
                "e2e": e2e,
                "close": e2e + rng.uniform(0.2, 1.5),
                "headers": ttft * rng.uniform(0.2, 0.4),
                "first_event": ttft * rng.uniform(0.5, 0.9),
            }
        )
    good = sum(
        r["ttft"] <= slo.get("ttft_ms", math.inf)
        and (r["tpot"] or 0) <= slo.get("tpot_ms", math.inf)
        and r["e2e"] <= slo.get("e2e_ms", math.inf)
        for r in per_request
    )
    total_tokens = sum(r["tokens"] for r in per_request)
    window = duration_s / speedup

    def metric(name: str) -> list[float]:
        return [r[name] for r in per_request if r[name] is not None]

    rows = []
    seconds = max(1, int(window))
    if timeline:
        for t in range(seconds):
            ending = [r for r in per_request if t <= r["start"] / speedup + r["e2e"] / 1000 < t + 1]
            rows.append(
                {
                    "t": t,
                    "started": sum(t <= r["start"] / speedup < t + 1 for r in per_request),
                    "completed": len(ending),
                    "failed": failed // seconds + (1 if t < failed % seconds else 0),
                    "tokens": sum(r["tokens"] for r in ending),
                    "active": sum(
                        r["start"] / speedup <= t + 1 and r["start"] / speedup + r["e2e"] / 1000 > t
                        for r in per_request
                    ),
                }
            )
    errors = []
    if failed:
        errors = [
            {"kind": "http-500", "count": failed - failed // 3, "example": "POST /api/chat/stream -> 500"},
            {"kind": "grammar", "count": failed // 3, "example": "event 4 'content' after the terminal 'done'"},
        ]
        errors = [e for e in errors if e["count"]]
    return {
        "kind": "load-run",
        "version": 1,
        "run": {
            "id": f"20261122-101500-{seed:04x}",
            "started_at": "2026-11-22T10:15:00Z",
            "duration_s": window,
            "target": "http://127.0.0.1:8100",
            "profile": "sessions",
            "shape": {"name": "closed", "kind": "closed", "params": {"users": 50, "spawn_rate": 50}},
            "workers": 1,
            "seed": seed,
            "mock": "http://127.0.0.1:8000",
            "tool": "loadtests 0.1 (locust 2.47.0)",
            "slo": slo,
        },
        "validity": {
            "valid": valid,
            "reasons": [] if valid else ["client CPU reached 97% (limit 90%)"],
            "client_cpu_percent": {"mean": 35.2, "max": 61.0 if valid else 97.0},
            "loop_lag_ms": {"p50": 0.12, "p99": 2.3, "max": 8.1},
        },
        "totals": {
            "requests": requests,
            "completed": completed,
            "failed": failed,
            "good": good,
            "late": 0,
            "dropped": 0,
            "tokens": total_tokens,
            "events": total_tokens + completed,
            "text_checked": completed // 10,
            "text_mismatch": 0,
            "usage_mismatch": 0,
            "request_rate": round(completed / window, 3),
            "token_rate": round(total_tokens / window, 3),
            "goodput": round(good / window, 3),
        },
        "metrics": {
            "ttft_ms": summary(metric("ttft")),
            "itl_ms": summary(gaps_pooled),
            "tpot_ms": summary(metric("tpot")),
            "e2e_ms": summary(metric("e2e")),
            "e2e_close_ms": summary(metric("close")),
            "headers_ms": summary(metric("headers")),
            "first_event_ms": summary(metric("first_event")),
            "schedule_lag_ms": summary([rng.uniform(0.01, 0.4) for _ in per_request]),
            "output_tokens": summary([float(r["tokens"]) for r in per_request]),
        },
        "distributions": {"ttft_ms": buckets(metric("ttft"), 2.0), "itl_ms": buckets(gaps_pooled, 1.0)},
        "timeline": rows,
        "errors": errors,
    }
