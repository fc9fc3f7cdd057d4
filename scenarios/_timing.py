"""How long a run waits, derived from what it was told about the target: no deadline is a constant.

A correct target may take as long as its own timings allow: over a silent LLM it waits its upstream
timeout (`upstream_timeout_s`) before it sends its error event, and a server that checks that
timeout, or notices a closed client, at its heartbeat tick (`heartbeat_s`) may take one interval
more. So a stream's first event is due within those two, plus a pause the scenario plays on purpose
(`stall-after=N,for=S`), plus `SLACK_S` (loopback and scheduling); and its end within that and the
same wait once more (the LLM may fall silent again after its first token). A run told a 30 s
heartbeat and a 120 s upstream timeout waits 152 s for a first event and 302 s before it calls a
stream hung (152 s where the scenario stalls the LLM to judge that timeout); one told the reference
run's 0.5 s and 5 s waits 7.5 s and 13 s (7.5 s). A silence between
two reads is judged against the LLM's own longest silence for that request (the journal's), plus
`GAP_SLACK_S`. A scenario's `timing:` may set any value itself (a team's own scenario); what it
leaves out is derived here. Pure: numbers in, numbers out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

from ._scenarios import Timing

# Loopback and scheduling slack on top of the target's own timings: a tolerance of the measurement,
# not a timing of the contract.
SLACK_S = 2.0
# The silence between two reads a stream may show beyond the LLM's own longest silence for that
# request (its journal's TTFT and write gaps): the target's own work between the two, under load.
GAP_SLACK_S = 5.0
_PAUSE = re.compile(r"\bfor=([\d.]+)")


def pause_of(fault: str | None) -> float:
    """The seconds of silence a scenario's mock fault plays on purpose (`stall-after=N,for=S`)."""
    found = _PAUSE.search(fault or "")
    return float(found.group(1)) if found else 0.0


def target_wait_s(settings: Mapping[str, str]) -> float:
    """The longest a correct target may stay silent: its upstream timeout, noticed at its next heartbeat."""
    return float(settings["upstream_timeout_s"]) + float(settings["heartbeat_s"])


def stream_timing(
    given: Timing, settings: Mapping[str, str], pause_s: float = 0.0, *, judges_upstream_timeout: bool = False
) -> Timing:
    """`given` with what it leaves out derived from the run's settings and the scenario's pause.

    A scenario that judges the upstream timeout itself (the LLM falls silent for good right after its
    first tokens) ends within that one wait: its deadline is its first event's."""
    wait = target_wait_s(settings)
    first = given.first_event_s if given.first_event_s is not None else wait + pause_s + SLACK_S
    derived = first if judges_upstream_timeout else first + wait
    return replace(
        given,
        deadline_s=given.deadline_s if given.deadline_s is not None else derived,
        first_event_s=first,
        max_gap_s=given.max_gap_s if given.max_gap_s is not None else GAP_SLACK_S,
    )


def heartbeat_tolerance_s(settings: Mapping[str, str]) -> float:
    """The longest silence a stream may show while its LLM is silent: one and a half heartbeat
    intervals (a beat may slip on a busy server) plus `SLACK_S` of loopback and scheduling slack."""
    return float(settings["heartbeat_s"]) * 1.5 + SLACK_S


def heartbeat_stall_s(settings: Mapping[str, str]) -> float:
    """How long the heartbeat scenario silences the LLM: three intervals and a second more than the
    slack, well past the tolerance (a target told to send none, `heartbeat_s=0`, still shows its
    silence), but inside the upstream timeout (at most 80 % of it), which would end the stream."""
    heartbeat, upstream = float(settings["heartbeat_s"]), float(settings["upstream_timeout_s"])
    return round(min(heartbeat * 3 + SLACK_S + 1.0, 0.8 * upstream), 3)


def cancel_wait_s(settings: Mapping[str, str]) -> float:
    """How long a target has to close its LLM request after the client left: it may notice at its next
    write, which over a silent LLM is its next heartbeat."""
    return float(settings["heartbeat_s"]) + SLACK_S


def client_timeout_s(settings: Mapping[str, str], budget_s: float) -> float:
    """The HTTP client's own bound on any one wait, above every deadline the run derives: the
    transport ends each read at its step's deadline first, so this only catches what none bounds."""
    return 2 * (target_wait_s(settings) + SLACK_S) + budget_s
