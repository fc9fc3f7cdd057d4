"""`mockllm serve --workers N`: one mock as N processes on one port, with one view of its state.

The supervisor (the process the command starts) reserves the port, makes the shared counts
(`_shared_state.SharedMemory`) and forks N workers; each is a whole `MockServer` on its own event
loop, listening on the same host and port with SO_REUSEPORT, so the kernel spreads connections over
them. A response depends on the request and the seed only, so its bytes and delays are the same
whichever worker plays it. What depends on arrival order is in the shared memory (journal ids,
fault schedule counters, armed faults' counts, the number of streams); the rest is one view by way
of the supervisor, over a control channel to each worker (`_control`):

- an admin call that changes state (config PUT/PATCH, arming and disarming faults, reset, clearing
  the journal, refuse) is handed to the supervisor, which applies it to the first worker (its
  answer is the call's answer; a refused call goes no further) and then to every other one: once
  the call is answered, every worker acts on it;
- the journal, `/_mock/stats` and `/metrics` are gathered from every worker and merged (entries by
  id, counts summed), so any worker shows an entry as soon as its stream is over;
- a `refuse` fault in one worker closes every worker's listener;
- a contract's conversations live in the supervisor (`_conversations.RemoteConversations`).

The supervisor prints `mockllm listening on URL` once every worker listens, stops them all on
SIGTERM or SIGINT, and exits with status 1, naming it, if a worker dies. A worker whose supervisor
is gone stops too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from ._admin import admin_error, json_response
from ._control import CallFailed, Channel, ChannelClosed, Message, message_response, response_message
from ._conversations import Conversations, RemoteConversations
from ._metrics import Metrics
from ._server import MockServer
from ._shared_state import SharedMemory, SharedTally
from ._wire import HttpResponse

MAX_WORKERS = 64
READY_TIMEOUT_S = 60.0
CALL_TIMEOUT_S = 30.0  # a worker that does not answer an admin call in this long is stuck
STOP_TIMEOUT_S = 10.0
_PR_SET_PDEATHSIG = 1


class WorkerLink:
    """A worker's side: the shared counts, the conversation store, and the supervisor (`Peers`)."""

    def __init__(self, index: int, memory: SharedMemory, control: socket.socket, store: socket.socket) -> None:
        self.index = index
        self.tally = SharedTally(memory, primary=index == 0)
        self._control_socket = control
        self._store = store
        self._channel: Channel | None = None
        self._server: MockServer | None = None

    def conversations(self) -> Conversations:
        return RemoteConversations(self._store)

    async def admin(self, method: str, path: str, query: str, body: bytes) -> HttpResponse:
        assert self._channel is not None  # attached before the server listens
        try:
            reply = await self._channel.call(
                {"op": "admin", "method": method, "path": path, "query": query, "body": body.decode("latin-1")}
            )
        except ChannelClosed:
            return admin_error(503, "the mock's supervisor is gone")
        return message_response(reply)

    def refused(self, seconds: float) -> None:
        if self._channel is not None:
            self._channel.note({"op": "refuse", "seconds": seconds})

    async def attach(self, server: MockServer, port: int, stop: asyncio.Event) -> None:
        """Serve the supervisor's calls from now on; `stop` is set when the supervisor goes."""
        self._server = server
        self._channel = channel = await Channel.over(self._control_socket, self._answer)
        task = asyncio.get_running_loop().create_task(channel.run())
        task.add_done_callback(lambda _: stop.set())
        channel.note({"op": "ready", "port": port, "pid": os.getpid()})

    async def _answer(self, message: Message) -> Message | None:
        server = self._server
        assert server is not None
        op = message.get("op")
        if op == "admin":
            body = str(message.get("body", "")).encode("latin-1")
            response = server.answer_admin(message["method"], message["path"], message.get("query", ""), body)
            restart, self.tally.restart_wanted = self.tally.restart_wanted, False
            return {**response_message(response), "restart": restart}
        if op == "metrics":
            refusal = server.refusal()
            return {
                "state": server.metrics.state(),
                "active_streams": server.active_streams,
                "refusing_s": refusal.remaining_s,
                "refusal_windows": refusal.windows,
            }
        if op == "refuse":
            server.refuse(float(message["seconds"]))
            return None
        return {"error": f"unknown control call {op!r}"}


