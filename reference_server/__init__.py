"""reference_server — a Litestar backend that serves the five chat/SSE contracts against an LLM.

One valid implementation of each contract profile of `contracts` (`sessions`, `conversations`,
`start-stream`, `query-stream`, `conversation-events`), over the mock LLM or any OpenAI-compatible
endpoint: for frontend work offline, and as the implementation the conformance suite is first
proven on. Each profile is a thin adapter (`reference_server/profiles/`) over one chat core;
storage is SQLite or PostgreSQL, shared state in memory or Redis. `python -m reference_server`
serves it; `start_reference` starts it as a child process.
"""

from .launcher import reference_command, start_reference

__all__ = ["reference_command", "start_reference"]
