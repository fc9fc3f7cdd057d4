"""Bad input derived from a profile's declared request fields (scenarios/_bad_input.py): which variants
each call gets, and that every one that keeps a message carries the run's marker."""

from __future__ import annotations

import json

from contracts import load_profile
from scenarios._bad_input import MALFORMED_UUID, bad_inputs

MARKER = "cfmarker0001"


def _labels(profile: str, operation: str) -> list[str]:
    return [v.label for v in bad_inputs(load_profile(profile).operations[operation], f"body {MARKER}")]


def test_a_json_body_gets_each_field_missing_mistyped_empty_and_the_body_broken() -> None:
    assert _labels("sessions", "stream") == [
        "`message` missing",
        "`message` a number, not a string",
        "`message` empty",
        "`session_id` a number, not a string",  # optional: never missing, but not of any type
        "the body not JSON (cut off)",
        "the body a JSON array, not an object",
    ]


def test_a_uuid_gets_empty_and_malformed_judged_by_the_malformed_id_status() -> None:
    variants = {v.label: v for v in bad_inputs(load_profile("conversations").operations["stream"], MARKER)}
    malformed = variants[f"`conversationId` {MALFORMED_UUID!r}, not a UUID"]
    assert (malformed.status, malformed.apply({"conversationId": "x", "message": "m"})) == (
        "{malformed_id_status?}",
        {"conversationId": MALFORMED_UUID, "message": "m"},
    )
    assert variants["`message` empty"].status_check == "validation.empty-message"  # its level is the profile's


def test_a_query_gets_no_wrong_type_and_no_body_variants() -> None:
    labels = _labels("query-stream", "stream")
    assert "`projectId` missing" in labels and "`conversationId` missing" not in labels
    assert not [label for label in labels if "number" in label or "body" in label]


def test_only_the_call_that_declares_its_fields_is_varied() -> None:
    variants = bad_inputs(load_profile("conversation-events").operations["stream"], MARKER)
    assert {v.call for v in variants} == {0}  # the POST of the message, not the GET of the stream


def test_a_broken_body_still_carries_the_marker_so_a_lenient_parser_shows_in_the_journal() -> None:
    raw = [v.raw_body for v in bad_inputs(load_profile("sessions").operations["send"], f"body {MARKER}") if v.raw_body]
    assert len(raw) == 2 and all(MARKER.encode() in body for body in raw)
    try:
        json.loads(raw[0])
    except ValueError:
        pass
    else:
        raise AssertionError("the cut-off body parses")
    assert isinstance(json.loads(raw[1]), list)


def test_a_missing_field_is_left_out() -> None:
    missing = next(v for v in bad_inputs(load_profile("sessions").operations["stream"], MARKER) if v.missing)
    assert missing.apply({"message": "m", "session_id": "s"}) == {"session_id": "s"}
