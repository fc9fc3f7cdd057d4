"""What the mock achieved, TTFT, ITL and lateness against the plan: per response for the journal,
summed in Prometheus histograms.

Taken once per finished response from its write times, never on the per-token path. A thousand
streams end within a few milliseconds of each other while others still write their last tokens,
so at the end of a response only its `Achieved` record is kept: the journal renders it when read,
and the histograms take it in later, when the server falls idle or is asked for its metrics (or,
under a load that never pauses, a few at a time once a backlog has built up).
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5,
                    0.75, 1.0, 2.5, 5.0, 10.0, 30.0)  # fmt: skip
_LATENESS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)
BACKLOG = 1_000  # responses the histograms may lag behind: a burst's worth


@dataclass(frozen=True, slots=True)
class Achieved:
    """The timing one response achieved, from when each of its writes went out."""

    arrival: float  # perf_counter() when the request was read
    sent: Sequence[float]  # when each write went out (fewer than planned if the client left)
    offsets: Sequence[float]  # when each write was due, in seconds after arrival
    content: Sequence[int]  # answer chunks carried by each write
    finished: float  # perf_counter() when the response was over

    def content_times(self) -> list[float]:
        """When each answer chunk went out."""
        sent = self.sent
        content = self.content[: len(sent)]
        if max(content, default=0) <= 1:
            return list(itertools.compress(sent, content))
        # writes that carried several chunks (coalesced): one time per chunk
        return [at for at, count in zip(sent, content, strict=False) for _ in range(count)]

    def lateness(self) -> Iterable[float]:
        """How late each write went out against its deadline."""
        return map(operator.sub, self.sent, map(self.arrival.__add__, self.offsets))

    def to_journal(self) -> dict[str, Any]:
        times = self.content_times()
        late = list(self.lateness())
        return {
            "ttft_ms": (times[0] - self.arrival) * 1000.0 if times else None,
            "itl_ms": [gap * 1000.0 for gap in _gaps(times)],
            "writes": len(self.sent),
            "max_late_ms": max(late) * 1000.0 if late else None,
            "duration_ms": (self.finished - self.arrival) * 1000.0,
            # The monotonic clock is system-wide: a client on this machine can pair its own reads with these.
            "arrival_s": self.arrival,
            "first_token_s": times[0] if times else None,
        }


def _gaps(times: Sequence[float]) -> Iterable[float]:
    return map(operator.sub, times[1:], times)


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        self.name = name
        self.help = help_text
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe_many(self, values: Iterable[float]) -> None:
        """Bucket a response's values at once: a bisect per bucket bound, not one per value."""
        ordered = sorted(values)
        if not ordered:
            return
        below = 0
        for i, bound in enumerate(self.buckets):
            upto = bisect.bisect_right(ordered, bound)  # Prometheus buckets are `le`: inclusive
            self.counts[i] += upto - below
            below = upto
        self.counts[-1] += len(ordered) - below
        self.total += sum(ordered)
        self.count += len(ordered)

    def state(self) -> list[Any]:
        """The counts as JSON-ready data, to be summed with another process's (`add_state`)."""
        return [self.counts, self.total, self.count]

    def add_state(self, state: list[Any]) -> None:
        counts, total, count = state
        self.counts = [mine + theirs for mine, theirs in zip(self.counts, counts, strict=True)]
        self.total += total
        self.count += count

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
        self._backlog: deque[Achieved] = deque()

    def record(self, dialect: str, outcome: str, achieved: Achieved | None = None) -> None:
        """One finished response (`achieved` is None when nothing was planned: a rejected request)."""
        self.requests[(dialect, outcome)] += 1
        if achieved is None:
            return
        self._backlog.append(achieved)
        if len(self._backlog) > BACKLOG:
            self._observe(self._backlog.popleft())
            self._observe(self._backlog.popleft())  # two for one, so a backlog drains under load

    def catch_up(self) -> None:
        """Take every pending response into the histograms."""
        backlog = self._backlog
        while backlog:
            self._observe(backlog.popleft())

    def _observe(self, achieved: Achieved) -> None:
        times = achieved.content_times()
        if times:
            self.ttft.observe_many((times[0] - achieved.arrival,))
        self.itl.observe_many(_gaps(times))
        self.lateness.observe_many(achieved.lateness())

    def state(self) -> dict[str, Any]:
        """Everything counted so far as JSON-ready data: the workers of one mock each send theirs,
        and `/metrics` renders their sum (`merged`)."""
        self.catch_up()
        return {
            "requests": [[dialect, outcome, count] for (dialect, outcome), count in self.requests.items()],
            "histograms": [h.state() for h in (self.ttft, self.itl, self.lateness)],
        }

    @classmethod
    def merged(cls, states: Iterable[dict[str, Any]]) -> Metrics:
        """The sum of several processes' `state()`."""
        total = cls()
        for state in states:
            for dialect, outcome, count in state["requests"]:
                total.requests[(dialect, outcome)] += count
            for histogram, counted in zip((total.ttft, total.itl, total.lateness), state["histograms"], strict=True):
                histogram.add_state(counted)
        return total

    def render(self, active_streams: int, refusing_s: float = 0.0, refusal_windows: int = 0) -> str:
        """The Prometheus text; `refusing_s` and `refusal_windows` are the listener's (see `refuse`)."""
        self.catch_up()
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
        lines += [
            "# HELP mockllm_refusal_windows_total Times the listener stopped accepting connections (refuse).",
            "# TYPE mockllm_refusal_windows_total counter",
            f"mockllm_refusal_windows_total {refusal_windows}",
            "# HELP mockllm_refusing_seconds Seconds left before the listener accepts connections again.",
            "# TYPE mockllm_refusing_seconds gauge",
            f"mockllm_refusing_seconds {refusing_s:.3f}",
        ]
        for histogram in (self.ttft, self.itl, self.lateness):
            lines += histogram.render()
        return "\n".join(lines) + "\n"
