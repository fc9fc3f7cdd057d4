"""`python -m scenarios probe`: the pre-flight tells a wrong base URL, refused credentials and an LLM
client that does not call this mock apart, against the real reference server and real mocks."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts import load_profile
from mockllm import start_mock
from scenarios import REFERENCE_SECRET, Credentials, RunConfig, start_reference_for
from scenarios._probe import ProbeReport, probe


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """(the mock the reference server calls, a mock nobody calls, the reference server)."""
    with (
        start_mock(seed=2, ttft_ms=5, itl_ms=2) as mock,
        start_mock(seed=2) as idle,
        start_reference_for(tmp_path_factory.mktemp("probe"), mock.url) as reference,
    ):
        yield mock.url, idle.url, reference.url


def _probe(target: str, mock: str, profile: str, secret: str | None = None) -> ProbeReport:
    config = RunConfig(target, load_profile(profile), mock, [], credentials=Credentials(secret=secret))
    return asyncio.run(probe(config, profile))


def _topics(report: ProbeReport) -> dict[str, bool | None]:
    return {f.topic: f.ok for f in report.findings if f.ok is not None}


def test_a_backend_ready_for_a_run_passes_and_gets_its_command(servers: tuple[str, str, str]) -> None:
    mock, _, reference = servers
    report = _probe(reference, mock, "conversations", REFERENCE_SECRET)
    assert report.ok and _topics(report) == {"routes": True, "auth": True, "llm": True, "stream": True}
    assert f"--target {reference}" in report.command and "--setting malformed_id_status=400" in report.command


def test_refused_credentials_are_named(servers: tuple[str, str, str]) -> None:
    mock, _, reference = servers
    report = _probe(reference, mock, "conversations", "not-the-secret")
    assert not report.ok and _topics(report)["auth"] is False
    assert "llm" not in _topics(report)  # nothing was streamed, so nothing is said of the LLM


def test_an_llm_client_pointed_elsewhere_is_named(servers: tuple[str, str, str]) -> None:
    _, idle, reference = servers
    report = _probe(reference, idle, "sessions")
    assert not report.ok and _topics(report)["llm"] is False
    assert f"{idle}/v1" in next(f.text for f in report.findings if f.topic == "llm")


def test_the_cli_names_a_wrong_base_url(servers: tuple[str, str, str]) -> None:
    mock, _, reference = servers
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "scenarios",
            "probe",
            "--target",
            f"{reference}/v2",
            "--mock",
            mock,
            "--profile",
            "sessions",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FIX  routes  POST " in done.stdout and "/v2/api/chat/stream answered 404" in done.stdout
