"""Output records: notifications round-trip and are validated on read; dead letters keep the evidence."""
from __future__ import annotations

import base64
import hashlib
from msgspec.structs import replace

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state_schemas.codec import SchemaError
from state_schemas.outputs import CHANNELS, KINDS, DeadLetter, Exposure, Notification

PROPERTY = settings(max_examples=150, deadline=None)
T0 = 1_700_000_000_000

ids = st.text(min_size=1, max_size=40)
times = st.integers(0, 2 ** 53)
notifications = st.builds(
    Notification, notification_id=ids, user=ids, channel=st.sampled_from(sorted(CHANNELS)),
    kind=st.sampled_from(sorted(KINDS)), title=st.text(min_size=1, max_size=200),
    body=st.text(min_size=1, max_size=1000), item_ids=st.lists(ids, max_size=100).map(tuple),
    reason=st.text(min_size=1, max_size=500), created_at=times, source_event_time=times, source_event_id=ids,
    # the wire keeps six decimals; values that already have at most six survive exactly
    score=st.integers(0, 10 ** 9).map(lambda micro: micro / 1_000_000))


def example(**changes) -> Notification:
    base = Notification(notification_id="n1", user="p1", channel="push", kind="marketing", title="Picked for you",
                        body="An item.", item_ids=("i1",), reason="because", created_at=T0,
                        source_event_time=T0 - 5, source_event_id="e1", score=0.5)
    return replace(base, **changes)


@PROPERTY
@given(notification=notifications)
def test_notifications_round_trip(notification):
    encoded = notification.encode()
    assert isinstance(encoded, bytes)
    assert Notification.decode(encoded) == notification
    assert Notification.decode(encoded.decode()) == notification
    assert Notification.from_dict(notification.to_dict()) == notification


def test_the_wire_format_names_every_field_with_a_version():
    assert orjson.loads(example().encode()) == {
        "v": 4, "notification_id": "n1", "user": "p1", "channel": "push", "kind": "marketing",
        "title": "Picked for you", "body": "An item.", "item_ids": ["i1"], "reason": "because", "created_at": T0,
        "source_event_time": T0 - 5, "source_event_id": "e1", "score": 0.5, "journey": None, "template": None,
        "locale": None, "links": [], "scheduled_at": None, "intended_at": None, "experiments": []}


def test_a_v1_notification_still_reads_with_no_journey_template_locale_or_links():
    v1 = {"v": 1, "notification_id": "n1", "user": "p1", "channel": "push", "kind": "marketing", "title": "t",
          "body": "b", "item_ids": ["i1"], "reason": "r", "created_at": T0, "source_event_time": T0,
          "source_event_id": "e1", "score": 0.5}
    read = Notification.decode(orjson.dumps(v1))
    assert (read.journey, read.template, read.locale, read.links, read.v) == (None, None, None, (), 1)


def test_a_v3_notification_reads_as_in_no_experiment():
    v3 = {**example().to_dict(), "v": 3}
    del v3["experiments"]
    assert Notification.decode(orjson.dumps(v3)).experiments == ()


def test_an_exposure_carries_the_notification_it_stands_for_and_names_its_experiment():
    sent = example(experiments=(("subject-lines", "short"),))
    wire = orjson.loads(Exposure(sent).encode())
    assert wire == {"v": 1, "experiment": "holdout", "notification": orjson.loads(sent.encode())}
    assert Exposure.decode(orjson.dumps(wire)).notification == sent
    with pytest.raises(ValueError):
        Exposure.decode(orjson.dumps({**wire, "v": 2}))


def test_the_score_is_rounded_to_six_decimals_on_the_wire():
    assert orjson.loads(example(score=0.1234565001).encode())["score"] == 0.123457
    assert Notification.decode(example(score=2 / 3).encode()).score == 0.666667


def test_a_missing_score_reads_as_zero():
    payload = example().to_dict()
    del payload["score"]
    assert Notification.from_dict(payload).score == 0.0


