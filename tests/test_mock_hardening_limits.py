"""The mock's HTTP limits (issue 16): header size and count (431), the header-read timeout (408,
slowloris), the keep-alive idle timeout, the connection cap (503), and one client's oversized head
never delaying another stream's writes. Real mock processes, raw sockets on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from mockllm import ServerProcess, start_mock

HEADER_TIMEOUT_S = 0.4
IDLE_TIMEOUT_S = 0.6
CAP = 16


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    timeouts = ("--header-timeout-s", str(HEADER_TIMEOUT_S), "--idle-timeout-s", str(IDLE_TIMEOUT_S))
    with start_mock(*timeouts, seed=4, ttft_ms=0, itl_ms=2) as mock:
        yield mock


@pytest.fixture(scope="module")
def capped() -> Iterator[ServerProcess]:
    with start_mock("--max-connections", str(CAP), seed=4) as mock:
        yield mock


def _port(server: ServerProcess) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", _port(server)))
    sock.settimeout(10)
    return sock


def _until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _one_response(sock: socket.socket) -> bytes:
    """One response with a content-length, read off a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = int(next(line.split(b":")[1] for line in lines if line.startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


HEALTH = b"GET /health HTTP/1.1\r\nhost: mock\r\n\r\n"


def test_a_header_over_64_kib_is_a_431_at_once_and_the_server_serves_on(server: ServerProcess) -> None:
    with _connect(server) as sock:
        started = time.perf_counter()
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: mock\r\nx-big: " + b"a" * 70_000 + b"\r\n\r\n")
        answer = _until_closed(sock)
        elapsed = time.perf_counter() - started
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"over 65536 bytes (limits.max_header_bytes)" in answer and b"connection: close" in answer
    assert elapsed < 1.0
    assert httpx.get(server.url + "/health", timeout=5).status_code == 200


def test_too_many_header_fields_is_a_431(server: ServerProcess) -> None:
    fields = b"".join(b"x-h%d: v\r\n" % i for i in range(101))
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: mock\r\n" + fields + b"\r\n")
        answer = _until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 ") and b"over 100 header fields (limits.max_headers)" in answer
    with _connect(server) as sock:  # 99 and the host: within the limit
        sock.sendall(b"GET /health HTTP/1.1\r\nhost: mock\r\n" + fields[: fields.index(b"x-h99:")] + b"\r\n")
        assert _one_response(sock).startswith(b"HTTP/1.1 200 ")


def test_a_trickling_head_is_answered_408_and_closed_after_the_header_timeout(server: ServerProcess) -> None:
    started = time.perf_counter()  # before the connection: the server's timer can start no earlier
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        sock.settimeout(0.1)
        answer = b""
        while time.perf_counter() - started < 5:
            try:
                sock.sendall(b"x-a: b\r\n")  # a field every 0.1 s: never the whole head
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            answer += chunk
        elapsed = time.perf_counter() - started
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and b"limits.header_timeout_s" in answer
    assert HEADER_TIMEOUT_S <= elapsed < HEADER_TIMEOUT_S + 3.0  # slack for a loaded CI machine


def test_an_idle_kept_alive_connection_is_closed_after_the_idle_timeout(server: ServerProcess) -> None:
    with _connect(server) as kept, _connect(server) as silent:
        opened = time.perf_counter()
        for _ in range(3):  # a connection in use is kept: each request starts the idle time afresh
            kept.sendall(HEALTH)
            assert _one_response(kept).startswith(b"HTTP/1.1 200 ")
            time.sleep(IDLE_TIMEOUT_S / 3)
        idle_since = time.perf_counter()
        assert _until_closed(kept) == b""  # closed with a FIN, nothing more said
        assert IDLE_TIMEOUT_S - IDLE_TIMEOUT_S / 3 - 0.05 <= time.perf_counter() - idle_since < IDLE_TIMEOUT_S + 3.0
        assert _until_closed(silent) == b""  # a connection that never sent a byte, likewise
        assert time.perf_counter() - opened >= IDLE_TIMEOUT_S


def test_a_stream_longer_than_the_idle_timeout_is_not_cut(server: ServerProcess) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "long"}], "stream": True}
    headers = {"x-mock-answer-tokens": "40", "x-mock-itl-ms": str(IDLE_TIMEOUT_S * 1000 / 20)}
    response = httpx.post(server.url + "/v1/chat/completions", json=body, headers=headers, timeout=10)
    assert response.status_code == 200 and response.text.rstrip().endswith("data: [DONE]")


