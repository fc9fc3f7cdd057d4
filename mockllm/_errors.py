"""The mock's error types: each names the thing that is wrong, so a user can fix it."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is wrong; `key` is its dotted path, e.g. `timing.ttft_ms.dist`."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config key {key!r}: {problem}")
        self.key = key
        self.problem = problem


class RequestError(ValueError):
    """A request is wrong; `param` is the body field (or header) at fault, as OpenAI names it.
    `check` names the provider's rule a request broke when the mock checks it as the provider does
    (e.g. `anthropic.tool-result-without-tool-use`): the journal records it, so a run can say which
    request the real API would have refused, and why."""

    def __init__(self, param: str | None, message: str, *, status: int = 400, check: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.message = message
        self.status = status
        self.check = check


class ContractError(ValueError):
    """A contract profile the mock cannot serve as an upstream; the message names the profile and why."""

    def __init__(self, profile: str, problem: str) -> None:
        super().__init__(f"contract profile {profile!r}: {problem}")
        self.profile = profile
        self.problem = problem
