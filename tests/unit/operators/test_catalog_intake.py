"""catalog_intake.admit_catalog: what a catalogue record must pass to join item state, and why it is rejected."""
from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import JobConfig, load_config
from operators.catalog_intake import admit_catalog
from operators.intake import Rejected
from state_schemas.events import CatalogItem, encode

NOW = 1_700_000_000_000
CONFIG = JobConfig()
CATALOG, LIMITS = CONFIG.catalog, CONFIG.intake
KNOWN = load_config(overrides={"catalog": {"known_categories": ["shoes", "tops"], "max_price": 500.0}}).catalog

PROPERTY = settings(max_examples=150, deadline=None)


def raw(**fields) -> bytes:
    record = {"v": 1, "type": "catalog", "item_id": "i-1", "title": "Red running shoes", "category_id": "shoes",
              "price": 59.9, "ts": NOW - 1000, "brand": "Acme", "tags": ["running"], "stock": 3}
    record.update(fields)
    return orjson.dumps({k: v for k, v in record.items() if v is not ...})


def rejection(payload: bytes, catalog=CATALOG, limits=LIMITS, now=NOW) -> str:
    with pytest.raises(Rejected) as caught:
        admit_catalog(payload, now, catalog, limits)
    assert caught.value.reason == str(caught.value)
    return caught.value.reason


def test_accepts_a_valid_record():
    assert admit_catalog(raw(), NOW, KNOWN, LIMITS) == CatalogItem(
        item_id="i-1", title="Red running shoes", category_id="shoes", price=59.9, ts=NOW - 1000, brand="Acme",
        tags=("running",), stock=3)


def printable(**sizes):
    """Ids and names as the intake admits them: any text without control characters."""
    return st.text(st.characters(exclude_categories=("Cc", "Cs")), **sizes)


@PROPERTY
@given(item=st.builds(
    CatalogItem, item_id=printable(min_size=1, max_size=40), title=st.text(min_size=1, max_size=200),
    category_id=st.sampled_from(["shoes", "tops"]), price=st.floats(0.0, 500.0, allow_nan=False),
    ts=st.integers(LIMITS.min_event_time_ms, NOW + LIMITS.max_future_skew_ms),
    brand=st.none() | printable(min_size=1, max_size=40),
    tags=st.lists(st.text(min_size=1, max_size=20), max_size=10).map(tuple),
    stock=st.none() | st.integers(0, 10 ** 9)))
def test_a_valid_record_round_trips(item):
    assert admit_catalog(encode(item), NOW, KNOWN, LIMITS) == item


@pytest.mark.parametrize("payload, words", [
    (b'{"type": "catalog", "item_id": ', ["malformed JSON"]),
    (b"", ["malformed JSON"]),
    (b"[1, 2]", ["must be a JSON object", "list"]),
    (b"null", ["must be a JSON object", "NoneType"]),
], ids=["truncated", "empty", "array", "null"])
def test_rejects_what_is_not_a_json_object(payload, words):
    reason = rejection(payload)
    assert all(word in reason for word in words)


@pytest.mark.parametrize("missing", ["item_id", "title", "category_id", "price", "ts"])
def test_rejects_a_missing_field_and_names_it(missing):
    reason = rejection(raw(**{missing: ...}))
    assert "missing required field" in reason and f"'{missing}'" in reason


@pytest.mark.parametrize("name, value, expected", [
    ("price", "12.50", "must be a number, got str"),
    ("price", True, "must be a number, got bool"),
    ("ts", 1.7e12, "must be an integer, got float"),
    ("title", ["shoes"], "must be a string, got list"),
    ("title", "", "must not be empty"),
    ("title", "t" * 513, "longer than 512"),
    ("category_id", {"id": 1}, "must be a string, got dict"),
    ("tags", "running", "must be a list, got str"),
    ("tags", ["ok", ""], "must hold non-empty strings"),
    ("stock", -1, "must be >= 0, got -1"),
    ("stock", "3", "must be an integer, got str"),
], ids=lambda v: str(v)[:20])
def test_rejects_a_mistyped_field_and_names_it(name, value, expected):
    reason = rejection(raw(**{name: value}))
    assert f"'{name}'" in reason and expected in reason


