"""Command line: `mockllm serve`, `mockllm demo`, `mockllm check-config`, `mockllm record`.

`record --upstream URL --out DIR` is a pass-through proxy in front of a real provider that writes
each chat answer as a recording (see `_recorder`); a mock with `recordings: {dir: DIR}` in its config
replays them byte for byte.

Besides the config file, flags set the seed, the timing, the default answer and the limits on what
a client may send (`--max-header-bytes`, `--max-headers`, `--max-body-bytes`, `--max-json-depth`,
`--header-timeout-s`, `--idle-timeout-s`, `--max-connections`: the config's `limits`, see
`_limits`). `serve` raises the process's open-file limit toward `max_connections` if it can, so
the cap, not the kernel, is what a flood of connections meets.

`serve --workers N` runs the mock as N processes on one port (`_workers`): the same bytes and
delays whichever serves a request, one journal, config, armed faults and stats across them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import resource
import signal
import sys
import time
from typing import Any

from ._config import load_config_file, merge, parse_config
from ._errors import ConfigError
from ._server import MockServer
from ._shared_state import check_shared_rules
from ._workers import MAX_WORKERS, WorkerLink, run_workers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mockllm", description="A deterministic mock LLM server.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the mock LLM")
    _add_config_flags(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (0: any free port; default 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes serving the port, with one journal, config, faults and stats (default 1)",
    )
    serve.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop (default uvloop)",
    )

    demo = commands.add_parser("demo", help="serve the mock and stream one answer through it")
    _add_config_flags(demo)
    demo.add_argument("--prompt", default="Tell me about streaming LLM answers over SSE.")

    check = commands.add_parser("check-config", help="validate a config file and print it in full")
    check.add_argument("config", help="YAML config file")

    record = commands.add_parser(
        "record", help="a pass-through proxy to a provider that records every chat answer for replay"
    )
    record.add_argument("--upstream", required=True, help="the provider's base URL, e.g. https://api.openai.com")
    record.add_argument("--out", required=True, help="directory the recordings go to (one file per request)")
    record.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    record.add_argument("--port", type=int, default=8000, help="port (0: any free port; default 8000)")
    return parser


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config file (flags override it)")
    parser.add_argument("--seed", type=int, help="global seed: fixes every byte, delay and fault")
    parser.add_argument("--ttft-ms", type=float, help="constant time to first token")
    parser.add_argument("--itl-ms", type=float, help="constant gap between content chunks")
    parser.add_argument("--prefill-ms-per-token", type=float, help="TTFT added per prompt token")
    parser.add_argument("--tokens-per-chunk", type=int, help="tokens per stream event")
    parser.add_argument("--answer-tokens", type=int, help="fixed length of the default prose answer")
    parser.add_argument("--multibyte", type=float, help="share of prose words made multi-byte (0-1)")
    limits = parser.add_argument_group("limits (the config's limits section)")
    for flag, kind, meaning in _LIMIT_FLAGS:
        limits.add_argument(flag, type=kind, help=meaning)
    parser.add_argument(
        "--contract",
        help="also serve this contract profile's API (a name such as sessions, or a profile file) as its agent: "
        "the upstream of a proxy",
    )


_LIMIT_FLAGS: tuple[tuple[str, type, str], ...] = (
    ("--max-header-bytes", int, "request line and header fields of one request; over it: 431 (default 65536)"),
    ("--max-headers", int, "header fields of one request; over it: 431 (default 100)"),
    ("--max-body-bytes", int, "a request body; over it: 413 (default 16777216)"),
    ("--max-json-depth", int, "nesting of a JSON body; deeper: 400 (default 128, at most 512)"),
    ("--header-timeout-s", float, "a request head not whole this long after its first byte: 408 (default 10)"),
    ("--idle-timeout-s", float, "a connection with no request in flight is closed after this (default 60)"),
    ("--max-connections", int, "open connections; one more is answered 503 and closed (default 10000)"),
)


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The config mapping: the file (if any) with the flags merged over it."""
    raw = load_config_file(args.config) if args.config else {}
    flags: dict[str, Any] = {}
    if args.seed is not None:
        flags["seed"] = args.seed
    if args.contract is not None:
        flags["contract"] = args.contract
    timing = {
        name: value
        for name, value in (
            ("ttft_ms", args.ttft_ms),
            ("itl_ms", args.itl_ms),
            ("prefill_ms_per_token", args.prefill_ms_per_token),
            ("tokens_per_chunk", args.tokens_per_chunk),
        )
        if value is not None
    }
    if timing:
        flags["timing"] = timing
    prose: dict[str, Any] = {}
    if args.answer_tokens is not None:
        prose["length_tokens"] = args.answer_tokens
    if args.multibyte is not None:
        prose["multibyte"] = args.multibyte
    if prose:
        flags["answers"] = {"default": {"prose": prose}}  # merged deeply over the file's prose
    limits = {}
    for flag, _, _ in _LIMIT_FLAGS:
        name = flag.removeprefix("--").replace("-", "_")
        if getattr(args, name) is not None:
            limits[name] = getattr(args, name)
    if limits:
        flags["limits"] = limits
    return merge(raw, flags)


