"""A client for a running mock's admin API: journal, faults, config, reset; `MockLLMFleet` drives several
mock hosts behind one address as one."""

from __future__ import annotations

import time
from typing import Any

import httpx

FINAL_OUTCOMES = frozenset({"completed", "client_closed", "disconnected", "http_error", "rejected", "reset"})


class MockLLMError(RuntimeError):
    """The admin API refused a call; the message is the mock's own."""


class MockLLMClient:
    """Talks to `/_mock/*` of a mock at `base_url` (e.g. `http://127.0.0.1:8123`)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    @property
    def openai_base_url(self) -> str:
        """What to give an OpenAI SDK as `base_url`."""
        return f"{self.base_url}/v1"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MockLLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise MockLLMError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    def journal(self, **filters: Any) -> list[dict[str, Any]]:
        """Entries filtered by prompt_contains, model, path, outcome, since_id, limit."""
        params = {name: value for name, value in filters.items() if value is not None}
        return self._call("GET", "/_mock/journal", params=params)["entries"]

    def wait_for_journal(self, prompt_contains: str, *, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The entries whose prompt contains the marker, once `count` of them have a final outcome."""
        deadline = time.monotonic() + timeout
        while True:
            entries = self.journal(prompt_contains=prompt_contains)
            if sum(e["outcome"] in FINAL_OUTCOMES for e in entries) >= count:
                return entries
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} finished journal entries with {prompt_contains!r} not seen: {entries}")
            time.sleep(0.02)

    def tool_calls(self, **filters: Any) -> list[dict[str, Any]]:
        """The tool calls the mock answered with, oldest first, in the entries `filters` select (as
        `journal`): each `{id, name, arguments, entry}`; `arguments` is the JSON text streamed."""
        entries = self.journal(**filters)
        return [{**call, "entry": entry["id"]} for entry in entries for call in entry.get("tool_calls") or ()]

    def tool_results(self, **filters: Any) -> list[dict[str, Any]]:
        """The tool results the client sent back, as each request carried them (`{call_id, name,
        content, entry}`): what a backend returned to the model after running its tools."""
        return [
            {**result, "entry": entry["id"]}
            for entry in self.journal(**filters)
            for result in (entry.get("agent") or {}).get("tool_results") or ()
        ]

    def refusals(self, **filters: Any) -> list[dict[str, Any]]:
        """The requests refused as the provider would refuse them: `{check, error, status, entry}`."""
        return [
            {"check": entry["check"], "error": entry.get("error"), "status": entry.get("status"), "entry": entry["id"]}
            for entry in self.journal(**filters)
            if entry.get("check")
        ]

    def clear_journal(self) -> int:
        return self._call("DELETE", "/_mock/journal")["cleared"]

    def arm_fault(self, fault: str, *, match: dict[str, Any] | None = None, count: int | None = 1) -> dict[str, Any]:
        """Inject `fault` into the next `count` requests that `match` (None: until disarmed)."""
        return self._call("POST", "/_mock/faults", json={"fault": fault, "match": match or {}, "count": count})

    def armed_faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "/_mock/faults")["faults"]

    def disarm_faults(self) -> int:
        return self._call("DELETE", "/_mock/faults")["disarmed"]

    def config(self) -> dict[str, Any]:
        return self._call("GET", "/_mock/config")

    def patch_config(self, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge `patch` over the config in force."""
        return self._call("PATCH", "/_mock/config", json=patch)

    def replace_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """Merge `config` over the startup config, dropping earlier changes."""
        return self._call("PUT", "/_mock/config", json=config)

    def reset(self) -> None:
        self._call("POST", "/_mock/reset")

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_mock/stats")


class MockLLMFleet:
    """Several mock hosts behind one address (a load balancer in front of `mockllm serve` on each
    host), driven as one: every change goes to every host, and reads are merged. Each host is one
    view of its own workers; hosts share nothing, so an entry says which host it came from (`host`,
    its base URL) and ids are unique only per host. An armed fault is armed on each host: `count`
    is per host. See docs/mock-workers.md."""

    def __init__(self, base_urls: list[str], *, timeout: float = 10.0) -> None:
        if not base_urls:
            raise ValueError("a fleet needs at least one mock base URL")
        self.hosts = [MockLLMClient(url, timeout=timeout) for url in base_urls]

    def close(self) -> None:
        for host in self.hosts:
            host.close()

    def __enter__(self) -> MockLLMFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def journal(self, **filters: Any) -> list[dict[str, Any]]:
        """Every host's entries (as `MockLLMClient.journal`), each with its `host`, in time order;
        `limit` keeps the newest of them all."""
        limit = filters.get("limit")
        entries = [{**entry, "host": host.base_url} for host in self.hosts for entry in host.journal(**filters)]
        entries.sort(key=lambda entry: (entry.get("time", 0.0), entry["host"], entry["id"]))
        return entries[-limit:] if limit else entries

    def clear_journal(self) -> int:
        return sum(host.clear_journal() for host in self.hosts)

    def arm_fault(
        self, fault: str, *, match: dict[str, Any] | None = None, count: int | None = 1
    ) -> list[dict[str, Any]]:
        """Arm `fault` on every host, for `count` matching requests on each."""
        return [host.arm_fault(fault, match=match, count=count) for host in self.hosts]

    def disarm_faults(self) -> int:
        return sum(host.disarm_faults() for host in self.hosts)

    def patch_config(self, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge `patch` over the config in force on every host; the first host's result."""
        results = [host.patch_config(patch) for host in self.hosts]
        return results[0]

    def replace_config(self, config: dict[str, Any]) -> dict[str, Any]:
        results = [host.replace_config(config) for host in self.hosts]
        return results[0]

    def reset(self) -> None:
        for host in self.hosts:
            host.reset()

    def stats(self) -> dict[str, Any]:
        """The hosts' stats summed (`hosts`: each host's own)."""
        each = [host.stats() for host in self.hosts]
        by_outcome: dict[str, int] = {}
        for stats in each:
            for outcome, count in stats["by_outcome"].items():
                by_outcome[outcome] = by_outcome.get(outcome, 0) + count
        return {
            "requests": sum(stats["requests"] for stats in each),
            "by_outcome": by_outcome,
            "active_streams": sum(stats["active_streams"] for stats in each),
            "journal_entries": sum(stats["journal_entries"] for stats in each),
            "hosts": {host.base_url: stats for host, stats in zip(self.hosts, each, strict=True)},
        }
