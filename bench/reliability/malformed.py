"""The malformed-HTTP table: requests no client library would send, against both servers.

Whatever reaches a server's port is its input: a JSON body nested 100,000 deep (a recursive parser's
stack), a 64 MB header or 10,000 of them (its buffers), bytes that are not UTF-8, a body shorter
than its Content-Length (a slowloris on the body), chunked framing that does not parse, HTTP/1.0
(no chunked encoding allowed in the answer), a Content-Length no integer type holds. Each must get
a 4xx (contracts.md: bad input gets a 4xx, never a 5xx) and never a hang, and the server must go on
serving afterwards — the mock's admin API included, which a harness reads after every run.

Every row has its own connection and they run at once, so the table takes as long as its slowest
row (bounded by ROW_TIMEOUT_S), not the sum of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench._runtime import run as run_loop

from ._common import Outcome, Property, Sizes, Stack, close, connect, mock_and_reference, one_stream, status_of

ROW_TIMEOUT_S = 15.0  # no answer (nor close) in this long is a hang
EOF_AFTER_S = 3.0  # the truncated body: wait this long for the server's body timeout, then half-close
NESTING = 100_000
BIG_HEADER = 64 * 1024 * 1024
MANY_HEADERS = 10_000


# ---------------------------------------------------------------------------------------------- pure part


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a server takes a JSON body, and a valid one (`body(inner)` puts `inner` in its text field)."""

    path: str
    body: Callable[[str], str]


MOCK_ENDPOINT = Endpoint(
    "/v1/chat/completions",
    lambda inner: '{"model":"mock-model","stream":true,"messages":[{"role":"user","content":%s}]}' % inner,  # noqa: UP031
)
REF_ENDPOINT = Endpoint("/api/chat/stream", lambda inner: '{"message":%s}' % inner)  # noqa: UP031  # sessions


