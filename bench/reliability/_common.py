"""What every reliability scenario shares: its result shape, the sizes, the servers, a raw HTTP client.

The scenarios talk raw HTTP/1.1 over their own sockets, not through httpx: they must close a stream
after exactly N events, reset it (SO_LINGER 0), read one byte a second from a tiny receive buffer,
trickle a header byte by byte and send requests no HTTP library would let them build. A server's
health is read from outside, through /proc (its open fds, its RSS, its threads), so the figures mean
the same for any server, whatever it is written in.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx

from contracts import mint_token
from mockllm import MockLLMClient, ServerProcess, start_mock
from reference_server import start_reference

SECRET = "reliability-secret-of-at-least-32-bytes"
PROJECT_ID = "5f0c6a2e-8c1b-4d7e-9a53-2b6f1e0d4c11"  # the reference server's default project
LINGER_ZERO = struct.pack("ii", 1, 0)  # struct linger {l_onoff = 1, l_linger = 0}: close() sends RST
_now = time.perf_counter


# ---------------------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Property:
    """One judged property: `holds` is True, False, or None when it could not be checked in the budget
    (contracts.md: a check whose wait would exceed the budget is "not checked", never passed)."""

    name: str
    holds: bool | None
    measured: str
    expected: str


@dataclass(slots=True)
class Outcome:
    """A scenario's table (its figures) and its judged properties."""

    title: str
    header: Sequence[str]
    rows: list[Sequence[str]] = field(default_factory=list)
    properties: list[Property] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Property]:
        return [p for p in self.properties if p.holds is False]

    def prop(self, name: str) -> Property:
        """The property called `name` (KeyError if the scenario judged none such)."""
        for item in self.properties:
            if item.name == name:
                return item
        raise KeyError(name)


def verdict_word(holds: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "NOT CHECKED"}[holds]


