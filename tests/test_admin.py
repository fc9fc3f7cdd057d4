"""The admin API under /_mock/: faults armed by rule and count, config at run time, journal, reset, metrics."""

from __future__ import annotations

import httpx
import openai
import pytest

from mockllm import MockLLMClient
from mockllm.client import MockLLMError


def chat(mockllm: MockLLMClient, content: str, **extra: object) -> httpx.Response:
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": content}], **extra}
    return httpx.post(f"{mockllm.openai_base_url}/chat/completions", json=body, timeout=5)


def test_armed_fault_hits_only_matching_requests_count_times(mockllm: MockLLMClient, marker: str) -> None:
    armed = mockllm.arm_fault("503", match={"contains": marker}, count=2)
    assert armed["remaining"] == 2 and armed["fault"] == "503"
    assert chat(mockllm, "unrelated").status_code == 200
    assert [chat(mockllm, f"hit {marker}").status_code for _ in range(3)] == [503, 503, 200]
    assert mockllm.armed_faults() == []
    sources = [e["fault_source"] for e in mockllm.journal(prompt_contains=marker)]
    assert sources == [f"armed:{armed['id']}", f"armed:{armed['id']}", None]


def test_armed_fault_until_disarmed(mockllm: MockLLMClient, marker: str) -> None:
    mockllm.arm_fault("error-after=1", match={"regex": f"{marker}$"}, count=None)
    for _ in range(3):
        assert b'"error"' in chat(mockllm, f"x {marker}", stream=True).content
    assert mockllm.disarm_faults() == 1
    assert b"[DONE]" in chat(mockllm, f"x {marker}", stream=True).content


def test_config_schedule_every_kth_and_first_n(mockllm: MockLLMClient, marker: str) -> None:
    mockllm.patch_config(
        {"faults": [{"fault": "500", "when": {"every": 3, "contains": marker}},
                    {"fault": "429", "when": {"first": 1, "contains": "other" + marker}}]}
    )  # fmt: skip
    assert [chat(mockllm, f"q{i} {marker}").status_code for i in range(6)] == [200, 200, 500, 200, 200, 500]
    assert [chat(mockllm, f"other{marker}").status_code for _ in range(2)] == [429, 200]


def test_probability_schedule_is_decided_by_the_request_not_the_order(mockllm: MockLLMClient, marker: str) -> None:
    mockllm.patch_config({"faults": [{"fault": "500", "when": {"probability": 0.5, "contains": marker}}]})
    prompts = [f"p{i} {marker}" for i in range(40)]
    forward = {p: chat(mockllm, p).status_code for p in prompts}
    backward = {p: chat(mockllm, p).status_code for p in reversed(prompts)}
    assert forward == backward
    assert 5 < sum(status == 500 for status in forward.values()) < 35


def test_config_changes_apply_and_bad_ones_are_refused_whole(mockllm: MockLLMClient, marker: str) -> None:
    mockllm.patch_config({"answers": {"rules": [{"match": {"contains": marker}, "answer": {"fixed": "Fixed."}}]}})
    reply = chat(mockllm, marker).json()
    assert reply["choices"][0]["message"]["content"] == "Fixed."
    before = mockllm.config()
    with pytest.raises(MockLLMError, match=r"timing\.itl_ms\.dist"):
        mockllm.patch_config({"timing": {"ttft_ms": 5, "itl_ms": {"dist": "gamma"}}})
    assert mockllm.config() == before  # nothing half-applied: ttft_ms is unchanged too
    response = httpx.patch(f"{mockllm.base_url}/_mock/config", json={"timing": {"tokens_per_chunk": 0}})
    assert response.status_code == 400 and response.json()["error"]["key"] == "timing.tokens_per_chunk"


def test_template_and_echo_answers(mockllm: MockLLMClient, marker: str) -> None:
    mockllm.patch_config(
        {"answers": {"rules": [
            {"match": {"regex": f"^echo {marker}"}, "answer": {"echo": True}},
            {"match": {"contains": marker, "turn": 2}, "answer": {"template": "Turn {{ turn }} of {{ model }}"}},
        ]}}
    )  # fmt: skip
    assert chat(mockllm, f"echo {marker} é🙂").json()["choices"][0]["message"]["content"] == f"echo {marker} é🙂"
    messages = [
        {"role": "user", "content": marker},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": marker},
    ]
    body = {"model": "m2", "messages": messages}
    reply = httpx.post(f"{mockllm.openai_base_url}/chat/completions", json=body).json()
    assert reply["choices"][0]["message"]["content"] == "Turn 2 of m2"


