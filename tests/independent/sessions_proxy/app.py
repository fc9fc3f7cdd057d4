"""The NestJS layer of shared/seeds/000 (the gateway in front of the FastAPI agent), in FastAPI + httpx.

    python -m tests.independent.sessions_proxy.app --port 0 --upstream http://127.0.0.1:PORT

It exposes the `sessions` API to the browser and forwards every call to the agent (FASTAPI_BASE_URL,
or --upstream), as the seed's ChatService does with axios: sessions, chat, history and delete are
passed through, and the stream is read line by line and each `data:` payload re-emitted to the
client, then a `done` event of its own. Environment: FASTAPI_BASE_URL, UPSTREAM_TIMEOUT (the stream's
timeout in seconds, 60 as the seed's), THROTTLE_TTL / THROTTLE_LIMIT (the ThrottlerModule's window in
seconds / requests per window), CORS_ORIGINS (comma separated; the seed's list by default).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time

import httpx
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_ORIGINS = "http://localhost:3000,http://localhost:3001,https://yourdomain.com"
log = logging.getLogger("chat")


class Settings:
    def __init__(self) -> None:
        self.fastapi_base_url = os.environ.get("FASTAPI_BASE_URL", "http://localhost:8000")
        self.upstream_timeout = float(os.environ.get("UPSTREAM_TIMEOUT", "60"))
        self.throttle_ttl = int(os.environ.get("THROTTLE_TTL", "60"))
        self.throttle_limit = int(os.environ.get("THROTTLE_LIMIT", "100"))
        self.cors_origins = [o.strip() for o in os.environ.get("CORS_ORIGINS", DEFAULT_ORIGINS).split(",") if o.strip()]


settings = Settings()


# ---- DTOs (class-validator with whitelist + forbidNonWhitelisted) ----------------------------------


class ChatMessageDto(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=2000)
    session_id: str | None = None


class SessionDto(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str | None = None


# ---- ChatService -------------------------------------------------------------------------------------


class ChatService:
    def __init__(self) -> None:
        self.fastapi_url = settings.fastapi_base_url

    async def create_session(self, dto: SessionDto | None) -> dict:
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(f"{self.fastapi_url}/api/sessions", json=_body(dto))
                response.raise_for_status()
                return response.json()
        except httpx.HTTPError as error:
            log.error("Failed to create session: %s", error)
            raise HTTPException(503, "Failed to create chat session") from None

    async def send_message(self, dto: ChatMessageDto) -> dict:
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                response = await client.post(f"{self.fastapi_url}/api/chat", json=_body(dto))
                response.raise_for_status()
                return {**response.json(), "timestamp": _now()}
        except httpx.HTTPError as error:
            log.error("Failed to send message: %s", error)
            raise HTTPException(503, "Failed to process chat message") from None

    async def stream_message(self, dto: ChatMessageDto):
        try:
            async with (
                httpx.AsyncClient(timeout=settings.upstream_timeout) as client,
                client.stream(
                    "POST",
                    f"{self.fastapi_url}/api/chat/stream",
                    json=_body(dto),
                    headers={"Accept": "text/event-stream"},
                ) as response,
            ):
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        data = line[6:].strip()
                        if data and data != "[DONE]":
                            yield data
            log.info("Streaming completed successfully")
        except httpx.HTTPError as error:
            log.error("Failed to stream message: %s", error)
            raise HTTPException(503, "Failed to stream chat message") from None

    async def get_chat_history(self, session_id: str) -> dict:
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.get(f"{self.fastapi_url}/api/sessions/{session_id}/history")
                response.raise_for_status()
                return response.json()
        except httpx.HTTPError as error:
            log.error("Failed to get chat history: %s", error)
            raise HTTPException(503, "Failed to retrieve chat history") from None

    async def clear_session(self, session_id: str) -> dict:
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.delete(f"{self.fastapi_url}/api/sessions/{session_id}")
                response.raise_for_status()
                return response.json()
        except httpx.HTTPError as error:
            log.error("Failed to clear session: %s", error)
            raise HTTPException(503, "Failed to clear chat session") from None

    async def check_health(self) -> dict:
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                response = await client.get(f"{self.fastapi_url}/health")
            return {"status": "healthy", "fastapi": response.status_code == 200}
        except httpx.HTTPError as error:
            log.error("Health check failed: %s", error)
            return {"status": "unhealthy", "fastapi": False}


def _body(dto: BaseModel | None) -> dict:
    return dto.model_dump(exclude_none=True) if dto is not None else {}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


chat_service = ChatService()


# ---- ThrottlerGuard: a fixed window per client address -----------------------------------------------

_hits: dict[str, tuple[float, int]] = {}


async def throttle(request: Request) -> None:
    key = request.client.host if request.client else "unknown"
    now = time.monotonic()
    start, count = _hits.get(key, (now, 0))
    if now - start >= settings.throttle_ttl:
        start, count = now, 0
    _hits[key] = (start, count + 1)
    if count + 1 > settings.throttle_limit:
        raise HTTPException(429, "ThrottlerException: Too Many Requests")


# ---- ChatController ----------------------------------------------------------------------------------

router = APIRouter(prefix="/api", dependencies=[Depends(throttle)])


@router.get("/health")
async def health() -> dict:
    return await chat_service.check_health()


@router.post("/sessions", status_code=201)
async def create_session(dto: SessionDto | None = None) -> dict:
    return await chat_service.create_session(dto)


@router.post("/chat")
async def send_message(dto: ChatMessageDto) -> dict:
    return await chat_service.send_message(dto)


@router.post("/chat/stream")
async def stream_message(dto: ChatMessageDto) -> StreamingResponse:
    async def events():
        try:
            async for chunk in chat_service.stream_message(dto):
                yield f"data: {chunk}\n\n"
            yield 'data: {"type": "done"}\n\n'
        except HTTPException as error:
            yield f'data: {{"error": "{error.detail}", "type": "error"}}\n\n'

    headers = {
        "Cache-Control": "no-cache",
        "Connection": "keep-alive",
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Headers": "*",
    }
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@router.get("/sessions/{session_id}/history")
async def get_chat_history(session_id: str) -> dict:
    return await chat_service.get_chat_history(session_id)


@router.delete("/sessions/{session_id}")
async def clear_session(session_id: str) -> dict:
    return await chat_service.clear_session(session_id)


# ---- main.ts: CORS, the validation pipe, the HttpException body ----------------------------------------

app = FastAPI(title="ai-chat-backend")
app.include_router(router)
app.add_middleware(
    CORSMiddleware,
    allow_origins=settings.cors_origins,
    allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
    allow_credentials=True,
)


@app.exception_handler(RequestValidationError)
async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    messages = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:])} {e.get('msg')}" for e in exc.errors()]
    return JSONResponse({"statusCode": 400, "message": messages, "error": "Bad Request"}, status_code=400)


@app.exception_handler(HTTPException)
async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse({"statusCode": exc.status_code, "message": exc.detail}, status_code=exc.status_code)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3001")))
    parser.add_argument("--upstream", default=None, help="the FastAPI agent's base URL (FASTAPI_BASE_URL)")
    args = parser.parse_args(argv)
    if args.upstream:
        settings.fastapi_base_url = chat_service.fastapi_url = args.upstream.rstrip("/")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)
    host, port = sock.getsockname()[:2]
    print(f"sessions_proxy listening on http://{host}:{port}", flush=True)
    sys.stdout.flush()
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


if __name__ == "__main__":
    main()
