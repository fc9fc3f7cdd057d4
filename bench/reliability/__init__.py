"""The reliability suite: the servers under abuse, judged from outside (`python -m bench.reliability`).

Six scenarios, each a module with a pure part (what to measure, how to judge it) and an I/O part
(servers, sockets): `abort_storm`, `slow_reader`, `idle_connections`, `malformed`, `kill9`, `auth`.
Each `run(sizes)` returns an `Outcome` (a table and judged properties); `FULL` sizes are for
`nox -s reliability`, `SHORT` for CI (tests/test_reliability_short.py). Loopback only, every loop
bounded in count and in time.
"""

from ._common import FULL, SHORT, Outcome, Property, Sizes, render

__all__ = ["FULL", "SHORT", "Outcome", "Property", "Sizes", "render"]
