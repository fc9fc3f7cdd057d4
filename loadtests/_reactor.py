"""One reactor reads every streaming socket of a load process: stamp all ready reads, then parse.

Why: a Locust user is a greenlet, and a greenlet doing a (gevent-patched) blocking `recv` per read
costs two hub switches and a libev watcher started and stopped on every read (measured: 30-37 µs
of CPU per event with the parse, against 20-24 here), and under load its reads queue behind each
other's parsing, so the stamps run tens of milliseconds late. Here each stream's socket gets one
libev io watcher for the whole response, started when the request has gone out and stopped when
the response ends. The watchers' callbacks run in the gevent hub itself (no greenlet switch per
read): each does one non-blocking read and notes its time, nothing more.

The time of a read is the kernel's where it gives one: on Linux a TCP socket with SO_TIMESTAMPNS
hands back, with each `recvmsg`, when the last segment it returns arrived, so a read made late
(the process busy parsing, a burst of every stream's token at once, a collection) still carries
its true arrival, and the client's own scheduling drops out of TTFT and ITL. Elsewhere, or on a
socket that is not TCP, the time taken right after the read stands. Two events of one stream
that arrive before it is read share the later's time either way: reads are kept prompt for that.

The parsing (HTTP chunks, SSE events, the profile's classification and grammar: `ResponseParser`
and `StreamMeter`) runs once per loop iteration, in a check watcher of the lowest priority (after
the iteration's io callbacks), over the reads stamped, a millisecond's worth at a time before the
sockets are polled again. A user greenlet hands its socket and meter over in `read_stream` and
sleeps until its stream ends; the users of ended streams are woken half a millisecond's worth at a
time between polls. No timer per read either: one sweep a quarter second checks every stream's
deadline and silence.

The reactor belongs to one gevent hub (one per thread, so plain threads work as well as Locust's
greenlets); `reactor()` is the calling thread's.
"""

from __future__ import annotations

import os
import platform
import socket
import struct
import sys
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from gevent import get_hub
from gevent.hub import Waiter
from gevent.monkey import get_original

from ._http import ProtocolError, ResponseParser
from ._measure import StreamFailure, StreamMeter, StreamResult

READ_SIZE = 65536
clock = time.perf_counter_ns  # the system-wide monotonic clock the mock's journal uses too
WAKE_SLICE_NS = 500_000  # the longest ended streams' users run before the sockets are polled again
DIGEST_SLICE_NS = 1_000_000  # the longest the stamped reads are parsed before the sockets are polled again
SWEEP_S = 0.25  # how often deadlines and silences are checked (a timeout is this late at most)
_READABLE = 1  # libev's EV_READ
# The kernel's receive time of a TCP read (Linux: the arrival of the last segment it returns), on
# the realtime clock; absent elsewhere, where the time taken after the read stands.
# (The socket module does not name it; this is its Linux value where the generic socket ABI applies.)
_GENERIC_ABI = sys.platform == "linux" and platform.machine() in ("x86_64", "aarch64", "arm64", "riscv64", "s390x")
SO_TIMESTAMPNS: int | None = getattr(socket, "SO_TIMESTAMPNS", 35 if _GENERIC_ABI else None)
_TIMESPEC = struct.Struct("@ll")  # struct timespec: time_t and long
_STAMP_SPACE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
STAMP_TRUST_NS = 10_000_000_000  # a kernel stamp further back than this is a clock step, not a read
_RawSocket = get_original("socket", "socket")  # the unpatched class: a read in the hub must never wait


@dataclass(slots=True, eq=False)
class _Stream:
    fd: int
    sock: Any  # an unpatched socket object over `fd`, for recvmsg (detached, never closed, at the end)
    meter: StreamMeter
    deadline_ns: int
    ok_status: tuple[int, ...]
    silence_ns: int
    last_ns: int
    parser: ResponseParser = field(default_factory=ResponseParser)
    head_seen: bool = False
    outcome: Any = None  # (result, keep_alive) once it ended, or the exception a bug raised
    waiter: Any = None
    watcher: Any = None


