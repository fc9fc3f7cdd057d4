"""The Node backends under tests/independent/: find Node and npm, and install an app's packages once.

Each app folder carries its package.json and package-lock.json; `npm ci` runs only when node_modules
is missing or older than the lockfile, so a CI run installs each app once and later runs reuse it.
Without Node the tests skip, except under CI, where a missing tool is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

NPM_CI_TIMEOUT_S = 120


def need(tool: str) -> str:
    """The path of `node` or `npm`; a skip (a failure under CI) when it is not installed."""
    path = shutil.which(tool)
    if path is None:
        reason = f"{tool} is not installed: the Node backends under test need Node and npm"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)")
        pytest.skip(reason)
    return path


def install(app: Path) -> str:
    """`npm ci` in `app` once (when node_modules is missing or older than package-lock.json); the node path."""
    node, npm = need("node"), need("npm")
    modules, lock = app / "node_modules", app / "package-lock.json"
    if modules.is_dir() and modules.stat().st_mtime >= lock.stat().st_mtime:
        return node
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=app,
        capture_output=True,
        text=True,
        timeout=NPM_CI_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"npm ci in {app.name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    modules.touch()  # npm ci keeps the packages' own mtimes; mark the folder as installed now
    return node
