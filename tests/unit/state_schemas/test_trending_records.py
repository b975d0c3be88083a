"""Trending lists and behaviour counts: versioned JSON that round-trips exactly and fails loudly when damaged."""
from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state_schemas.codec import SchemaError
from state_schemas.events import BEHAVIOURS
from state_schemas.trending import BehaviourCounts, TrendingList

PROPERTY = settings(max_examples=150, deadline=None)

ids = st.text(min_size=1, max_size=20)
times = st.integers(-2 ** 53, 2 ** 53)
scores = st.floats(min_value=0.0, max_value=1e12, allow_nan=False, allow_infinity=False)
trending_scopes = st.sampled_from(["global", "uncategorised"]) | ids.map(lambda c: "cat:" + c)
counts_scopes = ids.map(lambda p: "user:" + p) | ids.map(lambda c: "category:" + c)

trending_lists = st.builds(
    TrendingList, scope=trending_scopes, window_end=times,
    items=st.dictionaries(ids, scores, min_size=1, max_size=20).map(lambda d: tuple(d.items())))
behaviour_counts = st.builds(
    lambda scope, start, size, counts: BehaviourCounts(scope, start, start + size, counts),
    counts_scopes, times, st.integers(1, 10 ** 9),
    st.dictionaries(st.sampled_from(sorted(BEHAVIOURS)), st.integers(1, 10 ** 9), min_size=1))

RECORDS = [(TrendingList, trending_lists), (BehaviourCounts, behaviour_counts)]
VALID = {TrendingList: TrendingList("cat:7", 3_600_000, (("i1", 2.0), ("i2", 1.0))),
         BehaviourCounts: BehaviourCounts("user:abc", 0, 3_600_000, {"view": 3, "cart": 1})}


@pytest.mark.parametrize("cls, records", RECORDS, ids=[cls.__name__ for cls, _ in RECORDS])
@PROPERTY
@given(data=st.data())
def test_every_record_round_trips_exactly(cls, records, data):
    record = data.draw(records)
    encoded = record.encode()
    assert isinstance(encoded, str)
    assert orjson.loads(encoded)["v"] == cls.VERSION
    decoded = cls.decode(encoded)
    assert decoded == record
    assert decoded.encode() == encoded


def test_the_wire_form_is_the_documented_one():
    assert orjson.loads(VALID[TrendingList].encode()) == {"v": 1, "scope": "cat:7", "end": 3_600_000,
                                                          "items": [["i1", 2.0], ["i2", 1.0]]}
    assert orjson.loads(VALID[BehaviourCounts].encode()) == {"v": 1, "scope": "user:abc", "start": 0,
                                                             "end": 3_600_000, "counts": {"view": 3, "cart": 1}}


@pytest.mark.parametrize("cls", [TrendingList, BehaviourCounts])
@pytest.mark.parametrize("version", [0, 2, 99, "1", True])
def test_unknown_versions_are_rejected_loudly(cls, version):
    payload = orjson.loads(VALID[cls].encode())
    payload["v"] = version
    with pytest.raises(SchemaError, match="unsupported schema version"):
        cls.decode(orjson.dumps(payload).decode())


@pytest.mark.parametrize("cls", [TrendingList, BehaviourCounts])
@PROPERTY
@given(data=st.data())
def test_any_dropped_or_mistyped_field_is_a_schema_error(cls, data):
    payload = orjson.loads(VALID[cls].encode())
    field = data.draw(st.sampled_from(sorted(k for k in payload if k != "v")))
    junk = data.draw(st.none() | st.booleans() | st.text(max_size=3) | st.just({"not": "right"}) | st.just([[]]))
    broken = dict(payload)
    if junk is None:
        del broken[field]
    else:
        broken[field] = junk
    with pytest.raises(SchemaError):
        cls.decode(orjson.dumps(broken).decode())


DAMAGED = [
    (TrendingList, {"scope": "cat:"}, "scope"),
    (TrendingList, {"scope": "user:abc"}, "scope"),
    (TrendingList, {"items": []}, "field 'items'"),
    (TrendingList, {"items": [["i1", -1.0]]}, "must be >= 0"),
    (TrendingList, {"items": [["i1", "2"]]}, "must be a number"),
    (TrendingList, {"items": [["", 2.0]]}, "must hold non-empty strings"),
    (TrendingList, {"items": [["i1", 2.0, 3]]}, "field 'items'"),
    (TrendingList, {"items": [["i1", 2.0], ["i1", 1.0]]}, "twice"),
    (BehaviourCounts, {"scope": "global"}, "scope"),
    (BehaviourCounts, {"scope": "user:"}, "scope"),
    (BehaviourCounts, {"start": 3_600_000}, "not before its end"),
    (BehaviourCounts, {"counts": {}}, "field 'counts'"),
    (BehaviourCounts, {"counts": {"view": 0}}, "must be >= 1"),
    (BehaviourCounts, {"counts": {"view": 1.5}}, "must be an integer"),
    (BehaviourCounts, {"counts": {"pv": 1}}, "unknown value 'pv'"),
]


@pytest.mark.parametrize("cls, change, message", DAMAGED, ids=[f"{c.__name__}-{m}-{i}" for i, (c, _, m) in
                                                               enumerate(DAMAGED)])
def test_damaged_records_say_what_is_wrong(cls, change, message):
    payload = {**orjson.loads(VALID[cls].encode()), **change}
    with pytest.raises(SchemaError, match=message):
        cls.decode(orjson.dumps(payload).decode())


@pytest.mark.parametrize("cls, what", [(TrendingList, "trending list"), (BehaviourCounts, "behaviour counts")])
def test_non_objects_and_broken_json_are_rejected(cls, what):
    with pytest.raises(SchemaError, match=f"{what} must be a JSON object"):
        cls.decode("[1, 2]")
    with pytest.raises(SchemaError, match=f"malformed JSON in {what}"):
        cls.decode("{")
