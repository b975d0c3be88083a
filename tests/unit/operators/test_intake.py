"""intake.admit: what a raw record must pass before it enters keyed state, and why it is rejected."""
from __future__ import annotations

from dataclasses import replace

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import JobConfig, load_config
from operators.catalog_intake import admit_catalog
from operators.directory import admit_user_record
from operators.intake import Rejected, admit
from state_schemas.events import BehaviourEvent, ErasureRequest, FeedbackEvent, OrderEvent

NOW = 1_700_000_000_000
LIMITS = JobConfig().intake
CATALOG = JobConfig().catalog


def raw(**fields) -> bytes:
    record = {"v": 1, "type": "behaviour", "event_id": "e-1", "user_id": "u-1", "behavior": "view",
              "item_id": "i-1", "category_id": "c-1", "ts": NOW - 1000}
    record.update(fields)
    return orjson.dumps({k: v for k, v in record.items() if v is not ...})


def rejection(payload: bytes, limits=LIMITS, now=NOW) -> str:
    with pytest.raises(Rejected) as caught:
        admit(payload, now, limits)
    assert caught.value.reason == str(caught.value)
    return caught.value.reason


def test_accepts_a_valid_behaviour_event():
    event = admit(raw(price=9.5), NOW, LIMITS)
    assert event == BehaviourEvent(event_id="e-1", user_id="u-1", behavior="view", ts=NOW - 1000, item_id="i-1",
                                   category_id="c-1", price=9.5)


def test_accepts_every_event_type():
    order = orjson.dumps({"type": "order", "event_id": "o-e", "user_id": "u", "order_id": "o-1",
                          "status": "shipped", "ts": NOW, "item_ids": ["i-1", "i-2"], "carrier": "DHL"})
    erase = orjson.dumps({"type": "erase", "event_id": "x", "user_id": "u", "ts": NOW})
    feedback = orjson.dumps({"type": "feedback", "event_id": "f", "user_id": "u", "action": "unsubscribe",
                             "ts": NOW})
    assert admit(order, NOW, LIMITS) == OrderEvent("o-e", "u", "o-1", "shipped", NOW, ("i-1", "i-2"), "DHL")
    assert admit(erase, NOW, LIMITS) == ErasureRequest("x", "u", NOW)
    assert admit(feedback, NOW, LIMITS) == FeedbackEvent("f", "u", "unsubscribe", NOW)


@pytest.mark.parametrize("payload, words", [
    (b'{"type": "behaviour", "event_id": "e", ', ["malformed JSON"]),
    (b"", ["malformed JSON"]),
    (b"\xff\xfe not utf-8", ["malformed JSON"]),
    (b"[1, 2, 3]", ["must be a JSON object", "list"]),
    (b'"just a string"', ["must be a JSON object", "str"]),
    (b"42", ["must be a JSON object", "int"]),
    (b"null", ["must be a JSON object", "NoneType"]),
], ids=["truncated", "empty", "not-utf8", "array", "string", "number", "null"])
def test_rejects_what_is_not_a_json_object(payload, words):
    reason = rejection(payload)
    for word in words:
        assert word in reason


@pytest.mark.parametrize("missing", ["event_id", "user_id", "behavior", "ts", "item_id"])
def test_rejects_a_missing_field_and_names_it(missing):
    reason = rejection(raw(**{missing: ...}))
    assert "missing required field" in reason and f"'{missing}'" in reason


@pytest.mark.parametrize("name, value, expected", [
    ("ts", "1700000000000", "must be an integer, got str"),
    ("ts", 1.7e12, "must be an integer, got float"),
    ("ts", True, "must be an integer, got bool"),
    ("user_id", ["u"], "must be a string, got list"),
    ("user_id", False, "must be a string, got bool"),
    ("item_id", {"id": 1}, "must be a string, got dict"),
    ("price", "cheap", "must be a number, got str"),
    ("price", -1.0, "must be >= 0.0"),
    ("user_id", "", "must not be empty"),
    ("event_id", "x" * 257, "longer than 256"),
], ids=lambda v: str(v)[:20])
def test_rejects_a_mistyped_field_and_names_it(name, value, expected):
    reason = rejection(raw(**{name: value}))
    assert f"'{name}'" in reason and expected in reason


def test_rejects_an_unknown_type():
    reason = rejection(raw(type="teleport"))
    assert "unknown or missing 'type'" in reason and "'teleport'" in reason


def test_rejects_a_record_without_a_type():
    assert "unknown or missing 'type'" in rejection(raw(type=...))