def test_a_connection_beyond_the_cap_is_answered_503_and_the_server_recovers(capped: ServerProcess) -> None:
    held = [_connect(capped) for _ in range(CAP)]
    try:
        for sock in held:  # each is served: all are open at once
            sock.sendall(HEALTH)
            assert _one_response(sock).startswith(b"HTTP/1.1 200 ")
        for _ in range(3):
            with _connect(capped) as extra:
                answer = _until_closed(extra)
            assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
            assert b"at most 16 connections" in answer and b"retry-after: 1" in answer
        for sock in held[:4]:
            sock.close()
        deadline = time.monotonic() + 5
        while True:  # the server notices the closes at once; the client may be faster still
            with _connect(capped) as fresh:
                fresh.sendall(HEALTH)
                answer = _one_response(fresh)
            if answer.startswith(b"HTTP/1.1 200 ") or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert answer.startswith(b"HTTP/1.1 200 ")
        for sock in held[4:]:  # those kept open are served on
            sock.sendall(HEALTH)
            assert _one_response(sock).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in held:
            sock.close()


def _send_oversized_head(port: int, size: int, result: dict[str, object]) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(10)
        head = b"GET /health HTTP/1.1\r\nhost: mock\r\nx-big: " + b"a" * size + b"\r\n\r\n"
        started = time.perf_counter()
        try:
            sock.sendall(head)
        except OSError as err:  # the mock answered, lingered and closed before all of it was sent
            result["send_error"] = repr(err)
        try:
            result["answer"] = sock.recv(64)
        except OSError as err:
            result["answer"] = repr(err).encode()
        result["seconds"] = time.perf_counter() - started


def test_an_oversized_header_does_not_delay_another_streams_writes(server: ServerProcess, marker: str) -> None:
    """A 64 MiB header sent while another client's stream plays: the stream's writes stay on time
    (before the limits, such a header made them up to 0.8 s late). The figures go to stdout."""
    result: dict[str, object] = {}
    flooder = threading.Thread(target=lambda: (time.sleep(0.3), _send_oversized_head(_port(server), 64 << 20, result)))
    body = {"model": "m", "messages": [{"role": "user", "content": marker}], "stream": True}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.get("/health")
        flooder.start()
        with client.stream("POST", "/v1/chat/completions", json=body, headers={"x-mock-answer-tokens": "800"}) as r:
            for _ in r.iter_bytes():
                pass
        flooder.join()
        (entry,) = client.get("/_mock/journal", params={"prompt_contains": marker}).json()["entries"]
    achieved, offsets = entry["achieved"], entry["planned"]["offsets_ms"]
    times = [achieved["first_token_s"]]
    for gap in achieved["itl_ms"]:
        times.append(times[-1] + gap / 1000)
    late = sorted((at - achieved["arrival_s"]) * 1000 - due for at, due in zip(times, offsets, strict=True))
    p50, p99, worst = late[len(late) // 2], late[int(len(late) * 0.99)], late[-1]
    print(
        f"\nbench: another stream during a 64 MiB header: {len(late)} writes late p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
        f"max {worst:.2f} ms; the flooder got {result.get('answer')!r:.50} after {result.get('seconds', 0):.2f} s"
    )
    # The 431 comes at once; a flooder still sending 2 s later (a loaded machine) is closed, and the
    # kernel's reset then drops the answer it had not read yet (the 70 KB case above asserts the 431).
    assert str(result["answer"]).startswith("b'HTTP/1.1 431 ") or "send_error" in result
    assert entry["outcome"] == "completed" and p99 < 20.0
    assert json.loads(httpx.get(server.url + "/_mock/stats", timeout=5).text)["active_streams"] == 0


def test_an_http_10_client_gets_its_stream_without_chunks_ended_by_the_close(server: ServerProcess) -> None:
    """HTTP/1.0 has no chunked framing: the stream's bytes come as they are, and the close ends them."""
    body = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "an old client"}]})
    sock = _connect(server)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.0\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body.encode())
    )
    head, _, stream = _until_closed(sock).partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower() and b"connection: close" in head.lower()
    assert stream.startswith(b"data: {") and stream.endswith(b"data: [DONE]\n\n")
