"""The planning core: from (config, request) to everything the response will be. No I/O.

A plan fixes the answer's chunks, the moment each is due (as offsets from the request's arrival,
so the server can hold absolute deadlines), the usage counts and the fault. Separate generators
for text, timing and faults are derived from the request's seed, so changing the timing config
leaves the text as it was, and no draw depends on another request.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ._agent import Block
from ._agent_answers import BlocksAnswer, agent_pieces, blocks_of
from ._answers import ProseAnswer, choose, generate_prose
from ._config import MockConfig
from ._distributions import Distribution
from ._faults import Fault
from ._request import ChatRequest, request_seed
from ._tokenizer import count_prompt_tokens, count_tokens, tokenize


@dataclass(frozen=True, slots=True)
class Plan:
    """What one response will carry, and when."""

    seed: int
    answer: str  # the text delivered: the source's text, cut at max_tokens
    chunks: tuple[str, ...]  # content pieces, one per stream event; joined they are `answer`
    offsets: tuple[float, ...]  # seconds after arrival at which each chunk is due
    ttft: float  # seconds after arrival at which the first chunk is due (or the empty answer)
    finish_reason: str  # "stop", "length" or "tool_calls"
    prompt_tokens: int
    completion_tokens: int  # reasoning tokens included, as every provider counts them
    fault: Fault | None = None
    # An answer with more than text: its reasoning, tool call and text blocks over the chunks, in
    # order (empty: the chunks are all answer text, the plain plan every dialect's fast path takes).
    blocks: tuple[Block, ...] = ()
    reasoning_tokens: int = 0  # streamed or hidden

    def to_journal(self) -> dict[str, Any]:
        """The plan as the journal shows it, in milliseconds."""
        out = {
            "ttft_ms": self.ttft * 1000.0,
            "offsets_ms": [offset * 1000.0 for offset in self.offsets],
            "chunks": list(self.chunks),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "finish_reason": self.finish_reason,
        }
        if self.blocks:
            out["blocks"] = [block.to_journal() for block in self.blocks]
            out["reasoning_tokens"] = self.reasoning_tokens
        return out

    @property
    def tool_calls(self) -> tuple[Block, ...]:
        return tuple(block for block in self.blocks if block.kind == "tool_call")

    def block_of_chunks(self) -> tuple[int, ...]:
        """For each chunk, the index of its block: what a dialect's encoder reads once per response."""
        out: list[int] = []
        for index, block in enumerate(self.blocks):
            out += [index] * (block.stop - block.start)
        return tuple(out)

    @property
    def end_offset(self) -> float:
        """When the last chunk is due: a non-streamed response is sent then."""
        return self.offsets[-1] if self.offsets else self.ttft


def rng_for(seed: int, purpose: str) -> random.Random:
    """An independent generator for one purpose (text, timing, fault) of one request."""
    return random.Random((seed << 32) | _purpose_bits(purpose))


@lru_cache(maxsize=256)
def _purpose_bits(purpose: str) -> int:
    return zlib.crc32(purpose.encode())


def plan_response(
    config: MockConfig,
    request: ChatRequest,
    *,
    fault: Fault | None = None,
    active_streams: int = 0,
) -> Plan:
    """Plan the response to `request`. `active_streams` drives the optional load slow-down."""
    seed = request_seed(config.seed, request)
    source, ruled = choose(config.answer_rules, config.default_answer, request)
    if request.agent is not None or isinstance(source, BlocksAnswer):
        return _agent_plan(config, request, source, ruled, seed, fault, active_streams)
    tokens = source.tokens(request, rng_for(seed, "text"), seed)
    if source.recorded_offsets is not None:
        return _paced_plan(seed, request, tokens, source.recorded_offsets, fault)
    finish_reason = "stop"
    if request.max_tokens is not None and len(tokens) > request.max_tokens:
        tokens = tokens[: request.max_tokens]
        finish_reason = "length"
    per_chunk = config.timing.tokens_per_chunk
    if per_chunk == 1:
        chunks = tuple(tokens)
    else:
        chunks = tuple("".join(tokens[i : i + per_chunk]) for i in range(0, len(tokens), per_chunk))
    prompt_tokens = _prompt_tokens(request)
    ttft, offsets = _schedule(config, request, len(chunks), prompt_tokens, seed, active_streams)
    return Plan(
        seed=seed,
        answer="".join(chunks),
        chunks=chunks,
        offsets=offsets,
        ttft=ttft,
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=len(tokens),
        fault=fault,
    )


