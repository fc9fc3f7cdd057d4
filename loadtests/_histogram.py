"""A log-linear (HDR-style) histogram of non-negative integers, merged exactly by adding counts.

Latencies are recorded in microseconds. Values below 2048 get a bucket each; above, every power
of two is cut into 1024 buckets, so a bucket is never wider than 1/1024 of its values: three
significant digits (a 50 ms gap is stored within 49 µs). Counts, sum, min and max are exact, and
two histograms merge by adding counts bucket by bucket, so a figure merged across Locust workers
is the figure one process would have measured. Pure: no I/O, no clocks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

SUB_BUCKET_BITS = 11
_LINEAR = 1 << SUB_BUCKET_BITS  # values below this are exact
_HALF = _LINEAR >> 1
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


def bucket_of(value: int) -> int:
    """The bucket index of a non-negative integer."""
    if value < _LINEAR:
        return value
    shift = value.bit_length() - SUB_BUCKET_BITS
    return _LINEAR + (shift - 1) * _HALF + ((value >> shift) - _HALF)


def bucket_bounds(index: int) -> tuple[int, int]:
    """The lowest and highest value of a bucket (inclusive)."""
    if index < _LINEAR:
        return index, index
    shift, offset = divmod(index - _LINEAR, _HALF)
    shift += 1
    low = (_HALF + offset) << shift
    return low, low + (1 << shift) - 1


class Histogram:
    """Counts of values by bucket, with the exact count, sum, min and max beside them."""

    __slots__ = ("count", "counts", "max", "min", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.total = 0
        self.min: int | None = None
        self.max: int | None = None

    def record(self, value: int) -> None:
        if value < 0:
            value = 0
        index = value if value < _LINEAR else bucket_of(value)
        counts = self.counts
        counts[index] = counts.get(index, 0) + 1
        self.count += 1
        self.total += value
        if self.min is None or value < self.min:
            self.min = value
        if self.max is None or value > self.max:
            self.max = value

    def record_many(self, values: Iterable[int]) -> None:
        """`record` for each value, with the count, sum, min and max updated once (a stream's gaps)."""
        kept = [value if value > 0 else 0 for value in values]
        if not kept:
            return
        counts = self.counts
        get = counts.get
        for value in kept:
            index = value if value < _LINEAR else bucket_of(value)
            counts[index] = get(index, 0) + 1
        self.count += len(kept)
        self.total += sum(kept)
        low, high = min(kept), max(kept)
        if self.min is None or low < self.min:
            self.min = low
        if self.max is None or high > self.max:
            self.max = high

    def merge(self, other: Histogram) -> None:
        counts = self.counts
        for index, n in other.counts.items():
            counts[index] = counts.get(index, 0) + n
        self.count += other.count
        self.total += other.total
        if other.min is not None and (self.min is None or other.min < self.min):
            self.min = other.min
        if other.max is not None and (self.max is None or other.max > self.max):
            self.max = other.max

    def __bool__(self) -> bool:
        return self.count > 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Histogram) and self.to_dict() == other.to_dict()

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def percentile(self, q: float) -> float | None:
        """The value at or below which q percent of the recorded values lie (nearest rank).

        A bucket's value is its midpoint, clamped to the exact min and max, so the 0th and 100th
        percentiles are exact and no other is off by more than half a bucket.
        """
        if not self.count:
            return None
        rank = max(1, math.ceil(q / 100.0 * self.count))
        if rank == 1:
            return float(self.min)  # type: ignore[arg-type]
        if rank >= self.count:
            return float(self.max)  # type: ignore[arg-type]
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                low, high = bucket_bounds(index)
                return min(max((low + high) / 2, self.min), self.max)  # type: ignore[type-var]
        return float(self.max)  # type: ignore[arg-type]

    def summary(self, scale: float = 1.0) -> dict[str, float | int | None]:
        """count, min, mean, max and the standard percentiles, each divided by `scale`."""
        if not self.count:
            return {"count": 0, "min": None, "mean": None, "max": None, **{_label(q): None for q in PERCENTILES}}
        out: dict[str, float | int | None] = {
            "count": self.count,
            "min": _scaled(self.min, scale),
            "mean": _scaled(self.mean, scale),
            "max": _scaled(self.max, scale),
        }
        for q in PERCENTILES:
            out[_label(q)] = _scaled(self.percentile(q), scale)
        return out

    def bars(self, scale: float = 1.0, max_bars: int = 60) -> list[list[float]]:
        """[low, high, count] rows for a chart: buckets coarsened to at most `max_bars` equal-width bars."""
        if not self.count:
            return []
        low, high = self.min, self.max
        assert low is not None and high is not None
        width = max(1, math.ceil((high - low + 1) / max_bars))
        rows: dict[int, int] = {}
        for index, n in self.counts.items():
            first, last = bucket_bounds(index)
            middle = min(max((first + last) // 2, low), high)
            bar = (middle - low) // width
            rows[bar] = rows.get(bar, 0) + n
        return [
            [_scaled(low + bar * width, scale), _scaled(low + (bar + 1) * width, scale), rows[bar]]  # type: ignore[list-item]
            for bar in sorted(rows)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": {str(k): v for k, v in sorted(self.counts.items())},
            "count": self.count,
            "total": self.total,
            "min": self.min,
            "max": self.max,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Histogram:
        hist = cls()
        hist.counts = {int(k): int(v) for k, v in data["counts"].items()}
        hist.count = int(data["count"])
        hist.total = int(data["total"])
        hist.min = data["min"]
        hist.max = data["max"]
        return hist


def _label(q: float) -> str:
    return f"p{q:g}"


def _scaled(value: float | int | None, scale: float) -> float | None:
    return None if value is None else round(value / scale, 6)