# The cyclic garbage collector scans every object created since its last run: in the middle of a
# burst, a thousand live streams' worth (some 45,000 objects), tens of milliseconds in which no
# token goes out. A served response leaves no cycles behind (its objects are freed by reference
# counting), so collections can wait for a moment when no request is in flight; the automatic
# collector stays on, with room in the young generation for two such bursts, for loads that never
# pause.
GC_THRESHOLDS = (100_000, 20, 100)
IDLE_POLL_S = 0.05
IDLE_COLLECT_OBJECTS = 2_000  # fewer new objects than this are not worth a collection


FD_RESERVE = 64  # descriptors besides the connections: the listener, the log, the loop's own


def _raise_fd_limit(connections: int) -> None:
    """Raise the soft open-file limit toward `connections` + a reserve (never above the hard limit):
    beyond it the kernel, not the connection cap, would turn clients away, and accept would fail."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        if soft < wanted:
            print(
                f"mockllm: the open-file limit ({soft}) is below limits.max_connections ({connections}) "
                f"+ {FD_RESERVE}: connections beyond it are refused by the kernel",
                file=sys.stderr,
                flush=True,
            )


async def _serve(raw: dict[str, Any], host: str, port: int, link: WorkerLink | None = None) -> None:
    """Serve until SIGINT/SIGTERM; as one of several workers (`link`), until the supervisor goes too."""
    server = MockServer(raw, peers=link)
    _raise_fd_limit(server.config.limits.max_connections)
    bound = await server.start(host, port)
    # Start-up objects (modules, the sentence pool) live as long as the process: out of the
    # collector's view.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if link is None:
        print(f"mockllm listening on http://{host}:{bound}", flush=True)
    else:  # the supervisor says where the mock listens, once every worker does
        await link.attach(server, bound, stop)
    collector = loop.create_task(_collect_when_idle(server))
    await stop.wait()
    collector.cancel()
    await server.close()


async def _collect_when_idle(server: MockServer) -> None:
    """Run the collection the automatic collector would run next, while the server is idle."""
    while True:
        await asyncio.sleep(IDLE_POLL_S)
        counts = gc.get_count()
        if server.idle and counts[0] >= IDLE_COLLECT_OBJECTS:
            thresholds = gc.get_threshold()
            older = [generation for generation in (2, 1) if counts[generation] > thresholds[generation]]
            gc.collect(older[0] if older else 0)


async def _demo(raw: dict[str, Any], prompt: str) -> None:
    import httpx
    import httpx_sse

    raw = merge(
        {
            "timing": {"ttft_ms": 300, "itl_ms": 40},
            "answers": {"default": {"prose": {"length_tokens": 60}}},
        },
        raw,
    )
    server = MockServer(raw)
    port = await server.start("127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    print(f"mockllm listening on {base}  (OpenAI base URL: {base}/v1)\n")
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": prompt}], "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    print(f"POST /v1/chat/completions  {json.dumps(body['messages'])}\n")
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await client.get("/health")  # open the connection first: time the answer, not the handshake
        start = time.perf_counter()
        first = None
        async with httpx_sse.aconnect_sse(client, "POST", "/v1/chat/completions", json=body) as source:
            async for event in source.aiter_sse():
                if event.data == "[DONE]":
                    break
                chunk = json.loads(event.data)
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    first = first or time.perf_counter()
                    print(chunk["choices"][0]["delta"]["content"], end="", flush=True)
                elif chunk.get("usage"):
                    usage = chunk["usage"]
        elapsed = time.perf_counter() - start
        ttft = (first - start) * 1000 if first else float("nan")
        print(f"\n\nTTFT {ttft:.1f} ms, total {elapsed * 1000:.0f} ms, usage {usage['prompt_tokens']} prompt + "
              f"{usage['completion_tokens']} completion tokens")  # fmt: skip
        entry = (await client.get("/_mock/journal", params={"limit": 1})).json()["entries"][0]
        achieved = entry["achieved"]
        gaps = sorted(achieved["itl_ms"])
        print(f"journal #{entry['id']}: outcome {entry['outcome']}, seed {entry['seed']:#x}, planned TTFT "
              f"{entry['planned']['ttft_ms']:.1f} ms, achieved {achieved['ttft_ms']:.2f} ms, "
              f"ITL p50 {gaps[len(gaps) // 2]:.2f} ms")  # fmt: skip
        print("Same seed, same request: same bytes and delays. Try a fault: "
              "curl -H 'x-mock-fault: error-after=5' ...")  # fmt: skip
    await server.close()


def _run(coro: Any, loop_name: str = "uvloop") -> None:
    if loop_name == "uvloop":
        with contextlib.suppress(ImportError):
            import uvloop

            uvloop.run(coro)
            return
    asyncio.run(coro)


def _record(args: argparse.Namespace) -> int:
    """`mockllm record`: refuse a bad URL or an unwritable directory before binding, then proxy
    until SIGINT/SIGTERM, printing each file as it is written."""
    from ._recorder import Recorder, RecorderError, serve

    try:
        recorder = Recorder(args.upstream, args.out, on_recorded=lambda path: print(f"recorded {path}", flush=True))
    except RecorderError as err:
        print(f"mockllm record: {err}", file=sys.stderr)
        return 2

    def ready(port: int) -> None:
        print(f"mockllm record listening on http://{args.host}:{port} (upstream {recorder.shown})", flush=True)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(recorder, args.host, args.port, ready, stop)

    try:
        _run(run())
    except OSError as err:  # the address is taken, say
        print(f"mockllm record: cannot listen on {args.host}:{args.port}: {err.strerror or err}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "record":
        return _record(args)
    try:
        if args.command == "check-config":
            config = parse_config(load_config_file(args.config))
            print(json.dumps(config.to_dict(), indent=2, ensure_ascii=False))
            return 0
        raw = config_from_args(args)
        config = parse_config(raw)  # refuse a bad config before binding anything
        if args.command == "serve" and args.workers != 1:
            check_shared_rules(len(config.fault_rules))
    except ConfigError as err:
        print(f"mockllm: {err}", file=sys.stderr)
        return 2
    if args.command == "serve" and args.workers != 1:
        if not 1 <= args.workers <= MAX_WORKERS:
            print(f"mockllm: --workers: expected 1 to {MAX_WORKERS}, got {args.workers}", file=sys.stderr)
            return 2
        loop_name = args.loop
        return run_workers(
            args.host, args.port, args.workers, lambda link, port: _run(_serve(raw, args.host, port, link), loop_name)
        )
    if args.command == "serve":
        _run(_serve(raw, args.host, args.port), args.loop)
    else:
        _run(_demo(raw, args.prompt))
    return 0


if __name__ == "__main__":
    sys.exit(main())
