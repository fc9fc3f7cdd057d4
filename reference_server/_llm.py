"""The upstream LLM: one streaming client, three wire formats as thin adapters.

OpenAI-compatible chat completions is the default (the mock, vLLM, OpenAI itself); a model can be
routed to Anthropic Messages or Gemini by configuration (`models:` patterns), as seed 002's
multi-provider adapters do. Every way an upstream can fail (an HTTP error, an in-band error event, a
stream cut before its end, a stall past the read timeout, a refused connection) comes out as one
`LlmError`, so a profile has exactly one failure to turn into its error event.

Closing the iterator (a client pressed stop) closes the upstream connection at once: the LLM sees
its request cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import msgspec

from contracts import EventSplitter

from ._settings import ModelRoute, Settings
from ._stall import StallWatch

ChatMessages = Sequence[dict[str, str]]  # [{"role": "user" | "assistant" | "system", "content": str}]
_decode = msgspec.json.decode
_log = logging.getLogger(__name__)
_encode = msgspec.json.encode
_JSON = {"content-type": "application/json"}


class LlmError(Exception):
    """The upstream LLM failed; the message says how, for the profile's error event."""


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class StreamState:
    """What one upstream stream has said so far besides its text."""

    done: bool = False
    usage: Usage = field(default_factory=Usage)


class Provider(Protocol):
    """A wire format: how to ask for a stream, and how to read one event of it."""

    def request(self, base_url: str, api_key: str, model: str, messages: ChatMessages) -> tuple[str, dict, dict]:
        """(url, headers, JSON body) of a streamed request."""
        ...

    def read(self, kind: str, data: str, state: StreamState) -> str | None:
        """The text this event (its type and data) carries, if any; marks `state.done`; raises
        `LlmError` on an error event."""
        ...


def _error_text(payload: Any) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or error)
    return str(error or payload)


def _json(data: str) -> Any:
    try:
        return _decode(data)
    except msgspec.DecodeError:
        raise LlmError(f"upstream sent a malformed event: {data[:200]!r}") from None


def _root(base_url: str) -> str:
    """`http://host:port/v1` -> `http://host:port`: Anthropic and Gemini paths carry their own version."""
    base = base_url.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta = msgspec.field(default_factory=_Delta)


class _Chunk(msgspec.Struct):
    """An OpenAI stream chunk as far as `OpenAIChat.read` looks at it; a chunk of another shape fails
    this type and is read as a plain value, so the two readings always agree."""

    choices: list[_Choice] | None = None
    usage: dict[str, Any] | None = None
    error: Any = msgspec.UNSET  # present at all (even null): an error event


_decode_chunk = msgspec.json.Decoder(_Chunk).decode


class OpenAIChat:
    """`POST {base}/chat/completions`, `stream: true` with usage; ends with `data: [DONE]`."""

    def request(self, base_url: str, api_key: str, model: str, messages: ChatMessages) -> tuple[str, dict, dict]:
        body = {"model": model, "messages": list(messages), "stream": True, "stream_options": {"include_usage": True}}
        return f"{base_url.rstrip('/')}/chat/completions", {"authorization": f"Bearer {api_key}"}, body

    def read(self, kind: str, data: str, state: StreamState) -> str | None:
        if data == "[DONE]":
            state.done = True
            return None
        try:  # the usual chunk, typed: only the fields read here are built, the rest is skipped
            chunk = _decode_chunk(data)
        except msgspec.DecodeError:  # any other shape (or not JSON): read as a plain value, as ever
            return self._read_value(_json(data), state)
        if chunk.error is not msgspec.UNSET:  # an error event: its text is read from the whole value
            return self._read_value(_json(data), state)
        usage = chunk.usage
        if usage:
            state.usage = Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
        if chunk.choices:
            return chunk.choices[0].delta.content or None
        return None

    def _read_value(self, payload: Any, state: StreamState) -> str | None:
        if "error" in payload:
            raise LlmError(_error_text(payload))
        usage = payload.get("usage")
        if usage:
            state.usage = Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
        choices = payload.get("choices")
        if choices:
            return choices[0].get("delta", {}).get("content") or None
        return None


class AnthropicMessages:
    """`POST {root}/v1/messages`; text in `content_block_delta`, the end in `message_stop`."""

    max_tokens = 4096

    def request(self, base_url: str, api_key: str, model: str, messages: ChatMessages) -> tuple[str, dict, dict]:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": self.max_tokens,
            "stream": True,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages if m["role"] != "system"],
        }
        if system:
            body["system"] = system
        headers = {"x-api-key": api_key, "anthropic-version": "2023-06-01"}
        return f"{_root(base_url)}/v1/messages", headers, body

    def read(self, kind: str, data: str, state: StreamState) -> str | None:
        if kind == "content_block_delta":
            return _json(data).get("delta", {}).get("text") or None
        if kind == "message_start":
            usage = _json(data).get("message", {}).get("usage", {})
            state.usage.prompt_tokens = usage.get("input_tokens", 0)
        elif kind == "message_delta":
            state.usage.completion_tokens = _json(data).get("usage", {}).get("output_tokens", 0)
        elif kind == "message_stop":
            state.done = True
        elif kind == "error":
            raise LlmError(_error_text(_json(data)))
        return None


