"""The library on every contract profile of our own reference server: the harness's own proof.

`python -m scenarios reference`, the demo and the tests start the mock LLM and the reference
server (the harness's launchers, `mockllm.launcher` and `reference_server.launcher`) with short
timings, so the scenarios that wait (expiry, heartbeats, upstream timeout) fit the budget, and
run the whole library on each profile in `contracts.contract_profiles()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from contracts import contract_profiles, load_profile
from mockllm import ServerProcess, start_mock
from reference_server import start_reference
from reports import write_atomic, write_conformance

from ._credentials import Credentials
from ._junit import junit_xml
from ._results import RunResult
from ._runner import RunConfig, run
from ._scenarios import library

# Short timings, so the scenarios that wait (expiry, heartbeats, upstream timeout) fit the budget.
# One CORS origin allowed (the server's default is every origin), so a foreign one is refused.
REFERENCE_SETTINGS = {
    "heartbeat_s": "0.5", "session_ttl_s": "1.5", "upstream_timeout_s": "5", "cors_origin": "http://localhost:5173",
    "mock_exclusive": "true",  # the reference run's mock is its own (upstream-refused may take it down)
}  # fmt: skip
REFERENCE_SECRET = "reference-conformance-secret-0123456789abcdef"
# The reference server's flag for each conformance setting it is started with.
_FLAGS = {
    "heartbeat_s": "--heartbeat-s", "session_ttl_s": "--session-ttl-s", "upstream_timeout_s": "--llm-timeout-s",
    "cors_origin": "--cors-origin",
}  # fmt: skip


def start_reference_for(
    workdir: Path, mock_url: str, *, settings: Mapping[str, str] | None = None, extra: tuple[str, ...] = (),
    name: str = "reference",
) -> ServerProcess:  # fmt: skip
    """The reference server (every profile) against the mock at `mock_url`, with the conformance
    settings `REFERENCE_SETTINGS` (and `settings` over them) as its flags, its SQLite file in `workdir`."""
    chosen = {**REFERENCE_SETTINGS, **(settings or {})}
    flags = [flag for key, option in _FLAGS.items() for flag in (option, chosen[key])]  # mock_exclusive: no flag
    database = f"sqlite+aiosqlite:///{workdir}/{name}.sqlite3"
    return start_reference(f"{mock_url}/v1", "--jwt-secret", REFERENCE_SECRET, *flags, "--database-url", database,
                           *extra, log=workdir / f"{name}_server.log")  # fmt: skip


def reference_config(mock_url: str, target: str, profile: str) -> RunConfig:
    """The whole library on one profile of a reference server started with `REFERENCE_SETTINGS`."""
    return RunConfig(
        target=target,
        profile=load_profile(profile),
        mock=mock_url,
        scenarios=library(),
        settings=REFERENCE_SETTINGS,
        credentials=Credentials(secret=REFERENCE_SECRET),
    )


@contextlib.contextmanager
def mock_and_reference(workdir: Path | None = None) -> Iterator[tuple[str, str]]:
    """(mock URL, reference server URL), both running until the block ends."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="conformance-")))
        mock = stack.enter_context(start_mock(log=workdir / "mockllm.log"))
        reference = stack.enter_context(start_reference_for(workdir, mock.url))
        yield mock.url, reference.url


def write_run(result: RunResult, out: Path, name: str) -> None:
    """A run's JSON result, JUnit XML and HTML report, as `out/NAME.{json,xml,html}`."""
    write_atomic(out / f"{name}.json", json.dumps(result.to_dict(), indent=1))
    write_atomic(out / f"{name}.xml", junit_xml(result))
    write_conformance(result.to_dict(), out / f"{name}.html")


def conform_reference(mock: str, target: str, out: Path) -> Iterator[RunResult]:
    """Run the library on each contract profile of a running reference server in turn, write the
    run's reports to `out`, and yield its result (so a caller can say how it went as it goes)."""
    for name in contract_profiles():
        result = asyncio.run(run(reference_config(mock, target, name)))
        write_run(result, out, name)
        yield result
