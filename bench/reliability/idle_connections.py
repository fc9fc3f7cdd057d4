"""Idle and trickling connections: do the servers shed them, and do normal streams carry on meanwhile?

A connection that never sends a request, or sends its header one byte at a time (slowloris), costs
a server an fd and a buffer for as long as the server lets it live; without an idle timeout and a
header timeout a few thousand of them take any server down. The timeouts are probed by behaviour
(how long until the server closes each connection) and judged against the server's declared
setting when it has one: a key of the mock's `/_mock/config`, a flag of `reference_server --help`
whose name says idle or header. A server that declares none and closes nothing in the probe window
fails the property ("no idle timeout"); one that declares a timeout longer than the window is
"not checked", never passed. The normal streams run while the connections are open, and their ITL
p99 is compared with a run before the connections were opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._runtime import run as run_loop

from ._common import (
    Outcome,
    Property,
    Sizes,
    StreamStats,
    Target,
    close,
    connect,
    fd_count,
    mock_and_reference,
    normal_streams,
    ratio_holds,
    status_of,
    wait_until,
)

TRICKLE_EVERY_S = 0.25
TRICKLE_REQUEST = b"GET /health HTTP/1.1\r\nHost: trickle\r\nX-Trickle: " + b"a" * 4096 + b"\r\n\r\n"
CLOSE_SLACK_S = 2.0  # a server's timer may fire this much after its declared timeout
ITL_RATIO_LIMIT, ITL_FLOOR_MS = 1.5, 5.0
# Every declared timeout is set to this, so that the probe fits its window, and long enough that the
# normal streams (from NORMAL_START_S, spread over 0.5 s, each ~0.55 s long) end before the servers
# shed the idle connections: at 2 s the shedding fell inside their last tokens, and what was measured
# "beside open connections" was partly the servers closing a hundred of them at once.
PROBE_TIMEOUT_S = 3.0
NORMAL_START_S = 1.0  # the normal streams start once every idle connection is open
TTFT_MS, TOKENS = 50, 20
_NUMBER = re.compile(r"\((?:default:? )?([0-9]+(?:\.[0-9]+)?)\s*s?\)")


# ---------------------------------------------------------------------------------------------- pure part


def classify(name: str) -> str | None:
    """Which timeout a setting's name declares: "idle", "header", or None."""
    lowered = name.lower().replace("-", "_")
    if "idle" in lowered or "keep_alive" in lowered or "keepalive" in lowered:
        return "idle"
    if "header" in lowered and ("timeout" in lowered or lowered.endswith("_s")):
        return "header"
    return None


def declared_from_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, tuple[str, float]]:
    """Timeouts declared in a (nested) settings mapping such as the mock's `/_mock/config`:
    kind -> (dotted key, seconds)."""
    found: dict[str, tuple[str, float]] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            for kind, item in declared_from_config(value, name + ".").items():
                found.setdefault(kind, item)
        elif isinstance(value, int | float) and not isinstance(value, bool) and (kind := classify(name)):
            found.setdefault(kind, (name, float(value)))
    return found


def declared_from_help(text: str) -> dict[str, tuple[str, float]]:
    """Timeouts declared by `--help` flags whose help ends with their default, e.g. "(30)":
    kind -> (flag, seconds)."""
    found: dict[str, tuple[str, float]] = {}
    for block in re.split(r"\n(?=\s{2}-)", text):
        flag = re.search(r"--([a-z0-9][a-z0-9-]*)", block)
        number = _NUMBER.findall(" ".join(block.split()))
        if flag and number and (kind := classify(flag.group(1))):
            found.setdefault(kind, (f"--{flag.group(1)}", float(number[-1])))
    return found


def nested(key: str, value: float) -> dict[str, Any]:
    """`a.b.c`, 3 -> {"a": {"b": {"c": 3}}}: a config patch that sets one dotted key."""
    patch: dict[str, Any] = {}
    cursor = patch
    *parents, last = key.split(".")
    for part in parents:
        cursor = cursor.setdefault(part, {})
    cursor[last] = value
    return patch


def limit_for(kind: str, declared: Mapping[str, float]) -> float | None:
    """The declared timeout an idle or trickling connection must be closed by.

    A connection that has sent nothing is governed by the idle (keep-alive) timer or by the header
    timer, depending on the server; either way it must be gone once the later of them has fired. A
    trickling one is in its header: the header timeout."""
    if kind == "header":
        return declared.get("header")
    return max(declared.values()) if declared else None


@dataclass(frozen=True, slots=True)
class Closing:
    """When the server ended one connection (None: still open at the end of the probe)."""

    after_s: float | None
    status: int | None  # the status it sent first, if any (a 408, say)


