"""FastAPI AI agent of shared/seeds/000 (the service behind the NestJS layer), per contracts.md §1.

    python -m tests.independent.sessions_fastapi.app --port 0 --llm-base-url http://127.0.0.1:PORT/v1

Sessions live in memory. The LLM is any OpenAI-compatible server, reached with the official SDK.
Environment: LLM_BASE_URL, LLM_API_KEY, LLM_MODEL, LLM_TIMEOUT (seconds), CORS_ORIGINS (comma
separated), THROTTLE_TTL / THROTTLE_LIMIT (rate limit window in seconds / requests per window).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import time
import uuid
from datetime import UTC, datetime

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from openai import AsyncOpenAI
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse

SYSTEM_PROMPT = "You are an AI Business Advisor. Answer the user's questions about their business clearly."
DEFAULT_ORIGINS = "http://localhost:3000,http://localhost:3001,https://yourdomain.com"


class Settings:
    def __init__(self) -> None:
        self.llm_base_url = os.environ.get("LLM_BASE_URL", "http://localhost:11434/v1")
        self.llm_api_key = os.environ.get("LLM_API_KEY", "not-needed")
        self.llm_model = os.environ.get("LLM_MODEL", "gpt-4o-mini")
        self.llm_timeout = float(os.environ.get("LLM_TIMEOUT", "60"))
        self.cors_origins = [o.strip() for o in os.environ.get("CORS_ORIGINS", DEFAULT_ORIGINS).split(",") if o.strip()]
        self.throttle_ttl = int(os.environ.get("THROTTLE_TTL", "60"))
        self.throttle_limit = int(os.environ.get("THROTTLE_LIMIT", "100"))


settings = Settings()


# ---- models -----------------------------------------------------------------------------------


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=2000)
    session_id: str | None = None


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str | None = None


# ---- in-memory session store ------------------------------------------------------------------


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


sessions: dict[str, dict] = {}


def get_or_create_session(session_id: str | None) -> str:
    if not session_id:
        session_id = str(uuid.uuid4())
    if session_id not in sessions:
        sessions[session_id] = {"created_at": now_iso(), "history": []}
    return session_id


def add_message(session_id: str, role: str, content: str) -> None:
    sessions[session_id]["history"].append({"role": role, "content": content, "timestamp": now_iso()})


def llm_messages(session_id: str) -> list[dict]:
    history = sessions[session_id]["history"]
    return [{"role": "system", "content": SYSTEM_PROMPT}] + [
        {"role": m["role"], "content": m["content"]} for m in history
    ]


# ---- app ----------------------------------------------------------------------------------------

app = FastAPI(title="AI Business Advisor")
client: AsyncOpenAI | None = None


def llm() -> AsyncOpenAI:
    global client
    if client is None:
        client = AsyncOpenAI(base_url=settings.llm_base_url, api_key=settings.llm_api_key, timeout=settings.llm_timeout)
    return client


app.add_middleware(
    CORSMiddleware,
    allow_origins=settings.cors_origins,
    allow_credentials=True,
    allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
    allow_headers=["*"],
)

# Rate limiting (the seed's THROTTLE_TTL / THROTTLE_LIMIT): fixed window per client address.
_hits: dict[str, tuple[float, int]] = {}


@app.middleware("http")
async def rate_limit(request: Request, call_next):
    if request.url.path.startswith("/api"):
        key = request.client.host if request.client else "unknown"
        now = time.monotonic()
        start, count = _hits.get(key, (now, 0))
        if now - start >= settings.throttle_ttl:
            start, count = now, 0
        count += 1
        _hits[key] = (start, count)
        if count > settings.throttle_limit:
            return JSONResponse({"detail": "Too many requests, please slow down"}, status_code=429)
    return await call_next(request)


@app.exception_handler(RequestValidationError)
async def validation_error(request: Request, exc: RequestValidationError):
    errors = [{"loc": e.get("loc"), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=400)


@app.get("/health")
@app.get("/api/health")
async def health():
    return {"status": "healthy", "service": "ai-business-advisor", "sessions": len(sessions), "timestamp": now_iso()}


@app.post("/api/sessions", status_code=201)
async def create_session(body: SessionRequest | None = None):
    session_id = body.session_id if body and body.session_id in sessions else None
    return {"session_id": get_or_create_session(session_id)}


@app.post("/api/chat")
async def chat(body: ChatMessage):
    session_id = get_or_create_session(body.session_id)
    add_message(session_id, "user", body.message)
    try:
        completion = await llm().chat.completions.create(model=settings.llm_model, messages=llm_messages(session_id))
    except Exception:
        raise HTTPException(status_code=503, detail="Failed to process chat message") from None
    answer = completion.choices[0].message.content or ""
    add_message(session_id, "assistant", answer)
    return {
        "response": answer,
        "session_id": session_id,
        "tokens_used": completion.usage.total_tokens if completion.usage else 0,
        "timestamp": now_iso(),
    }


WHITESPACE = re.compile(r"\s+")


@app.post("/api/chat/stream")
async def chat_stream(body: ChatMessage):
    session_id = get_or_create_session(body.session_id)
    add_message(session_id, "user", body.message)
    messages = llm_messages(session_id)

    async def events():
        yield {"data": json.dumps({"type": "session", "session_id": session_id})}
        index = 0
        answer = ""
        pending = ""
        try:
            stream = await llm().chat.completions.create(model=settings.llm_model, messages=messages, stream=True)
            async for chunk in stream:
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta.content or ""
                answer += delta
                pending += delta
                # Send every word that is complete (followed by whitespace); keep the last piece.
                *words, pending = WHITESPACE.split(pending)
                for word in words:
                    if word:
                        yield {"data": json.dumps({"type": "content", "content": word, "index": index})}
                        index += 1
            if pending:
                yield {"data": json.dumps({"type": "content", "content": pending, "index": index})}
                index += 1
            add_message(session_id, "assistant", answer)
            yield {"data": json.dumps({"type": "done"})}
        except Exception as e:
            yield {"data": json.dumps({"type": "error", "error": str(e)})}

    return EventSourceResponse(
        events(),
        headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"},
    )


@app.get("/api/sessions/{session_id}/history")
async def history(session_id: str):
    if session_id not in sessions:
        raise HTTPException(status_code=404, detail="Session not found")
    return {"session_id": session_id, "history": sessions[session_id]["history"]}


@app.delete("/api/sessions/{session_id}")
async def clear_session(session_id: str):
    if session_id not in sessions:
        raise HTTPException(status_code=404, detail="Session not found")
    sessions[session_id]["history"] = []
    return {"session_id": session_id}


# ---- entry point --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--llm-base-url", default=None, help="OpenAI-compatible base URL, e.g. http://host:port/v1")
    args = parser.parse_args(argv)
    if args.llm_base_url:
        settings.llm_base_url = args.llm_base_url

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(2048)
    host, port = sock.getsockname()[:2]
    print(f"sessions_fastapi listening on http://{host}:{port}", flush=True)
    sys.stdout.flush()
    config = uvicorn.Config(app, log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
