"""Every authenticated route with bad credentials: each refused with the contract's status, never a 5xx.

A route that forgets its guard, a JWT library that accepts `alg: none`, a verifier that skips the
expiry, an id lookup that does not check the owner: each is one missing line, and each lets anyone
read anyone's conversations. So every route of the three profiles with auth (`conversations`,
`query-stream`, `conversation-events`, its `?access_token=` form too) is called with no token, a
token signed with a foreign secret, an `alg: none` token and an expired one (all 401), and every
route that takes an id with a valid token of another user (404 or 403). The mock's journal must
show no LLM call made meanwhile: no part of a refused request reaches the LLM.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from contracts import mint_token, unsigned_token

from ._common import PROJECT_ID, SECRET, Outcome, Property, Sizes, mock_and_reference

OWNER, INTRUDER = "alice", "mallory"
FOREIGN_SECRET = "not-the-servers-secret-but-also-32-bytes-long"


# ---------------------------------------------------------------------------------------------- pure part


@dataclass(frozen=True, slots=True)
class Route:
    """One authenticated call; `owned` when it takes the id of a resource of OWNER's."""

    name: str
    method: str
    path: str  # `{conv}`, `{qs}`, `{ev}`: ids of OWNER's resources
    body: dict[str, Any] | None
    owned: bool
    query_token: bool = False  # the credential goes in `?access_token=`, not in a header


ROUTES: tuple[Route, ...] = (
    Route("conversations: create", "POST", "/chat/conversation", {"title": "t"}, False),
    Route("conversations: stream", "POST", "/chat/stream", {"conversationId": "{conv}", "message": "hi"}, True),
    Route(
        "query-stream: stream",
        "GET",
        f"/api/v1/ai/chat/stream?projectId={PROJECT_ID}&message=hi&conversationId={{qs}}",
        None,
        True,
    ),
    Route(
        "query-stream: chat",
        "POST",
        "/api/v1/ai/chat",
        {"projectId": PROJECT_ID, "message": "hi", "conversationId": "{qs}"},
        True,
    ),
    Route("conversation-events: create", "POST", "/api/v1/chat/conversations", {}, False),
    Route("conversation-events: message", "POST", "/api/v1/chat/conversations/{ev}/messages", {"content": "hi"}, True),
    Route("conversation-events: stream", "GET", "/api/v1/chat/conversations/{ev}/stream", None, True),
    Route(
        "conversation-events: stream ?access_token",
        "GET",
        "/api/v1/chat/conversations/{ev}/stream",
        None,
        True,
        query_token=True,
    ),
)

# Credential name -> a token (None: none at all), and the statuses that are right for it.
CREDENTIALS: dict[str, tuple[Callable[[], str | None], frozenset[int]]] = {
    "no token": (lambda: None, frozenset({401})),
    "foreign secret": (lambda: mint_token(FOREIGN_SECRET, OWNER), frozenset({401})),
    "alg none": (lambda: unsigned_token(OWNER), frozenset({401})),
    "expired": (lambda: mint_token(SECRET, OWNER, valid_from_s=-7200), frozenset({401})),
    "another user": (lambda: mint_token(SECRET, INTRUDER), frozenset({403, 404})),
}


def applies(route: Route, credential: str) -> bool:
    """Another user's token is a wrong credential only where the route takes someone's id."""
    return credential != "another user" or route.owned


def fill(template: str, ids: dict[str, str]) -> str:
    for key, value in ids.items():
        template = template.replace("{" + key + "}", value)
    return template


def judge_cell(status: int | None, right: frozenset[int]) -> tuple[bool, str]:
    if status is None:
        return False, "no answer"
    return status in right, str(status)


# ---------------------------------------------------------------------------------------------- I/O part


def owner_resources(client: httpx.Client) -> dict[str, str]:
    """OWNER's conversation in each profile (a conversation-events one with a message in it)."""
    auth = {"Authorization": f"Bearer {mint_token(SECRET, OWNER)}"}
    conv = client.post("/chat/conversation", json={"title": "mine"}, headers=auth).json()["id"]
    ev = client.post("/api/v1/chat/conversations", json={}, headers=auth).json()["id"]
    client.post(f"/api/v1/chat/conversations/{ev}/messages", json={"content": "hello"}, headers=auth).raise_for_status()
    qs = client.post("/api/v1/ai/chat", json={"projectId": PROJECT_ID, "message": "hello"}, headers=auth)
    return {"conv": conv, "ev": ev, "qs": qs.json()["conversationId"]}


def call(client: httpx.Client, route: Route, ids: dict[str, str], token: str | None) -> int | None:
    """The status only: a stream that wrongly starts is closed at once."""
    path = fill(route.path, ids)
    headers = {"Accept": "text/event-stream"}
    if token is not None and route.query_token:
        path += ("&" if "?" in path else "?") + f"access_token={quote(token)}"
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = None if route.body is None else {k: fill(v, ids) if isinstance(v, str) else v for k, v in route.body.items()}
    try:
        with client.stream(route.method, path, json=body, headers=headers) as response:
            return response.status_code
    except httpx.HTTPError:
        return None


def run(sizes: Sizes, workdir: Path | None = None) -> Outcome:
    del sizes  # one call per route and credential, in CI and in full
    names = list(CREDENTIALS)
    outcome = Outcome(
        "auth: every authenticated route with each wrong credential (401; 404/403 for another user's id)",
        ["route", *names],
    )
    with (
        tempfile.TemporaryDirectory(prefix="reliability-auth-") as tmp,
        mock_and_reference(workdir or Path(tmp)) as stack,
        httpx.Client(base_url=stack.ref.url, timeout=10.0) as client,
    ):
        ids = owner_resources(client)
        admin = stack.admin()
        calls_before = len(admin.journal())
        cells: dict[tuple[str, str], tuple[bool, str]] = {}
        for route in ROUTES:
            for credential, (token, right) in CREDENTIALS.items():
                if applies(route, credential):
                    cells[(route.name, credential)] = judge_cell(call(client, route, ids, token()), right)
        llm_calls = len(admin.journal()) - calls_before
    server_errors = [f"{r} / {c}: {why}" for (r, c), (_, why) in cells.items() if why.startswith("5")]
    for route in ROUTES:
        row = [route.name]
        for credential in names:
            cell = cells.get((route.name, credential))
            row.append("-" if cell is None else f"{'ok' if cell[0] else 'WRONG'} {cell[1]}")
        outcome.rows.append(row)
    for credential, (_, right) in CREDENTIALS.items():
        mine = [(r, cell) for (r, c), cell in cells.items() if c == credential]
        wrong = [f"{r}: {cell[1]}" for r, cell in mine if not cell[0]]
        outcome.properties.append(
            Property(
                f"refused: {credential}",
                not wrong,
                "; ".join(wrong) or f"{len(mine)} of {len(mine)} refused",
                "/".join(map(str, sorted(right))),
            )
        )
    outcome.properties.append(Property("never a 5xx", not server_errors, "; ".join(server_errors) or "none", "none"))
    outcome.properties.append(Property("no LLM call for a refused request", llm_calls == 0, f"{llm_calls} calls", "0"))
    return outcome
