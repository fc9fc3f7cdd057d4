"""`python -m reference_server` (console script `reference-server`): serve the contracts.

    python -m reference_server --profile start-stream --port 8080 --llm-base-url http://127.0.0.1:8000/v1

Without `--llm-base-url` the mock LLM starts in-process (on a free loopback port, in a thread of
the main process), so one command gives a working backend for offline frontend work.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
from typing import Any

from contracts import contract_profiles
from mockllm import MockServer

from ._edge import uvicorn_options
from ._listen import BACKLOG, listening_socket
from ._settings import Settings, SettingsError, load_settings, to_environ

# Flag -> setting, for flags that map one to one (type conversion happens in the settings parser).
_FLAGS: tuple[tuple[str, str, str], ...] = (
    ("--host", "host", "address to listen on (default 127.0.0.1)"),
    ("--port", "port", "port to listen on (default 8080)"),
    ("--workers", "workers", "server processes; share state through --redis-url"),
    ("--llm-base-url", "llm_base_url", "OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1"),
    ("--llm-api-key", "llm_api_key", "API key sent to the LLM"),
    ("--llm-timeout-s", "llm_timeout_s", "upstream read timeout: a stalled LLM becomes an error event"),
    ("--model", "default_model", "model asked of the LLM where a contract names none"),
    ("--jwt-secret", "jwt_secret", "HS256 secret of the bearer tokens (default dev-secret)"),
    ("--require-exp", "require_exp", "true: refuse bearer tokens without an `exp` claim (default false)"),
    ("--database-url", "database_url", "sqlite+aiosqlite:///FILE (default) or postgresql://..."),
    ("--redis-url", "redis_url", "redis://... for the cache, stream sessions and rate limits"),
    ("--session-ttl-s", "session_ttl_s", "start-stream: seconds a started stream session lives (600)"),
    ("--heartbeat-s", "heartbeat_s", "conversation-events: seconds between heartbeats (30)"),
    ("--cache-ttl-s", "cache_ttl_s", "start-stream: seconds a cached answer lives (3600)"),
    ("--mock-seed", "mock_seed", "in-process mock LLM: seed"),
    ("--mock-ttft-ms", "mock_ttft_ms", "in-process mock LLM: time to first token"),
    ("--mock-itl-ms", "mock_itl_ms", "in-process mock LLM: inter-token latency"),
    ("--max-body-bytes", "max_body_bytes", "largest request body; 413 past it (default 1048576)"),
    ("--max-header-bytes", "max_header_bytes", "largest request line + headers; 431 past it (default 65536)"),
    ("--max-headers", "max_headers", "most header fields in a request; 431 past it (default 100)"),
    ("--header-timeout-s", "header_timeout_s", "seconds to send a request's head; then 408 and close (10)"),
    ("--keep-alive-timeout-s", "keep_alive_timeout_s", "seconds an idle keep-alive connection is kept (5)"),
    ("--limit-concurrency", "limit_concurrency", "connections or requests at once; 503 past it (2048)"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reference_server",
        description="Serve the chat/SSE contracts of shared/contracts.md. "
        "Settings: defaults < --config FILE (or REFSERVER_CONFIG) < env (REFSERVER_<KEY>, DATABASE_URL, "
        "REDIS_URL, JWT_SECRET) < flags.",
    )
    parser.add_argument(
        "--profile",
        action="append",
        choices=contract_profiles(),
        help="a contract to serve; repeat for several (default: all of them)",
    )
    parser.add_argument("--config", help="YAML file of settings")
    parser.add_argument(
        "--rate-limit",
        action="append",
        metavar="PROFILE=COUNT/SECONDS",
        help="e.g. conversations=10/60; PROFILE=off removes the limit",
    )
    parser.add_argument("--cors-origin", action="append", help="an allowed origin (repeat); default *")
    for flag, key, text in _FLAGS:
        parser.add_argument(flag, dest=key, help=text)
    return parser


def flags_of(args: argparse.Namespace) -> dict[str, Any]:
    flags: dict[str, Any] = {key: getattr(args, key) for _, key, _ in _FLAGS if getattr(args, key) is not None}
    if args.profile:
        flags["profiles"] = args.profile
    if args.cors_origin:
        flags["cors_origins"] = args.cors_origin
    if args.rate_limit:
        limits: dict[str, Any] = {}
        for spec in args.rate_limit:
            profile, _, value = spec.partition("=")
            if value == "off":
                limits[profile] = None
                continue
            count, _, window = value.partition("/")
            if not count or not window:
                raise SettingsError(f"rate_limits.{profile}", f"--rate-limit {spec!r}: use PROFILE=COUNT/SECONDS")
            limits[profile] = {"count": count, "window_s": window}
        flags["rate_limits"] = limits
    return flags


def start_mock_in_thread(settings: Settings) -> str:
    """Start the mock LLM on a free loopback port in a daemon thread; its OpenAI base URL."""
    ready: dict[str, Any] = {}
    started = threading.Event()

    def run() -> None:
        async def serve() -> None:
            server = MockServer(
                {
                    "seed": settings.mock_seed,
                    "timing": {"ttft_ms": settings.mock_ttft_ms, "itl_ms": settings.mock_itl_ms},
                }
            )
            ready["port"] = await server.start("127.0.0.1", 0)
            started.set()
            await asyncio.Event().wait()

        try:
            asyncio.run(serve())
        except Exception as err:  # reported to the main thread below
            ready["error"] = err
            started.set()

    threading.Thread(target=run, name="mockllm", daemon=True).start()
    started.wait(30)
    if "port" not in ready:
        raise RuntimeError(f"the in-process mock LLM did not start: {ready.get('error')}")
    return f"http://127.0.0.1:{ready['port']}/v1"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config, flags=flags_of(args))
    except SettingsError as err:
        print(f"reference_server: bad setting {err}", file=sys.stderr)
        return 2
    if settings.llm_base_url is None:
        url = start_mock_in_thread(settings)
        settings = load_settings(args.config, flags={**flags_of(args), "llm_base_url": url})
        print(f"reference_server: mock LLM in-process at {url}", flush=True)

    import uvicorn

    common: dict[str, Any] = {
        "log_level": "warning",
        "loop": "auto",
        **uvicorn_options(settings, in_workers=settings.workers > 1),
    }
    if settings.workers > 1:
        print(f"reference_server listening on http://{settings.host}:{settings.port}", flush=True)
        os.environ.update(to_environ(settings))
        uvicorn.run(
            "reference_server._app:app_from_environment",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            **common,
        )
        return 0
    from ._app import create_app
    from ._gc import settle_heap

    try:
        sock = listening_socket(settings.host, settings.port)
    except OSError as err:
        print(f"reference_server: cannot listen on {settings.host}:{settings.port}: {err.strerror}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    print(f"reference_server ({', '.join(settings.profiles)}) listening on http://{settings.host}:{port}", flush=True)
    app = create_app(settings)
    settle_heap()
    uvicorn.Server(uvicorn.Config(app, backlog=BACKLOG, **common)).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
