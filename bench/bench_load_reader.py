"""Benchmark the load client's reading against a bare asyncio reader on one core, in one run.

Both read the same mock (TTFT 200 ms, ITL 20 ms by default; pinned to CPU 0) with the same number
of concurrent streams, one after the other at each step (interleaved, so the machine's drift hits
both alike); both are pinned to CPU 1. Every stream either of them read is paired with the mock's
journal of when it really wrote each token: measured minus true, for TTFT and every gap.

- bare: stock asyncio streams (`open_connection`, `readuntil(b"\\n\\n")`), every event stamped as it
  is read and kept as bytes; nothing is parsed until the run is over. The least a Python reader
  on asyncio can do per event.
- ours: one Locust process of `loadtests` (`loadtests.measure`, what `python -m loadtests selftest`
  runs), which also decodes the HTTP chunks, classifies every event by the profile, steps its
  grammar and gathers the run's statistics while it reads.

`--replay N` measures the read path alone, without Locust or the mock: a forked writer (CPU 0)
plays N chunked SSE responses back to back on N socket pairs, one event per socket every ITL, and
the reader (CPU 1) reads and measures them all (`ResponseParser` + `StreamMeter`) either through
the reactor or the way the load client read before it (a greenlet per socket, blocking gevent
`recv`); interleaved rounds, CPU time per event of each.

A reader's ceiling is the most events/s it read at a step where both p50 errors stayed within
1 ms and its CPU stayed under 90% (a saturated reader measures its own delay); the ratio of the
two ceilings is the figure. The machine may be shared: the CPU figures are the readers' own.

    python -m bench.bench_load_reader [--streams 200,400,800,1200] [--seconds 8] [--itl-ms 20] [--json PATH]
    python -m bench.bench_load_reader --replay 400 [--seconds 3] [--itl-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench._runtime import available_cpus, pin_to_cpu, raise_nofile_limit
from loadtests import measure, pair_errors
from mockllm import start_mock

TTFT_MS, TOKENS = 200.0, 50
SERVER_CPU, CLIENT_CPU = 0, 1
P50_LIMIT_MS, CPU_LIMIT = 1.0, 90.0


# --- the bare asyncio reader (run in its own process: `--bare-worker`) ---


def _request(host: str, port: int, marker: str, max_tokens: int) -> bytes:
    message = {"role": "user", "content": f"{marker} Write a short note."}
    body = json.dumps({"model": "gpt-4o-mini", "stream": True, "max_tokens": max_tokens,
                       "stream_options": {"include_usage": True}, "messages": [message]}).encode()  # fmt: skip
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n")  # fmt: skip
    return head.encode() + body


async def _user(host: str, port: int, index: int, stop_at: float, max_tokens: int, out: list[Any]) -> None:
    clock = time.perf_counter_ns
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    turn = 0
    while time.perf_counter() < stop_at:
        marker = f"bare{index}t{turn}z"
        turn += 1
        writer.write(_request(host, port, marker, max_tokens))
        await reader.readuntil(b"\r\n\r\n")  # the head
        stamped = []
        while True:
            event = await reader.readuntil(b"\n\n")
            stamped.append((clock(), event))
            if event.endswith(b"data: [DONE]\n\n"):
                break
        await reader.readuntil(b"0\r\n\r\n")  # the last chunk
        out.append((marker, stamped))
    writer.close()


def _traces(streams: list[Any]) -> list[dict[str, Any]]:
    """After the run: each stream's token times (events with non-empty content), as `pair_errors` takes them."""
    traces = []
    for marker, stamped in streams:
        times = []
        for t, event in stamped:
            data = event[event.index(b"data: ") + 6 : -2]
            if data == b"[DONE]":
                continue
            choices = json.loads(data).get("choices") or []
            if choices and (choices[0].get("delta") or {}).get("content"):
                times.append(t)
        if times:
            traces.append({"marker": marker, "first_token_ns": times[0],
                           "gaps_ns": [b - a for a, b in itertools.pairwise(times)]})  # fmt: skip
    return traces