def _agent_plan(
    config: MockConfig,
    request: ChatRequest,
    source: Any,
    ruled: bool,
    seed: int,
    fault: Fault | None,
    active_streams: int,
) -> Plan:
    """A plan with blocks: reasoning, tool calls and text, each chunked and timed like text. Hidden
    reasoning takes the time its tokens would take to stream, before the first chunk."""
    multibyte = config.default_answer.multibyte if isinstance(config.default_answer, ProseAnswer) else 0.0

    def reasoning_text(length: int, rng: random.Random) -> list[str]:
        return generate_prose(length, rng, multibyte, 4)

    pieces = agent_pieces(request, source, ruled, rng_for(seed, "text"), seed, config.reasoning_tokens, reasoning_text)
    whole_calls = request.agent is not None and request.agent.whole_calls
    budget = request.max_tokens
    hidden = pieces.hidden_reasoning
    finish_reason = "tool_calls" if "tool_call" in pieces.kinds else "stop"
    if budget is not None and hidden >= budget:
        hidden, budget, finish_reason = budget, 0, "length"
    elif budget is not None:
        budget -= hidden
    per_chunk = config.timing.tokens_per_chunk
    chunks: list[str] = []
    counts: list[int] = []
    completion = reasoning = hidden
    for kind, tokens in zip(pieces.kinds, pieces.tokens, strict=True):
        if budget is not None and len(tokens) > budget:
            tokens = tokens[:budget]
            finish_reason = "length"
        if budget is not None:
            budget -= len(tokens)
        whole = whole_calls and kind == "tool_call"  # one piece: the call's arguments whole (Gemini)
        if whole:
            completion += sum(map(count_tokens, tokens))  # a whole call costs its arguments' tokens
        elif kind != "redacted_reasoning":
            completion += len(tokens)
        if kind == "reasoning":
            reasoning += len(tokens)
        if whole or per_chunk == 1:
            block_chunks = list(tokens)
        else:
            block_chunks = ["".join(tokens[i : i + per_chunk]) for i in range(0, len(tokens), per_chunk)]
        chunks += block_chunks
        counts.append(len(block_chunks))
    prompt_tokens = _prompt_tokens(request)
    hidden_chunks = -(-hidden // per_chunk)
    ttft, offsets = _schedule(config, request, hidden_chunks + len(chunks), prompt_tokens, seed, active_streams)
    if hidden_chunks:
        offsets = offsets[hidden_chunks:]
        ttft = offsets[0] if offsets else ttft
    all_chunks = tuple(chunks)
    blocks = blocks_of(pieces, counts, all_chunks)
    return Plan(
        seed=seed,
        answer="".join(block.text for block in blocks if block.kind == "text"),
        chunks=all_chunks,
        offsets=offsets,
        ttft=ttft,
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion,
        fault=fault,
        blocks=blocks,
        reasoning_tokens=reasoning,
    )


def _schedule(
    config: MockConfig,
    request: ChatRequest,
    n_chunks: int,
    prompt_tokens: int,
    seed: int,
    active: int,
) -> tuple[float, tuple[float, ...]]:
    timing = config.timing
    ttft_dist = _override(timing.ttft_ms, request.overrides.ttft_ms)
    itl_dist = _override(timing.itl_ms, request.overrides.itl_ms)
    ttft_factor, itl_factor = timing.load.factors(active) if timing.load else (1.0, 1.0)
    # A constant draws nothing: no generator to seed (seeding costs microseconds per request).
    rng = None if ttft_dist.is_constant and itl_dist.is_constant else rng_for(seed, "timing")
    ttft_ms = (ttft_dist.sample(rng) + timing.prefill_ms_per_token * prompt_tokens) * ttft_factor
    ttft = ttft_ms / 1000.0
    itl_scale = itl_factor / 1000.0
    if itl_dist.is_constant:
        return ttft, _evenly_spaced(ttft, itl_dist.sample(rng) * itl_scale, n_chunks)
    offsets = []
    at = ttft
    sample = itl_dist.sample
    for i in range(n_chunks):
        if i:
            at += sample(rng) * itl_scale
        offsets.append(at)
    return ttft, tuple(offsets)


@lru_cache(maxsize=1024)
def _evenly_spaced(first: float, gap: float, n: int) -> tuple[float, ...]:
    """`first + i * gap`: with constant timing every request shares one tuple."""
    return tuple(first + i * gap for i in range(n))


def _prompt_tokens(request: ChatRequest) -> int:
    texts = [m.content for m in request.messages]
    return sum(map(count_tokens, texts)) if request.raw_prompt else count_prompt_tokens(texts)


def _paced_plan(
    seed: int, request: ChatRequest, chunks: list[str], offsets: tuple[float, ...], fault: Fault | None
) -> Plan:
    """A plan whose chunks and due times come from the source (a replayed capture): the
    recording fixes the chunking and the pace; `max_tokens` still cuts, mid-chunk if need be."""
    answer = "".join(chunks)
    finish_reason = "stop"
    if request.max_tokens is not None:
        pieces = tokenize(answer)
        if len(pieces) > request.max_tokens:
            answer = "".join(pieces[: request.max_tokens])
            finish_reason = "length"
            chunks, offsets = _cut(chunks, offsets, len(answer))
    return Plan(
        seed=seed,
        answer=answer,
        chunks=tuple(chunks),
        offsets=tuple(offsets),
        ttft=offsets[0] if offsets else 0.0,
        finish_reason=finish_reason,
        prompt_tokens=_prompt_tokens(request),
        completion_tokens=count_tokens(answer),
        fault=fault,
    )


def _cut(chunks: list[str], offsets: tuple[float, ...], length: int) -> tuple[list[str], tuple[float, ...]]:
    """The chunks that make up the first `length` characters, the last one cut if need be."""
    kept: list[str] = []
    for chunk in chunks:
        if length <= 0:
            break
        kept.append(chunk[:length])
        length -= len(chunk)
    return kept, offsets[: len(kept)]


def _override(configured: Distribution, value_ms: float | None) -> Distribution:
    return configured if value_ms is None else Distribution.constant(value_ms)
