"""The one error that stops a conformance run before it starts (exit status 2)."""


class UsageError(ValueError):
    """A run cannot start: bad settings, no credentials, an unreachable mock (exit status 2)."""