async def _bare(url: str, users: int, seconds: float, max_tokens: int) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    streams: list[Any] = []
    cpu_samples: list[float] = []

    async def sample() -> None:
        last_cpu, last_wall = time.process_time(), time.perf_counter()
        while True:
            await asyncio.sleep(1.0)
            cpu, wall = time.process_time(), time.perf_counter()
            cpu_samples.append(100 * (cpu - last_cpu) / (wall - last_wall))
            last_cpu, last_wall = cpu, wall

    sampler = asyncio.ensure_future(sample())
    started, cpu0 = time.perf_counter(), time.process_time()
    stop_at = started + seconds
    await asyncio.gather(*(_user(host, int(port), i, stop_at, max_tokens, streams) for i in range(users)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    sampler.cancel()
    events = sum(len(stamped) for _, stamped in streams)
    return {"traces": _traces(streams), "events_per_s": round(events / wall, 1),
            "cpu_mean": round(100 * cpu / wall, 1), "cpu_max": round(max(cpu_samples, default=0.0), 1)}  # fmt: skip


def _bare_worker(args: argparse.Namespace) -> int:
    raise_nofile_limit()
    result = asyncio.run(_bare(args.url, args.users, args.seconds, args.max_tokens))  # stock asyncio, no uvloop
    print(json.dumps(result))
    return 0


# --- the read path alone, replayed on socket pairs (`--replay N`) ---


def _replayed_response() -> tuple[bytes, list[bytes]]:
    """The head and one chunk per event of a 50-token openai-chat answer, as the mock writes them."""
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    base = {"id": "chatcmpl-replay", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "system_fingerprint": "fp_replay"}  # fmt: skip

    def event(payload: Any) -> bytes:
        data = b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload).encode()) + b"\n\n"
        return b"%x\r\n%s\r\n" % (len(data), data)

    first = event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    tokens = [event({**base, "choices": [{"index": 0, "delta": {"content": f" word{i}"}, "finish_reason": None}]})
              for i in range(TOKENS)]  # fmt: skip
    usage = {"prompt_tokens": 9, "completion_tokens": TOKENS, "total_tokens": TOKENS + 9}
    last = event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
    last += event({**base, "choices": [], "usage": usage}) + event(b"[DONE]") + b"0\r\n\r\n"
    return head + first, [*tokens[:-1], tokens[-1] + last]


