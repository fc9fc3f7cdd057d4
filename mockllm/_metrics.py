"""Prometheus metrics of what the mock achieved: TTFT, ITL and lateness against the plan.

Updated once per finished response from its write times, never on the per-token path.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5,
                    0.75, 1.0, 2.5, 5.0, 10.0, 30.0)  # fmt: skip
_LATENESS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.help = help_text
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe_many(self, values: Sequence[float]) -> None:
        """Bucket a response's values at once: a bisect per bucket bound, not one per value."""
        if not values:
            return
        ordered = sorted(values)
        below = 0
        for i, bound in enumerate(self.buckets):
            upto = bisect.bisect_right(ordered, bound)  # Prometheus buckets are `le`: inclusive
            self.counts[i] += upto - below
            below = upto
        self.counts[-1] += len(ordered) - below
        self.total += sum(ordered)
        self.count += len(ordered)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        cumulative = 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            cumulative += count
            lines.append(f'{self.name}_bucket{{le="{bound}"}} {cumulative}')
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{self.name}_sum {self.total:.6f}")
        lines.append(f"{self.name}_count {self.count}")
        return lines


class Metrics:
    def __init__(self) -> None:
        self.ttft = Histogram("mockllm_ttft_seconds", "Achieved time to first token.", _LATENCY_BUCKETS)
        self.itl = Histogram("mockllm_itl_seconds", "Achieved gap between content writes.", _LATENCY_BUCKETS)
        self.lateness = Histogram(
            "mockllm_write_lateness_seconds",
            "How late each write went out against its deadline.",
            _LATENESS_BUCKETS,
        )
        self.requests: Counter[tuple[str, str]] = Counter()

    def record(
        self,
        dialect: str,
        outcome: str,
        ttft: float | None,
        itl: Sequence[float],
        late: Sequence[float],
    ) -> None:
        self.requests[(dialect, outcome)] += 1
        if ttft is not None:
            self.ttft.observe_many((ttft,))
        self.itl.observe_many(itl)
        self.lateness.observe_many(late)

    def render(self, active_streams: int) -> str:
        lines = [
            "# HELP mockllm_requests_total Requests by dialect and outcome.",
            "# TYPE mockllm_requests_total counter",
        ]
        for (dialect, outcome), count in sorted(self.requests.items()):
            lines.append(f'mockllm_requests_total{{dialect="{dialect}",outcome="{outcome}"}} {count}')
        lines += [
            "# HELP mockllm_active_streams Responses in progress.",
            "# TYPE mockllm_active_streams gauge",
        ]
        lines.append(f"mockllm_active_streams {active_streams}")
        for histogram in (self.ttft, self.itl, self.lateness):
            lines += histogram.render()
        return "\n".join(lines) + "\n"
