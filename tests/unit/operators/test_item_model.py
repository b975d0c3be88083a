"""item_model.update_item: decayed popularity, a capped co-occurrence row, candidates on triggers."""
from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.config import JobConfig, load_config
from operators.item_model import update_item
from state_schemas.state import CandidateSet, ItemModel, ItemUpdate, Neighbour

HOUR_MS = 3_600_000
T0 = 1_700_000_000_000
CONFIG = JobConfig()
ITEMS, PROFILE = CONFIG.item_model, CONFIG.profile
POP_HALF_LIFE = int(ITEMS.popularity_half_life_hours * HOUR_MS)

PROPERTY = settings(max_examples=150, deadline=None)


def update(history=(), behavior="view", ts=T0, trigger=False, item="target", category="c1", price=None,
           affinity=(), exclude=(), event_id="e1") -> ItemUpdate:
    event = {"v": 1, "type": "behaviour", "event_id": event_id, "user_id": "u1", "behavior": behavior, "ts": ts,
             "item_id": item}
    if category is not None:
        event["category_id"] = category
    if price is not None:
        event["price"] = price
    return ItemUpdate(event=event, history=tuple(history), trigger=trigger, affinity=tuple(affinity),
                      exclude=tuple(exclude))


def test_first_event_sets_facts_popularity_and_interactions():
    state, candidates = update_item(ItemModel(), update(price=12.5), ITEMS, PROFILE)
    assert candidates is None
    assert state.category_id == "c1" and state.price == 12.5 and state.interactions == 1
    assert state.popularity == pytest.approx(PROFILE.event_weights["view"])
    assert state.popularity_at == T0
    assert state.row == {}


def test_popularity_halves_over_one_half_life_before_the_new_weight_is_added():
    state, _ = update_item(ItemModel(), update(behavior="view"), ITEMS, PROFILE)
    state, _ = update_item(state, update(behavior="cart", ts=T0 + POP_HALF_LIFE), ITEMS, PROFILE)
    view, cart = PROFILE.event_weights["view"], PROFILE.event_weights["cart"]
    assert state.popularity == pytest.approx(view / 2 + cart, rel=1e-12)
    assert state.popularity_at == T0 + POP_HALF_LIFE
    assert state.interactions == 2


def test_a_late_event_adds_its_decayed_weight_without_moving_time_back():
    state, _ = update_item(ItemModel(), update(ts=T0 + 2 * POP_HALF_LIFE), ITEMS, PROFILE)
    state, _ = update_item(state, update(behavior="purchase", ts=T0), ITEMS, PROFILE)
    view, purchase = PROFILE.event_weights["view"], PROFILE.event_weights["purchase"]
    assert state.popularity == pytest.approx(view + purchase / 4, rel=1e-12)
    assert state.popularity_at == T0 + 2 * POP_HALF_LIFE


def test_facts_missing_from_an_event_keep_what_was_known():
    state, _ = update_item(ItemModel(), update(price=10.0, category="shoes"), ITEMS, PROFILE)
    state, _ = update_item(state, update(category=None, ts=T0 + 1), ITEMS, PROFILE)
    assert state.category_id == "shoes" and state.price == 10.0
    state, _ = update_item(state, update(price=8.0, category="boots", ts=T0 + 2), ITEMS, PROFILE)
    assert state.category_id == "boots" and state.price == 8.0


def test_the_row_counts_each_item_of_the_history_once_per_event():
    state, _ = update_item(ItemModel(), update(history=[("a", "ca"), ("b", None)]), ITEMS, PROFILE)
    assert state.row == {"a": [1, "ca"], "b": [1, None]}
    state, _ = update_item(state, update(history=[("b", "cb"), ("c", "cc")], ts=T0 + 1), ITEMS, PROFILE)
    assert state.row == {"a": [1, "ca"], "b": [2, "cb"], "c": [1, "cc"]}
    # An unknown category never erases a known one.
    state, _ = update_item(state, update(history=[("b", None)], ts=T0 + 2), ITEMS, PROFILE)
    assert state.row["b"] == [3, "cb"]


