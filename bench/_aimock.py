"""aimock (npm `@copilotkit/aimock`), installed and configured by the benchmark that compares with it.

The mock's per-event cost is judged against aimock measured in the same run on the same machine,
never against a figure copied from elsewhere. This module installs one pinned version with npm into
a git-ignored cache directory (once; later runs find it there) and writes an aimock config whose one
fixture answers every benchmark prompt (`bench N`) with a zero-latency OpenAI chat stream of exactly
the events the mock sends for the same token count: the role chunk, `tokens` content chunks, the
finish chunk and `[DONE]`.

    python -m bench._aimock          # install (if needed) and print the CLI path
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

VERSION = "1.43.0"
PACKAGE = "@copilotkit/aimock"
CACHE = Path(__file__).resolve().parent / ".cache" / f"aimock-{VERSION}"
CLI = CACHE / "node_modules" / "@copilotkit" / "aimock" / "dist" / "aimock-cli.js"  # package.json's bin
INSTALL_TIMEOUT_S = 300.0
CHARS_PER_CHUNK = 4  # about the mock's prose tokens, so both streams carry about the same bytes


class AimockUnavailable(RuntimeError):
    """Node or npm is missing, or the install failed: the comparison cannot run here."""


def install() -> Path:
    """The aimock CLI script, installed into the cache first if it is not there yet."""
    if CLI.exists() and _installed_version() == VERSION:
        return CLI
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise AimockUnavailable("node and npm are needed to install aimock")
    CACHE.mkdir(parents=True, exist_ok=True)
    argv = [npm, "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", "--no-save", f"{PACKAGE}@{VERSION}"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise AimockUnavailable(f"npm install {PACKAGE}@{VERSION} took over {INSTALL_TIMEOUT_S:g} s") from None
    if done.returncode or not CLI.exists():
        raise AimockUnavailable(f"npm install {PACKAGE}@{VERSION} failed: {(done.stderr or done.stdout)[-1000:]}")
    return CLI


def _installed_version() -> str | None:
    manifest = CLI.parents[1] / "package.json"
    try:
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def write_config(directory: Path, tokens: int) -> Path:
    """An aimock config in `directory`: zero latency, `tokens` content chunks for every `bench` prompt,
    no per-request logging (aimock at its cheapest, as the mock runs with no access log)."""
    if tokens < 1:
        raise ValueError(f"tokens must be at least 1, not {tokens}")
    fixtures = directory / "aimock-fixtures.json"
    content = "".join(f"w{i % 1000:03d}"[:CHARS_PER_CHUNK] for i in range(tokens))  # `tokens` slices of 4
    fixture = {"match": {"userMessage": "bench"}, "response": {"content": content}}
    fixtures.write_text(json.dumps({"fixtures": [fixture]}))
    config = directory / "aimock-config.json"
    llm = {"fixtures": str(fixtures), "latency": 0, "chunkSize": CHARS_PER_CHUNK, "logLevel": "silent"}
    config.write_text(json.dumps({"llm": llm}))
    return config


def aimock_argv(cli: Path, config: Path) -> list[str]:
    """The command that serves `config` on a free loopback port; it prints `... listening on URL`."""
    node = shutil.which("node")
    if node is None:
        raise AimockUnavailable("node is needed to run aimock")
    return [node, str(cli), "--config", str(config), "--host", "127.0.0.1", "--port", "0"]


if __name__ == "__main__":
    print(install())