@pytest.mark.parametrize("field, value, message", [
    ("channel", "pigeon", "field 'channel' has unknown value 'pigeon'"),
    ("kind", "spam", "field 'kind' has unknown value 'spam'"),
    ("title", "t" * 201, "field 'title' is longer than 200"),
    ("body", "b" * 1001, "field 'body' is longer than 1000"),
    ("reason", "r" * 501, "field 'reason' is longer than 500"),
    ("created_at", "now", "field 'created_at' must be an integer"),
    ("item_ids", "i1", "field 'item_ids' must be a list"),
    ("score", "high", "field 'score' must be a number"),
    ("v", 5, "unsupported schema version 5"),
])
def test_bad_notifications_are_rejected_with_the_field(field, value, message):
    payload = dict(example().to_dict(), **{field: value})
    with pytest.raises(SchemaError, match=message):
        Notification.from_dict(payload)


@pytest.mark.parametrize("field", ["notification_id", "user", "channel", "kind", "title", "body", "reason",
                                   "created_at", "source_event_time", "source_event_id"])
def test_every_required_notification_field_is_required(field):
    payload = example().to_dict()
    del payload[field]
    with pytest.raises(SchemaError, match=f"notification: missing required field '{field}'"):
        Notification.from_dict(payload)


def test_decode_rejects_what_is_not_a_notification_object():
    with pytest.raises(SchemaError, match="malformed JSON in notification"):
        Notification.decode(b"{")
    with pytest.raises(SchemaError, match="notification must be a JSON object"):
        Notification.decode(b"[]")


# --- dead letters --------------------------------------------------------------------------------

def test_a_dead_letter_keeps_the_reason_the_raw_text_and_its_hash():
    raw = b'{"type": "teleport"}'
    letter = DeadLetter(reason="unknown type", stage="admit", raw=raw, rejected_at=T0)
    out = orjson.loads(letter.encode())
    assert out == {"v": 1, "reason": "unknown type", "stage": "admit", "rejected_at": T0, "size": len(raw),
                   "sha256": hashlib.sha256(raw).hexdigest(), "truncated": False, "raw": raw.decode()}
    assert DeadLetter.decode(letter.encode()) == out


def test_an_oversized_payload_is_kept_as_a_prefix_with_the_full_size_and_hash():
    raw = b"x" * 100
    out = orjson.loads(DeadLetter(reason="big", stage="admit", raw=raw, rejected_at=T0, max_raw_bytes=10).encode())
    assert out["raw"] == "x" * 10 and out["truncated"] is True
    assert out["size"] == 100 and out["sha256"] == hashlib.sha256(raw).hexdigest()


def test_bytes_that_are_not_utf8_are_kept_as_base64():
    raw = b"\xff\xfe\x00binary"
    out = orjson.loads(DeadLetter(reason="bad", stage="admit", raw=raw, rejected_at=T0).encode())
    assert "raw" not in out
    assert base64.b64decode(out["raw_base64"]) == raw


@PROPERTY
@given(raw=st.binary(max_size=300), limit=st.integers(1, 400))
def test_a_dead_letter_always_encodes_and_keeps_at_most_the_limit(raw, limit):
    out = DeadLetter.decode(DeadLetter(reason="r", stage="s", raw=raw, rejected_at=T0, max_raw_bytes=limit).encode())
    kept = out["raw"].encode() if "raw" in out else base64.b64decode(out["raw_base64"])
    assert kept == raw[:limit]
    assert out["truncated"] == (len(raw) > limit)
    assert out["size"] == len(raw)


def test_dead_letter_decode_checks_version_and_reason():
    with pytest.raises(SchemaError, match="unsupported schema version 2"):
        DeadLetter.decode(b'{"v": 2, "reason": "r"}')
    with pytest.raises(SchemaError, match="dead letter: missing required field 'reason'"):
        DeadLetter.decode(b'{"v": 1, "stage": "admit"}')