def test_the_input_state_is_not_mutated():
    before = ItemModel(row={"a": [1, "ca"]})
    update_item(before, update(history=[("a", "ca"), ("b", None)]), ITEMS, PROFILE)
    assert before == ItemModel(row={"a": [1, "ca"]})


def test_a_trigger_yields_the_strongest_neighbours_with_what_scoring_needs():
    config = load_config(overrides={"item_model": {"neighbours": 2, "row_cap": 8}}).item_model
    state = ItemModel(category_id="c0", row={"a": [5, "ca"], "b": [1, "cb"], "c": [3, None]})
    trigger = update(history=[("b", "cb")], trigger=True, category=None, affinity=[("ca", 1.0)],
                     exclude=["x"])
    new_state, candidates = update_item(state, trigger, config, PROFILE)
    assert new_state.row["b"] == [2, "cb"]
    assert candidates == CandidateSet(event=trigger.event, trigger_category="c0",
                                      candidates=(Neighbour("a", "ca", 5.0), Neighbour("c", None, 3.0)),
                                      affinity=(("ca", 1.0),), exclude=("x",))


def test_a_trigger_on_an_item_with_no_row_sends_nothing_onwards():
    _, candidates = update_item(ItemModel(), update(trigger=True), ITEMS, PROFILE)
    assert candidates is None


def test_the_row_is_trimmed_to_the_cap_once_past_the_slack():
    config = load_config(overrides={"item_model": {"row_cap": 8, "neighbours": 2}}).item_model
    row = {f"j{n}": [n + 1, None] for n in range(10)}  # 10 == cap + cap // 4: not trimmed yet
    state, _ = update_item(ItemModel(row=row), update(), config, PROFILE)
    assert len(state.row) == 10
    state, _ = update_item(state, update(history=[("new", None)], ts=T0 + 1), config, PROFILE)
    # 11 > 10: the 8 strongest remain (counts 3..10), the new item with a count of 1 is gone.
    assert state.row == {f"j{n}": [n + 1, None] for n in range(2, 10)}


@PROPERTY
@given(updates=st.lists(st.tuples(st.lists(st.integers(0, 30), max_size=8, unique=True), st.booleans()),
                        max_size=40),
       row_cap=st.integers(1, 12), neighbours=st.integers(1, 12))
def test_row_and_candidates_stay_bounded(updates, row_cap, neighbours):
    neighbours = min(neighbours, row_cap)
    config = load_config(overrides={"item_model": {"row_cap": row_cap, "neighbours": neighbours}}).item_model
    state = ItemModel()
    for n, (others, trigger) in enumerate(updates):
        history = [(f"j{o}", f"c{o % 3}") for o in others]
        state, candidates = update_item(state, update(history=history, trigger=trigger, ts=T0 + n), config,
                                        PROFILE)
        assert len(state.row) <= row_cap + row_cap // 4
        assert state.interactions == n + 1
        if trigger and state.row:
            counts = [c.co_count for c in candidates.candidates]
            assert counts
            assert len(counts) <= neighbours
            assert counts == sorted(counts, reverse=True)
            assert len({c.item_id for c in candidates.candidates}) == len(counts)
            for c in candidates.candidates:
                assert state.row[c.item_id][0] == c.co_count
            weaker = [entry[0] for item, entry in state.row.items()
                      if item not in {c.item_id for c in candidates.candidates}]
            if counts and weaker:
                assert max(weaker) <= min(counts)
        else:
            assert candidates is None


@PROPERTY
@given(histories=st.lists(st.lists(st.integers(0, 20), max_size=6, unique=True), max_size=40))
def test_untrimmed_counts_equal_the_number_of_histories_naming_the_item(histories):
    state = ItemModel()
    for n, others in enumerate(histories):
        state, _ = update_item(state, update(history=[(f"j{o}", None) for o in others], ts=T0 + n), ITEMS,
                               PROFILE)
    expected = Counter(f"j{o}" for others in histories for o in others)
    assert len(expected) <= ITEMS.row_cap  # so nothing was trimmed
    assert {item: entry[0] for item, entry in state.row.items()} == dict(expected)
