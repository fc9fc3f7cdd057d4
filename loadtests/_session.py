"""A simulated user's conversation with an implementation, turn by turn, through a contract profile.

The profile (the conformance suite's YAML) says which requests a turn takes: one streamed POST, or a
POST that prepares a stream and a GET that opens it; which call opens a conversation first; what
each answer captures for the next turn (a session or conversation id). This module renders those
calls for one user and runs them on the user's connection; the stream call goes through the meter.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from contracts import DEFAULT_SETTINGS, Call, Operation, Profile, json_path, mint_token, render

from ._connection import Connection, RequestFailed, Target, clock, encode_request
from ._measure import StreamFailure, StreamMeter, StreamResult, StreamRules

TOKEN_TTL_S = 86_400  # a load user's token outlives any bounded run
# The conformance suite's assumptions about an implementation (the reference server's fixtures).
DEFAULT_VARIABLES = {
    "model": DEFAULT_SETTINGS["allowed_model"],
    "project": DEFAULT_SETTINGS["project_id"],
    "max_tokens": 64,
}


@dataclass(frozen=True)
class LoadProfile:
    """A profile made ready for load: its compiled stream rules and the run's fixed variables."""

    profile: Profile
    rules: StreamRules
    variables: Mapping[str, Any] = field(default_factory=dict)
    jwt_secret: str | None = None
    deadline_s: float = 120.0  # the longest one turn may take, all calls included

    @classmethod
    def of(cls, profile: Profile, variables: Mapping[str, Any] | None = None, **options: Any) -> LoadProfile:
        return cls(profile, StreamRules.of(profile.stream), {**DEFAULT_VARIABLES, **(variables or {})}, **options)

    def token(self, user: str) -> str | None:
        if self.profile.auth == "none" or self.jwt_secret is None:
            return None
        return mint_token(self.jwt_secret, user, ttl_s=TOKEN_TTL_S)


class ChatSession:
    """One user's conversation: `turn` sends a message and measures the streamed answer."""

    def __init__(self, load: LoadProfile, target: Target, user: str, *, timeout_s: float = 60.0) -> None:
        self.load = load
        self.target = target
        self.connection = Connection(target, timeout_s=timeout_s)
        self.variables: dict[str, Any] = {**load.variables, "user": user}
        self._auth = load.token(user)

    def close(self) -> None:
        self.connection.close()

    def new_conversation(self) -> None:
        for name in ("conversation", "session"):
            self.variables.pop(name, None)

    def turn(self, message: str, t_sched: int | None = None) -> StreamResult:
        """Send one message and measure the answer from just before the turn's first request.

        `t_sched`: when an open-loop schedule meant the turn to start (None: now, a closed loop).
        Opening a conversation first, when the profile needs one, is not part of the turn's time.
        """
        profile = self.load.profile
        operation = profile.operations["stream"]
        deadline = clock() + int(self.load.deadline_s * 1e9)
        variables = {**self.variables, "message": message, "marker": message.split(" ", 1)[0]}
        now = clock()
        meter = StreamMeter(self.load.rules, now if t_sched is None else t_sched, now)
        result = meter.result
        try:
            if self._needs_conversation(operation, variables):
                self._run_calls(profile.operations["open"], variables, deadline)
            for index, call in enumerate(operation.calls):
                sent = self.connection.send(self._encode(call, variables))
                if index == 0:
                    result.t0 = sent
                    if t_sched is None:
                        result.t_sched = sent
                if call.stream:
                    result = self.connection.receive_stream(meter, deadline, call.status)
                    self.variables.update(result.captured)
                    return result
                response, body = self.connection.receive(deadline)
                if response.status not in call.status:
                    detail = f"{call.method} {call.path} -> {response.status}: {body[:200]!r}"
                    return meter.fail(clock(), StreamFailure(f"http-{response.status}", detail))
                self._capture(call, body, variables)
        except RequestFailed as failed:
            return meter.fail(clock(), StreamFailure(failed.kind, failed.detail))
        raise AssertionError("a profile's stream operation has a stream call (checked when it is loaded)")

    def _needs_conversation(self, operation: Operation, variables: Mapping[str, Any]) -> bool:
        if "open" not in self.load.profile.operations or variables.get("conversation"):
            return False
        return any("conversation" in call.required_names for call in operation.calls)

    def _run_calls(self, operation: Operation, variables: dict[str, Any], deadline: int) -> None:
        for call in operation.calls:
            self.connection.send(self._encode(call, variables))
            response, body = self.connection.receive(deadline)
            if response.status not in call.status:
                detail = f"{call.method} {call.path} -> {response.status}: {body[:200]!r}"
                raise RequestFailed(f"http-{response.status}", detail)
            self._capture(call, body, variables)

    def _encode(self, call: Call, variables: Mapping[str, Any]) -> bytes:
        headers = render(dict(call.headers), variables)
        query = render(dict(call.query), variables)
        if call.auth and self._auth is not None:
            headers["Authorization"] = f"Bearer {self._auth}"
        if call.stream:
            headers.setdefault("Accept", "text/event-stream")
        body = render(call.json, variables) if call.json is not None else None
        return encode_request(self.target, call.method, render(call.path, variables), query, headers, body)

    def _capture(self, call: Call, body: bytes, variables: dict[str, Any]) -> None:
        if not call.capture:
            return
        try:
            document = json.loads(body)
        except ValueError:
            raise RequestFailed(
                "protocol", f"{call.method} {call.path}: the answer is not JSON: {body[:120]!r}"
            ) from None
        for name, path in call.capture.items():
            with contextlib.suppress(KeyError):
                variables[name] = self.variables[name] = json_path(document, path)