def test_timing_from_config_and_headers(mockllm: MockLLMClient, marker: str) -> None:
    mockllm.patch_config({"timing": {"ttft_ms": 30, "itl_ms": 4, "prefill_ms_per_token": 0.5}})
    chat(mockllm, marker, stream=True)
    entry = mockllm.journal(prompt_contains=marker)[-1]
    planned = entry["planned"]
    assert planned["ttft_ms"] == pytest.approx(30 + 0.5 * planned["prompt_tokens"])
    gaps = [b - a for a, b in zip(planned["offsets_ms"], planned["offsets_ms"][1:], strict=False)]
    assert gaps and all(g == pytest.approx(4.0) for g in gaps)
    assert entry["achieved"]["ttft_ms"] >= planned["ttft_ms"] - 0.5
    body = {"model": "m", "messages": [{"role": "user", "content": marker + "h"}]}
    headers = {"x-mock-ttft-ms": "12", "x-mock-itl-ms": "2", "x-mock-answer-tokens": "9"}
    httpx.post(f"{mockllm.openai_base_url}/chat/completions", json=body, headers=headers)
    planned = mockllm.journal(prompt_contains=marker + "h")[-1]["planned"]
    ttft = 12 + 0.5 * planned["prompt_tokens"]  # the header replaces the draw; prefill still adds
    assert planned["ttft_ms"] == pytest.approx(ttft) and planned["completion_tokens"] == 9
    assert planned["offsets_ms"][-1] == pytest.approx(ttft + 2 * 8)


def test_journal_filters_clear_and_reset(mockllm: MockLLMClient, marker: str) -> None:
    chat(mockllm, f"a {marker}")
    chat(mockllm, f"b {marker}", model="other")
    assert len(mockllm.journal(prompt_contains=marker)) == 2
    assert [e["model"] for e in mockllm.journal(prompt_contains=marker, model="other")] == ["other"]
    assert len(mockllm.journal(limit=1)) == 1
    first_id = mockllm.journal(prompt_contains=marker)[0]["id"]
    assert [e["id"] for e in mockllm.journal(since_id=first_id)] == [first_id + 1]
    response = httpx.get(f"{mockllm.base_url}/_mock/journal", params={"colour": "red"})
    assert response.status_code == 400 and "colour" in response.text
    mockllm.arm_fault("500")
    mockllm.patch_config({"seed": 99})
    mockllm.reset()
    assert mockllm.journal() == [] and mockllm.armed_faults() == [] and mockllm.config()["seed"] == 0


def test_metrics_report_achieved_timing(mockllm: MockLLMClient, marker: str) -> None:
    client = openai.OpenAI(base_url=mockllm.openai_base_url, api_key="k", max_retries=0)
    list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": marker}], stream=True))
    text = httpx.get(f"{mockllm.base_url}/metrics").text
    assert 'mockllm_requests_total{dialect="openai-chat",outcome="completed"} 1' in text
    assert "mockllm_ttft_seconds_count 1" in text
    assert "# TYPE mockllm_itl_seconds histogram" in text
    assert mockllm.stats()["requests"] == 1


def test_unknown_routes_and_methods(mockllm: MockLLMClient) -> None:
    assert httpx.get(f"{mockllm.base_url}/v2/nothing").status_code == 404
    assert httpx.get(f"{mockllm.openai_base_url}/chat/completions").status_code == 405
    response = httpx.post(f"{mockllm.base_url}/_mock/faults", json={"fault": "stall-after=x"})
    assert response.status_code == 400 and response.json()["error"]["key"] == "fault"


@pytest.mark.parametrize("spec", ["error-after=inf", "429,retry-after=1e400", "²"])
def test_unparseable_fault_headers_are_a_400_not_a_crash(mockllm: MockLLMClient, spec: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    response = httpx.post(
        f"{mockllm.openai_base_url}/chat/completions",
        json=body,
        headers={"x-mock-fault": spec.encode("latin-1")},
    )
    assert response.status_code == 400 and response.json()["error"]["param"] == "x-mock-fault"


def test_template_with_an_unknown_name_is_refused_at_config_time(mockllm: MockLLMClient) -> None:
    # PUT: over the startup config, so `template` replaces the default prose rather than joining it
    response = httpx.put(
        f"{mockllm.base_url}/_mock/config", json={"answers": {"default": {"template": "Hi {{ username }}"}}}
    )
    assert response.status_code == 400
    assert response.json()["error"]["key"] == "answers.default.template" and "username" in response.text
