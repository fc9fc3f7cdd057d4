"""Shared test helpers. The `mockllm` fixture comes from the project's own pytest plugin."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def marker() -> str:
    """A unique string to put in a prompt, so a test finds its own requests in the journal."""
    return f"marker-{uuid.uuid4().hex[:12]}"
