"""Scenarios as pytest items, for teams that run everything through pytest.

    pytest --conformance-target http://127.0.0.1:3000 --conformance-profile sessions \\
           --conformance-mock http://127.0.0.1:8000 --conformance-library

collects the built-in library (and any scenario YAML under the paths given) as one item per
scenario: a MUST failure fails the item, a scenario the profile cannot run is skipped, SHOULD
failures are reported as warnings. Without `--conformance-target` the plugin does nothing.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts import SpecError, load_profile

from ._credentials import Credentials
from ._runner import RunConfig, run
from ._scenarios import LIBRARY_DIR, Scenario, load_scenario


class ConformanceWarning(UserWarning):
    """A SHOULD check failed."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "chat/SSE contract conformance (scenarios)")
    group.addoption("--conformance-target", help="base URL of the implementation under test")
    group.addoption("--conformance-profile", help="built-in profile name or profile file")
    group.addoption("--conformance-mock", help="base URL of the mock LLM the implementation calls")
    group.addoption("--conformance-jwt-secret", help="the implementation's JWT secret")
    group.addoption("--conformance-setting", action="append", default=[], metavar="NAME=VALUE")
    group.addoption("--conformance-library", action="store_true", help="collect the built-in scenario library")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--conformance-target") and config.getoption("--conformance-library"):
        config.args.append(str(LIBRARY_DIR))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != ".yaml" or not parent.config.getoption("--conformance-target"):
        return None
    try:
        load_scenario(file_path)
    except SpecError:
        return None  # not a scenario file: some other YAML
    return ScenarioFile.from_parent(parent, path=file_path)


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        scenario = load_scenario(self.path)
        yield ScenarioItem.from_parent(self, name=scenario.name, scenario=scenario)


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: Scenario, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario

    def runtest(self) -> None:
        option = self.config.getoption
        settings = dict(item.split("=", 1) for item in option("--conformance-setting"))
        config = RunConfig(
            target=option("--conformance-target").rstrip("/"),
            profile=load_profile(option("--conformance-profile") or "sessions"),
            mock=(option("--conformance-mock") or "").rstrip("/"),
            scenarios=[self.scenario],
            settings=settings,
            credentials=Credentials(secret=option("--conformance-jwt-secret")),
        )
        result = asyncio.run(run(config)).scenarios[0]
        if result.verdict in ("not_applicable", "not_checked"):
            pytest.skip(result.reason)
        if result.verdict == "error":
            raise ScenarioFailure(f"the scenario could not run: {result.reason}")
        for check in result.checks:
            if check.verdict == "failed" and check.level == "SHOULD":
                warnings.warn(ConformanceWarning(f"{check.check}: {check.message}"), stacklevel=1)
        failures = [c for c in result.checks if c.verdict == "failed" and c.level == "MUST"]
        if failures:
            raise ScenarioFailure(
                "\n".join(f"{c.check} (step {c.step}, event {c.event}): {c.message}" for c in failures)
            )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ScenarioFailure):
            return f"{self.scenario.name}: {self.scenario.summary}\n{excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"scenario: {self.scenario.name}"


class ScenarioFailure(AssertionError):
    """MUST checks failed; the message lists them."""
