"""Input records: every one survives to_dict -> from_dict and bytes, and bad fields are named in the error."""
from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state_schemas.codec import SchemaError
from state_schemas.events import (BEHAVIOURS, FEEDBACK_ACTIONS, ORDER_STATUSES, BehaviourEvent, CatalogItem,
                                  ErasureRequest, FeedbackEvent, OrderEvent, decode_catalog_item, decode_event,
                                  encode)

PROPERTY = settings(max_examples=150, deadline=None)
T0 = 1_700_000_000_000

printable = st.characters(exclude_categories=("Cc", "Cs"))  # ids and names hold no control characters
ids = st.text(printable, min_size=1, max_size=40)
optional_text = st.none() | st.text(printable, min_size=1, max_size=40)  # "" reads back as absent
times = st.integers(0, 2 ** 53)
prices = st.none() | st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)
id_lists = st.lists(ids, max_size=50).map(tuple)

behaviours = st.builds(
    BehaviourEvent, event_id=ids, user_id=ids, behavior=st.sampled_from(sorted(BEHAVIOURS - {"search"})), ts=times,
    item_id=ids, category_id=optional_text, brand=optional_text, price=prices, session_id=optional_text,
    query=st.none() | st.text(min_size=1, max_size=512))
searches = st.builds(BehaviourEvent, event_id=ids, user_id=ids, behavior=st.just("search"), ts=times,
                     item_id=st.none() | ids, category_id=optional_text,
                     query=st.none() | st.text(min_size=1, max_size=80))
orders = st.builds(OrderEvent, event_id=ids, user_id=ids, order_id=ids, status=st.sampled_from(sorted(ORDER_STATUSES)),
                   ts=times, item_ids=id_lists, carrier=optional_text)
erasures = st.builds(ErasureRequest, event_id=ids, user_id=ids, ts=times)
feedbacks = st.builds(FeedbackEvent, event_id=ids, user_id=ids, action=st.sampled_from(sorted(FEEDBACK_ACTIONS)),
                      ts=times, notification_id=ids)
subscriptions = st.builds(FeedbackEvent, event_id=ids, user_id=ids,
                          action=st.sampled_from(["unsubscribe", "resubscribe"]), ts=times,
                          notification_id=st.none())
catalog_items = st.builds(
    CatalogItem, item_id=ids, title=st.text(min_size=1, max_size=512), category_id=ids,
    price=st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False), ts=times,
    brand=optional_text, tags=id_lists, stock=st.none() | st.integers(0, 10 ** 9))
events = st.one_of(behaviours, searches, orders, erasures, feedbacks, subscriptions)


@PROPERTY
@given(event=events)
def test_every_event_round_trips_through_dict_and_bytes(event):
    assert type(event).from_dict(event.to_dict()) == event
    assert decode_event(encode(event)) == event
    assert decode_event(encode(event).decode()) == event  # str input too


@PROPERTY
@given(item=catalog_items)
def test_catalogue_items_round_trip(item):
    assert CatalogItem.from_dict(item.to_dict()) == item
    assert decode_catalog_item(encode(item)) == item


@PROPERTY
@given(event=events)
def test_to_dict_names_type_and_version_and_leaves_out_absent_optionals(event):
    out = event.to_dict()
    # Version 1 is written by leaving it out: a record without "v" is read as version 1.
    assert out["type"] == type(event).__struct_config__.tag and out.get("v", 1) == 1
    assert None not in out.values()


def test_numeric_ids_from_exported_logs_are_read_as_strings():
    event = decode_event(b'{"type": "behaviour", "event_id": 17, "user_id": 42, "behavior": "view", '
                         b'"item_id": 9001, "ts": 5}')
    assert (event.event_id, event.user_id, event.item_id) == ("17", "42", "9001")
    order = decode_event(b'{"type": "order", "event_id": "e", "user_id": "u", "order_id": 7, "status": "paid", '
                         b'"ts": 5, "item_ids": [1, "b"]}')
    assert order.order_id == "7" and order.item_ids == ("1", "b")


def test_a_missing_version_reads_as_version_one():
    assert decode_event(b'{"type": "erase", "event_id": "e", "user_id": "u", "ts": 1}') == ErasureRequest("e", "u", 1)


def test_an_integer_price_is_read_as_a_float():
    event = decode_event(b'{"type": "behaviour", "event_id": "e", "user_id": "u", "behavior": "view", '
                         b'"item_id": "i", "ts": 1, "price": 3}')
    assert event.price == 3.0 and isinstance(event.price, float)