def test_rejects_a_negative_price_and_says_so():
    reason = rejection(raw(price=-0.01))
    assert "'price'" in reason and "must be >= 0" in reason and "-0.01" in reason


def test_rejects_a_price_above_the_maximum_and_accepts_the_maximum():
    reason = rejection(raw(price=500.01), KNOWN)
    assert "absurd price" in reason and "'price'" in reason and "500.01" in reason and "catalog.max_price" in reason
    assert admit_catalog(raw(price=500.0), NOW, KNOWN, LIMITS).price == 500.0
    assert admit_catalog(raw(price=0.0), NOW, KNOWN, LIMITS).price == 0.0


def test_rejects_an_unknown_category_when_categories_are_listed():
    reason = rejection(raw(category_id="gadgets"), KNOWN)
    assert "unknown category" in reason and "'category_id'" in reason and "'gadgets'" in reason


def test_any_category_is_known_when_none_are_listed():
    assert CATALOG.known_categories == ()
    assert admit_catalog(raw(category_id="gadgets"), NOW, CATALOG, LIMITS).category_id == "gadgets"


def test_numeric_category_ids_match_whether_yaml_read_them_as_numbers_or_strings():
    catalog = load_config(overrides={"catalog": {"known_categories": [2053013555631882655, "42"]}}).catalog
    assert admit_catalog(raw(category_id=2053013555631882655), NOW, catalog, LIMITS).category_id == \
        "2053013555631882655"
    assert admit_catalog(raw(category_id=42), NOW, catalog, LIMITS).category_id == "42"
    assert "unknown category" in rejection(raw(category_id=43), catalog)


def test_rejects_an_unsupported_schema_version():
    assert "unsupported schema version 2" in rejection(raw(v=2))


def test_rejects_an_oversized_payload_before_parsing_it():
    limits = load_config(overrides={"intake": {"max_payload_bytes": 300}}).intake
    payload = raw(title="t" * 400)
    reason = rejection(payload, limits=limits)
    assert "oversized payload" in reason and f"{len(payload)} bytes > 300" in reason
    assert "oversized" in rejection(b"{" * 301, limits=limits)


def test_rejects_a_timestamp_before_the_minimum_and_accepts_the_minimum():
    minimum = LIMITS.min_event_time_ms
    reason = rejection(raw(ts=minimum - 1))
    assert "absurd timestamp" in reason and f"ts={minimum - 1}" in reason and str(minimum) in reason
    assert admit_catalog(raw(ts=minimum), NOW, CATALOG, LIMITS).ts == minimum


def test_rejects_a_timestamp_too_far_ahead_and_accepts_the_edge():
    skew = LIMITS.max_future_skew_ms
    reason = rejection(raw(ts=NOW + skew + 1))
    assert "absurd timestamp" in reason and f"ts={NOW + skew + 1}" in reason and "ahead of the clock" in reason
    assert admit_catalog(raw(ts=NOW + skew), NOW, CATALOG, LIMITS).ts == NOW + skew


@PROPERTY
@given(payload=st.binary(max_size=400))
def test_arbitrary_bytes_are_either_admitted_or_rejected_with_a_reason(payload):
    try:
        item = admit_catalog(payload, NOW, KNOWN, LIMITS)
    except Rejected as rejected:
        assert rejected.reason
    else:
        assert item.category_id in KNOWN.known_categories and 0 <= item.price <= KNOWN.max_price


@PROPERTY
@given(record=st.dictionaries(st.sampled_from(["v", "type", "item_id", "title", "category_id", "price", "ts",
                                               "brand", "tags", "stock"]),
                              st.one_of(st.none(), st.booleans(), st.integers(-2, 2 ** 62),
                                        st.floats(allow_nan=True), st.text(max_size=5),
                                        st.sampled_from(["shoes", "tops", "catalog"]),
                                        st.lists(st.text(max_size=3), max_size=3)),
                              max_size=10))


def test_near_valid_records_never_escape_as_anything_but_rejected(record):
    try:
        item = admit_catalog(orjson.dumps(record), NOW, KNOWN, LIMITS)
    except Rejected as rejected:
        assert rejected.reason
    else:
        assert item.category_id in KNOWN.known_categories and 0 <= item.price <= KNOWN.max_price
        assert LIMITS.min_event_time_ms <= item.ts <= NOW + LIMITS.max_future_skew_ms