@dataclass(frozen=True, slots=True)
class IdleFigures:
    target: str
    declared: Mapping[str, float]
    idle: list[Closing]
    trickle: list[Closing]
    probe_s: float
    without: StreamStats
    beside: StreamStats
    fds_open: int
    fds_before: int
    fds_after: int


def judge_timeout(kind: str, target: str, closings: list[Closing], declared: float | None, probe_s: float) -> Property:
    """All connections of `kind` closed, in time for the declared setting where there is one."""
    name = f"{target}: {kind} connections closed by a timeout"
    closed = [c.after_s for c in closings if c.after_s is not None]
    median = statistics.median(closed) if closed else None
    seen = f"{len(closed)} of {len(closings)} closed" + (f", median after {median:.1f} s" if median is not None else "")
    if declared is not None:
        if declared + CLOSE_SLACK_S > probe_s and len(closed) < len(closings):
            return Property(
                name, None, seen + f" in the {probe_s:g} s probe", f"declared {declared:g} s: beyond the probe"
            )
        on_time = len(closed) == len(closings) and max(closed, default=0.0) <= declared + CLOSE_SLACK_S
        return Property(name, on_time, seen, f"all within declared {declared:g} s + {CLOSE_SLACK_S:g} s")
    if len(closed) == len(closings) and closings:
        return Property(name, True, seen, "all closed (no declared setting found)")
    return Property(name, False, f"no {kind} timeout: {seen} after {probe_s:g} s", "a timeout that closes them")


def judge(fig: IdleFigures) -> list[Property]:
    before, beside = fig.without, fig.beside
    return [
        judge_timeout("idle", fig.target, fig.idle, limit_for("idle", fig.declared), fig.probe_s),
        judge_timeout("header", fig.target, fig.trickle, limit_for("header", fig.declared), fig.probe_s),
        Property(
            f"{fig.target}: normal streams unaffected",
            beside.failed == 0 and ratio_holds(beside.itl_p99_ms, before.itl_p99_ms, ITL_RATIO_LIMIT, ITL_FLOOR_MS),
            f"{beside.failed} failed, ITL p99 {before.itl_p99_ms:.1f} -> {beside.itl_p99_ms:.1f} ms",
            f"0 failed, at most x{ITL_RATIO_LIMIT} or +{ITL_FLOOR_MS:g} ms",
        ),
        Property(
            f"{fig.target}: fds released after the probe",
            fig.fds_after <= fig.fds_before + 5,
            f"fds {fig.fds_before} -> {fig.fds_open} open -> {fig.fds_after}",
            "back to within +5",
        ),
    ]


def _summary(closings: Iterable[Closing]) -> str:
    items = list(closings)
    closed = sorted(c.after_s for c in items if c.after_s is not None)
    if not closed:
        return f"0/{len(items)} closed"
    return f"{len(closed)}/{len(items)} closed, {closed[0]:.1f}-{closed[-1]:.1f} s"


# ---------------------------------------------------------------------------------------------- I/O part


async def watch(target: Target, deadline: float, payload: bytes | None) -> Closing:
    """One connection: idle (`payload` None) or trickling `payload` a byte at a time, until the
    server closes it or `deadline`."""
    start = time.perf_counter()
    try:
        reader, writer = await connect(target.addr)
    except (OSError, TimeoutError):
        return Closing(0.0, None)
    first = asyncio.ensure_future(reader.read(256))
    try:
        sent = 0
        while time.perf_counter() < deadline:
            step = TRICKLE_EVERY_S if payload else deadline - time.perf_counter()
            done, _ = await asyncio.wait({first}, timeout=max(0.001, step))
            if done:
                with contextlib.suppress(OSError):
                    data = first.result()
                    return Closing(time.perf_counter() - start, status_of(data) if data else None)
                return Closing(time.perf_counter() - start, None)
            if payload and sent < len(payload) - 4:  # never the final CRLF: the header never completes
                writer.write(payload[sent : sent + 1])
                sent += 1
        return Closing(None, None)
    finally:
        first.cancel()
        close(writer)