def test_a_search_needs_no_item_but_every_other_behaviour_does():
    search = decode_event(b'{"type": "behaviour", "event_id": "e", "user_id": "u", "behavior": "search", "ts": 1}')
    assert search.item_id is None
    for behavior in sorted(BEHAVIOURS - {"search"}):
        with pytest.raises(SchemaError, match="missing required field 'item_id'"):
            BehaviourEvent.from_dict({"event_id": "e", "user_id": "u", "behavior": behavior, "ts": 1})


def test_feedback_on_a_notification_needs_its_id_but_a_subscription_change_does_not():
    with pytest.raises(SchemaError, match="missing required field 'notification_id'"):
        FeedbackEvent.from_dict({"event_id": "e", "user_id": "u", "action": "open", "ts": 1})
    assert FeedbackEvent.from_dict({"event_id": "e", "user_id": "u", "action": "unsubscribe", "ts": 1}) == \
        FeedbackEvent("e", "u", "unsubscribe", 1)


# --- bad input -----------------------------------------------------------------------------------

VALID = {
    BehaviourEvent: {"event_id": "e", "user_id": "u", "behavior": "view", "item_id": "i", "ts": T0},
    OrderEvent: {"event_id": "e", "user_id": "u", "order_id": "o", "status": "shipped", "ts": T0},
    ErasureRequest: {"event_id": "e", "user_id": "u", "ts": T0},
    FeedbackEvent: {"event_id": "e", "user_id": "u", "action": "click", "ts": T0, "notification_id": "n"},
    CatalogItem: {"item_id": "i", "title": "Shoe", "category_id": "c", "price": 1.0, "ts": T0},
}
REQUIRED = [(cls, name) for cls, fields in VALID.items() for name in fields]


@pytest.mark.parametrize("cls", list(VALID), ids=lambda c: c.__name__)
def test_the_valid_examples_are_valid(cls):
    assert cls.from_dict(dict(VALID[cls])).ts == T0


@pytest.mark.parametrize("cls, name", REQUIRED, ids=lambda v: getattr(v, "__name__", v))
def test_every_required_field_is_required_and_named(cls, name):
    record = dict(VALID[cls])
    del record[name]
    with pytest.raises(SchemaError, match=f"missing required field '{name}'"):
        cls.from_dict(record)


