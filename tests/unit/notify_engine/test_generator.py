"""Properties of the synthetic shop: valid records, time order, and the shapes the demo relies on."""
from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notify_engine.generator import (MAX_SESSION_EVENTS, MIN_SESSION_EVENTS, GeneratorConfig, generate_catalog,
                                     generate_events, generate_users)
from state_schemas.events import (BehaviourEvent, OrderEvent, decode_catalog_item, decode_event,
                                  decode_user_record, encode)

HOUR_MS = 3_600_000
DELIVERY = ("placed", "paid", "shipped", "out_for_delivery", "delivered")
CANCELLATION = ("placed", "paid", "cancelled")
# 19 gaps of at most 90 s: a session that started longer ago than this has ended.
LONGEST_SESSION_MS = 30 * 60_000

CONFIG = GeneratorConfig(users=60, items=300, categories=8, events=6_000, seed=11)


@pytest.fixture(scope="module")
def stream() -> list[BehaviourEvent | OrderEvent]:
    return list(generate_events(CONFIG))


@pytest.fixture(scope="module")
def catalog():
    return generate_catalog(CONFIG)


def behaviours(stream, behavior: str | None = None) -> list[BehaviourEvent]:
    return [e for e in stream if isinstance(e, BehaviourEvent) and behavior in (None, e.behavior)]


def orders(stream) -> dict[str, list[OrderEvent]]:
    by_order: dict[str, list[OrderEvent]] = defaultdict(list)
    for event in stream:
        if isinstance(event, OrderEvent):
            by_order[event.order_id].append(event)
    return by_order


def sessions(stream) -> dict[str, list[BehaviourEvent]]:
    by_session: dict[str, list[BehaviourEvent]] = defaultdict(list)
    for event in behaviours(stream):
        by_session[event.session_id].append(event)
    return by_session


def assert_stream_invariants(cfg: GeneratorConfig, events: list, catalog: list) -> None:
    """What must hold for any config: checked on the fixed config and on random ones."""
    assert len(events) == cfg.events
    assert len({e.event_id for e in events}) == len(events)
    assert all(e.event_id.startswith(f"gen-{cfg.seed}-") for e in events)
    assert all(a.ts <= b.ts for a, b in zip(events, events[1:]))
    assert all(e.ts >= cfg.start_ms for e in events)
    assert all(decode_event(encode(e)) == e for e in events)

    items = {item.item_id: item for item in catalog}
    for event in behaviours(events):
        assert event.session_id
        if event.behavior == "search":
            assert event.item_id is None and event.query
            continue
        item = items[event.item_id]
        assert (event.category_id, event.brand, event.price) == (item.category_id, item.brand, item.price)
        if event.behavior in ("cart", "purchase"):
            assert item.stock > 0, "only items in stock go into carts"

    for session in sessions(events).values():
        assert len(session) <= MAX_SESSION_EVENTS
        assert len({e.user_id for e in session}) == 1
        assert len({e.category_id for e in session}) == 1, "a session stays within one category"

    purchase_times: dict[tuple[str, str], list[int]] = defaultdict(list)
    for event in behaviours(events, "purchase"):
        purchase_times[(event.user_id, event.item_id)].append(event.ts)
    for lifecycle in orders(events).values():
        statuses = tuple(e.status for e in lifecycle)
        assert statuses in {DELIVERY[:n] for n in range(1, 6)} | {CANCELLATION}
        assert all(a.ts < b.ts for a, b in zip(lifecycle, lifecycle[1:]))
        assert len({(e.user_id, e.item_ids) for e in lifecycle}) == 1
        placed = lifecycle[0]
        assert placed.item_ids
        # Placed right after the checkout that bought every item of the order.
        assert all(any(placed.ts - HOUR_MS < ts < placed.ts for ts in purchase_times[(placed.user_id, item)])
                   for item in placed.item_ids)
        assert all(e.carrier for e in lifecycle if e.status in DELIVERY[2:])


def test_stream_invariants_hold(stream, catalog):
    assert_stream_invariants(CONFIG, stream, catalog)


def test_same_seed_gives_same_catalogue_and_stream(stream, catalog):
    assert list(generate_events(CONFIG)) == stream
    assert generate_catalog(CONFIG) == catalog


def test_other_seed_gives_other_stream(stream):
    other = list(generate_events(dataclasses.replace(CONFIG, seed=12)))
    assert [(e.user_id, e.ts) for e in other[:100]] != [(e.user_id, e.ts) for e in stream[:100]]


def test_catalogue_validates_and_covers_every_category(catalog):
    assert len(catalog) == CONFIG.items
    assert all(decode_catalog_item(encode(item)) == item for item in catalog)
    assert len({item.item_id for item in catalog}) == CONFIG.items
    assert {item.category_id for item in catalog} == {f"cat-{c:03d}" for c in range(CONFIG.categories)}
    assert all(item.price > 0 and item.title and item.brand and item.tags for item in catalog)
    out_of_stock = sum(item.stock == 0 for item in catalog)
    assert 0 < out_of_stock < 0.15 * len(catalog)


