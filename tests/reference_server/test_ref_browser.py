"""A real browser's EventSource against the reference server, across origins (CORS in force).

Headless Debian Chromium, driven by Playwright through its `executable_path` (no browser download),
opens a page served from another loopback origin. The page starts a `start-stream` session with
fetch and reads it with `new EventSource(...)`, and reads a `conversation-events` stream with
`?access_token=` (an EventSource cannot send headers). Tokens must arrive one by one, as the mock
paces them, and the text must be the mock's answer.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from refserver_helpers import free_port

from tests.chromium import CHROMIUM_ARGS, chromium_or_skip

PAGES = Path(__file__).parent / "pages"
ITL_MS = 80  # wide enough that a loaded CI machine's stall of a few tens of ms merges no two tokens
PACED = {"timing": {"ttft_ms": 0, "itl_ms": ITL_MS}, "answers": {"default": {"prose": {"length_tokens": 12}}}}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def page_origin() -> Iterator[str]:
    """The test page, served from its own loopback origin."""
    port = free_port()
    handler = functools.partial(_QuietHandler, directory=str(PAGES))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    executable = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def cors_server(start_refserver, page_origin):
    return start_refserver(profiles=["start-stream", "conversation-events"], cors_origins=[page_origin], heartbeat_s=30)


def open_page(browser, page_origin):
    page = browser.new_page()
    page.goto(f"{page_origin}/eventsource.html")
    return page


def assert_one_by_one(seen: list[dict], kind: str) -> list[str]:
    """The token events' texts, after checking they arrived spread out, as the mock paced them."""
    tokens = [item for item in seen if item["data"]["type"] == kind]
    assert len(tokens) >= 5, seen
    times = [item["at"] for item in tokens]
    spread = times[-1] - times[0]
    # Paced at ITL_MS by the mock: all in one burst would be a buffered (not streamed) response.
    assert spread >= (len(tokens) - 1) * ITL_MS * 0.5, (spread, len(tokens))
    distinct = len({round(t) for t in times})
    assert distinct >= len(tokens) * 0.8, "tokens arrived in batches, not one by one"
    return [item["data"]["content"] for item in tokens]


def test_start_stream_eventsource_in_chromium(browser, page_origin, cors_server, mockllm, marker):
    mockllm.patch_config(PACED)
    page = open_page(browser, page_origin)
    result = page.evaluate(
        "([api, prompt]) => window.runStartStream(api, prompt, 'mock-model', 'browser-user')",
        [cors_server.base_url, f"browser {marker}"],
    )
    assert result["ok"], result
    assert result["seen"][-1]["data"]["type"] == "done"
    text = "".join(assert_one_by_one(result["seen"], "token"))
    (entry,) = mockllm.wait_for_journal(marker)
    assert text == entry["answer"]
    page.close()


def test_conversation_events_eventsource_with_access_token(browser, page_origin, cors_server, mockllm, marker):
    mockllm.patch_config(PACED)
    page = open_page(browser, page_origin)
    result = page.evaluate(
        "([api, token, content]) => window.runConversationEvents(api, token, content)",
        [cors_server.base_url, cors_server.token("browser-user"), f"browser {marker}"],
    )
    assert result["ok"], result
    kinds = [item["data"]["type"] for item in result["seen"]]
    assert kinds[0] == "connected" and kinds[-1] == "llm_complete"
    text = "".join(assert_one_by_one(result["seen"], "llm_chunk"))
    (entry,) = mockllm.wait_for_journal(marker)
    assert text == entry["answer"] == result["seen"][-1]["data"]["content"]
    page.close()


def test_an_origin_outside_the_cors_list_is_refused(browser, start_refserver, page_origin, mockllm, marker):
    server = start_refserver(profiles=["start-stream"], cors_origins=["http://allowed.example"])
    page = open_page(browser, page_origin)
    result = page.evaluate(
        "([api, prompt]) => window.runStartStream(api, prompt, 'mock-model', 'browser-user')",
        [server.base_url, f"browser {marker}"],
    )
    assert not result["ok"] and "Failed to fetch" in result["error"], result
    assert mockllm.journal(prompt_contains=marker) == []  # the preflight stopped it: no LLM call
    page.close()
