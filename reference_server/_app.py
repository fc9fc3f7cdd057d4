"""The Litestar application: the chosen profiles' handlers over one core, with CORS and OpenAPI."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import MutableScopeHeaders
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from litestar.types import Message, Scope, Send

from ._body import BodyRequest
from ._chat import ChatCore
from ._gc import settle_heap
from ._openapi import CompletedJsonSchema
from ._settings import Settings, load_settings
from .profiles import adapter


def create_app(settings: Settings, llm_base_url: str | None = None) -> Litestar:
    """The app serving `settings.profiles` against the LLM at `llm_base_url` (else settings')."""
    base_url = llm_base_url or settings.llm_base_url
    if not base_url:
        raise ValueError("llm_base_url: no LLM to call (the CLI starts the mock when none is given)")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a log line per LLM call
    adapters = [adapter(name) for name in settings.profiles]
    core = ChatCore(settings, base_url)
    handlers = []
    for served in adapters:
        for handler in served.handlers(core):
            handler.opt["profile"] = served.name  # whose operation it is, for the schema (and its routers' handlers)
            handlers.append(handler)
    cors = CORSConfig(
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["authorization", "content-type", "accept", "last-event-id", "cache-control"],
        expose_headers=["X-Cache", "Retry-After"],
    )
    summaries = "; ".join(f"`{served.name}`: {served.summary}" for served in adapters)
    return ReferenceApp(
        route_handlers=handlers,
        on_startup=[core.start],
        on_shutdown=[core.close],
        cors_config=cors,
        request_class=BodyRequest,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="reference_server",
            version="1.0.0",
            description=f"The chat/SSE contracts of shared/contracts.md. Profiles served: {summaries}. "
            f"Any connection: a request head not received within {settings.header_timeout_s:g} s is answered 408 "
            "(an idle connection is closed); 431 and 503 come from the HTTP edge with the same JSON `Error` body.",
            render_plugins=[ScalarRenderPlugin(), CompletedJsonSchema(settings)],
        ),
        state={"core": core},
    )


class ReferenceApp(Litestar):
    """Litestar, with `allow_every_method` wrapped around the `send` of OPTIONS requests only.

    As a `before_send` hook it was one more coroutine call on every message of every response, each
    token's included; here the other requests' messages go to uvicorn without it."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("method") == "OPTIONS":
            send = _allowing_every_method(scope, send)
        await super().__call__(scope, receive, send)


def _allowing_every_method(scope: Scope, send: Send) -> Send:
    async def allowing(message: Message) -> None:
        await allow_every_method(message, scope)
        await send(message)

    return allowing


async def allow_every_method(message: Message, scope: Scope) -> None:
    """`Allow` on an OPTIONS answer names every method of the path.

    Litestar makes a path's OPTIONS handler with its first route and keeps it when a later handler
    (another contract's, e.g. `POST /chat/stream` beside `GET /chat/stream`) joins the path, so its
    `Allow` would omit the later methods; the route the path has now knows them all."""
    if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
        return
    handler = scope.get("route_handler")
    if handler is None:
        return
    paths = set(handler.paths)
    methods = {method for route in Litestar.from_scope(scope).routes if route.path in paths for method in route.methods}
    if methods:
        MutableScopeHeaders.from_message(message)["allow"] = ", ".join(sorted(methods))


def app_from_environment() -> Litestar:
    """uvicorn's factory for worker processes: settings come from the parent, via the environment."""
    app = create_app(load_settings())
    settle_heap()
    return app