def test_prices_differ_by_category(catalog):
    by_category: dict[str, list[float]] = defaultdict(list)
    for item in catalog:
        by_category[item.category_id].append(item.price)
    medians = sorted(sorted(prices)[len(prices) // 2] for prices in by_category.values())
    assert medians[-1] > 3 * medians[0]


def test_a_few_items_draw_most_views(stream):
    views = Counter(e.item_id for e in behaviours(stream, "view"))
    top_tenth = sum(count for _, count in views.most_common(CONFIG.items // 10))
    assert top_tenth > 0.4 * sum(views.values())


def test_sessions_are_bursts_of_several_events(stream):
    last_ts = stream[-1].ts
    complete = [s for s in sessions(stream).values() if s[0].ts < last_ts - LONGEST_SESSION_MS]
    assert len(complete) > 200
    assert all(MIN_SESSION_EVENTS <= len(s) <= MAX_SESSION_EVENTS for s in complete)
    assert sum(len(s) >= 8 for s in complete) > 0.2 * len(complete)
    gaps = [b.ts - a.ts for s in complete for a, b in zip(s, s[1:])]
    assert all(2_000 <= gap <= 90_000 for gap in gaps)


def test_evenings_are_busier_than_nights(stream):
    per_hour = Counter(e.ts // HOUR_MS % 24 for e in behaviours(stream))
    evening = sum(per_hour[h] for h in range(18, 23)) / 5
    night = sum(per_hour[h] for h in range(3, 6)) / 3
    assert evening > 3 * night


def test_shoppers_mostly_browse_a_few_categories(stream):
    categories_by_user: dict[str, Counter] = defaultdict(Counter)
    for session in sessions(stream).values():
        categories_by_user[session[0].user_id][session[0].category_id] += 1
    regulars = [c for c in categories_by_user.values() if sum(c.values()) >= 5]
    assert len(regulars) >= 10
    in_top_three = sum(sum(n for _, n in c.most_common(3)) for c in regulars)
    # With 8 equally likely categories the top three would hold well under 60%.
    assert in_top_three > 0.8 * sum(sum(c.values()) for c in regulars)


def test_funnel_narrows(stream):
    counts = Counter(e.behavior for e in behaviours(stream))
    assert counts["view"] > counts["click"] > counts["cart"] > counts["purchase"] > 0
    assert counts["search"] > 0 and counts["favourite"] > 0


def test_orders_follow_purchases_and_some_are_delivered(stream):
    lifecycles = orders(stream)
    purchases = behaviours(stream, "purchase")
    assert 0 < len(lifecycles) <= len(purchases)
    assert any(lifecycle[-1].status == "delivered" for lifecycle in lifecycles.values())
    # Delivery takes at least half a day after shipping.
    for lifecycle in lifecycles.values():
        statuses = [e.status for e in lifecycle]
        if "delivered" in statuses:
            assert lifecycle[-1].ts - lifecycle[statuses.index("shipped")].ts >= 12 * HOUR_MS


def test_no_events_requested_gives_none():
    assert list(generate_events(dataclasses.replace(CONFIG, events=0))) == []


@pytest.mark.parametrize("change", [dict(users=0), dict(items=3, categories=4), dict(events=-1),
                                    dict(click_rate=1.5), dict(utc_offsets_h=()), dict(sessions_per_user_day=0),
                                    dict(zipf_exponent=-0.5)])
def test_bad_config_is_refused(change):
    with pytest.raises(ValueError):
        dataclasses.replace(CONFIG, **change)


rates = st.floats(0.0, 1.0)


@st.composite
def configs(draw) -> GeneratorConfig:
    categories = draw(st.integers(1, 6))
    return GeneratorConfig(
        users=draw(st.integers(1, 15)), categories=categories, items=draw(st.integers(categories, 40)),
        events=draw(st.integers(0, 250)), seed=draw(st.integers(0, 2**32)),
        start_ms=draw(st.integers(0, 2_000_000_000_000)), zipf_exponent=draw(st.floats(0.0, 5.0)),
        sessions_per_user_day=draw(st.floats(0.05, 50.0)), utc_offsets_h=tuple(draw(st.lists(
            st.integers(-12, 14), min_size=1, max_size=3))),
        search_share=draw(rates), favourite_rate=draw(rates), click_rate=draw(rates), cart_rate=draw(rates),
        purchase_rate=draw(rates), order_share=draw(rates), cancel_share=draw(rates),
        out_of_stock_share=draw(rates))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_invariants_hold_for_any_config(cfg):
    assert_stream_invariants(cfg, list(generate_events(cfg)), generate_catalog(cfg))


def test_every_shopper_gets_one_valid_directory_record_and_the_mix_is_varied():
    cfg = GeneratorConfig(users=300, events=0, seed=5)
    records = generate_users(cfg)
    assert [r.user_id for r in records] == [f"user-{i:05d}" for i in range(300)] and records == generate_users(cfg)
    assert all(decode_user_record(encode(r)) == r for r in records)
    for r in records:
        assert set(r.consent["transactional"]) == set(r.channels)  # service messages wherever reachable
        assert set(r.consent["marketing"]) <= set(r.channels) - {"sms"}
    no_marketing = sum(not r.consent["marketing"] for r in records)
    no_push = sum("push" not in r.channels for r in records)
    default_zone = sum(r.time_zone is None for r in records)
    assert 0 < no_marketing < 150 and 0 < no_push < 75 and 0 < default_zone < 75
    assert {r.locale for r in records} == {"en", "zh-CN", None}