class Reactor:
    """Reads the streams of one gevent hub; `read_stream` is called from any greenlet of it."""

    def __init__(self, loop: Any) -> None:
        self._loop = loop
        self._streams: set[_Stream] = set()
        self._reads: list[tuple[_Stream, bytes | OSError, int]] = []
        # After every poll, once the iteration's io callbacks have run (libev runs the pending
        # watchers of higher priority first): one digest per loop iteration, nothing to allocate.
        self._digester = loop.check()
        self._digester.priority = -2  # libev's lowest
        self._digester.ref = False
        self._woken: deque[_Stream] = deque()
        self._waker = loop.timer(0.0)
        self._resumer = loop.timer(0.0)  # the rest of a digest cut at its slice, after the next poll
        self._sweeper = loop.timer(SWEEP_S, SWEEP_S)
        self._sweeper.ref = False  # the sweep alone never keeps the loop running
        self._realtime_offset_ns = time.time_ns() - clock()  # realtime minus monotonic, for kernel stamps

    @property
    def active(self) -> int:
        """Streams being read now."""
        return len(self._streams)

    def read_stream(self, fd: int, meter: StreamMeter, deadline_ns: int, ok_status: tuple[int, ...],
                    silence_s: float) -> tuple[StreamResult, bool]:  # fmt: skip
        """Read the response to the request just sent on `fd` (a non-blocking socket) into `meter`.

        Returns the result and whether the connection may be kept. A broken stream is a measured
        failure in the result, never an exception; `silence_s` bounds the time without a byte and
        `deadline_ns` the whole response.
        """
        if os.get_blocking(fd):
            raise ValueError("the reactor reads non-blocking sockets only (a socket with a timeout is one)")
        sock = _kernel_stamped(fd)
        stream = _Stream(fd, sock, meter, deadline_ns, ok_status, int(silence_s * 1e9), clock())
        stream.waiter = Waiter()
        stream.watcher = self._loop.io(fd, _READABLE)
        self._streams.add(stream)
        stream.watcher.start(self._on_stamped if sock is not None else self._on_readable, stream)
        if not self._sweeper.active:
            self._realtime_offset_ns = time.time_ns() - clock()
            self._sweeper.start(self._sweep)
            self._digester.start(self._digest)
        try:
            outcome = stream.waiter.get()
        finally:
            stream.watcher.stop()
            stream.watcher.close()
            self._streams.discard(stream)
            if sock is not None:
                sock.detach()  # the fd stays the caller's
        return outcome

    # In the hub: one read and its time, nothing else.
    def _on_readable(self, stream: _Stream, _read: Any = os.read, _clock: Any = clock) -> None:
        try:
            data = _read(stream.fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            data = exc
        self._reads.append((stream, data, _clock()))

    # The same, where the kernel stamps the read: its time, moved onto the monotonic clock.
    def _on_stamped(self, stream: _Stream, _clock: Any = clock, _unpack: Any = _TIMESPEC.unpack) -> None:
        try:
            data, ancillary, _flags, _address = stream.sock.recvmsg(READ_SIZE, _STAMP_SPACE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._reads.append((stream, exc, _clock()))
            return
        now = _clock()
        if ancillary and ancillary[0][1] == SO_TIMESTAMPNS:  # SCM_TIMESTAMPNS, the same number
            seconds, nanoseconds = _unpack(ancillary[0][2])
            stamped = seconds * 1_000_000_000 + nanoseconds - self._realtime_offset_ns
            if now - STAMP_TRUST_NS < stamped < now:
                now = stamped
        self._reads.append((stream, data, now))

    # In the hub, after the loop iteration's reads are stamped: parse them, wake whoever is done.
    def _digest(self) -> None:
        """Parse the stamped reads in order, at most `DIGEST_SLICE_NS` of them at a time.

        A burst (every stream's token due at once, as closed-loop users started together keep
        them) is hundreds of reads: parsed in one go, the sockets would go unpolled for as long,
        and the next burst read late (two tokens of a stream then share one read and one time, and
        without kernel stamps every read is timed late). Past the slice the rest waits for a zero
        timer, so the loop polls first; the queue stays in order.
        """
        reads = self._reads
        if not reads:
            return
        until = clock() + DIGEST_SLICE_NS
        ended = []
        take = self._take
        done = 0
        for stream, data, t in reads:
            done += 1
            if stream.outcome is None:
                try:
                    outcome = take(stream, data, t)
                except Exception as exc:  # a bug, not a broken stream: it surfaces in the user's greenlet
                    outcome = exc
                if outcome is not None:
                    stream.outcome = outcome
                    stream.watcher.stop()
                    ended.append(stream)
            if not done & 15 and clock() >= until:
                break
        if done < len(reads):
            self._reads = reads[done:]
            if not self._resumer.active:
                self._resumer.start(self._digest)
        else:
            self._reads = []
        self._wake(ended)

    def _take(self, stream: _Stream, data: bytes | OSError, t: int) -> tuple[StreamResult, bool] | None:
        meter = stream.meter
        if type(data) is not bytes:
            return meter.fail(clock(), StreamFailure("connect", f"read failed: {data}")), False
        if t > stream.deadline_ns:
            return meter.fail(clock(), StreamFailure("timeout", "the response did not end before the deadline")), False
        stream.last_ns = t
        parser = stream.parser
        try:
            if not data:
                parser.eof()
                return meter.finish(clock()), False
            piece = parser.feed(data)
            if parser.head_done:
                if not stream.head_seen:
                    stream.head_seen = True
                    meter.headers(t)
                    response = parser.response
                    if response.status not in stream.ok_status:
                        detail = f"{response.status} {response.reason}: {piece[:200]!r}"
                        raise StreamFailure(f"http-{response.status}", detail)
                if piece:
                    meter.read(piece, t)
        except StreamFailure as failure:
            return meter.fail(clock(), failure), False
        except ProtocolError as exc:
            return meter.fail(clock(), StreamFailure("protocol", str(exc))), False
        if parser.done:
            return meter.finish(clock()), parser.response.keep_alive
        return None

    def _sweep(self) -> None:
        now = clock()
        self._realtime_offset_ns = time.time_ns() - now  # follows the realtime clock's slewing
        ended = []
        for stream in self._streams:
            if stream.outcome is not None:
                continue
            if now > stream.deadline_ns:
                failure = StreamFailure("timeout", "the response did not end before the deadline")
            elif now - stream.last_ns > stream.silence_ns:
                failure = StreamFailure("timeout", f"no byte for {stream.silence_ns / 1e9:g} s")
            else:
                continue
            stream.outcome = stream.meter.fail(now, failure), False
            stream.watcher.stop()
            ended.append(stream)
        if not self._streams:
            self._sweeper.stop()
            self._digester.stop()
        self._wake(ended)

    def _wake(self, ended: list[_Stream]) -> None:
        """The users of ended streams run from a zero timer, a slice at a time, not here and now.

        A woken user runs until its next request is out (recording the stream, Locust's statistics,
        rendering and sending the next turn): a burst of streams ending together would otherwise
        hold every socket's reads back until all of them had run. A timer callback runs after the
        loop's poll, so between slices the ready sockets are read and stamped.
        """
        if not ended:
            return
        self._woken.extend(ended)
        if not self._waker.active:
            self._waker.start(self._wake_slice)

    def _wake_slice(self) -> None:
        until = clock() + WAKE_SLICE_NS
        woken = self._woken
        while woken:
            stream = woken.popleft()
            if isinstance(stream.outcome, BaseException):
                stream.waiter.throw(stream.outcome)
            else:
                stream.waiter.switch(stream.outcome)
            if woken and clock() >= until:
                self._waker.start(self._wake_slice)  # the rest after the next poll
                break


def _kernel_stamped(fd: int) -> Any:
    """An unpatched socket over `fd` with the kernel's receive stamps on, or None where there are none
    (not Linux, not TCP: a socket pair in a test), and the reads are stamped after they return."""
    if SO_TIMESTAMPNS is None or not _STAMP_SPACE:
        return None
    sock = _RawSocket(fileno=fd)
    try:
        if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
            raise OSError("not TCP")
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        sock.detach()
        return None
    return sock


_REACTORS: weakref.WeakKeyDictionary[Any, Reactor] = weakref.WeakKeyDictionary()


def reactor() -> Reactor:
    """The calling thread's reactor (made on first use, on that thread's gevent hub)."""
    hub = get_hub()
    found = _REACTORS.get(hub)
    if found is None:
        found = _REACTORS[hub] = Reactor(hub.loop)
    return found