@dataclass
class _Worker:
    index: int
    pid: int
    control: socket.socket
    store: socket.socket
    channel: Channel | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    status: int | None = None  # the exit status once it has exited


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to host:port with SO_REUSEPORT and never listening: it fixes the port (port 0:
    the kernel picks one) for the workers to bind, and keeps it ours while their listeners are
    closed (a refusal window). A connection is only ever handed to a listening socket.

    The port is first bound without SO_REUSEPORT, so a port another process holds is refused
    (OSError), even one held with SO_REUSEPORT by another mock's workers: two mocks never share a port."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)
        address = probe.getsockname()
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def run_workers(host: str, port: int, count: int, serve: Callable[[WorkerLink, int], None]) -> int:
    """Fork `count` workers, each running `serve(link, port)` (its own event loop, until stopped);
    supervise them until SIGTERM/SIGINT or a worker's death. The exit status."""
    try:
        reserved = reserve_port(host, port)
    except OSError as err:
        print(f"mockllm: cannot listen on {host}:{port}: {err.strerror or err}", file=sys.stderr)
        return 2
    bound = int(reserved.getsockname()[1])
    memory = SharedMemory()
    workers: list[_Worker] = []
    sys.stdout.flush()
    sys.stderr.flush()
    for index in range(count):
        control, control_child = socket.socketpair()
        store, store_child = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the worker
            for sock in (reserved, control, store, *(s for w in workers for s in (w.control, w.store))):
                sock.close()
            os._exit(_worker_main(WorkerLink(index, memory, control_child, store_child), bound, serve))
        control_child.close()
        store_child.close()
        workers.append(_Worker(index, pid, control, store))
    try:
        return asyncio.run(Supervisor(host, bound, workers, memory).run())
    finally:
        reserved.close()


def _worker_main(link: WorkerLink, port: int, serve: Callable[[WorkerLink, int], None]) -> int:
    with contextlib.suppress(OSError, AttributeError):  # Linux: end with the supervisor, even if it is killed
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    try:
        serve(link, port)
    except KeyboardInterrupt:
        return 0
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        return 1
    sys.stdout.flush()
    return 0


