"""Sessions: `nox -s demo` (the main job), `tests`, `lint`, `conformance`, `load`, `report`, `bench`."""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

PYTHON = "3.11"


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Mock + reference server, conformance on all five profiles, a 30 s load test; reports in reports-out/."""
    session.install("-e", ".")
    session.run("python", "-m", "demo", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite against real servers on loopback ports, in parallel processes (pytest-xdist).

    Most of its time is waiting (a stall waited out, an expiry, a heartbeat), not computing, so it
    runs one process more than the machine has cores; `--dist loadfile` keeps a module's servers and
    its tests in one process. `nox -s tests -- -n 0 ...` runs in one process."""
    session.install("-e", ".[dev]")
    workers = str(max(3, (os.cpu_count() or 1) + 1))
    session.run("python", "-m", "pytest", "-n", workers, "--dist", "loadfile", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def conformance(session: nox.Session) -> None:
    """The scenario library on all five profiles of the reference server; reports in reports-out/conformance."""
    session.install("-e", ".")
    session.run("python", "-m", "scenarios", "reference", *session.posargs)


@nox.session(python=PYTHON)
def load(session: nox.Session) -> None:
    """`nox -s load -- run --target URL --profile P ...`; with no arguments, the accuracy self-test."""
    session.install("-e", ".")
    session.run("python", "-m", "loadtests", *(session.posargs or ["selftest"]))


@nox.session(python=PYTHON)
def report(session: nox.Session) -> None:
    """Render every result under reports-out/ (or the folder given) and its index page."""
    session.install("-e", ".")
    session.run("python", "-m", "reports", "index", *(session.posargs or ["reports-out"]))


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Throughput and timing fidelity of the mock and of the load client (prints figures)."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "bench.bench_mockllm", *session.posargs)


@nox.session(python=PYTHON)
def fuzz(session: nox.Session) -> None:
    """Schemathesis on the reference server's OpenAPI schema, deeper than CI: 200 examples per
    operation and up to 5 minutes, stateful phase along the schema's links (the same test and checks
    as tests/reference_server/test_ref_openapi.py; `REFSERVER_FUZZ_SEED=N` for another seed)."""
    session.install("-e", ".[dev]")
    env = {"REFSERVER_FUZZ_EXAMPLES": "200", "REFSERVER_FUZZ_MAX_TIME": "300"}
    test = "tests/reference_server/test_ref_openapi.py::test_schemathesis_finds_no_disagreement"
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", "-s", test, *session.posargs, env=env)


@nox.session(python=PYTHON)
def reliability(session: nox.Session) -> None:
    """Abort storm, slow reader, idle connections, malformed HTTP, kill -9, auth (loopback, < 5 min;
    `-- --short` for the CI sizes); prints one table per scenario and a verdict, exit 1 on a failure."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "bench.reliability", *session.posargs)