def render(outcome: Outcome) -> str:
    """The scenario as a fixed-width table, then one line per property."""
    table = [list(outcome.header), *[list(row) for row in outcome.rows]]
    widths = [max(len(str(row[i])) for row in table if i < len(row)) for i in range(len(outcome.header))]
    lines = [outcome.title]
    for n, row in enumerate(table):
        lines.append("    " + "  ".join(f"{cell!s:<{widths[i]}}" for i, cell in enumerate(row)).rstrip())
        if n == 0:
            lines.append("    " + "  ".join("-" * w for w in widths))
    lines.append("")
    width = max((len(p.name) for p in outcome.properties), default=0)
    for p in outcome.properties:
        lines.append(f"    {verdict_word(p.holds):<12}{p.name:<{width}}  measured {p.measured}; expected {p.expected}")
    lines.extend(f"    note: {note}" for note in outcome.notes)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- sizes


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each scenario runs: `FULL` for `nox -s reliability`, `SHORT` for CI. Every loop of
    every scenario is bounded by one of these counts and by a time limit derived from them."""

    storm_streams: int
    storm_concurrency: int
    normal_streams: int
    normal_itl_ms: float
    slow_readers: int
    idle_connections: int
    trickle_connections: int
    idle_probe_s: float
    kill_users: int
    kill_after_s: float
    settle_s: float


FULL = Sizes(
    storm_streams=10_000,
    storm_concurrency=100,
    normal_streams=200,
    normal_itl_ms=50,
    slow_readers=4,
    idle_connections=200,
    trickle_connections=20,
    idle_probe_s=15.0,
    kill_users=20,
    kill_after_s=2.0,
    settle_s=10.0,
)
SHORT = Sizes(
    storm_streams=1_000,
    storm_concurrency=100,
    normal_streams=50,
    normal_itl_ms=25,
    slow_readers=2,
    idle_connections=50,
    trickle_connections=5,
    idle_probe_s=5.0,
    kill_users=8,
    kill_after_s=0.5,
    settle_s=5.0,
)


# ---------------------------------------------------------------------------------------------- processes


def fd_count(pid: int) -> int:
    """Open file descriptors of `pid` (-1 when /proc cannot tell: not Linux, or it has exited)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def _status_field(pid: int, name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return -1


def rss_kb(pid: int) -> int:
    """Resident memory of `pid` in KiB (VmRSS), -1 when unknown."""
    return _status_field(pid, "VmRSS")


def thread_count(pid: int) -> int:
    return _status_field(pid, "Threads")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time `pid` has used, in seconds (/proc/<pid>/stat; NaN when unknown)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def wait_until(condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.1) -> float:
    """Poll `condition` until it holds or `timeout_s` passes; the seconds it took (or waited)."""
    start = _now()
    while not condition() and _now() - start < timeout_s:
        time.sleep(poll_s)
    return _now() - start


# ---------------------------------------------------------------------------------------------- servers


@dataclass(frozen=True, slots=True)
class Target:
    """A server to stream from: how to ask it for a stream (`request(prompt)` gives the raw bytes)
    and how its stream ends (`terminal`, a byte string inside its terminal event)."""

    name: str
    url: str
    pid: int
    request: Callable[[str], bytes]
    terminal: bytes

    @property
    def addr(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return parts.hostname or "127.0.0.1", parts.port or 80


def mock_stream_request(host: str, prompt: str, headers: Sequence[str] = ()) -> bytes:
    """A streamed OpenAI chat completion, as raw bytes."""
    message = {"role": "user", "content": prompt}
    body = json.dumps({"model": "mock-model", "stream": True, "messages": [message]}).encode()
    head = [
        "POST /v1/chat/completions HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Accept: text/event-stream",
        *headers,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def query_stream_request(host: str, prompt: str, token: str) -> bytes:
    """The reference server's `query-stream` GET stream (a bearer token, no body), as raw bytes."""
    path = f"/api/v1/ai/chat/stream?projectId={PROJECT_ID}&message={quote(prompt)}"
    head = [f"GET {path} HTTP/1.1", f"Host: {host}", f"Authorization: Bearer {token}", "Accept: text/event-stream"]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


@dataclass(slots=True)
class Stack:
    """A mock LLM and a reference server in front of it, both child processes on loopback ports."""

    mock: ServerProcess
    ref: ServerProcess

    def mock_target(self, headers: Sequence[str] = ()) -> Target:
        host = urlsplit(self.mock.url).netloc
        return Target(
            "mock",
            self.mock.url,
            self.mock.process.pid,
            lambda prompt: mock_stream_request(host, prompt, headers),
            b"[DONE]",
        )

    def ref_target(self, user: str = "reliability-user") -> Target:
        host, token = urlsplit(self.ref.url).netloc, mint_token(SECRET, user)
        return Target(
            "reference_server",
            self.ref.url,
            self.ref.process.pid,
            lambda prompt: query_stream_request(host, prompt, token),
            b'"type":"complete"',
        )

    def admin(self) -> MockLLMClient:
        return MockLLMClient(self.mock.url, timeout=30.0)


def reference_flags(database_url: str) -> list[str]:
    """Every profile, our secret, no rate limit (the scenarios are floods by design), short upstream timeout."""
    return [
        "--jwt-secret",
        SECRET,
        "--database-url",
        database_url,
        "--llm-timeout-s",
        "10",
        "--rate-limit",
        "sessions=off",
        "--rate-limit",
        "conversations=off",
    ]


@contextlib.contextmanager
def mock_and_reference(
    workdir: Path,
    *,
    ttft_ms: float = 5,
    itl_ms: float = 2,
    tokens: int = 30,
    name: str = "ref",
    ref_flags: Sequence[str] = (),
) -> Iterator[Stack]:
    """Both servers for one scenario, with their logs and SQLite file in `workdir`; stopped at the end."""
    with start_mock(
        "--answer-tokens", str(tokens), ttft_ms=ttft_ms, itl_ms=itl_ms, log=workdir / f"{name}-mock.log"
    ) as mock:
        database = f"sqlite+aiosqlite:///{workdir / f'{name}.sqlite3'}"
        flags = [*reference_flags(database), *ref_flags]
        with start_reference(f"{mock.url}/v1", *flags, log=workdir / f"{name}-server.log", cwd=workdir) as ref:
            wait_serving(ref.url)
            yield Stack(mock, ref)


def wait_serving(base: str, timeout_s: float = 20.0) -> None:
    """Until GET /api/health answers 200: the reference server prints "listening" once its socket
    is bound, before its app has started (and an app that fails to start exits only then)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/api/health", timeout=1.0).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{base} did not serve /api/health within {timeout_s:g} s (see its log)")


# ---------------------------------------------------------------------------------------------- raw HTTP


@dataclass(slots=True)
class StreamRead:
    """What one raw read of a stream saw: status, events counted, when event-bearing reads arrived."""

    status: int | None = None
    events: int = 0
    read_times: list[float] = field(default_factory=list)  # perf_counter() of each read that held events
    started: float = 0.0
    finished: bool = False  # the terminal event arrived
    error: str | None = None

    def gaps_ms(self) -> list[float]:
        """Inter-arrival gaps of event-bearing reads (the ITL as a client sees it), in ms."""
        return [(b - a) * 1000 for a, b in itertools.pairwise(self.read_times)]


async def connect(
    addr: tuple[str, int], *, rcvbuf: int | None = None, timeout: float = 10.0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection; `rcvbuf` shrinks its receive buffer before connecting (the window is then small)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, addr), timeout)
        return await asyncio.open_connection(sock=sock, limit=1 << 20)
    except BaseException:
        sock.close()
        raise


def close(writer: asyncio.StreamWriter, *, reset: bool = False) -> None:
    """Close now; with `reset`, by RST (SO_LINGER 0) instead of FIN."""
    if reset:
        sock = writer.get_extra_info("socket")
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
        writer.transport.abort()
    else:
        writer.close()


def status_of(head: bytes) -> int | None:
    """The status code of a response's first line, None if it is not one."""
    parts = head.split(b"\r\n", 1)[0].split()
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return None


async def read_stream(
    reader: asyncio.StreamReader, terminal: bytes, *, stop_after: int | None = None, timeout_s: float = 30.0
) -> StreamRead:
    """Read a response: its status, then its body, counting `data:` lines as events, until the
    terminal event, `stop_after` events, the end of the response, or `timeout_s` in all."""
    out = StreamRead(started=_now())
    deadline = out.started + timeout_s
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout_s)
        out.status = status_of(head)
        tail = b""
        while not out.finished and (stop_after is None or out.events < stop_after):
            chunk = await asyncio.wait_for(reader.read(65536), max(0.001, deadline - _now()))
            if not chunk:
                break
            window = tail + chunk
            found = window.count(b"data:") - tail.count(b"data:")
            if found:
                out.events += found
                out.read_times.append(_now())
            out.finished = terminal in window
            tail = window[-max(len(terminal), 5) :]
    except TimeoutError:
        out.error = "timeout"
    except (asyncio.IncompleteReadError, OSError) as err:
        out.error = type(err).__name__
    return out


async def one_stream(
    target: Target, prompt: str, *, stop_after: int | None = None, reset: bool = False, timeout_s: float = 30.0
) -> StreamRead:
    """Open a connection, ask for one stream, read it (until `stop_after` events), close (or reset)."""
    try:
        reader, writer = await connect(target.addr)
    except (OSError, TimeoutError) as err:
        return StreamRead(error=f"connect: {type(err).__name__}")
    try:
        writer.write(target.request(prompt))
        return await read_stream(reader, target.terminal, stop_after=stop_after, timeout_s=timeout_s)
    finally:
        close(writer, reset=reset)


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of exact samples (NaN when there are none)."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


@dataclass(frozen=True, slots=True)
class StreamStats:
    """Normal streams' figures: how many finished, and the ITL (event-read gap) percentiles in ms."""

    streams: int
    finished: int
    itl_p50_ms: float
    itl_p99_ms: float
    ttft_p99_ms: float

    @property
    def failed(self) -> int:
        return self.streams - self.finished


def stream_stats(reads: Sequence[StreamRead], sent_at: Sequence[float]) -> StreamStats:
    """Figures of finished and unfinished streams alike (a stream that did not finish is a failure)."""
    gaps = [gap for read in reads for gap in read.gaps_ms()]
    ttfts = [(read.read_times[0] - t0) * 1000 for read, t0 in zip(reads, sent_at, strict=True) if read.read_times]
    return StreamStats(
        len(reads), sum(r.finished for r in reads), percentile(gaps, 50), percentile(gaps, 99), percentile(ttfts, 99)
    )


async def normal_streams(
    target: Target, count: int, spread_s: float, prefix: str, timeout_s: float = 30.0
) -> StreamStats:
    """`count` complete streams, their starts spread evenly over `spread_s` (a steady arrival, not
    one burst, which would measure the queue of simultaneous arrivals instead of the server)."""
    start = _now()
    sent = [start + spread_s * i / max(1, count) for i in range(count)]

    async def one(i: int) -> StreamRead:
        await asyncio.sleep(max(0.0, sent[i] - _now()))
        return await one_stream(target, f"{prefix} stream {i}", timeout_s=timeout_s)

    reads = await asyncio.gather(*(one(i) for i in range(count)))
    return stream_stats(reads, sent)


def ratio_holds(with_ms: float, without_ms: float, limit: float, floor_ms: float) -> bool:
    """Is `with_ms` within `limit` times `without_ms`, or within `floor_ms` of it (a tiny baseline's
    noise would otherwise make any ratio fail)? NaN (no samples) never holds."""
    if math.isnan(with_ms) or math.isnan(without_ms):
        return False
    return with_ms <= max(without_ms * limit, without_ms + floor_ms)
