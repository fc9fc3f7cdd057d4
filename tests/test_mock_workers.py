"""`mockllm serve --workers N`: one mock over several processes on one port, against real mock
processes on loopback. Every request here goes on a connection of its own, so the kernel spreads
them over the workers (the stats say which worker served how many).

The same requests get the same bytes and planned delays from a 4-worker mock as from a 1-worker
one; the admin API is one view of all workers: journal, armed faults, fault schedules, config
changes, reset, stats and metrics, refusal windows, and a contract's conversations.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from mockllm import MockLLMClient, ServerProcess, start_listening, start_mock
from mockllm.client import MockLLMFleet
from mockllm.launcher import mock_command

CONFIG = """
seed: 11
timing:
  ttft_ms: {dist: uniform, min: 1, max: 4}
  itl_ms: {dist: lognormal, median: 0.4, sigma: 0.5}
answers:
  default: {prose: {length_tokens: {dist: uniform, min: 8, max: 30}, multibyte: 0.3}}
"""
DIALECTS = (
    ("/v1/chat/completions", {"model": "mock-gpt", "stream": True}),
    ("/v1/messages", {"model": "claude-x", "max_tokens": 200, "stream": True}),
)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("workers") / "mock.yaml"
    path.write_text(CONFIG)
    return path


def _serve(config_file: Path, workers: int, *extra: str) -> ServerProcess:
    return start_listening(mock_command("--config", str(config_file), "--workers", str(workers), *extra))


@pytest.fixture(scope="module")
def single(config_file: Path) -> Iterator[ServerProcess]:
    with _serve(config_file, 1) as server:
        yield server


@pytest.fixture(scope="module")
def quad(config_file: Path) -> Iterator[ServerProcess]:
    with _serve(config_file, 4) as server:
        yield server


@pytest.fixture
def mock4(quad: ServerProcess) -> Iterator[MockLLMClient]:
    with MockLLMClient(quad.url) as client:
        client.reset()
        yield client


def _post(base: str, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    """One request on a connection of its own (a new TCP connection: any worker may take it)."""
    return httpx.post(f"{base}{path}", json=body, headers=headers, timeout=20)


def _chat(base: str, prompt: str, path: str = "/v1/chat/completions", **extra: Any) -> httpx.Response:
    return _post(base, path, {"model": "mock-gpt", "messages": [{"role": "user", "content": prompt}], **extra})


def _served_by(client: MockLLMClient) -> list[int]:
    return [worker["requests"] for worker in client.stats()["workers"]]


# -- the same bytes and delays -------------------------------------------------------------------


def test_the_same_requests_get_the_same_bytes_and_delays_from_four_workers_as_from_one(
    single: ServerProcess, quad: ServerProcess, marker: str
) -> None:
    prompts = [f"{marker} question {n}: how do streams work?" for n in range(6)]
    got: dict[str, dict[tuple[str, str], list[bytes]]] = {"single": {}, "quad": {}}
    for name, server in (("single", single), ("quad", quad)):
        for _ in range(3):  # each request three times: whichever worker takes it
            for path, base_body in DIALECTS:
                for prompt in prompts:
                    body = {**base_body, "messages": [{"role": "user", "content": prompt}]}
                    response = _post(server.url, path, body)
                    assert response.status_code == 200, response.text
                    got[name].setdefault((path, prompt), []).append(response.content)
    for key, bodies in got["quad"].items():
        assert len(set(bodies)) == 1, f"{key}: different bytes from different workers"
        assert bodies[0] == got["single"][key][0], f"{key}: four workers answered otherwise than one"
    plans: dict[str, list[tuple[str, str, Any]]] = {}
    for name, server in (("single", single), ("quad", quad)):
        with MockLLMClient(server.url) as client:
            entries = client.journal(prompt_contains=marker)
            plans[name] = sorted((e["path"], e["prompt"], json.dumps(e["planned"], sort_keys=True)) for e in entries)
            if name == "quad":
                served = _served_by(client)
                assert sum(served) >= len(entries) == 3 * len(DIALECTS) * len(prompts)
                assert sum(1 for count in served if count) >= 2, f"one worker served everything: {served}"
    assert plans["quad"] == plans["single"]
    assert len({plan for _, _, plan in plans["quad"]}) == len(DIALECTS) * len(prompts)


# -- one view of the admin API -------------------------------------------------------------------


def test_a_fault_armed_for_k_requests_is_taken_exactly_k_times_across_workers(
    mock4: MockLLMClient, marker: str
) -> None:
    armed = mock4.arm_fault("429", match={"contains": marker}, count=5)
    statuses = [_chat(mock4.base_url, f"{marker} {n}").status_code for n in range(16)]
    assert statuses.count(429) == 5 and statuses.count(200) == 11, statuses
    assert statuses[:5] == [429] * 5  # the first five, one after another, whichever worker took them
    entries = mock4.journal(prompt_contains=marker)
    assert [e["fault_source"] for e in entries].count(f"armed:{armed['id']}") == 5
    assert mock4.armed_faults() == []
    assert mock4.stats()["armed_faults"] == 0


def test_journal_ids_are_unique_and_an_entry_is_seen_at_once_whichever_worker_served_it(
    mock4: MockLLMClient, marker: str
) -> None:
    for n in range(12):
        response = _chat(mock4.base_url, f"{marker} turn {n}", stream=True)
        assert response.status_code == 200
        # no waiting: the stream is over, so its entry is closed in whichever worker played it
        (entry,) = mock4.journal(prompt_contains=f"{marker} turn {n}")
        assert entry["outcome"] == "completed"
    ids = [e["id"] for e in mock4.journal(prompt_contains=marker)]
    assert ids == sorted(set(ids)) and len(ids) == 12
    assert [e["id"] for e in mock4.journal(prompt_contains=marker, limit=3)] == ids[-3:]
    assert [e["id"] for e in mock4.journal(since_id=ids[5])] == ids[6:]
    assert sum(1 for count in _served_by(mock4) if count) >= 2


def test_concurrent_admin_calls_and_streams_all_get_their_answers(mock4: MockLLMClient, marker: str) -> None:
    """Many admin calls in flight at once through every worker, while streams are played."""

    async def burst() -> list[int]:
        limits = httpx.Limits(max_keepalive_connections=0)  # a connection per call: every worker takes some
        async with httpx.AsyncClient(base_url=mock4.base_url, timeout=20, limits=limits) as client:
            body = {"model": "mock-gpt", "stream": True, "messages": [{"role": "user", "content": f"{marker} go"}]}
            calls = []
            for n in range(10):
                calls += [
                    client.get("/_mock/journal", params={"prompt_contains": marker}),
                    client.get("/_mock/stats"),
                    client.get("/metrics"),
                    client.post("/_mock/faults", json={"fault": "500", "match": {"contains": f"none-{n}"}}),
                    client.post("/v1/chat/completions", json=body),
                ]
            return [response.status_code for response in await asyncio.gather(*calls)]

    statuses = asyncio.run(asyncio.wait_for(burst(), 60))
    assert statuses.count(201) == 10 and all(status in (200, 201) for status in statuses), statuses
    assert sorted(armed["id"] for armed in mock4.armed_faults()) == sorted({a["id"] for a in mock4.armed_faults()})
    assert len(mock4.armed_faults()) == 10
    assert len(mock4.wait_for_journal(f"{marker} go", count=10)) == 10


def test_the_journal_bound_holds_for_all_workers_together(mock4: MockLLMClient, marker: str) -> None:
    mock4.patch_config({"journal": {"max_entries": 5}})
    for n in range(12):
        _chat(mock4.base_url, f"{marker} {n}")
    entries = mock4.journal()
    assert [e["prompt"] for e in entries] == [f"{marker} {n}" for n in range(7, 12)]
    assert mock4.stats()["journal_entries"] == 5
    assert sum(1 for count in _served_by(mock4) if count) >= 2


def test_a_config_change_is_in_force_in_every_worker_once_answered(mock4: MockLLMClient, marker: str) -> None:
    mock4.patch_config({"answers": {"rules": [{"match": {"contains": marker}, "answer": {"fixed": "Fixed here."}}]}})
    for n in range(10):
        answer = _chat(mock4.base_url, f"{marker} {n}").json()["choices"][0]["message"]["content"]
        assert answer == "Fixed here."
    assert mock4.config()["answers"]["rules"][0]["answer"] == {"fixed": "Fixed here."}
    bad = httpx.patch(f"{mock4.base_url}/_mock/config", json={"timing": {"ttft_ms": -1}}, timeout=10)
    assert bad.status_code == 400 and "ttft_ms" in bad.text
    mock4.reset()
    assert _chat(mock4.base_url, f"{marker} after").json()["choices"][0]["message"]["content"] != "Fixed here."


def test_a_fault_schedule_counts_every_workers_requests(
    single: ServerProcess, mock4: MockLLMClient, marker: str
) -> None:
    schedule = {"faults": [{"fault": "503", "when": {"every": 3, "contains": marker}}]}
    outcomes = {}
    with MockLLMClient(single.url) as one:
        one.reset()
        for name, client in (("single", one), ("quad", mock4)):
            client.patch_config(schedule)
            outcomes[name] = [_chat(client.base_url, f"{marker} {n}").status_code for n in range(12)]
        one.reset()
    assert outcomes["quad"] == outcomes["single"] == [200, 200, 503] * 4


def test_the_load_model_sees_every_workers_streams(mock4: MockLLMClient, marker: str) -> None:
    load = {"max_streams": 8, "ttft_factor": 5}
    prose = {"prose": {"length_tokens": 20}}  # streams of two seconds
    mock4.patch_config({"timing": {"ttft_ms": 10, "itl_ms": 100, "load": load}, "answers": {"default": prose}})
    with ThreadPoolExecutor(6) as pool:  # six connections: they land on several workers
        streams = [pool.submit(_chat, mock4.base_url, f"{marker} long {n}", stream=True) for n in range(6)]
        deadline = time.monotonic() + 10
        while mock4.stats()["active_streams"] < 6:
            assert time.monotonic() < deadline, mock4.stats()
            time.sleep(0.02)
        _chat(mock4.base_url, f"{marker} probe")
        assert all(stream.result().status_code == 200 for stream in streams)
    (probe,) = mock4.journal(prompt_contains=f"{marker} probe")
    assert probe["planned"]["ttft_ms"] == pytest.approx(10 * (1 + 4 * 6 / 8))  # six streams, whichever workers


def test_reset_stats_and_metrics_are_one_view(mock4: MockLLMClient, marker: str) -> None:
    mock4.arm_fault("500", match={"contains": "never-sent"}, count=None)
    for n in range(8):
        _chat(mock4.base_url, f"{marker} {n}")
    stats = mock4.stats()
    assert stats["requests"] == stats["by_outcome"]["completed"] == 8
    assert stats["journal_entries"] == 8 and stats["armed_faults"] == 1
    assert len(stats["workers"]) == 4 and sum(w["requests"] for w in stats["workers"]) == 8
    metrics = httpx.get(f"{mock4.base_url}/metrics", timeout=10).text
    assert 'mockllm_requests_total{dialect="openai-chat",outcome="completed"} 8' in metrics
    assert "mockllm_ttft_seconds_count 8" in metrics
    assert mock4.clear_journal() == 8
    mock4.reset()
    stats = mock4.stats()
    assert stats["requests"] == 0 and stats["journal_entries"] == 0 and stats["armed_faults"] == 0
    assert mock4.armed_faults() == [] and mock4.journal() == []


def _connects(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except ConnectionRefusedError:
        return False
    return True


def _refused_everywhere(url: str) -> bool:
    return not any(_connects(url) for _ in range(12))  # whichever worker the kernel would pick


def _listening_again(url: str) -> None:
    deadline = time.monotonic() + 15
    while not _connects(url):
        assert time.monotonic() < deadline, "the workers did not listen again"
        time.sleep(0.1)


def test_a_refusal_window_closes_every_workers_listener(mock4: MockLLMClient, marker: str) -> None:
    refused = httpx.post(f"{mock4.base_url}/_mock/refuse", json={"for_s": 3}, timeout=10)
    assert refused.status_code == 200
    assert _refused_everywhere(mock4.base_url)  # answered: every worker has closed its listener
    _listening_again(mock4.base_url)
    assert mock4.stats()["refusal_windows"] == 1
    # The fault does the same from inside one worker's chat path; the others hear of it at once.
    mock4.arm_fault("refuse,for=4", match={"contains": marker})
    with pytest.raises(httpx.TransportError):
        _chat(mock4.base_url, f"{marker} fault")
    deadline = time.monotonic() + 2.5
    while not _refused_everywhere(mock4.base_url):
        assert time.monotonic() < deadline, "some worker still accepts connections"
        time.sleep(0.05)
    _listening_again(mock4.base_url)


# -- a contract's conversations ------------------------------------------------------------------


def _events(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in body.decode().splitlines() if line.startswith("data:")]


def _conversation(base: str, marker: str) -> list[Any]:
    """Eight turns of one conversation and one of another, each on a connection of its own."""
    first = _events(_post(base, "/api/chat/stream", {"message": f"turn 1 {marker}"}).content)
    session = first[0]["session_id"]
    for n in range(2, 9):
        body = {"message": f"turn {n} {marker}", "session_id": session}
        second = _events(_post(base, "/api/chat/stream", body).content)
        assert second[0]["session_id"] == session
    other = _events(_post(base, "/api/chat/stream", {"message": f"another {marker}"}).content)
    with MockLLMClient(base) as client:
        entries = client.journal(prompt_contains=marker)
    return [session, other[0]["session_id"], [(e["conversation"], e["messages"], e["answer"]) for e in entries]]


def test_a_contract_conversation_is_one_history_across_workers(marker: str) -> None:
    flags = ("--contract", "sessions", "--answer-tokens", "12")
    timing = {"seed": 5, "ttft_ms": 1, "itl_ms": 0}
    with start_mock(*flags, **timing) as one, start_mock(*flags, **timing, workers=4) as four:
        expected = _conversation(one.url, marker)
        got = _conversation(four.url, marker)
        with MockLLMClient(four.url) as client:
            assert sum(1 for count in _served_by(client) if count) >= 2
    assert got == expected
    session, other, entries = got
    assert other != session
    assert [len(messages) for _, messages, _ in entries] == [1, 3, 5, 7, 9, 11, 13, 15, 1]
    assert [conversation for conversation, _, _ in entries] == [session] * 8 + [other]


# -- several hosts -------------------------------------------------------------------------------


def test_a_fleet_of_hosts_is_driven_as_one(single: ServerProcess, quad: ServerProcess, marker: str) -> None:
    with MockLLMFleet([single.url, quad.url]) as fleet:
        fleet.reset()
        fleet.patch_config({"answers": {"rules": [{"match": {"contains": marker}, "answer": {"fixed": "Same."}}]}})
        armed = fleet.arm_fault("503", match={"contains": f"{marker} faulted"}, count=1)
        assert len(armed) == 2
        for host in (single, quad):
            assert _chat(host.url, f"{marker} plain").json()["choices"][0]["message"]["content"] == "Same."
            assert _chat(host.url, f"{marker} faulted").status_code == 503  # armed per host
        entries = fleet.journal(prompt_contains=marker)
        assert sorted(e["host"] for e in entries) == sorted([single.url, quad.url] * 2)
        assert fleet.stats()["requests"] == 4
        assert fleet.clear_journal() == 4
        fleet.reset()


# -- the supervisor ------------------------------------------------------------------------------


def _worker_pids(client: MockLLMClient) -> list[int]:
    return [worker["pid"] for worker in client.stats()["workers"]]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_stops_every_worker(config_file: Path) -> None:
    server = _serve(config_file, 2)
    with MockLLMClient(server.url) as client:
        pids = _worker_pids(client)
    assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    assert server.stop() == 0
    assert not any(_alive(pid) for pid in pids)


def test_a_dead_worker_stops_the_mock_loudly(config_file: Path) -> None:
    server = _serve(config_file, 2)
    try:
        with MockLLMClient(server.url) as client:
            pids = _worker_pids(client)
        os.kill(pids[1], signal.SIGKILL)
        assert server.process.wait(timeout=20) == 1
        assert f"worker 1 (pid {pids[1]}) was killed by signal 9" in server.output()
        assert not _alive(pids[0])
    finally:
        server.stop()


def test_a_port_in_use_is_refused_even_by_another_mocks_workers(quad: ServerProcess) -> None:
    port = quad.url.rsplit(":", 1)[1]
    done = subprocess.run(
        [sys.executable, "-m", "mockllm", "serve", "--port", port, "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_a_bad_worker_count_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mockllm", "serve", "--port", "0", "--workers", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "--workers" in done.stderr


def test_more_fault_rules_than_the_workers_count_are_refused(mock4: MockLLMClient, tmp_path: Path) -> None:
    rules = [{"fault": "429", "when": {"every": 2}}] * 300
    config = tmp_path / "many.yaml"
    config.write_text(json.dumps({"faults": rules}))  # JSON is YAML
    done = subprocess.run(
        [sys.executable, "-m", "mockllm", "serve", "--port", "0", "--workers", "2", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "at most 256 fault rules" in done.stderr
    refused = httpx.patch(f"{mock4.base_url}/_mock/config", json={"faults": rules}, timeout=10)
    assert refused.status_code == 400 and "at most 256 fault rules" in refused.text
