"""Locust as child processes: one local process, or a master and N workers on loopback.

`run_locust` starts headless Locust on `loadtests/locustfile.py` with a run's settings as `--lt-*`
options, waits for the shape to end (bounded: the shape's run time plus the stream timeout), and
returns the result document the run wrote; `summary` is its headline figures as text. The CLI,
the self-test, the demo and the tests all run load through here. Only loopback targets are loaded.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ._config import LoadSettings, UsageError

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def loopback_only(url: str) -> None:
    """Only loopback addresses are ever a load target."""
    host = urlsplit(url).hostname
    if not host or urlsplit(url).scheme != "http":
        raise UsageError(f"--target: expected an http:// URL, got {url!r}")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError as exc:
        raise UsageError(f"--target: cannot resolve {host!r}: {exc}") from None
    if not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise UsageError(f"--target: {host} is not a loopback address; this harness only loads loopback targets")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def locust_options(settings: LoadSettings) -> list[str]:
    options = []
    for name, value in vars(settings).items():
        if value is None or value == {}:
            continue
        text = json.dumps(value) if isinstance(value, dict) else str(value)
        options += [f"--lt-{name.replace('_', '-')}", text]
    return options


def run_locust(target: str, settings: LoadSettings, workers: int, *, quiet: bool = False) -> dict[str, Any]:
    """Run Locust to the end of the shape and return the result document."""
    loopback_only(target)
    if settings.mock:
        loopback_only(settings.mock)
    with tempfile.TemporaryDirectory(prefix="loadtests-") as scratch:
        if not settings.json_path:
            settings.json_path = str(Path(scratch) / "result.json")
        common = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", target, "--headless",
                  "--only-summary", "--stop-timeout", "10", "--loglevel", "WARNING"]  # fmt: skip
        common += locust_options(settings)
        out = subprocess.DEVNULL if quiet else None
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(LOCUSTFILE.parent.parent),
                                                                          os.environ.get("PYTHONPATH")]))}  # fmt: skip
        processes = []
        if workers:
            port = _free_port()
            master = [*common, "--master", "--expect-workers", str(workers), "--master-bind-host", "127.0.0.1",
                      "--master-bind-port", str(port)]  # fmt: skip
            processes.append(subprocess.Popen(master, stdout=out, stderr=out, env=env))
            for _ in range(workers):
                worker = [*common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
                processes.append(subprocess.Popen(worker, stdout=out, stderr=out, env=env))
        else:
            processes.append(subprocess.Popen(common, stdout=out, stderr=out, env=env))
        limit = settings.load_shape().run_time_s + settings.stream_timeout_s + 60
        try:
            processes[0].wait(timeout=limit)
            for process in processes[1:]:
                process.wait(timeout=30)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        path = Path(settings.json_path)
        if not path.is_file():
            raise RuntimeError(f"Locust ended (exit {processes[0].returncode}) without writing {path}")
        return json.loads(path.read_text(encoding="utf-8"))


def summary(result: dict[str, Any]) -> str:
    t, m, v = result["totals"], result["metrics"], result["validity"]

    def figure(name: str, key: str = "p50") -> str:
        value = m.get(name, {}).get(key)
        return "-" if value is None else f"{value:.3f}"

    ttft, itl = (
        f"{figure('ttft_ms')} p99 {figure('ttft_ms', 'p99')}",
        f"{figure('itl_ms')} p99 {figure('itl_ms', 'p99')}",
    )

    lines = [
        f"{result['run']['profile']} @ {result['run']['target']}: {t['requests']} streams, {t['completed']} completed, "
        f"{t['failed']} failed, {t['good']} within SLOs; {t['request_rate']:.2f} req/s, {t['token_rate']:.1f} tok/s",
        f"  TTFT ms p50 {ttft} | ITL ms p50 {itl} | TPOT ms p50 {figure('tpot_ms')} | E2E ms p50 {figure('e2e_ms')}",
        f"  client CPU max {v['client_cpu_percent']['max']}%, loop lag p99 {v['loop_lag_ms']['p99']} ms"
        + ("" if v["valid"] else " — INVALID: " + "; ".join(v["reasons"])),
    ]
    capacity = result.get("capacity")
    if capacity:
        lines.append(f"  capacity: {capacity['events_per_s']:,.0f} events/s read; {capacity['verdict']}")
        if len(capacity["processes"]) > 1:
            for process in capacity["processes"]:
                cpu, headroom = process["cpu_percent"], process["headroom"]
                state = " — SATURATED: " + "; ".join(process["reasons"]) if process["saturated"] else ""
                room = "?" if headroom is None else f"{headroom:.0%}"
                lines.append(f"    {process['process']}: {process['events_per_s']:,.0f} events/s, "
                             f"CPU mean {cpu['mean']}% max {cpu['max']}%, headroom {room}{state}")  # fmt: skip
    for error in result["errors"][:5]:
        lines.append(f"  error {error['kind']} x{error['count']}: {error['example'][:140]}")
    return "\n".join(lines)