def _replay_writer(servers: list[Any], itl_s: float, stop_at: float) -> None:
    import socket

    pin_to_cpu(os.getpid(), SERVER_CPU)
    start, steps = _replayed_response()
    n = len(servers)
    position = [0] * n  # each socket's next write: 0 is a response's start
    tick = 0
    began = time.perf_counter()
    while time.perf_counter() < stop_at:
        index = tick % n
        due = began + tick * itl_s / n  # the sockets take turns: one write per socket per ITL
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        step, server = position[index], servers[index]
        tick += 1
        if step == 0:  # a response starts only once its request (one byte) has come
            try:
                server.recv(1, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
        server.sendall(start if step == 0 else steps[step - 1])
        position[index] = 0 if step == len(steps) else step + 1


def _replay_round(mode: str, streams: int, seconds: float, itl_s: float) -> dict[str, Any]:
    import multiprocessing
    import socket

    import gevent
    import gevent.socket

    from loadtests import ResponseParser, StreamMeter, StreamRules, clock, reactor, resolve_profile

    rules = StreamRules.of(resolve_profile("openai-chat").stream)
    pairs = [socket.socketpair() for _ in range(streams)]
    stop_at = time.perf_counter() + seconds + 1.0
    writer = multiprocessing.get_context("fork").Process(
        target=_replay_writer, args=([server for _, server in pairs], itl_s, stop_at)
    )
    writer.start()
    failed = [0]
    meters: list[Any] = []  # every response's meter, the unfinished ones too: their events were read

    def by_reactor(client: Any) -> None:
        client.settimeout(10)
        while True:
            meter = StreamMeter(rules, clock(), clock())
            meters.append(meter)
            client.send(b"R")
            result, _ = reactor().read_stream(client.fileno(), meter, clock() + 60_000_000_000, (200,), 10.0)
            failed[0] += not result.ok

    def by_recv(client: Any) -> None:  # the load client's read loop before the reactor
        gsocket = gevent.socket.socket(fileno=os.dup(client.fileno()))
        recv = gsocket.recv
        while True:
            parser, meter = ResponseParser(), StreamMeter(rules, clock(), clock())
            meters.append(meter)
            gsocket.send(b"R")
            while not parser.done:
                data = recv(65536)
                t = clock()
                piece = parser.feed(data)
                if parser.head_done and piece:
                    meter.read(piece, t)
            failed[0] += not meter.finish(clock()).ok

    cpu0 = time.process_time()
    readers = [gevent.spawn(by_reactor if mode == "reactor" else by_recv, client) for client, _ in pairs]
    gevent.sleep(seconds)
    cpu = time.process_time() - cpu0
    gevent.killall(readers)
    events = [sum(meter.result.events for meter in meters)]
    writer.join()
    for client, server in pairs:
        client.close()
        server.close()
    return {"mode": mode, "events": events[0], "failed": failed[0], "cpu_s": cpu,
            "us_per_event": round(cpu / events[0] * 1e6, 2) if events[0] else None}  # fmt: skip


def run_replay(streams: int, seconds: float, itl_ms: float, rounds: int = 3) -> int:
    raise_nofile_limit()
    if CLIENT_CPU in available_cpus():
        os.sched_setaffinity(0, {CLIENT_CPU})
    results: dict[str, list[float]] = {"recv": [], "reactor": []}
    for round_ in range(rounds):
        for mode in ("recv", "reactor") if round_ % 2 == 0 else ("reactor", "recv"):
            figures = _replay_round(mode, streams, seconds, itl_ms / 1000)
            print(f"  {mode:8} {figures['events']:>7} events, {figures['failed']} failed, "
                  f"{figures['us_per_event']} µs CPU per event", file=sys.stderr)  # fmt: skip
            if figures["us_per_event"]:
                results[mode].append(figures["us_per_event"])
    best = {mode: min(values) for mode, values in results.items() if values}
    print(f"read path alone, {streams} streams x one event per {itl_ms:g} ms, {rounds} interleaved rounds "
          f"(best of each): blocking recv per greenlet {best.get('recv')} µs CPU per event, "
          f"reactor {best.get('reactor')} µs")  # fmt: skip
    return 0


# --- the benchmark ---


def run_bare(url: str, users: int, seconds: float) -> dict[str, Any]:
    with httpx.Client(base_url=url, timeout=30) as admin:
        admin.delete("/_mock/journal")
        command = [sys.executable, "-m", "bench.bench_load_reader", "--bare-worker", "--url", url,
                   "--users", str(users), "--seconds", str(seconds), "--max-tokens", str(TOKENS)]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120, check=False)
        if done.returncode:
            raise RuntimeError(f"the bare reader failed: {done.stderr[-600:]}")
        figures = json.loads(done.stdout)
        journal = admin.get("/_mock/journal").json()["entries"]
    errors = pair_errors(figures.pop("traces"), journal)
    return {"events_per_s": figures["events_per_s"], "cpu_mean": figures["cpu_mean"], "cpu_max": figures["cpu_max"],
            "errors_ms": errors}  # fmt: skip


def run_ours(url: str, users: int, seconds: float, workdir: Path) -> dict[str, Any]:
    figures = measure(url, users=users, run_time_s=seconds, max_tokens=TOKENS, workdir=workdir)
    cpu = figures["validity"]["client_cpu_percent"]
    return {"events_per_s": figures["events_per_s"], "cpu_mean": cpu["mean"], "cpu_max": cpu["max"],
            "errors_ms": figures["errors_ms"], "failed": figures["failed"]}  # fmt: skip


def within(row: dict[str, Any]) -> bool:
    e = row["errors_ms"]
    accurate = all(e[k] is not None and abs(e[k]) <= P50_LIMIT_MS for k in ("ttft_p50", "itl_p50"))
    return accurate and row["cpu_max"] < CPU_LIMIT and not row.get("failed") and not e["unpaired"]


