"""The reactor that reads every stream of a load process: real sockets, gevent's real hub.

Socket pairs stand for the server where a test needs exact bytes (a cut, a silence, a status),
the mock LLM where it needs a real streaming server; no part of the reactor is replaced.
"""

from __future__ import annotations

import json
import socket

import gevent
import pytest
from gevent.monkey import get_original

from loadtests._config import resolve_profile
from loadtests._connection import Target
from loadtests._measure import StreamMeter, StreamRules, same_text
from loadtests._reactor import SO_TIMESTAMPNS, clock, reactor
from loadtests._session import ChatSession, LoadProfile
from mockllm import start_mock
from mockllm.client import MockLLMClient

RULES = StreamRules.of(resolve_profile("openai-chat").stream)
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def token(text: str) -> bytes:
    return chunk(b"data: " + json.dumps({"choices": [{"delta": {"content": text}}]}).encode() + b"\n\n")


DONE = chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"


def pair() -> tuple[socket.socket, socket.socket]:
    client, server = socket.socketpair()
    client.settimeout(5)  # a socket with a timeout is non-blocking underneath, as gevent's are
    return client, server


def read(client: socket.socket, *, silence_s: float = 5.0, deadline_s: float = 10.0):
    meter = StreamMeter(RULES, clock(), clock())
    return reactor().read_stream(client.fileno(), meter, clock() + int(deadline_s * 1e9), (200,), silence_s)


def read_in_rounds(pairs: list[tuple[socket.socket, socket.socket]], words: list[str]) -> list:
    """Every stream gets its next token in the same round, as a loaded server sends them; each
    stream's (result, keep) once all have ended."""

    def serve() -> None:
        for _, server in pairs:
            server.sendall(HEAD)
        for word in words:
            gevent.sleep(0.002)
            for _, server in pairs:
                server.sendall(token(word))
        for _, server in pairs:
            server.sendall(DONE)

    writer = gevent.spawn(serve)
    readers = [gevent.spawn(read, client) for client, _ in pairs]
    gevent.joinall([writer, *readers], timeout=20, raise_error=True)
    return [reader.value for reader in readers]


def test_many_streams_read_at_once_each_measured_whole():
    pairs = [pair() for _ in range(40)]
    words = [f"w{i}" for i in range(12)]
    for result, keep in read_in_rounds(pairs, words):
        assert result.ok, result.error_detail
        assert keep and result.text == "".join(words) and len(result.token_times) == len(words)
        assert result.t_headers <= result.token_times[0] <= result.t_terminal <= result.t_end
    assert reactor().active == 0
    for client, server in pairs:
        client.close()
        server.close()


def test_reads_split_anywhere_give_the_same_stream():
    client, server = pair()
    whole = HEAD + token("Hello") + token(", world") + DONE
    pieces = [whole[i : i + 7] for i in range(0, len(whole), 7)]

    def serve() -> None:
        for piece in pieces:
            server.sendall(piece)
            gevent.sleep(0.001)

    gevent.spawn(serve)
    result, keep = read(client)
    assert result.ok and keep and result.text == "Hello, world", result.error_detail


