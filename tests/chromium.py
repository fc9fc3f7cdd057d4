"""Headless Debian Chromium for the browser tests: where it is, how to start it, and when to skip.

The flags follow the machine notes: no background networking (the sandbox refuses it), no GPU, and
`--no-sandbox` because the tests run as root. With REFSERVER_REQUIRE_SERVICES set (CI), a missing
Chromium fails the test instead of skipping it, so CI cannot pass without the browser checks.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_or_skip() -> str:
    if Path(CHROMIUM).exists() and shutil.which(CHROMIUM):
        return CHROMIUM
    if os.environ.get("REFSERVER_REQUIRE_SERVICES"):
        pytest.fail(f"{CHROMIUM} is missing (REFSERVER_REQUIRE_SERVICES is set): apt-get install chromium")
    pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium)")