def _line(name: str, n: int, row: dict[str, Any]) -> str:
    e = row["errors_ms"]

    def ms(key: str) -> str:
        return "-" if e[key] is None else f"{e[key]:+.3f}"

    return (f"{n:>7} {name:>5} | {row['events_per_s']:>9,.0f} | {ms('ttft_p50'):>8} {ms('ttft_p99'):>8} | "
            f"{ms('itl_p50'):>8} {ms('itl_p99'):>8} | {row['cpu_mean']:>5}% {row['cpu_max']:>5}% | "
            f"{e['streams']:>6} | {'yes' if within(row) else 'no'}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", default="200,400,800,1200", help="concurrent streams at each step")
    parser.add_argument("--seconds", type=float, default=8.0, help="each reader's run at each step")
    parser.add_argument("--itl-ms", type=float, default=20.0)
    parser.add_argument("--json")
    parser.add_argument("--replay", type=int, metavar="N", help="the read path alone, on N socket pairs")
    parser.add_argument("--bare-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--max-tokens", type=int, default=TOKENS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_worker:
        return _bare_worker(args)
    if args.replay:
        return run_replay(args.replay, min(args.seconds, 5.0), args.itl_ms)
    counts = [int(n) for n in args.streams.split(",")]
    raise_nofile_limit()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-load-reader-") as scratch:
        workdir = Path(scratch)
        mock = start_mock("--answer-tokens", "1000", ttft_ms=TTFT_MS, itl_ms=args.itl_ms, log=workdir / "mock.log",
                          cwd=workdir)  # fmt: skip
        with httpx.Client(base_url=mock.url, timeout=30) as admin:
            admin.patch("/_mock/config", json={"journal": {"max_entries": 200_000}})
        pin_to_cpu(mock.process.pid, SERVER_CPU)
        if CLIENT_CPU in available_cpus():
            os.sched_setaffinity(0, {CLIENT_CPU})  # both readers' processes inherit it
        try:
            for step, n in enumerate(counts):
                order = ("bare", "ours") if step % 2 == 0 else ("ours", "bare")
                row: dict[str, Any] = {"streams": n}
                for name in order:
                    if name == "bare":
                        row[name] = run_bare(mock.url, n, args.seconds)
                    else:
                        row[name] = run_ours(mock.url, n, args.seconds, workdir / f"ours-{n}")
                rows.append(row)
                print(f"  step {n} streams done", file=sys.stderr)
        finally:
            mock.stop()
    print(f"\nLoad reading: mock TTFT {TTFT_MS:g} ms, ITL {args.itl_ms:g} ms, {TOKENS} tokens per answer, "
          f"{args.seconds:g} s per reader per step; errors are measured minus true (ms)")  # fmt: skip
    print(f"{'streams':>7} {'who':>5} | {'events/s':>9} | {'TTFT p50':>8} {'TTFT p99':>8} | {'ITL p50':>8} "
          f"{'ITL p99':>8} | {'CPU mean/max':>13} | {'paired':>6} | within")  # fmt: skip
    ceilings = {"bare": 0.0, "ours": 0.0}
    for row in rows:
        for name in ("bare", "ours"):
            print(_line(name, row["streams"], row[name]))
            if within(row[name]):
                ceilings[name] = max(ceilings[name], row[name]["events_per_s"])
    ratio = ceilings["ours"] / ceilings["bare"] if ceilings["bare"] else None
    print(f"ceiling (events/s with both p50 errors within {P50_LIMIT_MS:g} ms and CPU < {CPU_LIMIT:g}%): "
          f"bare asyncio {ceilings['bare']:,.0f}, ours {ceilings['ours']:,.0f}; "
          f"ratio {'-' if ratio is None else f'{ratio:.2f}'}")  # fmt: skip
    # What each reader's CPU per event allows: events/s x 90 / mean CPU %, at the step where it read
    # the most events per CPU second. On a machine whose other jobs (or the mock) hold the readers
    # back, this is the ceiling the measured one would reach.
    projected = {name: max((row[name]["events_per_s"] * CPU_LIMIT / row[name]["cpu_mean"] for row in rows
                            if row[name]["cpu_mean"]), default=0.0) for name in ("bare", "ours")}  # fmt: skip
    projected_ratio = projected["ours"] / projected["bare"] if projected["bare"] else None
    print(f"ceiling projected from CPU per event (events/s x {CPU_LIMIT:g} / mean CPU %): "
          f"bare asyncio {projected['bare']:,.0f}, ours {projected['ours']:,.0f}; "
          f"ratio {'-' if projected_ratio is None else f'{projected_ratio:.2f}'}")  # fmt: skip
    if args.json:
        document = {"rows": rows, "ceilings": ceilings, "ratio": ratio, "projected": projected,
                    "projected_ratio": projected_ratio}  # fmt: skip
        Path(args.json).write_text(json.dumps(document, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
