"""Distributed for real: a Locust master on one host, its workers and the mock on another.

Two network namespaces stand for the two hosts, joined by a veth pair the test makes (and removes,
with every process left in them, even on failure). Host B runs the mock on its own loopback and
two `loadtests worker`s; host A runs `loadtests master`, bound to its veth address, which only
coordinates: it cannot even reach the mock. So the load stays on loopback (B's) and the master's
result document is the workers' figures, merged across a real network hop. The last tests are the
policy's opt-in and the master's refusals on their own (no namespace needed).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from loadtests import UsageError
from loadtests.__main__ import main as loadtests_main
from loadtests._distributed import ALLOW_ENV, allowed_hosts, check_target
from loadtests._stats import LoadStats
from mockllm import mock_command, start_listening, stop_process

ROOT = Path(__file__).resolve().parents[2]
TTFT_MS, ITL_MS = 100, 10
PORT, MOCK_PORT = 5557, 8000  # Locust's and the mock's own: the namespaces are ours, nothing else listens there
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"


@dataclass(frozen=True)
class Hosts:
    """Two namespaces joined by a veth pair: `a` has `addr_a`, `b` has `addr_b` (a /30 between them)."""

    a: str
    b: str
    addr_a: str
    addr_b: str

    def run_in(self, namespace: str, *command: str) -> list[str]:
        return ["ip", "netns", "exec", namespace, *command]


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


def _empty(namespace: str) -> list[int]:
    """Kill whatever still runs in the namespace (only this test's processes can be there); the pids it found."""
    found = [int(pid) for pid in ip("netns", "pids", namespace).stdout.split()]
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while ip("netns", "pids", namespace).stdout.split() and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


@pytest.fixture(scope="module")
def hosts() -> Iterator[Hosts]:
    tag = f"{os.getpid() % 100000}{secrets.token_hex(1)}"  # unique per run; veth names stay within 15 characters
    a, b = f"lt{tag}a", f"lt{tag}b"
    made = ip("netns", "add", a)
    if made.returncode != 0 and ("Operation not permitted" in made.stderr or os.geteuid() != 0):
        pytest.skip(f"`ip netns add` is not permitted here (needs root or CAP_NET_ADMIN): {made.stderr.strip()}")
    assert made.returncode == 0, made.stderr
    namespaces = [a]
    subnet = f"10.{200 + os.getpid() % 50}.{secrets.randbelow(64) * 4}"
    try:
        assert ip("netns", "add", b).returncode == 0
        namespaces.append(b)
        steps = [
            ("link", "add", f"lt{tag}va", "netns", a, "type", "veth", "peer", "name", f"lt{tag}vb", "netns", b),
            ("-n", a, "addr", "add", f"{subnet}.1/30", "dev", f"lt{tag}va"),
            ("-n", b, "addr", "add", f"{subnet}.2/30", "dev", f"lt{tag}vb"),
            *[("-n", ns, "link", "set", dev, "up") for ns, dev in ((a, "lo"), (b, "lo"), (a, f"lt{tag}va"),
                                                                    (b, f"lt{tag}vb"))],
        ]  # fmt: skip
        for step in steps:
            done = ip(*step)
            assert done.returncode == 0, f"ip {' '.join(step)}: {done.stderr}"
        yield Hosts(a, b, f"{subnet}.1", f"{subnet}.2")
    finally:
        for namespace in namespaces:
            _empty(namespace)
            ip("netns", "del", namespace)
        assert not {a, b} & set(ip("netns", "list").stdout.split()), "a namespace outlived the test"


def python_in(hosts: Hosts, namespace: str, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(hosts.run_in(namespace, sys.executable, "-c", code), capture_output=True, text=True,
                          timeout=30, cwd=ROOT)  # fmt: skip


def connects(hosts: Hosts, namespace: str, host: str, port: int) -> bool:
    code = f"import socket; socket.create_connection(({host!r}, {port}), timeout=3).close()"
    return python_in(hosts, namespace, code).returncode == 0


def journal_count(hosts: Hosts, url: str, contains: str) -> int:
    """Requests the mock in B journaled whose prompt contains `contains` (asked from inside B)."""
    query = f"{url}/_mock/journal?limit=100000&prompt_contains={contains}"
    code = f"import urllib.request; print(urllib.request.urlopen({query!r}, timeout=10).read().decode())"
    done = python_in(hosts, hosts.b, code)
    assert done.returncode == 0, done.stderr
    return len(json.loads(done.stdout)["entries"])


class Processes:
    """This test's Locust processes (`ip netns exec` replaces itself with the command: the pid is Python's)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        with (self.workdir / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
        self.started[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{self.log(name)[-3000:]}" for name in self.started)

    def stop(self) -> None:
        for process in self.started.values():
            stop_process(process, timeout=5)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.stop()


def master_command(hosts: Hosts, target: str, *args: str) -> list[str]:
    return hosts.run_in(hosts.a, sys.executable, "-m", "loadtests", "master", "--target", target,
                        "--bind-host", hosts.addr_a, "--port", str(PORT), "--wait-workers-s", "30", *args)  # fmt: skip


def worker_command(hosts: Hosts, *args: str) -> list[str]:
    return hosts.run_in(hosts.b, sys.executable, "-m", "loadtests", "worker", "--master-host", hosts.addr_a,
                        "--master-port", str(PORT), *args)  # fmt: skip


def test_a_master_in_one_namespace_merges_two_workers_loading_the_other(hosts, processes, tmp_path):
    """The workers here are plain Locust (`locust -f loadtests/locustfile.py --worker`): its own flags work too."""
    target, parts = f"http://127.0.0.1:{MOCK_PORT}", tmp_path / "parts"
    master = processes.start("master", master_command(
        hosts, target, "--mock", target, "--profile", "openai-chat", "--users", "20", "--run-time", "5",
        "--max-tokens", "20", "--check-every", "5", "--workers", "2", "--parts-dir", str(parts),
        "--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html")))  # fmt: skip
    timing = ("--seed", "1", "--ttft-ms", str(TTFT_MS), "--itl-ms", str(ITL_MS))
    command = hosts.run_in(hosts.b, *mock_command(*timing, port=MOCK_PORT))
    with start_listening(command, tmp_path / "mock.log", cwd=ROOT) as mock:
        assert mock.url == target  # the mock is on B's loopback ...
        assert connects(hosts, hosts.b, "127.0.0.1", MOCK_PORT)
        assert not connects(hosts, hosts.a, "127.0.0.1", MOCK_PORT)  # ... which host A has not got
        plain_worker = hosts.run_in(hosts.b, sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
                                    "--master-host", hosts.addr_a, "--master-port", str(PORT))  # fmt: skip
        for index in range(2):
            processes.start(f"worker-{index}", plain_worker)
        assert ip("netns", "identify", str(master.pid)).stdout.strip() == hosts.a
        assert ip("netns", "identify", str(processes.started["worker-0"].pid)).stdout.strip() == hosts.b
        assert master.wait(timeout=120) == 0, processes.logs()
        for index in range(2):
            assert processes.started[f"worker-{index}"].wait(timeout=30) == 0, processes.logs()
    result = json.loads((tmp_path / "r.json").read_text())
    totals, metrics = result["totals"], result["metrics"]
    assert result["run"]["workers"] == 2 and result["run"]["target"] == target
    workers = [json.loads(p.read_text()) for p in sorted(parts.glob("worker-*.json"))]
    assert len(workers) == 2 and all(w["counters"].get("completed", 0) > 0 for w in workers), processes.logs()
    summed = LoadStats()
    for part in workers:
        summed.merge(part)
    merged = json.loads((parts / "master.json").read_text())
    for key in ("histograms", "counters", "errors", "timeline"):
        assert merged[key] == summed.to_dict()[key], key
    assert totals["completed"] == sum(w["counters"]["completed"] for w in workers) >= 20
    assert totals["failed"] == 0 and totals["requests"] == totals["completed"], result["errors"]
    assert totals["text_checked"] > 0 and totals["text_mismatch"] == 0, result["errors"]
    # Plausible against the mock's timing: never before the mock sends, not lost in queues (see test_load_runs).
    assert metrics["ttft_ms"]["min"] >= TTFT_MS - 1 and metrics["ttft_ms"]["p50"] < TTFT_MS * 10
    assert ITL_MS / 2 < metrics["itl_ms"]["mean"] < ITL_MS * 10
    assert metrics["output_tokens"]["max"] <= 20
    assert "uPlot" in (tmp_path / "r.html").read_text()
    assert "TTFT ms p50" in processes.log("master")


def test_a_worker_loads_a_non_loopback_target_only_when_its_own_host_allows_it(hosts, processes, tmp_path):
    """The opt-in is per process: the master names B's veth address, one worker allows it, one does not.
    The refusing worker leaves before sending a byte; the run goes on with the other."""
    target, parts = f"http://{hosts.addr_b}:{MOCK_PORT}", tmp_path / "parts"
    refused = processes.start("refused", master_command(hosts, target, "--workers", "1", "--json",
                                                        str(tmp_path / "x.json")))  # fmt: skip
    master = processes.start("master", master_command(
        hosts, target, "--allow-target", hosts.addr_b, "--profile", "anthropic", "--users", "4", "--run-time", "3",
        "--max-tokens", "5", "--workers", "2", "--parts-dir", str(parts),
        "--json", str(tmp_path / "r.json")))  # fmt: skip
    timing = ("--seed", "2", "--ttft-ms", "20", "--itl-ms", "5")
    command = hosts.run_in(hosts.b, *mock_command(*timing, host=hosts.addr_b, port=MOCK_PORT))
    with start_listening(command, tmp_path / "mock.log", cwd=ROOT) as mock:
        assert mock.url == target
        allowing = processes.start("allowing", worker_command(hosts, "--allow-target", hosts.addr_b))
        refusing = processes.start("refusing", worker_command(hosts))
        assert refused.wait(timeout=60) == 2, processes.logs()
        assert refusing.wait(timeout=60) == 2, processes.logs()
        assert master.wait(timeout=120) == 0, processes.logs()
        assert allowing.wait(timeout=30) == 0, processes.logs()
        (part,) = parts.glob("worker-*.json")  # the refusing worker wrote none
        mine = int(part.stem.removeprefix("worker-"))  # markers name the worker: lt<seed>w<index>u<user>t<turn>z
        sent = {index: journal_count(hosts, mock.url, f"lt1w{index}u") for index in (mine, 1 - mine)}
    assert "not a loopback address" in processes.log("refused") and "--allow-target" in processes.log("refused")
    assert not (tmp_path / "x.json").exists()
    assert "refusing to start load" in processes.log("refusing")
    assert f"{hosts.addr_b} is not a loopback address" in processes.log("refusing")
    result = json.loads((tmp_path / "r.json").read_text())
    only = json.loads(part.read_text())
    assert result["totals"]["completed"] == only["counters"]["completed"] > 0
    assert result["totals"]["failed"] == 0, result["errors"]
    assert sent[mine] >= result["totals"]["completed"] and sent[1 - mine] == 0, sent


@pytest.mark.parametrize("entry", ["10.0.0.0/8", "*", "*.internal", "http://mock", "mock:8000"])
def test_the_opt_in_names_one_host_never_a_network(entry):
    with pytest.raises(UsageError, match="expected a host name or an address"):
        allowed_hosts({ALLOW_ENV: f"mock,{entry}"})


def test_an_allowed_host_is_loaded_and_every_other_address_still_refused():
    hosts = allowed_hosts({ALLOW_ENV: " Mock , 10.1.2.3"}, extra=["[fd00::1]"])
    assert hosts == {"mock", "10.1.2.3", "fd00::1"}
    for url in ("http://mock:8000", "http://MOCK", "http://10.1.2.3:80/v1", "http://[fd00::1]:8000"):
        check_target(url, hosts)
    check_target("http://127.0.0.1:8000", frozenset())  # loopback needs no opt-in
    with pytest.raises(UsageError, match=r"not a loopback address.*--allow-target"):
        check_target("http://10.1.2.4:80", frozenset())  # the hint, when nothing was allowed
    with pytest.raises(UsageError, match="not a loopback address"):
        check_target("http://10.1.2.4:80", hosts)
    with pytest.raises(UsageError, match="expected an http:// URL"):
        check_target("https://mock:443", hosts)  # the load client speaks plain HTTP only


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--target", "http://10.11.12.13:80", "--workers", "1"], "not a loopback address"),
     (["--target", "http://127.0.0.1:9", "--workers", "0"], "at least one worker"),
     (["--target", "http://127.0.0.1:9", "--workers", "1", "--allow-target", "10.0.0.0/8"], "a host name"),
     (["--target", "http://127.0.0.1:9", "--workers", "1", "--profile", "nope"], "not a built-in profile")],
)  # fmt: skip
def test_a_master_refuses_bad_runs_before_starting_locust(args, message, tmp_path, capsys):
    assert loadtests_main(["master", *args, "--json", str(tmp_path / "r.json")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