@pytest.mark.parametrize("cls, name", [(c, n) for c, n in REQUIRED if n.endswith("_id")],
                         ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize("control", ["\x00", "\x1b[2J", "\x7f", "\x85", "\n"])
def test_ids_refuse_control_characters_and_keep_other_unicode(cls, name, control):
    with pytest.raises(SchemaError, match=f"field '{name}' holds a control character"):
        cls.from_dict(dict(VALID[cls], **{name: f"id{control}"}))
    assert getattr(cls.from_dict(dict(VALID[cls], **{name: "\u202eid-\u00fa-\U0001F600"})), name) == \
        "\u202eid-\u00fa-\U0001F600"


@pytest.mark.parametrize("cls, name", [(c, n) for c, n in REQUIRED if n != "ts" and n != "price"],
                         ids=lambda v: getattr(v, "__name__", v))
def test_text_fields_refuse_other_types_and_empty_strings(cls, name):
    for bad, message in [([1], "must be a string, got list"), (True, "must be a string, got bool"),
                         (1.5, "must be a string, got float"), ("", "must not be empty")]:
        record = dict(VALID[cls], **{name: bad})
        with pytest.raises(SchemaError, match=f"'{name}'") as caught:
            cls.from_dict(record)
        assert message in str(caught.value) or "unknown value" in str(caught.value)


@pytest.mark.parametrize("cls", list(VALID), ids=lambda c: c.__name__)
@pytest.mark.parametrize("bad, message", [("1700000000000", "got str"), (1.5, "got float"), (True, "got bool"),
                                          ([T0], "got list")])
def test_ts_must_be_an_integer(cls, bad, message):
    with pytest.raises(SchemaError, match=f"field 'ts' must be an integer, {message}"):
        cls.from_dict(dict(VALID[cls], ts=bad))


@pytest.mark.parametrize("cls, name", [(BehaviourEvent, "behavior"), (OrderEvent, "status"),
                                       (FeedbackEvent, "action")], ids=lambda v: getattr(v, "__name__", v))
def test_an_unknown_enum_value_is_named_with_the_allowed_ones(cls, name):
    with pytest.raises(SchemaError, match=f"field '{name}' has unknown value 'teleport' \\(expected one of"):
        cls.from_dict(dict(VALID[cls], **{name: "teleport"}))


@pytest.mark.parametrize("cls", list(VALID), ids=lambda c: c.__name__)
@pytest.mark.parametrize("version", [0, 2, "1", True, 1.0, None])
def test_unsupported_versions_are_rejected(cls, version):
    record = dict(VALID[cls], v=version)  # an explicit null is not an absent version
    with pytest.raises(SchemaError, match="unsupported schema version"):
        cls.from_dict(record)


def test_prices_must_be_non_negative_numbers():
    with pytest.raises(SchemaError, match="'price' must be >= 0.0, got -0.5"):
        BehaviourEvent.from_dict(dict(VALID[BehaviourEvent], price=-0.5))
    with pytest.raises(SchemaError, match="'price' must be a number, got str"):
        CatalogItem.from_dict(dict(VALID[CatalogItem], price="1.00"))
    with pytest.raises(SchemaError, match="'price' must be a number, got bool"):
        CatalogItem.from_dict(dict(VALID[CatalogItem], price=True))


def test_stock_must_not_be_negative():
    with pytest.raises(SchemaError, match="'stock' must be >= 0, got -1"):
        CatalogItem.from_dict(dict(VALID[CatalogItem], stock=-1))
    assert CatalogItem.from_dict(dict(VALID[CatalogItem], stock=0)).stock == 0


def test_text_length_limits():
    assert BehaviourEvent.from_dict(dict(VALID[BehaviourEvent], user_id="u" * 256)).user_id == "u" * 256
    with pytest.raises(SchemaError, match="'user_id' is longer than 256 characters"):
        BehaviourEvent.from_dict(dict(VALID[BehaviourEvent], user_id="u" * 257))
    assert len(BehaviourEvent.from_dict(dict(VALID[BehaviourEvent], query="q" * 512)).query) == 512
    with pytest.raises(SchemaError, match="'query' is longer than 512"):
        BehaviourEvent.from_dict(dict(VALID[BehaviourEvent], query="q" * 513))


def test_lists_are_checked_entry_by_entry_and_bounded():
    with pytest.raises(SchemaError, match="'item_ids' must be a list, got str"):
        OrderEvent.from_dict(dict(VALID[OrderEvent], item_ids="i1"))
    with pytest.raises(SchemaError, match="'item_ids' must hold non-empty strings"):
        OrderEvent.from_dict(dict(VALID[OrderEvent], item_ids=["i1", ""]))
    with pytest.raises(SchemaError, match="'item_ids' must hold non-empty strings"):
        OrderEvent.from_dict(dict(VALID[OrderEvent], item_ids=[None]))
    with pytest.raises(SchemaError, match="'tags' has more than 50 entries"):
        CatalogItem.from_dict(dict(VALID[CatalogItem], tags=["t"] * 51))
    assert len(CatalogItem.from_dict(dict(VALID[CatalogItem], tags=["t"] * 50)).tags) == 50


@pytest.mark.parametrize("raw, message", [
    (b"{", "malformed JSON in event"),
    (b"[]", "event must be a JSON object, got list"),
    (b'{"event_id": "e"}', "unknown or missing 'type' None"),
    (b'{"type": 3}', "unknown or missing 'type' 3"),
    (b'{"type": "catalog", "item_id": "i"}', "unknown or missing 'type' 'catalog'"),
])
def test_decode_event_explains_what_it_cannot_read(raw, message):
    with pytest.raises(SchemaError) as caught:
        decode_event(raw)
    assert message in str(caught.value)


def test_decode_catalog_item_explains_what_it_cannot_read():
    with pytest.raises(SchemaError, match="catalogue item must be a JSON object"):
        decode_catalog_item(b"1")
    with pytest.raises(SchemaError, match="catalogue item: missing required field 'title'"):
        decode_catalog_item(orjson.dumps({"item_id": "i", "category_id": "c", "price": 1.0, "ts": 1}))


def test_an_empty_optional_text_reads_as_absent():
    event = BehaviourEvent.from_dict({"event_id": "e", "user_id": "u", "behavior": "view", "item_id": "i",
                                      "ts": 1, "category_id": "", "brand": ""})
    assert event.category_id is None and event.brand is None


def test_a_search_query_is_free_text_and_may_hold_any_character():
    event = BehaviourEvent.from_dict(dict(VALID[BehaviourEvent], behavior="search", query="red\tshoes\n"))
    assert event.query == "red\tshoes\n"
