"""Sessions: `nox -s demo` (the main job), `nox -s tests`, `nox -s lint`, `nox -s conformance`, `nox -s bench`."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

PYTHON = "3.11"


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Serve the mock LLM and stream one answer through it."""
    session.install("-e", ".")
    session.run("python", "-m", "mockllm", "demo", *session.posargs)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite against real servers on loopback ports."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "pytest", *session.posargs)


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
def bench(session: nox.Session) -> None:
    """Throughput and timing fidelity of the mock beside raw-asyncio baselines (prints figures)."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "bench.bench_mockllm", *session.posargs)