class Supervisor:
    """The workers' parent: it announces them, answers their admin calls for all of them, keeps the
    contract's conversations, and stops them."""

    def __init__(self, host: str, port: int, workers: list[_Worker], memory: SharedMemory) -> None:
        self.host = host
        self.port = port
        self.workers = workers
        self.memory = memory
        self.conversations = Conversations()
        self._changes = asyncio.Lock()  # one state-changing admin call at a time, in the same order everywhere
        self._stopping = False
        self._failed: str | None = None
        self._stop = asyncio.Event()
        self._started = time.time()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        tasks = []
        for worker in self.workers:
            worker.channel = await Channel.over(worker.control, self._answerer(worker))
            tasks.append(loop.create_task(self._watch(worker, worker.channel)))
            tasks.append(loop.create_task(self._serve_store(worker)))
        ready = loop.create_task(asyncio.wait_for(self._all_ready(), READY_TIMEOUT_S))
        stopped = loop.create_task(self._stop.wait())
        await asyncio.wait((ready, stopped), return_when=asyncio.FIRST_COMPLETED)
        if not self._stop.is_set():  # every worker listens, or the time ran out
            if ready.exception() is None:
                count = len(self.workers)
                print(f"mockllm listening on http://{self.host}:{self.port} ({count} workers)", flush=True)
                await self._stop.wait()
            else:
                self._failed = f"the workers did not all listen within {READY_TIMEOUT_S:g} s"
        ready.cancel()
        stopped.cancel()
        self._stopping = True
        await self._stop_workers()
        for task in tasks:
            task.cancel()
        if self._failed is not None:
            print(f"mockllm: {self._failed}; stopped every worker", file=sys.stderr, flush=True)
            return 1
        return 0

    async def _all_ready(self) -> None:
        for worker in self.workers:
            await worker.ready.wait()

    async def _watch(self, worker: _Worker, channel: Channel) -> None:
        """Read the worker's channel; when it closes while the mock runs, the worker has died."""
        await channel.run()
        if not self._stopping:
            worker.status = await asyncio.to_thread(_wait_for, worker.pid, 5.0)
            how = _describe_status(worker.status)
            self._failed = self._failed or f"worker {worker.index} (pid {worker.pid}) {how}"
            self._stop.set()

    def _answerer(self, worker: _Worker) -> Callable[[Message], Any]:
        async def answer(message: Message) -> Message | None:
            op = message.get("op")
            if op == "ready":
                worker.ready.set()
                return None
            if op == "refuse":
                for other in self.workers:
                    if other is not worker and other.channel is not None:
                        other.channel.note({"op": "refuse", "seconds": message["seconds"]})
                return None
            if op == "admin":
                return response_message(await self.admin(message))
            return {"error": f"unknown control call {op!r}"}

        return answer

    async def _serve_store(self, worker: _Worker) -> None:
        """Answer the worker's conversation calls, one at a time (it waits for each answer)."""
        reader, writer = await asyncio.open_connection(sock=worker.store)
        try:
            while True:
                head = await reader.readexactly(4)
                request = json.loads(await reader.readexactly(int.from_bytes(head, "big")))
                data = json.dumps(self.conversations.serve(request), ensure_ascii=False).encode()
                writer.write(len(data).to_bytes(4, "big") + data)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    # -- admin calls for every worker --------------------------------------------------------------

    async def admin(self, message: Message) -> HttpResponse:
        method, path = message["method"], message["path"]
        call = {key: message.get(key, "") for key in ("method", "path", "query", "body")}
        try:
            if method == "GET" and path == "/_mock/journal":
                return self._journal(await self._everyone({"op": "admin", **call}), call["query"])
            if method == "GET" and path == "/_mock/stats":
                return self._stats(await self._everyone({"op": "admin", **call}))
            if method == "GET" and path == "/metrics":
                return self._metrics(await self._everyone({"op": "metrics"}))
            async with self._changes:
                first = await self._ask(self.workers[0], {"op": "admin", **call})
                if first["status"] >= 400:
                    return message_response(first)
                others = [self._ask(worker, {"op": "admin", **call}) for worker in self.workers[1:]]
                replies = [first, *await asyncio.gather(*others)]
                if any(reply.get("restart") for reply in replies):
                    self.memory.restart_rules()  # once every worker counts with the new rules
            if method == "DELETE" and path == "/_mock/journal":
                cleared = sum(_body(reply)["cleared"] for reply in replies)
                return json_response(200, {"cleared": cleared})
            return message_response(first)
        except ChannelClosed:
            return admin_error(503, "a worker of the mock is gone")
        except TimeoutError:
            return admin_error(504, f"a worker of the mock did not answer within {CALL_TIMEOUT_S:g} s")
        except CallFailed as err:
            return admin_error(500, f"a worker of the mock failed: {err}")

    async def _ask(self, worker: _Worker, message: Message) -> Message:
        if worker.channel is None:
            raise ChannelClosed(f"worker {worker.index} has no channel")
        return await asyncio.wait_for(worker.channel.call(message), CALL_TIMEOUT_S)

    async def _everyone(self, message: Message) -> list[Message]:
        return list(await asyncio.gather(*(self._ask(worker, message) for worker in self.workers)))

    def _journal(self, replies: list[Message], query: str) -> HttpResponse:
        """Every worker's entries, by id; `limit` (each worker kept its newest) applied again."""
        refused = next((reply for reply in replies if reply["status"] >= 400), None)
        if refused is not None:
            return message_response(refused)
        entries = sorted((entry for reply in replies for entry in _body(reply)["entries"]), key=lambda e: e["id"])
        limit = _query_int(query, "limit")
        return json_response(200, {"entries": entries[-limit:] if limit else entries})

    def _stats(self, replies: list[Message]) -> HttpResponse:
        stats = [_body(reply) for reply in replies]
        by_outcome: dict[str, int] = {}
        for one in stats:
            for outcome, count in one["by_outcome"].items():
                by_outcome[outcome] = by_outcome.get(outcome, 0) + count
        return json_response(
            200,
            {
                "requests": sum(one["requests"] for one in stats),
                "by_outcome": by_outcome,
                "active_streams": sum(one["active_streams"] for one in stats),
                "journal_entries": sum(one["journal_entries"] for one in stats),
                "armed_faults": max(one["armed_faults"] for one in stats),
                "uptime_s": time.time() - self._started,
                "refusing_s": max(one["refusing_s"] for one in stats),
                "refusal_windows": max(one["refusal_windows"] for one in stats),
                "workers": [
                    {"pid": worker.pid, "requests": one["requests"], "active_streams": one["active_streams"]}
                    for worker, one in zip(self.workers, stats, strict=True)
                ],
            },
        )

    def _metrics(self, replies: list[Message]) -> HttpResponse:
        total = Metrics.merged(reply["state"] for reply in replies)
        body = total.render(
            sum(reply["active_streams"] for reply in replies),
            max(reply["refusing_s"] for reply in replies),
            max(reply["refusal_windows"] for reply in replies),
        )
        return HttpResponse(200, (("content-type", "text/plain; version=0.0.4"),), body.encode())

    # -- stopping ---------------------------------------------------------------------------------

    async def _stop_workers(self) -> None:
        for worker in self.workers:
            if worker.status is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGTERM)
        await asyncio.gather(
            *(asyncio.to_thread(_wait_for, w.pid, STOP_TIMEOUT_S) for w in self.workers if w.status is None)
        )
        for worker in self.workers:
            if worker.channel is not None:
                worker.channel.close()


def _wait_for(pid: int, timeout_s: float) -> int:
    """The exit status of child `pid`, killed if it has not exited within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return 0  # reaped already
        if done:
            return status
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return os.waitpid(pid, 0)[1]
        time.sleep(0.02)


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by signal {os.WTERMSIG(status)}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def _body(reply: Message) -> Any:
    """The JSON body of a worker's answer (sent as latin-1 text: its UTF-8 bytes as they were)."""
    return json.loads(str(reply["body"]).encode("latin-1"))


def _query_int(query: str, name: str) -> int | None:
    value = dict(parse_qsl(query)).get(name)
    return int(value) if value is not None and value.isascii() and value.isdigit() else None
