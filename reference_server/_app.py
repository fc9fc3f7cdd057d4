"""The Litestar application: the chosen profiles' handlers over one core, with CORS and OpenAPI."""

from __future__ import annotations

import logging

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.openapi import OpenAPIConfig

from ._chat import ChatCore
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
    handlers = [handler for served in adapters for handler in served.handlers(core)]
    cors = CORSConfig(
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["authorization", "content-type", "accept", "last-event-id", "cache-control"],
        expose_headers=["X-Cache", "Retry-After"],
    )
    summaries = "; ".join(f"`{served.name}`: {served.summary}" for served in adapters)
    return Litestar(
        route_handlers=handlers,
        on_startup=[core.start],
        on_shutdown=[core.close],
        cors_config=cors,
        openapi_config=OpenAPIConfig(
            title="reference_server",
            version="1.0.0",
            description=f"The chat/SSE contracts of shared/contracts.md. Profiles served: {summaries}.",
        ),
        state={"core": core},
    )


def app_from_environment() -> Litestar:
    """uvicorn's factory for worker processes: settings come from the parent, via the environment."""
    return create_app(load_settings())
