"""The reference server's edge: bad bodies are 4xx with a JSON body, limits hold on a raw socket, `require_exp`.

The limits are checked as a client meets them, on a raw TCP socket (an HTTP client would refuse to
send most of these requests), against a server whose limits are small enough to cross quickly.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time

import jwt
import pytest

from reference_server._body import MAX_DEPTH, too_deep
from reference_server._settings import SettingsError, parse_settings

LIMITS = {
    "max_body_bytes": 4096,
    "max_header_bytes": 4096,
    "max_headers": 20,
    "header_timeout_s": 1.0,
    "keep_alive_timeout_s": 0.5,
    "limit_concurrency": 3,
    "require_exp": True,
}


@pytest.fixture(scope="module")
def limited(start_refserver):
    return start_refserver(**LIMITS)


def raw(server, request: bytes, *, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Send `request` as it is; the status, headers and body of the answer (the server closes)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # refused mid-send: the answer waits
            sock.sendall(request)
        return parse(read_all(sock))


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def parse(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def post(path: str, body: bytes, host: str = "x") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


# -- bad bodies -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested"),
        (b'{"message": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested"),
        (b"\xff\xfe\x00", "JSON"),
        (b'{"message": "caf\xe9"}', "UTF-8"),
        (b"[1, 2]", "object"),
        (b'"hello"', "object"),
        (b"null", "object"),
        (b'{"message": 5}', "message"),
        (b'{"message": "hi", "extra": 1}', "extra"),
        (b'{"message": "hi"', "truncated"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_problem(refserver, body, named):
    with refserver.client() as client:
        answer = client.post("/api/chat", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert named.lower() in answer.text.lower()


def test_a_body_over_the_limit_is_413(limited):
    status, headers, body = raw(limited, post("/api/chat", b'{"message": "' + b"a" * 5000 + b'"}'))
    assert status == 413
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["status_code"] == 413


def test_depth_scan_skips_brackets_in_strings():
    assert not too_deep(b'{"a": "' + b"[" * 1000 + b'"}')
    assert too_deep(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    assert not too_deep(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)


# -- the head -------------------------------------------------------------------------------------


def test_a_huge_header_is_431_without_reading_it_all(limited):
    started = time.monotonic()
    request = b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (8 * 1024 * 1024) + b"\r\n\r\n"
    status, headers, body = raw(limited, request)
    assert status == 431
    assert headers["content-type"] == "application/json"
    assert "4096 bytes" in json.loads(body)["detail"]
    assert time.monotonic() - started < 5


def test_a_header_over_the_limit_in_one_read_is_431(limited):
    request = b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n"
    assert raw(limited, request)[0] == 431


def test_too_many_headers_is_431(limited):
    fields = b"".join(b"X-H%d: v\r\n" % i for i in range(30))
    status, _, body = raw(limited, b"GET /api/health HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert status == 431
    assert "header fields" in json.loads(body)["detail"]


def test_headers_within_the_limits_are_served(limited):
    fields = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(15))
    request = b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + fields + b"\r\n"
    assert raw(limited, request)[0] == 200


def test_a_slow_head_is_408_after_the_header_timeout(limited):
    with socket.create_connection(("127.0.0.1", limited.port), timeout=5) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        started = time.monotonic()
        status, _, body = parse(read_all(sock))
    assert status == 408
    assert json.loads(body)["status_code"] == 408
    assert 0.5 < time.monotonic() - started < 4


def test_an_idle_connection_is_closed_after_the_header_timeout(limited):
    with socket.create_connection(("127.0.0.1", limited.port), timeout=5) as sock:
        started = time.monotonic()
        assert read_all(sock) == b""  # closed, nothing said
    assert 0.5 < time.monotonic() - started < 4


def test_an_idle_keep_alive_connection_is_closed(limited):
    with socket.create_connection(("127.0.0.1", limited.port), timeout=5) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        data = read_all(sock)  # the answer, then the close when the keep-alive wait ends
    assert parse(data)[0] == 200
    assert 0.3 < time.monotonic() - started < 3


def test_past_the_concurrency_limit_is_a_json_503(limited):
    # uvicorn's count: the connections open (this one included) or the requests running, >= the limit.
    holders = [socket.create_connection(("127.0.0.1", limited.port), timeout=5) for _ in range(2)]
    try:
        status, headers, body = raw(limited, b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    finally:
        for sock in holders:
            sock.close()
    assert status == 503
    assert headers["content-type"] == "application/json"
    assert headers["retry-after"] == "1"
    assert json.loads(body)["status_code"] == 503


# -- tokens ---------------------------------------------------------------------------------------


def no_exp_token(server, user: str) -> str:
    return jwt.encode({"sub": user}, server.settings["jwt_secret"], algorithm="HS256")


def test_require_exp_refuses_a_token_without_exp(limited):
    body = {"title": "t"}
    with limited.client() as client:
        refused = client.post(
            "/chat/conversation", json=body, headers={"Authorization": f"Bearer {no_exp_token(limited, 'u')}"}
        )
        accepted = client.post("/chat/conversation", json=body, headers=limited.auth("u"))
    assert refused.status_code == 401
    assert "exp" in refused.json()["detail"]
    assert accepted.status_code == 201


def test_by_default_a_token_without_exp_is_accepted(refserver):
    with refserver.client() as client:
        answer = client.post(
            "/chat/conversation",
            json={"title": "t"},
            headers={"Authorization": f"Bearer {no_exp_token(refserver, 'u')}"},
        )
    assert answer.status_code == 201


def test_edge_settings_parse_and_refuse_bad_values():
    settings = parse_settings({"require_exp": "yes", "max_headers": "50", "header_timeout_s": 2})
    assert (settings.require_exp, settings.max_headers, settings.header_timeout_s) == (True, 50, 2.0)
    for raw_value in ({"require_exp": "maybe"}, {"max_header_bytes": 10}, {"limit_concurrency": 0}):
        with pytest.raises(SettingsError) as caught:
            parse_settings(raw_value)
        assert caught.value.key == next(iter(raw_value))


def test_an_http_10_client_gets_its_stream_unframed_and_ended_by_the_close(refserver):
    """HTTP/1.0 knows no chunked framing: a sessions stream comes as it is, and the close ends it."""
    body = json.dumps({"message": "an old client"}).encode()
    request = (
        f"POST /api/chat/stream HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    status, headers, stream = raw(refserver, request, timeout=30)
    assert status == 200 and "transfer-encoding" not in headers and headers.get("connection") == "close"
    assert stream.startswith(b"data: {") and b'"type":"done"' in stream.replace(b" ", b"")