@pytest.mark.parametrize(
    ("sent", "kind", "detail"),
    [
        (HEAD + token("a"), "protocol", "connection closed in a chunked body"),  # cut, then closed
        (b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy", "http-503", "503 Busy"),
        (HEAD + token("a") + chunk(b'data: {"other": 3}\n\n'), "protocol", "cannot tell the event's kind"),
        (HEAD + token("a") + chunk(b"data: not json\n\n"), "protocol", "not JSON"),
        (HEAD + chunk(b"data: [DONE]\n\n") + token("late"), "grammar", "not allowed"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "protocol", "bad chunk size"),
    ],
)
def test_a_broken_stream_is_a_failure_of_its_kind_and_drops_the_connection(sent, kind, detail):
    client, server = pair()
    server.sendall(sent)
    server.shutdown(socket.SHUT_WR)
    result, keep = read(client)
    assert result.error_kind == kind and detail in result.error_detail, (result.error_kind, result.error_detail)
    assert not keep and result.t_end is not None
    client.close()
    server.close()


def test_a_silent_server_times_out_by_the_sweep():
    client, server = pair()
    server.sendall(HEAD + token("a"))
    started = clock()
    result, keep = read(client, silence_s=0.3)
    waited_s = (clock() - started) / 1e9
    assert result.error_kind == "timeout" and "no byte for 0.3 s" in result.error_detail
    assert not keep and 0.3 <= waited_s < 5  # the sweep runs four times a second
    server.close()
    client.close()


def test_a_stream_past_its_deadline_fails_though_bytes_keep_coming():
    client, server = pair()

    def trickle() -> None:
        server.sendall(HEAD)
        for _ in range(200):
            server.sendall(token("x"))
            gevent.sleep(0.01)

    writer = gevent.spawn(trickle)
    result, keep = read(client, deadline_s=0.3)
    writer.kill()
    assert result.error_kind == "timeout" and "deadline" in result.error_detail and not keep
    server.close()
    client.close()


def test_a_blocking_socket_is_refused():
    client, server = socket.socketpair()
    with pytest.raises(ValueError, match="non-blocking"):
        read(client)
    client.close()
    server.close()


def test_sessions_on_one_reactor_stream_the_mocks_answers_on_kept_connections():
    """Sixteen users, two turns each, against the real mock: every answer is the one the mock's
    journal holds, and every user's second turn reuses its connection."""
    with start_mock(ttft_ms=30, itl_ms=3) as mock, MockLLMClient(mock.url) as admin:
        load = LoadProfile.of(resolve_profile("openai-chat"), {"max_tokens": 15})
        sessions = [ChatSession(load, Target.parse(mock.url), f"user{i}") for i in range(16)]

        def converse(index: int) -> list:
            session = sessions[index]
            results = [session.turn(f"rx{index}t{turn}z say something") for turn in range(2)]
            return [(r, session.connection._sock is not None) for r in results]

        greenlets = [gevent.spawn(converse, i) for i in range(len(sessions))]
        gevent.joinall(greenlets, timeout=30, raise_error=True)
        for index, greenlet in enumerate(greenlets):
            for turn, (result, kept) in enumerate(greenlet.value):
                assert result.ok and kept, result.error_detail
                assert result.ttft is not None and result.ttft >= 29e6  # the mock holds the first token 30 ms
                entries = admin.journal(prompt_contains=f"rx{index}t{turn}z")
                assert same_text(RULES.spec, result.text, entries[-1]["answer"])
        for session in sessions:
            session.close()


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A loopback TCP connection: the kind of socket the kernel stamps."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        server, _ = listener.accept()
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client, server


def read_a_token_made_late(client: socket.socket, server: socket.socket) -> int:
    """A token written while the hub is then held for 80 ms, as a long parse or a collection would:
    how long after its write the reader timed it (ns)."""
    written: list[int] = []
    hold = get_original("time", "sleep")  # blocks the whole hub

    def serve() -> None:
        server.sendall(HEAD + token("first"))
        gevent.sleep(0.05)
        written.append(clock())
        server.sendall(token("late"))
        hold(0.08)
        gevent.sleep(0.01)  # the token is read alone, before the end arrives
        server.sendall(DONE)

    writer = gevent.spawn(serve)
    result, _ = read(client)
    writer.join(timeout=5)
    client.close()
    server.close()
    assert result.ok, result.error_detail
    return result.token_times[1] - written[0]


@pytest.mark.skipif(SO_TIMESTAMPNS is None, reason="the kernel gives no receive stamps on this platform")
def test_a_read_made_late_keeps_the_kernels_arrival_time():
    """The token is timed at its arrival (the kernel's stamp), not when the busy process read it."""
    late = read_a_token_made_late(*tcp_pair())
    assert 0 <= late < 5_000_000, f"stamped {late / 1e6:.1f} ms after the write (the hub was held 80 ms)"


def test_a_read_made_late_without_kernel_stamps_is_timed_when_read():
    """A socket pair (not TCP) has no kernel stamps: the time taken after the read stands."""
    assert read_a_token_made_late(*pair()) >= 70_000_000


def test_a_digest_cut_at_its_slice_keeps_every_streams_reads_in_order(monkeypatch: pytest.MonkeyPatch):
    """With no time for parsing at all, the digest stops after every 16 reads and resumes after the
    next poll: each stream still gets its reads in order, whole."""
    import loadtests._reactor as reactor_module

    monkeypatch.setattr(reactor_module, "DIGEST_SLICE_NS", 0)
    resumer = reactor()._resumer
    resumed = []

    class Counting:  # the reactor's own resume timer, its starts counted
        active = property(lambda self: resumer.active)

        def start(self, callback: object) -> None:
            resumed.append(1)
            resumer.start(callback)

    monkeypatch.setattr(reactor(), "_resumer", Counting())
    pairs = [pair() for _ in range(60)]
    words = [f"t{i}" for i in range(20)]
    for result, _ in read_in_rounds(pairs, words):  # 60 reads ready at once each round: slices of 16
        assert result.ok, result.error_detail
        assert result.text == "".join(words) and result.token_times == sorted(result.token_times)
    assert resumed, "the digest was never cut at its slice"
    for client, server in pairs:
        client.close()
        server.close()
