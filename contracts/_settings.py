"""Run settings: what a conformance or load run assumes about the implementation under test.

A contract leaves some values to the implementation (its heartbeat interval, its session lifetime,
a model its test user may use), and a run must be told them (`--setting NAME=VALUE`) to judge
them. Each setting is described once, here: its name, its value unless told otherwise (the
contracts' own values and the reference server's fixtures) and what it means, so the command line
(`python -m scenarios settings PROFILE`), the runner and the load users all read one table. A
profile's own `settings:` replaces a default (`rate_limit: "100/60"` for `sessions`); a key that is
in no row here is the profile's own (a team's scenarios may wait on it), accepted as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    """One run setting; `default` None: no value unless the profile or the run gives one."""

    name: str
    default: str | None
    meaning: str
    variables: tuple[str, ...] = ()  # the `{template}` variables a run fills with its value


SETTINGS: Mapping[str, Setting] = {
    s.name: s
    for s in (
        Setting(
            "heartbeat_s",
            "30",
            "seconds between the heartbeats (comment lines or heartbeat events) the target sends while its "
            "LLM is silent (0: it sends none); the heartbeat check allows one and a half intervals plus 2 s "
            "of silence, and every deadline of the run allows one interval on top of the upstream timeout",
        ),
        Setting(
            "session_ttl_s",
            "600",
            "seconds a started stream session lives; the session-expiry scenario waits that long, so it is "
            "not checked when that exceeds --budget-s",
        ),
        Setting(
            "upstream_timeout_s",
            "60",
            "seconds the target waits on a silent LLM before it ends the stream with its error event; a "
            "stalled stream must end within it",
        ),
        Setting(
            "allowed_model",
            "mock-model",
            "a model id the test user's plan allows: the `{model}` of the profile's calls",
            ("model", "allowed_model"),
        ),
        Setting(
            "forbidden_model",
            "gpt-4o",
            "a model id outside the test user's plan, which the target must refuse with 403",
            ("forbidden_model",),
        ),
        Setting("project_id", "5f0c6a2e-8c1b-4d7e-9a53-2b6f1e0d4c11", "a project id the target knows", ("project",)),
        Setting("cors_origin", "http://localhost:5173", "an origin the target allows for CORS", ("cors_origin",)),
        Setting(
            "cors_foreign_origin",
            "https://foreign.invalid",
            "an origin the target does not allow for CORS, which must get no Access-Control-Allow-Origin; set it "
            "empty when the target allows every origin (then `*` is right, and that scenario is not applicable)",
            ("cors_foreign_origin",),
        ),
        Setting("history_window", "10", "how many earlier messages the target sends the LLM with a new one"),
        Setting(
            "rate_limit",
            None,
            "N/SECONDS: the requests the target allows a client per window before it answers 429; the "
            "rate-limit scenario sends N + 1",
        ),
        Setting(
            "message_limit",
            None,
            "the most characters a message may have, where the contract states a limit (sessions, query-stream: "
            "2000); the long-message scenario sends one more and expects a 4xx. Unset: the contract implies no "
            "limit, and that scenario is not applicable",
            ("message_limit",),
        ),
        Setting(
            "mock_exclusive",
            None,
            "`true` when the mock serves this run alone: upstream-refused may then take it down for 3 s (every "
            "new connection refused, as when an LLM endpoint is down); unset, that scenario is not applicable, "
            "since it would break every other run the mock serves meanwhile",
        ),
        Setting(
            "malformed_id_status",
            None,
            "the status the contract names for a malformed conversation id (conversations, query-stream: 400); "
            "unset: any 4xx is right",
            ("malformed_id_status",),
        ),
    )
}
# What a run assumes unless told otherwise: every setting that has a default, name -> value.
DEFAULT_SETTINGS: dict[str, str] = {s.name: s.default for s in SETTINGS.values() if s.default is not None}
