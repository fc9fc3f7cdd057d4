"""The counts that depend on arrival order, for one process or for the workers of one mock.

A response's bytes and delays come from its request and the seed alone; a few things come from the
order in which requests arrive: journal ids, the counters of the config's fault schedules (`every`,
`after`), how many requests an armed fault still applies to, and how many streams are being played
(the load model's input). `Tally` keeps them in the process (a mock of one process: plain integers);
`SharedTally` keeps them in one block of shared memory under one lock for the worker processes of
`mockllm serve --workers N` (made by the supervisor before it forks, `_workers`), so ids are unique
and increase in arrival order across workers, a schedule counts every worker's requests, and a fault
armed for K requests is taken exactly K times. Each is touched once per request, under the lock for
a microsecond, never per token.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from ._errors import ConfigError

SHARED_MAX_RULES = 256  # fault rules a config may have when the mock runs as several workers
ARMED_SLOTS = 65_536  # armed faults alive at once (an id's slot is id % ARMED_SLOTS)
_JOURNAL_ID = 0
_STREAMS = 1
_RULES_AT = 2
_ARMED_AT = _RULES_AT + SHARED_MAX_RULES
_SIZE = _ARMED_AT + ARMED_SLOTS


def check_shared_rules(rules: int) -> None:
    """Refuse a config with more fault rules than the workers' shared counters hold (ConfigError)."""
    if rules > SHARED_MAX_RULES:
        raise ConfigError(
            "faults", f"at most {SHARED_MAX_RULES} fault rules when the mock runs as several workers, got {rules}"
        )


class Tally:
    """One process's arrival-order counts."""

    def __init__(self, rules: int = 0) -> None:
        self._last_id = 0
        self._rules = [0] * rules
        self._streams = 0

    def next_id(self) -> int:
        """The next journal id."""
        self._last_id += 1
        return self._last_id

    @property
    def last_id(self) -> int:
        """The latest journal id given out."""
        return self._last_id

    def check(self, rules: int) -> None:
        """Refuse a config this tally cannot count (ConfigError)."""

    def restart_rules(self, rules: int) -> None:
        """The fault schedules count from the start again (a new config's rules, a reset)."""
        self._rules = [0] * rules

    def count_rule(self, index: int) -> int:
        """Count one more request the rule at `index` matched; how many it has matched now."""
        self._rules[index] += 1
        return self._rules[index]

    def arm(self, armed_id: int, count: int | None) -> None:
        """An armed fault for `count` requests (None: until disarmed); a process counts them in it."""

    def take(self, armed_id: int, remaining: int) -> int:
        """Take one of an armed fault's `remaining` (> 0) requests: how many are left, -1 if none was."""
        return remaining - 1

    def remaining(self, armed_id: int, remaining: int | None) -> int | None:
        """How many requests the armed fault still applies to (None: every one until disarmed)."""
        return remaining

    def stream_began(self) -> int:
        """One more stream is being played: how many are now, across every worker."""
        self._streams += 1
        return self._streams

    def stream_ended(self) -> None:
        self._streams -= 1

    @property
    def active_streams(self) -> int:
        return self._streams


class SharedMemory:
    """The block the workers share and its lock; made before the supervisor forks."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("fork")
        self.lock: Any = context.Lock()
        self.values: Any = context.RawArray("q", _SIZE)

    def restart_rules(self) -> None:
        """Every schedule counter back to 0 (after every worker put a new config in force)."""
        with self.lock:
            self.values[_RULES_AT:_ARMED_AT] = [0] * SHARED_MAX_RULES


class SharedTally(Tally):
    """The workers' arrival-order counts, in `SharedMemory`. The primary worker (the one the
    supervisor hands an admin call to first) writes an armed fault's count; the schedule counters
    are zeroed by the supervisor once every worker has the new config (`restart_wanted`)."""

    def __init__(self, memory: SharedMemory, *, primary: bool) -> None:
        super().__init__()
        self._lock = memory.lock
        self._values = memory.values
        self._primary = primary
        self.restart_wanted = False

    def next_id(self) -> int:
        values = self._values
        with self._lock:
            values[_JOURNAL_ID] += 1
            return int(values[_JOURNAL_ID])

    @property
    def last_id(self) -> int:
        return int(self._values[_JOURNAL_ID])

    def check(self, rules: int) -> None:
        check_shared_rules(rules)

    def restart_rules(self, rules: int) -> None:
        self.restart_wanted = True

    def count_rule(self, index: int) -> int:
        at = _RULES_AT + index
        values = self._values
        with self._lock:
            values[at] += 1
            return int(values[at])

    def arm(self, armed_id: int, count: int | None) -> None:
        if self._primary and count is not None:
            self._values[_ARMED_AT + armed_id % ARMED_SLOTS] = count

    def take(self, armed_id: int, remaining: int) -> int:
        at = _ARMED_AT + armed_id % ARMED_SLOTS
        values = self._values
        with self._lock:
            left = int(values[at])
            if left <= 0:
                return -1
            values[at] = left - 1
            return left - 1

    def remaining(self, armed_id: int, remaining: int | None) -> int | None:
        return None if remaining is None else int(self._values[_ARMED_AT + armed_id % ARMED_SLOTS])

    def stream_began(self) -> int:
        values = self._values
        with self._lock:
            values[_STREAMS] += 1
            return int(values[_STREAMS])

    def stream_ended(self) -> None:
        with self._lock:
            self._values[_STREAMS] -= 1

    @property
    def active_streams(self) -> int:
        return int(self._values[_STREAMS])