class GeminiGenerate:
    """`POST {root}/v1beta/models/{model}:streamGenerateContent?alt=sse`; done at a `finishReason`."""

    def request(self, base_url: str, api_key: str, model: str, messages: ChatMessages) -> tuple[str, dict, dict]:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        contents = [
            {"role": "model" if m["role"] == "assistant" else "user", "parts": [{"text": m["content"]}]}
            for m in messages
            if m["role"] != "system"
        ]
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        url = f"{_root(base_url)}/v1beta/models/{model}:streamGenerateContent?alt=sse"
        return url, {"x-goog-api-key": api_key}, body

    def read(self, kind: str, data: str, state: StreamState) -> str | None:
        payload = _json(data)
        if "error" in payload:
            raise LlmError(_error_text(payload))
        usage = payload.get("usageMetadata")
        if usage:
            state.usage = Usage(usage.get("promptTokenCount", 0), usage.get("candidatesTokenCount", 0))
        candidates = payload.get("candidates") or ()
        if not candidates:
            return None
        candidate = candidates[0]
        if candidate.get("finishReason"):
            state.done = True
        parts = candidate.get("content", {}).get("parts") or ()
        return "".join(part.get("text", "") for part in parts) or None


PROVIDERS: dict[str, Provider] = {
    "openai": OpenAIChat(),
    "anthropic": AnthropicMessages(),
    "gemini": GeminiGenerate(),
}


class LlmClient:
    """Streams chat answers from the configured upstream(s) over one pooled HTTP client.

    aiohttp rather than httpx here: this is the per-request hot path of every profile, and
    aiohttp's C parser gets a response head back in about half httpx's time (bench/bench_reference).
    """

    def __init__(self, settings: Settings, base_url: str) -> None:
        self._base_url = base_url
        self._api_key = settings.llm_api_key
        self._routes = settings.models
        # No `sock_read`: the read timeout is `StallWatch`'s (the body) and an `asyncio.timeout` (the head).
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=10.0, sock_read=None)
        self._read_timeout_s = settings.llm_timeout_s
        self._http: aiohttp.ClientSession | None = None  # made in the server's loop, at first use

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60.0)
            self._http = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._http

    def _route(self, model: str) -> tuple[Provider, str, str]:
        route: ModelRoute | None = next((r for r in self._routes if fnmatch.fnmatchcase(model, r.pattern)), None)
        if route is None:
            return PROVIDERS["openai"], self._base_url, self._api_key
        return PROVIDERS[route.provider], route.base_url or self._base_url, route.api_key or self._api_key

    async def stream(self, model: str, messages: ChatMessages, state: StreamState | None = None) -> AsyncIterator[str]:
        """The answer's text chunks as the LLM sends them; `LlmError` if it fails at any point.

        The per-token path is kept flat: one `readany()` per socket chunk, fed to an incremental
        splitter (`contracts.EventSplitter`), and a stall found by one timer per stream (`StallWatch`), not by
        aiohttp's `sock_read`, which re-arms a timer on every chunk."""
        provider, base_url, api_key = self._route(model)
        url, headers, body = provider.request(base_url, api_key, model, messages)
        state = state if state is not None else StreamState()
        try:
            async with asyncio.timeout(self._read_timeout_s):  # up to the response head
                response = await self._session().post(url, headers={**headers, **_JSON}, data=_encode(body))
            async with response:
                if response.status != 200:
                    async with asyncio.timeout(self._read_timeout_s):
                        detail = (await response.read()).decode("utf-8", "replace")
                    with contextlib.suppress(msgspec.DecodeError):
                        detail = _error_text(_decode(detail))
                    raise LlmError(f"upstream answered {response.status}: {detail[:300]}")
                content = response.content
                watch = StallWatch(content, self._read_timeout_s, lambda: content.set_exception(UpstreamStalled()))
                try:
                    splitter, read = EventSplitter(), provider.read
                    while True:
                        failure: aiohttp.ClientPayloadError | None = None
                        try:
                            chunk = await content.readany()
                        except aiohttp.ClientPayloadError as err:
                            # The connection dropped mid-body: aiohttp raises at once though bytes that came
                            # before the drop are still buffered; their events go out first (the client saw
                            # them, and the profile must relay them), then the error.
                            salvage = getattr(content, "_read_nowait", None)  # aiohttp 3.x internal; best effort
                            events, failure = splitter.feed(salvage(-1) if salvage else b""), err
                        else:
                            if not chunk:
                                break
                            # Once done, read on to the end of the body (it follows the end event at once):
                            # a response read whole returns its connection to the pool for the next call.
                            events = [] if state.done else splitter.feed(chunk)
                        for kind, data in events:  # each text out before the next event is read (it may fail)
                            if state.done:
                                break
                            text = read(kind, data, state)
                            if text:
                                yield text
                        if failure is not None:
                            raise failure
                finally:
                    watch.cancel()
        except TimeoutError:
            raise LlmError("upstream timed out") from None
        except aiohttp.ClientError as err:
            # The client is told what failed, not the HTTP library's text (contracts.md: an error message
            # never carries driver error text or an upstream URL); the log has it.
            _log.warning("the LLM call failed: %s: %s", type(err).__name__, err)
            raise LlmError("upstream connection failed") from None
        if not state.done:
            raise LlmError("upstream stream ended before its end")


class UpstreamStalled(TimeoutError):
    """No byte of the upstream body for the read timeout (set on the body's reader by `StallWatch`)."""
