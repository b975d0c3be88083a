"""item_model: popularity, catalogue join, a capped co-occurrence row, cosine top-K, refresh timers.

The central property: after a stream drains, the streamed neighbours equal a batch recompute
(numpy over the whole co-occurrence matrix) over the same events, whenever the row cap does not bind.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.config import JobConfig, load_config
from operators import user_context
from operators.item_model import cosine_neighbours, join_catalog, next_refresh, refresh_neighbours, update_item
from state_schemas.events import BehaviourEvent, CatalogItem
from state_schemas.state import ItemCard, ItemModel, ItemUpdate, Neighbour, UserContext

HOUR_MS = 3_600_000
T0 = 1_700_000_000_000
CONFIG = JobConfig()
ITEMS, PROFILE = CONFIG.item_model, CONFIG.profile
TERMS = CONFIG.catalog.terms_per_item
POP_HALF_LIFE = int(ITEMS.popularity_half_life_hours * HOUR_MS)
PROPERTY = settings(max_examples=150, deadline=None)


def no_cards(items):
    return {}


def update(history=(), behavior="view", ts=T0, trigger=False, item="target", category="c1", price=None,
           repeat=False, event_id="e1") -> ItemUpdate:
    event = {"v": 1, "type": "behaviour", "event_id": event_id, "user_id": "u1", "behavior": behavior, "ts": ts,
             "item_id": item}
    if category is not None:
        event["category_id"] = category
    if price is not None:
        event["price"] = price
    return ItemUpdate(event=event, history=tuple(history), trigger=trigger, repeat=repeat)


def step(state, upd, config=ITEMS, cards=no_cards):
    return update_item(state, upd, cards, config, PROFILE, TERMS)


def test_first_event_sets_facts_popularity_and_interactions():
    result = step(ItemModel(), update(price=12.5))
    state = result.state
    assert state.category_id == "c1" and state.price == 12.5 and state.interactions == 1
    assert state.popularity == pytest.approx(PROFILE.event_weights["view"])
    assert state.popularity_at == T0 and state.row == {}
    assert result.card == state.card() and result.card.interactions == 1
    assert result.refresh_at is None  # no row yet: nothing to recompute


def test_popularity_halves_over_one_half_life_before_the_new_weight_is_added():
    state = step(ItemModel(), update(behavior="view")).state
    state = step(state, update(behavior="cart", ts=T0 + POP_HALF_LIFE)).state
    view, cart = PROFILE.event_weights["view"], PROFILE.event_weights["cart"]
    assert state.popularity == pytest.approx(view / 2 + cart, rel=1e-12)
    assert state.popularity_at == T0 + POP_HALF_LIFE


def test_a_late_event_adds_its_decayed_weight_without_moving_time_back():
    state = step(ItemModel(), update(ts=T0 + 2 * POP_HALF_LIFE)).state
    state = step(state, update(behavior="purchase", ts=T0)).state
    view, purchase = PROFILE.event_weights["view"], PROFILE.event_weights["purchase"]
    assert state.popularity == pytest.approx(view + purchase / 4, rel=1e-12)
    assert state.popularity_at == T0 + 2 * POP_HALF_LIFE


def test_events_fill_in_facts_until_the_catalogue_lists_the_item_then_the_catalogue_wins():
    state = step(ItemModel(), update(price=10.0, category="shoes")).state
    state = step(state, update(category=None, ts=T0 + 1)).state
    assert state.category_id == "shoes" and state.price == 10.0
    assert ("cat:shoes", pytest.approx(1 / math.sqrt(2))) in [(t, w) for t, w in state.vector]
    listed = CatalogItem(item_id="target", title="Trail runner", category_id="running", price=80.0, ts=T0 + 5,
                         brand="Acme", stock=0)
    state = join_catalog(state, listed, (("runner", 1.0),)).state
    state = step(state, update(price=1.0, category="boots", ts=T0 + 6)).state
    assert (state.category_id, state.price, state.brand, state.title) == ("running", 80.0, "Acme", "Trail runner")
    assert state.vector == (("runner", 1.0),)
    assert state.card().in_stock is False  # stock 0: the scorer must skip it


def test_an_older_catalogue_record_never_replaces_a_newer_one():
    newer = CatalogItem(item_id="i", title="New", category_id="c", price=2.0, ts=T0 + 10)
    older = CatalogItem(item_id="i", title="Old", category_id="c", price=1.0, ts=T0)
    state = join_catalog(ItemModel(), newer, ()).state
    assert join_catalog(state, older, ()).state == state


def test_the_row_counts_each_item_of_the_history_once_per_event():
    state = step(ItemModel(), update(history=[("a", "ca"), ("b", None)])).state
    assert state.row == {"a": [1, "ca"], "b": [1, None]}
    state = step(state, update(history=[("b", "cb"), ("c", "cc")], ts=T0 + 1)).state
    assert state.row == {"a": [1, "ca"], "b": [2, "cb"], "c": [1, "cc"]}
    state = step(state, update(history=[("b", None)], ts=T0 + 2)).state  # unknown never erases known
    assert state.row["b"] == [3, "cb"]


def test_a_repeat_visit_counts_for_popularity_but_not_for_co_occurrence():
    state = step(ItemModel(), update(history=[("a", None)])).state
    result = step(state, update(history=[], repeat=True, ts=T0 + 1))
    assert result.state.interactions == 1 and result.state.row == state.row
    assert result.state.popularity > state.popularity
    assert result.refresh_at is None


def test_the_input_state_is_not_mutated():
    before = ItemModel(row={"a": [1, "ca"]})
    step(before, update(history=[("a", "ca"), ("b", None)]))
    assert before == ItemModel(row={"a": [1, "ca"]})


def test_cosine_divides_the_co_count_by_the_root_of_both_counts():
    row = {"a": [4, "ca"], "b": [2, None], "c": [2, "cc"]}
    counts = {"a": 16, "b": 1}  # c unknown: counts as 1
    neighbours = cosine_neighbours(row, 4, counts, 2)
    assert neighbours == (Neighbour("b", None, round(2 / math.sqrt(4 * 1), 9)),
                          Neighbour("c", "cc", round(2 / math.sqrt(4 * 1), 9)))  # tie -> item id order
    assert cosine_neighbours(row, 4, counts, 3)[2] == Neighbour("a", "ca", round(4 / math.sqrt(4 * 16), 9))


def test_a_trigger_carries_neighbours_and_the_profile_a_plain_event_only_the_card():
    cards = {"a": ItemCard(interactions=9), "b": ItemCard(interactions=1)}
    state = ItemModel(category_id="c0", interactions=3, row={"a": [3, "ca"], "b": [1, "cb"]})
    plain = step(state, update(history=[("a", "ca")], category=None), cards=lambda items: cards)
    assert plain.signal.neighbours == () and plain.signal.trigger is False
    assert plain.signal.card == plain.state.card()
    trig = step(state, update(history=[("a", "ca")], category=None, trigger=True), cards=lambda items: cards)
    n = trig.state.interactions
    assert trig.signal.neighbours == (Neighbour("a", "ca", round(4 / math.sqrt(n * 9), 9)),
                                      Neighbour("b", "cb", round(1 / math.sqrt(n * 1), 9)))
    assert trig.state.neighbours == trig.signal.neighbours
    assert trig.signal.event["category_id"] == "c0"  # enriched from state for the scorer


def test_a_refresh_timer_is_requested_when_the_row_changes_coalesced_per_interval():
    result = step(ItemModel(), update(history=[("a", None)], ts=T0 + 123))
    assert result.refresh_at == next_refresh(T0 + 123, ITEMS)
    assert result.refresh_at > T0 + 123 and result.refresh_at % ITEMS.neighbour_refresh_ms == 0
    assert next_refresh(T0 + 124, ITEMS) == result.refresh_at  # same interval, same timer
    assert step(result.state, update(history=[], ts=T0 + 200)).refresh_at is None


def test_the_row_is_trimmed_to_the_cap_once_past_the_slack():
    config = load_config(overrides={"item_model": {"row_cap": 8, "neighbours": 2}}).item_model
    row = {f"j{n}": [n + 1, None] for n in range(10)}  # 10 == cap + cap // 4: not trimmed yet
    state = step(ItemModel(row=row), update(), config).state
    assert len(state.row) == 10
    state = step(state, update(history=[("new", None)], ts=T0 + 1), config).state
    assert state.row == {f"j{n}": [n + 1, None] for n in range(2, 10)}


@PROPERTY
@given(updates=st.lists(st.tuples(st.lists(st.integers(0, 30), max_size=8, unique=True), st.booleans()),
                        max_size=40),
       row_cap=st.integers(1, 12), neighbours=st.integers(1, 12))
def test_work_and_state_stay_bounded_by_config(updates, row_cap, neighbours):
    neighbours = min(neighbours, row_cap)
    config = load_config(overrides={"item_model": {"row_cap": row_cap, "neighbours": neighbours}}).item_model
    state = ItemModel()
    for n, (others, trigger) in enumerate(updates):
        history = [(f"j{o}", f"c{o % 3}") for o in others]
        result = step(state, update(history=history, trigger=trigger, ts=T0 + n), config)
        state = result.state
        assert len(state.row) <= row_cap + row_cap // 4
        assert len(result.signal.neighbours) <= neighbours
        sims = [nb.similarity for nb in result.signal.neighbours]
        assert sims == sorted(sims, reverse=True)


def batch_neighbours(events: list[tuple[str, str]], history_size: int, k: int) -> dict[str, list[tuple[str, float]]]:
    """Independent recompute: per user, a visit to an item not among the user's last `history_size`
    distinct items co-occurs with each of them; cosine over the whole matrix at once."""
    items = sorted({item for _, item in events})
    index = {item: n for n, item in enumerate(items)}
    co = np.zeros((len(items), len(items)))
    visits = np.zeros(len(items))
    recent: dict[str, list[str]] = {}
    for user, item in events:
        history = recent.setdefault(user, [])
        if item in history:
            history.remove(item)
        else:
            visits[index[item]] += 1
            for other in history:
                co[index[item], index[other]] += 1
        history.append(item)
        del history[:-history_size]
    sims = co / np.sqrt(np.outer(np.maximum(visits, 1), np.maximum(visits, 1)))
    out = {}
    for item in items:
        row = [(items[j], round(float(sims[index[item], j]), 9)) for j in np.nonzero(co[index[item]])[0]]
        out[item] = sorted(row, key=lambda p: (-p[1], p[0]))[:k]
    return out


@settings(max_examples=60, deadline=None)
@given(events=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 12)), min_size=1, max_size=120),
       history_size=st.integers(1, 6), k=st.integers(1, 8))
def test_streamed_neighbours_equal_a_batch_recompute_after_the_stream_drains(events, history_size, k):
    config = load_config(overrides={"profile": {"history_size": history_size},
                                    "item_model": {"neighbours": k, "row_cap": 64}})
    users, items, cards = {}, {}, {}
    named = [(f"u{u}", f"i{i}") for u, i in events]
    for n, (user, item) in enumerate(named):
        event = BehaviourEvent(event_id=f"e{n}", user_id=user, behavior="view", ts=T0 + n * 1000, item_id=item)
        user_step = user_context.observe(UserContext.decode(users.get(user)), event, config.intake, config.profile,
                                         config.segments)
        users[user] = user_step.state.encode()
        upd = ItemUpdate.decode(user_step.to_item_hop.encode())  # across the shuffle, as in the job
        result = update_item(ItemModel.decode(items.get(item)), upd, lambda ids: cards, config.item_model,
                             config.profile, TERMS)
        items[item] = result.state.encode()
        cards[item] = result.card
    expected = batch_neighbours(named, history_size, k)
    for item, raw in items.items():
        drained = refresh_neighbours(ItemModel.decode(raw), lambda ids: cards, config.item_model)
        assert [(nb.item_id, nb.similarity) for nb in drained.neighbours] == expected[item]
        assert cards[item].interactions == Counter(expected_visits(named, history_size))[item]


def expected_visits(events, history_size):
    recent: dict[str, list[str]] = {}
    for user, item in events:
        history = recent.setdefault(user, [])
        if item not in history:
            yield item
        else:
            history.remove(item)
        history.append(item)
        del history[:-history_size]
