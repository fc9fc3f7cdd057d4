"""scenarios — the conformance suite: YAML scenarios run against any implementation of a contract.

A scenario is written once against abstract operations (`open`, `stream`, `send`, `history` …);
the contract profile (`contracts`) says what they are on one API. The runner sends the calls,
reads each stream read by read with a strict WHATWG event-stream decoder, and judges what it read
with the checks of the catalogue (`contracts.CATALOG`) — and against the mock LLM's journal: the
exact text the LLM sent, the turns it was sent, no call on a cache hit, the call cancelled when
the client left. `python -m scenarios` is the command line; `run(RunConfig(...))` the same from
code; `scenarios.pytest_plugin` runs scenarios as pytest items.
"""

from ._checks import CHECKS
from ._console import conformant, print_progress, print_summary
from ._credentials import Credentials, Identity
from ._errors import UsageError
from ._junit import junit_xml
from ._reference_run import (
    REFERENCE_SECRET,
    REFERENCE_SETTINGS,
    conform_reference,
    mock_and_reference,
    reference_config,
    start_reference_for,
    write_run,
)
from ._results import CheckResult, Exchange, RunResult, ScenarioResult, StreamEvent, StreamRecord
from ._run_settings import SettingRow, describe_settings, setting_rows
from ._runner import RunConfig, run
from ._scenarios import LIBRARY_DIR, Scenario, library, load_scenario, load_scenarios, parse_scenario
from ._sse_decoder import Read, SSEComment, SSEDecoder, SSEEvent, WireIssue, parse_stream

__all__ = [
    "CHECKS",
    "LIBRARY_DIR",
    "REFERENCE_SECRET",
    "REFERENCE_SETTINGS",
    "CheckResult",
    "Credentials",
    "Exchange",
    "Identity",
    "Read",
    "RunConfig",
    "RunResult",
    "SSEComment",
    "SSEDecoder",
    "SSEEvent",
    "Scenario",
    "ScenarioResult",
    "SettingRow",
    "StreamEvent",
    "StreamRecord",
    "UsageError",
    "WireIssue",
    "conform_reference",
    "conformant",
    "describe_settings",
    "junit_xml",
    "library",
    "load_scenario",
    "load_scenarios",
    "mock_and_reference",
    "parse_scenario",
    "parse_stream",
    "print_progress",
    "print_summary",
    "reference_config",
    "run",
    "setting_rows",
    "start_reference_for",
    "write_run",
]
