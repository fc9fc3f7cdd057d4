"""A sixth contract is one profile YAML, one reference-server module and one registration line.

The throw-away contract below lives in a temporary directory: its YAML file, and its adapter
module placed in the reference server's `profiles` package (as a new module there would be). After
the one line `register_profile(...)` and no other edit, every part that lists the contracts knows
it: the profile loader, the reference server's `--profile` choices and settings check, the app
that serves it, the load harness's profile names — and the conformance runner judges a real
stream of it, served by the real reference server against the real mock.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

import reference_server.profiles
from contracts import contract_profiles, load_profile, register_profile, unregister_profile
from loadtests import builtin_profiles, resolve_profile
from mockllm import MockLLMClient
from reference_server.__main__ import build_parser
from reference_server._app import create_app
from reference_server._settings import SettingsError, parse_settings
from scenarios import RunConfig, library, run

SIXTH_YAML = """\
name: sixth
summary: A throw-away contract, to prove that a new one touches three places.
auth: none
stream:
  grammar: "token* (end | error)"
  kind_field: type
  done: end
  error: error
  text: {kinds: [token], field: text, join: concat}
  fields:
    token: {text: string}
operations:
  stream:
    calls:
      - method: POST
        path: /sixth/stream
        headers: {Accept: text/event-stream}
        json: {message: "{message}"}
        stream: true
"""

SIXTH_ADAPTER = '''\
"""`sixth`: POST a message, get `{"type": "token", "text": ...}` events, then `{"type": "end"}`."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import post
from litestar.params import JSONBody
from litestar.response import Stream

from .._chat import Answer, ChatCore
from .._sse_encoder import data_event, event_stream
from ._adapter import ContractAdapter


class Body(msgspec.Struct):
    message: str


def handlers(core: ChatCore) -> list[Any]:
    @post("/sixth/stream", status_code=200)
    async def stream(data: JSONBody[Body]) -> Stream:
        messages = [{"role": "user", "content": data.message}]

        async def events():
            answer = Answer()
            async for chunk in core.answer("sixth", core.settings.default_model, messages, answer, store=False):
                yield data_event({"type": "token", "text": chunk})
            yield data_event({"type": "end"} if answer.outcome == "completed" else {"type": "error"})

        return event_stream(events())

    return [stream]


ADAPTER = ContractAdapter("sixth", "a throw-away contract", handlers)
'''


@pytest.fixture
def sixth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The throw-away contract registered, and unregistered again afterwards."""
    (tmp_path / "sixth.yaml").write_text(SIXTH_YAML, encoding="utf-8")
    modules = tmp_path / "adapters"
    modules.mkdir()
    (modules / "sixth.py").write_text(SIXTH_ADAPTER, encoding="utf-8")
    # The adapter module stands where a sixth module of the reference server would: in its package.
    monkeypatch.setattr(reference_server.profiles, "__path__", [*reference_server.profiles.__path__, str(modules)])
    name = register_profile(tmp_path / "sixth.yaml")  # the one registration line
    try:
        yield name
    finally:
        unregister_profile(name)
        load_profile.cache_clear()


def test_every_list_of_contracts_derives_from_the_registry(sixth: str) -> None:
    assert contract_profiles()[-1] == sixth == load_profile(sixth).name
    assert build_parser().parse_args(["--profile", sixth]).profile == [sixth]
    assert parse_settings({"profiles": [sixth]}).profiles == (sixth,)
    assert sixth in parse_settings({}).profiles  # the default is every contract
    assert parse_settings({"rate_limits": {sixth: {"count": 2, "window_s": 1}}}).rate_limits[sixth].count == 2
    assert sixth in builtin_profiles() and resolve_profile(sixth).stream.done == {"end"}


def test_an_unregistered_contract_is_refused_everywhere() -> None:
    assert "sixth" not in contract_profiles()
    with pytest.raises(SettingsError, match="unknown profile 'sixth'"):
        parse_settings({"profiles": ["sixth"]})
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--profile", "sixth"])
    with pytest.raises(ValueError, match="built-in"):
        unregister_profile("sessions")


def _serve(app: object) -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "the reference server did not start"
    return server, thread, f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_the_reference_server_serves_it_and_the_suite_judges_it(
    sixth: str, mockllm: MockLLMClient, tmp_path: Path
) -> None:
    settings = parse_settings({"profiles": [sixth], "database_url": f"sqlite+aiosqlite:///{tmp_path}/sixth.sqlite3"})
    server, thread, url = _serve(create_app(settings, mockllm.openai_base_url))
    try:
        scenario = next(s for s in library() if s.name == "stream-basic")
        result = asyncio.run(run(RunConfig(target=url, profile=load_profile(sixth), mock=mockllm.base_url,
                                           scenarios=[scenario])))  # fmt: skip
    finally:
        server.should_exit = True
        thread.join(10)
    (judged,) = result.scenarios
    verdicts = {c.check: c.verdict for c in judged.checks}
    assert result.ok, [(c.check, c.message) for c in judged.checks if c.verdict == "failed"]
    assert verdicts["stream.grammar"] == verdicts["stream.text"] == verdicts["stream.terminal"] == "passed"
