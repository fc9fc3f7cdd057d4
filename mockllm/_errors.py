"""The mock's error types: each names the thing that is wrong, so a user can fix it."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is wrong; `key` is its dotted path, e.g. `timing.ttft_ms.dist`."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config key {key!r}: {problem}")
        self.key = key
        self.problem = problem


class RequestError(ValueError):
    """A request is wrong; `param` is the body field (or header) at fault, as OpenAI names it."""

    def __init__(self, param: str | None, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.message = message
        self.status = status


class ContractError(ValueError):
    """A contract profile the mock cannot serve as an upstream; the message names the profile and why."""

    def __init__(self, profile: str, problem: str) -> None:
        super().__init__(f"contract profile {profile!r}: {problem}")
        self.profile = profile
        self.problem = problem
