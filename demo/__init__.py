"""demo — the whole harness on embedded defaults: `python -m demo` (nox -s demo).

It starts the mock LLM and the reference server on loopback, runs the conformance library on
every contract profile, then a 30-second load test of one profile over a mock with realistic
token timing, writes every report and an index page linking them, and prints where the index is.
It sits above every other package: it only composes their public names.
"""
