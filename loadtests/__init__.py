"""loadtests — Locust load profiles for chat/SSE backends and the mock's LLM dialects.

A load run drives many concurrent streams of one profile (any contract profile of `contracts`, or
a mock dialect's load profile) in a shape (closed or open loop, ramp, spike, soak, sweep), times
every network read, and reports TTFT, ITL, TPOT, E2E, throughput and goodput per stream, each
stream also checked against its profile's grammar while under load; the figures merge exactly
across Locust workers. `python -m loadtests` is the command line; `run_locust` the same from code;
`measure` the accuracy self-test against a mock of known timing.
"""

from ._config import LoadSettings, UsageError, build_result, builtin_profiles, resolve_profile
from ._http import ResponseParser
from ._measure import StreamMeter, StreamRules
from ._reactor import clock, reactor
from ._runner import loopback_only, run_locust, summary
from ._selftest import measure, pair_errors

__all__ = [
    "LoadSettings",
    "ResponseParser",
    "StreamMeter",
    "StreamRules",
    "UsageError",
    "build_result",
    "builtin_profiles",
    "clock",
    "loopback_only",
    "measure",
    "pair_errors",
    "reactor",
    "resolve_profile",
    "run_locust",
    "summary",
]