def test_rejects_an_unknown_behaviour():
    reason = rejection(raw(behavior="teleport"))
    assert "'behavior'" in reason and "unknown value 'teleport'" in reason


def test_rejects_an_unsupported_schema_version():
    assert "unsupported schema version 2" in rejection(raw(v=2))


def test_rejects_an_oversized_payload_before_parsing_it():
    limits = load_config(overrides={"intake": {"max_payload_bytes": 300}}).intake
    payload = raw(query="q" * 400)
    assert len(payload) > 300
    reason = rejection(payload, limits)
    assert "oversized payload" in reason and f"{len(payload)} bytes > 300" in reason
    # Size is checked before JSON: oversized garbage gets the size reason, not a parse error.
    assert "oversized" in rejection(b"{" * 301, limits)


def test_a_payload_of_exactly_the_limit_is_accepted():
    payload = raw(query="q" * 300)
    limits = load_config(overrides={"intake": {"max_payload_bytes": len(payload)}}).intake
    assert admit(payload, NOW, limits).event_id == "e-1"
    limits = load_config(overrides={"intake": {"max_payload_bytes": len(payload) - 1}}).intake
    assert "oversized" in rejection(payload, limits)


def test_rejects_a_timestamp_before_the_minimum_and_accepts_the_minimum():
    minimum = LIMITS.min_event_time_ms
    reason = rejection(raw(ts=minimum - 1))
    assert "absurd timestamp" in reason and f"ts={minimum - 1}" in reason and str(minimum) in reason
    assert admit(raw(ts=minimum), NOW, LIMITS).ts == minimum


def test_rejects_a_timestamp_too_far_ahead_and_accepts_the_edge():
    skew = LIMITS.max_future_skew_ms
    reason = rejection(raw(ts=NOW + skew + 1))
    assert "absurd timestamp" in reason and "ahead of the clock" in reason and str(NOW) in reason
    assert admit(raw(ts=NOW + skew), NOW, LIMITS).ts == NOW + skew


def test_timestamp_limits_apply_to_every_event_type():
    erase = orjson.dumps({"type": "erase", "event_id": "x", "user_id": "u", "ts": 0})
    assert "absurd timestamp" in rejection(erase)


@settings(max_examples=150, deadline=None)
@given(payload=st.binary(max_size=400))
def test_arbitrary_bytes_are_either_admitted_or_rejected_with_a_reason(payload):
    try:
        event = admit(payload, NOW, LIMITS)
    except Rejected as rejected:
        assert rejected.reason
    else:
        assert LIMITS.min_event_time_ms <= event.ts <= NOW + LIMITS.max_future_skew_ms


@settings(max_examples=150, deadline=None)
@given(record=st.dictionaries(st.sampled_from(["v", "type", "event_id", "user_id", "behavior", "item_id", "ts",
                                               "price", "order_id", "status", "action", "item_ids"]),
                              st.one_of(st.none(), st.booleans(), st.integers(-2, 2 ** 62), st.text(max_size=5),
                                        st.sampled_from(["behaviour", "order", "erase", "feedback", "view",
                                                         "shipped", "unsubscribe"]),
                                        st.lists(st.text(max_size=3), max_size=3)),
                              max_size=12))
def test_near_valid_records_never_escape_as_anything_but_rejected(record):
    try:
        admit(orjson.dumps(record), NOW, LIMITS)
    except Rejected as rejected:
        assert rejected.reason


SOURCES = {"behaviour": lambda payload, limits: admit(payload, NOW, limits),
           "catalog": lambda payload, limits: admit_catalog(payload, NOW, CATALOG, limits),
           "user": lambda payload, limits: admit_user_record(payload, NOW, limits)}


@pytest.mark.parametrize("depth", [1_000, 3_000, 8_000])
@pytest.mark.parametrize("opening, closing", [(b"[", b"]"), (b'{"a":', b"}")])
@pytest.mark.parametrize("kind", sorted(SOURCES))
def test_json_nested_deeper_than_the_interpreter_recurses_is_rejected_by_every_source(depth, opening, closing, kind):
    # Within the size limit, so the nesting is what rejects it (it escaped as a RecursionError: a poison pill).
    nested = opening * depth + (b"1" if opening != b"[" else b"") + closing * depth
    payload = b'{"type":"' + kind.encode() + b'","extra":' + nested + b"}"
    with pytest.raises(Rejected, match="nested too deeply"):
        SOURCES[kind](payload, replace(LIMITS, max_payload_bytes=len(payload)))