async def probe(target: Target, sizes: Sizes, probe_s: float) -> IdleFigures:
    before = await normal_streams(target, sizes.normal_streams, 0.5, f"{target.name} before idle")
    fds_before = fd_count(target.pid)
    deadline = time.perf_counter() + probe_s
    idle = [asyncio.create_task(watch(target, deadline, None)) for _ in range(sizes.idle_connections)]
    trickle = [asyncio.create_task(watch(target, deadline, TRICKLE_REQUEST)) for _ in range(sizes.trickle_connections)]
    await asyncio.sleep(NORMAL_START_S)
    fds_open = fd_count(target.pid)
    beside = await normal_streams(target, sizes.normal_streams, 0.5, f"{target.name} beside idle")
    idle_done, trickle_done = await asyncio.gather(asyncio.gather(*idle), asyncio.gather(*trickle))
    # The baseline brackets the probe: the streams just before the idle connections opened and just
    # after they closed, the noisier of the two. A shared machine's load that comes and goes within
    # the probe's seconds then shows in the baseline too, and is not laid on the idle connections.
    after = await normal_streams(target, sizes.normal_streams, 0.5, f"{target.name} after idle")
    without = max(before, after, key=lambda stats: stats.itl_p99_ms)
    return IdleFigures(
        target.name, {}, list(idle_done), list(trickle_done), probe_s, without, beside, fds_open, fds_before, -1
    )


def reference_help() -> str:
    done = subprocess.run(
        [sys.executable, "-m", "reference_server", "--help"], capture_output=True, text=True, timeout=60
    )
    return done.stdout


async def probe_both(targets: list[Target], sizes: Sizes, probe_s: float) -> list[IdleFigures]:
    return list(await asyncio.gather(*(probe(t, sizes, probe_s) for t in targets)))


def run(sizes: Sizes, workdir: Path | None = None) -> Outcome:
    """Each declared timeout is set to PROBE_TIMEOUT_S first (a flag of the reference server, a key of
    the mock's config), so the probe fits its window; the table says what was declared and set."""
    outcome = Outcome(
        f"idle and trickling connections: {sizes.idle_connections} idle + {sizes.trickle_connections} sending a "
        f"header byte every {TRICKLE_EVERY_S:g} s, beside {sizes.normal_streams} normal streams",
        [
            "target",
            "declared (default -> set)",
            "idle",
            "trickling",
            "fds before/open/after",
            "ITL p99 ms without (before, after) -> beside",
        ],
    )
    ref_declared = declared_from_help(reference_help())
    ref_flags = [part for flag, _ in ref_declared.values() for part in (flag, f"{PROBE_TIMEOUT_S:g}")]
    with (
        tempfile.TemporaryDirectory(prefix="reliability-idle-") as tmp,
        mock_and_reference(
            workdir or Path(tmp), ttft_ms=TTFT_MS, itl_ms=sizes.normal_itl_ms, tokens=TOKENS, ref_flags=ref_flags
        ) as stack,
    ):
        admin = stack.admin()
        mock_defaults = declared_from_config(admin.config())
        for key, _ in mock_defaults.values():
            with contextlib.suppress(Exception):  # a read-only or differently shaped key: keep its default
                admin.patch_config(nested(key, PROBE_TIMEOUT_S))
        mock_set = {kind: value for kind, (_, value) in declared_from_config(admin.config()).items()}
        declared = {"mock": mock_set, "reference_server": {k: PROBE_TIMEOUT_S for k in ref_declared}}
        defaults = {"mock": mock_defaults, "reference_server": ref_declared}
        longest = max((v for d in declared.values() for v in d.values()), default=0.0)
        probe_s = min(max(sizes.idle_probe_s, longest + CLOSE_SLACK_S + 1.0), 2 * sizes.idle_probe_s)
        targets = [stack.mock_target(), stack.ref_target()]
        measured = run_loop(probe_both(targets, sizes, probe_s))
        figures = []
        for target, fig in zip(targets, measured, strict=True):
            wait_until(lambda pid=target.pid, base=fig.fds_before: fd_count(pid) <= base + 5, sizes.settle_s)
            figures.append(
                IdleFigures(
                    fig.target,
                    declared[fig.target],
                    fig.idle,
                    fig.trickle,
                    probe_s,
                    fig.without,
                    fig.beside,
                    fig.fds_open,
                    fig.fds_before,
                    fd_count(target.pid),
                )
            )
    for fig in figures:
        setting = ", ".join(
            f"{kind} {name} {default:g} -> {fig.declared.get(kind, default):g} s"
            for kind, (name, default) in defaults[fig.target].items()
        )
        outcome.rows.append(
            [
                fig.target,
                setting or "none found",
                _summary(fig.idle),
                _summary(fig.trickle),
                f"{fig.fds_before}/{fig.fds_open}/{fig.fds_after}",
                f"{fig.without.itl_p99_ms:.1f} -> {fig.beside.itl_p99_ms:.1f}",
            ]
        )
        outcome.properties.extend(judge(fig))
    outcome.notes.append(f"both servers probed at once, for {probe_s:g} s, each with its own connections")
    return outcome
