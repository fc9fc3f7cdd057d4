"""Same config, seed and request: the same bytes and the same planned delays, whatever else is running."""

from __future__ import annotations

import asyncio

import httpx

from mockllm import MockLLMClient

TIMING = {"x-mock-ttft-ms": "20", "x-mock-itl-ms": "3", "x-mock-answer-tokens": "30"}


def body(content: str) -> dict[str, object]:
    return {"model": "mock-gpt", "messages": [{"role": "user", "content": content}], "stream": True, "temperature": 0.7}


def test_same_request_twice_same_bytes(mockllm: MockLLMClient, marker: str) -> None:
    url = f"{mockllm.openai_base_url}/chat/completions"
    first = httpx.post(url, json=body(marker), headers=TIMING).content
    second = httpx.post(url, json=body(marker), headers=TIMING).content
    assert first == second
    other_seed = httpx.post(url, json=body(marker), headers={**TIMING, "x-mock-seed": "7"}).content
    assert other_seed != first
    entries = mockllm.journal(prompt_contains=marker)
    assert entries[0]["planned"] == entries[1]["planned"] != entries[2]["planned"]


def test_same_request_under_200_concurrent_others(mockllm: MockLLMClient, marker: str) -> None:
    url = f"{mockllm.openai_base_url}/chat/completions"
    alone = httpx.post(url, json=body(marker), headers=TIMING).content

    async def crowd() -> list[bytes]:
        limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            prompts = (
                [f"other {i} {marker}" for i in range(100)] + [marker] + [f"more {i} {marker}" for i in range(100)]
            )
            responses = await asyncio.gather(*(client.post(url, json=body(p), headers=TIMING) for p in prompts))
            return [r.content for r in responses]

    contents = asyncio.run(crowd())
    assert contents[100] == alone
    assert len(set(contents)) == 201  # every other request got its own answer
    mine = [e for e in mockllm.journal(prompt_contains=marker) if e["prompt"] == marker]
    assert len(mine) == 2 and mine[0]["planned"] == mine[1]["planned"] and mine[0]["answer"] == mine[1]["answer"]
    assert mockllm.stats()["by_outcome"] == {"completed": 202}