def _request(
    host: str, path: str, body: bytes, *, extra: tuple[str, ...] = (), length: str | None = None, version: str = "1.1"
) -> bytes:
    head = [
        f"POST {path} HTTP/{version}",
        f"Host: {host}",
        "Content-Type: application/json",
        "Accept: text/event-stream",
        f"Content-Length: {length if length is not None else len(body)}",
        *extra,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@dataclass(frozen=True, slots=True)
class Case:
    """One row: how to build its bytes, what it expects, and whether it half-closes after EOF_AFTER_S."""

    name: str
    build: Callable[[str, Endpoint], bytes]
    expected: str
    half_close: bool = False
    http10: bool = False  # a valid request in HTTP/1.0: a 2xx without chunked framing is right too


def _deep(host: str, e: Endpoint) -> bytes:
    return _request(host, e.path, e.body("[" * NESTING + "]" * NESTING).encode())


def _big_header(host: str, e: Endpoint) -> bytes:
    return _request(host, e.path, e.body('"hi"').encode(), extra=("X-Big: " + "a" * BIG_HEADER,))


def _many_headers(host: str, e: Endpoint) -> bytes:
    return _request(host, e.path, e.body('"hi"').encode(), extra=tuple(f"X-H-{i}: v" for i in range(MANY_HEADERS)))


def _bad_utf8(host: str, e: Endpoint) -> bytes:
    return _request(host, e.path, e.body('"ab\x00"').encode().replace(b"\x00", b"\xff\xfe\xc3"))


def _not_object(host: str, e: Endpoint) -> bytes:
    return _request(host, e.path, b"[1, 2, 3]")


def _truncated(host: str, e: Endpoint) -> bytes:
    body = e.body('"hi"').encode()
    return _request(host, e.path, body[: len(body) // 2], length=str(len(body) + 1000))


def _bad_chunked(host: str, e: Endpoint) -> bytes:
    head = [f"POST {e.path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json", "Transfer-Encoding: chunked"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + b"zz\r\n{}\r\n0\r\n\r\n"


def _http10(host: str, e: Endpoint) -> bytes:
    return _request(host, e.path, e.body('"hello over HTTP/1.0"').encode(), version="1.0")


def _absurd_length(host: str, e: Endpoint) -> bytes:
    return _request(host, e.path, e.body('"hi"').encode(), length="99999999999999999999999999")


CASES: tuple[Case, ...] = (
    Case(f"JSON nested {NESTING:,} deep", _deep, "400"),
    Case("64 MB header", _big_header, "431 (or 400)"),
    Case(f"{MANY_HEADERS:,} headers", _many_headers, "431 (or 400)"),
    Case("invalid UTF-8 body", _bad_utf8, "400"),
    Case("JSON array, not an object", _not_object, "400 (or 422)"),
    Case("body shorter than Content-Length", _truncated, "408/400, or close on EOF", half_close=True),
    Case("bad chunked encoding", _bad_chunked, "400"),
    Case("HTTP/1.0 stream request", _http10, "2xx not chunked, or 4xx", http10=True),
    Case("absurd Content-Length", _absurd_length, "400 (or 413)"),
)


@dataclass(frozen=True, slots=True)
class Answer:
    """How a row ended: the status (None: none came), how, and in how long."""

    status: int | None
    ending: str  # "answered", "closed" (no status), "reset", "hang"
    seconds: float
    chunked: bool = False
    after_eof: bool = False


def judge_row(case: Case, answer: Answer) -> tuple[bool, str]:
    """Right: a 4xx (a 2xx without chunked framing for the HTTP/1.0 row; a close after the client's
    EOF for the truncated body). Wrong: any 5xx, a hang, a close or reset with no status at all."""
    status = answer.status
    if status is not None and 500 <= status <= 599:
        return False, f"{status}: a server error"
    if status is not None and 400 <= status <= 499:
        return True, str(status)
    if case.http10 and status is not None and 200 <= status <= 299:
        return (not answer.chunked), f"{status}" + (" chunked: not HTTP/1.0" if answer.chunked else " unchunked")
    if case.half_close and answer.after_eof and answer.ending == "closed":
        return True, "closed on the client's EOF"
    if answer.ending == "hang":
        return False, f"no answer in {answer.seconds:.0f} s"
    return False, f"{status if status is not None else 'no status'}, {answer.ending}"


# ---------------------------------------------------------------------------------------------- I/O part


async def send(addr: tuple[str, int], payload: bytes, half_close: bool) -> Answer:
    """Write the payload (while reading, so a server that answers early is heard) and read the head."""
    start = time.perf_counter()
    try:
        reader, writer = await connect(addr)
    except (OSError, TimeoutError):
        return Answer(None, "connect failed", 0.0)
    after_eof = False
    try:
        writer.write(payload)
        drain = asyncio.ensure_future(writer.drain())
        head = asyncio.ensure_future(reader.readuntil(b"\r\n\r\n"))
        if half_close:
            done, _ = await asyncio.wait({head}, timeout=EOF_AFTER_S)
            if not done:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                after_eof = True
        try:
            data = await asyncio.wait_for(head, ROW_TIMEOUT_S - (time.perf_counter() - start))
        except TimeoutError:
            return Answer(None, "hang", time.perf_counter() - start, after_eof=after_eof)
        except asyncio.IncompleteReadError as err:
            status = status_of(err.partial)
            return Answer(status, "answered" if status else "closed", time.perf_counter() - start, after_eof=after_eof)
        except OSError:
            return Answer(None, "reset", time.perf_counter() - start, after_eof=after_eof)
        finally:
            drain.cancel()
        chunked = b"transfer-encoding: chunked" in data.lower()
        return Answer(status_of(data), "answered", time.perf_counter() - start, chunked, after_eof)
    finally:
        close(writer, reset=True)


async def table(stack: Stack) -> dict[str, list[Answer]]:
    """Every case against both servers at once."""
    jobs = {}
    for name, url, endpoint in (
        ("mock", stack.mock.url, MOCK_ENDPOINT),
        ("reference_server", stack.ref.url, REF_ENDPOINT),
    ):
        target = stack.mock_target() if name == "mock" else stack.ref_target()
        host = url.split("//", 1)[1]
        jobs[name] = [send(target.addr, case.build(host, endpoint), case.half_close) for case in CASES]
    results = await asyncio.gather(*(asyncio.gather(*rows) for rows in jobs.values()))
    return dict(zip(jobs, (list(r) for r in results), strict=True))


async def still_serving(stack: Stack) -> dict[str, bool]:
    reads = await asyncio.gather(
        one_stream(stack.mock_target(), "after the table"), one_stream(stack.ref_target(), "after the table")
    )
    return {"mock": reads[0].finished, "reference_server": reads[1].finished}


def admin_reads(stack: Stack) -> dict[str, bool]:
    """Do the mock's journal, config and stats still read (and parse as JSON)?"""
    admin, out = stack.admin(), {}
    for name, call in (("journal", lambda: admin.journal(limit=5)), ("config", admin.config), ("stats", admin.stats)):
        try:
            json.dumps(call())
            out[name] = True
        except Exception:  # any failure to read is the finding
            out[name] = False
    return out


def run(sizes: Sizes, workdir: Path | None = None) -> Outcome:
    del sizes  # the table is the same in CI and in full: each row is one request
    outcome = Outcome(
        "malformed HTTP: each row one raw request, on its own connection, all at once; "
        f"no answer in {ROW_TIMEOUT_S:g} s is a hang",
        ["request", "expected", "mock", "reference_server"],
    )
    with (
        tempfile.TemporaryDirectory(prefix="reliability-malformed-") as tmp,
        mock_and_reference(workdir or Path(tmp)) as stack,
    ):
        answers = run_loop(table(stack))
        serving = run_loop(still_serving(stack))
        admin = admin_reads(stack)
        alive = {"mock": stack.mock.process.poll() is None, "reference_server": stack.ref.process.poll() is None}
    for i, case in enumerate(CASES):
        cells = []
        for name in ("mock", "reference_server"):
            answer = answers[name][i]
            ok, why = judge_row(case, answer)
            cells.append(f"{'ok' if ok else 'WRONG'} {why} ({answer.seconds * 1000:.0f} ms)")
            outcome.properties.append(Property(f"{name}: {case.name}", ok, why, case.expected))
        outcome.rows.append([case.name, case.expected, *cells])
    for name in ("mock", "reference_server"):
        outcome.properties.append(
            Property(
                f"{name}: still serves after the table",
                serving[name] and alive[name],
                f"alive {alive[name]}, a stream finished {serving[name]}",
                "both",
            )
        )
    outcome.properties.append(
        Property(
            "mock: journal, config and stats still read",
            all(admin.values()),
            ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in admin.items()),
            "all ok",
        )
    )
    return outcome
