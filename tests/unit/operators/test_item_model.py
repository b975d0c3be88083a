"""item_model: popularity, catalogue join, a capped co-occurrence row, cosine top-K, refresh timers.

The central property: after a stream drains, the streamed neighbours equal a batch recompute
(numpy over the whole co-occurrence matrix) over the same events, whenever the row cap does not bind.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import JobConfig, load_config
from operators import item_model, user_context
from operators.item_model import cosine_neighbours, next_refresh, refresh_neighbours
from operators.steps import END_OF_STREAM, ListNewArrival, PublishCard, RecordFacts, emitted
from state_schemas.events import BehaviourEvent, CatalogItem
from state_schemas.hops import ForgetWatcher, ItemSignal, ItemUpdate, WatchedItemChange
from state_schemas.state import CoCount, ItemCard, ItemModel, Neighbour, UserContext, Watch

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
    event = BehaviourEvent(event_id=event_id, user_id="u1", behavior=behavior, ts=ts, item_id=item,
                           category_id=category, price=price)
    return ItemUpdate(event=event, history=tuple(history), trigger=trigger, repeat=repeat)


@dataclass(frozen=True)
class Result:
    """One step of the item model, by what the shell does with it."""

    state: ItemModel
    card: ItemCard | None  # published for other keys
    signal: ItemSignal | None  # to the user's scorer
    refresh_at: int | None  # the refresh timer (the end-of-stream one always comes with it)
    listed: tuple = ()  # new-arrival listings


def result(done) -> Result:
    cards = [e.card for e in done.effects if isinstance(e, PublishCard)]
    signals = emitted(done, ItemSignal)
    refresh = [t for t in done.timers if t != END_OF_STREAM]
    assert len(cards) <= 1 and len(signals) <= 1 and len(refresh) <= 1
    assert (END_OF_STREAM in done.timers) == bool(refresh)
    return Result(done.state, cards[0] if cards else None, signals[0] if signals else None,
                  refresh[0] if refresh else None,
                  tuple(e for e in done.effects if isinstance(e, ListNewArrival)))


def update_item(state, upd, cards, config, profile, terms):
    return result(item_model.update_item(state, upd, cards, config, profile, terms))


def join_catalog(state, item, vector):
    return result(item_model.join_catalog(state, item, vector, CONFIG.journeys))


def step(state, upd, config=ITEMS, cards=no_cards):
    return update_item(state, upd, cards, config, PROFILE, TERMS)


def test_an_unbounded_input_sets_no_end_of_input_refresh():
    """Timers outlive the state TTL: a live job would keep one per item it ever saw."""
    seen_with = update(history=[("a", "ca")])
    live = item_model.update_item(ItemModel(), seen_with, no_cards, ITEMS, PROFILE, TERMS, input_ends=False)
    bounded = item_model.update_item(ItemModel(), seen_with, no_cards, ITEMS, PROFILE, TERMS)
    assert len(live.timers) == 1 and END_OF_STREAM not in live.timers
    assert set(bounded.timers) == {live.timers[0], END_OF_STREAM}


def test_first_event_sets_facts_popularity_and_interactions():
    result = step(ItemModel(), update(price=12.5))
    state = result.state
    assert state.category_id == "c1" and state.price == 12.5 and state.interactions == 1
    assert state.popularity.value == pytest.approx(PROFILE.event_weights["view"])
    assert state.popularity.at == T0 and state.row == {}
    assert result.card == state.card() and result.card.interactions == 1
    assert result.refresh_at is None  # no row yet: nothing to recompute


def test_popularity_halves_over_one_half_life_before_the_new_weight_is_added():
    state = step(ItemModel(), update(behavior="view")).state
    state = step(state, update(behavior="cart", ts=T0 + POP_HALF_LIFE)).state
    view, cart = PROFILE.event_weights["view"], PROFILE.event_weights["cart"]
    assert state.popularity.value == pytest.approx(view / 2 + cart, rel=1e-12)
    assert state.popularity.at == T0 + POP_HALF_LIFE


def test_a_late_event_adds_its_decayed_weight_without_moving_time_back():
    state = step(ItemModel(), update(ts=T0 + 2 * POP_HALF_LIFE)).state
    state = step(state, update(behavior="purchase", ts=T0)).state
    view, purchase = PROFILE.event_weights["view"], PROFILE.event_weights["purchase"]
    assert state.popularity.value == pytest.approx(view + purchase / 4, rel=1e-12)
    assert state.popularity.at == T0 + 2 * POP_HALF_LIFE


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
    assert state.row == {"a": CoCount(1, "ca"), "b": CoCount(1, None)}
    state = step(state, update(history=[("b", "cb"), ("c", "cc")], ts=T0 + 1)).state
    assert state.row == {"a": CoCount(1, "ca"), "b": CoCount(2, "cb"), "c": CoCount(1, "cc")}
    state = step(state, update(history=[("b", None)], ts=T0 + 2)).state  # unknown never erases known
    assert state.row["b"] == CoCount(3, "cb")


def test_a_repeat_visit_counts_for_popularity_but_not_for_co_occurrence():
    state = step(ItemModel(), update(history=[("a", None)])).state
    result = step(state, update(history=[], repeat=True, ts=T0 + 1))
    assert result.state.interactions == 1 and result.state.row == state.row
    assert result.state.popularity.value > state.popularity.value
    assert result.refresh_at is None


def test_the_input_state_is_not_mutated():
    before = ItemModel(row={"a": CoCount(1, "ca")})
    step(before, update(history=[("a", "ca"), ("b", None)]))
    assert before == ItemModel(row={"a": CoCount(1, "ca")})


def test_cosine_divides_the_co_count_by_the_root_of_both_counts():
    row = {"a": CoCount(4, "ca"), "b": CoCount(2, None), "c": CoCount(2, "cc")}
    counts = {"a": 16, "b": 1}  # c unknown: counts as 1
    neighbours = cosine_neighbours(row, 4, counts, 2)
    assert neighbours == (Neighbour("b", None, round(2 / math.sqrt(4 * 1), 9)),
                          Neighbour("c", "cc", round(2 / math.sqrt(4 * 1), 9)))  # tie -> item id order
    assert cosine_neighbours(row, 4, counts, 3)[2] == Neighbour("a", "ca", round(4 / math.sqrt(4 * 16), 9))


def test_a_trigger_carries_neighbours_and_the_profile_a_plain_event_only_the_card():
    cards = {"a": ItemCard(interactions=9), "b": ItemCard(interactions=1)}
    state = ItemModel(category_id="c0", interactions=3, row={"a": CoCount(3, "ca"), "b": CoCount(1, "cb")})
    plain = step(state, update(history=[("a", "ca")], category=None), cards=lambda items: cards)
    assert plain.signal.neighbours == () and plain.signal.trigger is False
    assert plain.signal.card == plain.state.card()
    trig = step(state, update(history=[("a", "ca")], category=None, trigger=True), cards=lambda items: cards)
    n = trig.state.interactions
    assert trig.signal.neighbours == (Neighbour("a", "ca", round(4 / math.sqrt(n * 9), 9)),
                                      Neighbour("b", "cb", round(1 / math.sqrt(n * 1), 9)))
    assert trig.state.neighbours == trig.signal.neighbours
    assert trig.signal.event.category_id == "c0"  # enriched from state for the scorer


def test_a_refresh_timer_is_requested_when_the_row_changes_coalesced_per_interval():
    result = step(ItemModel(), update(history=[("a", None)], ts=T0 + 123))
    assert result.refresh_at == next_refresh(T0 + 123, ITEMS)
    assert result.refresh_at > T0 + 123 and result.refresh_at % ITEMS.neighbour_refresh_ms == 0
    assert next_refresh(T0 + 124, ITEMS) == result.refresh_at  # same interval, same timer
    assert step(result.state, update(history=[], ts=T0 + 200)).refresh_at is None


def test_the_row_is_trimmed_to_the_cap_once_past_the_slack():
    config = load_config(overrides={"item_model": {"row_cap": 8, "neighbours": 2}}).item_model
    row = {f"j{n}": CoCount(n + 1, None) for n in range(10)}  # 10 == cap + cap // 4: not trimmed yet
    state = step(ItemModel(row=row), update(), config).state
    assert len(state.row) == 10
    state = step(state, update(history=[("new", None)], ts=T0 + 1), config).state
    assert state.row == {f"j{n}": CoCount(n + 1, None) for n in range(2, 10)}


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
        [sent] = emitted(user_step, ItemUpdate)
        upd = ItemUpdate.decode(sent.encode())  # across the shuffle, as in the job
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


def test_an_accepted_catalogue_record_lists_the_item_among_its_category_arrivals_and_an_older_one_does_not():
    newer = CatalogItem(item_id="target", title="Trail shoe", category_id="shoes", price=80.0, ts=T0 + 10)
    older = CatalogItem(item_id="target", title="Old shoe", category_id="boots", price=70.0, ts=T0)
    joined = join_catalog(ItemModel(), newer, (("trail", 1.0),))
    assert joined.listed == (ListNewArrival("target", "shoes", T0 + 10, item_model.ARRIVALS_KEPT),)
    assert joined.card == joined.state.card() and joined.card.listed_at == T0 + 10
    ignored = join_catalog(joined.state, older, ())
    assert ignored.state == joined.state and ignored.listed == () and ignored.card is None


class RecordingSide:
    """Cards for the timer's refresh, remembering whether each read asked for fresh ones."""

    def __init__(self, cards):
        self.card_map, self.reads = cards, []

    def cards(self, items, fresh=False):
        self.reads.append(fresh)
        return {item: self.card_map[item] for item in items if item in self.card_map}


def test_a_refresh_timer_publishes_the_neighbours_and_the_end_of_stream_one_reads_the_latest_cards():
    from operators.steps import PublishNeighbours, StepContext

    state = ItemModel(interactions=4, row={"a": CoCount(2, "ca")})
    side = RecordingSide({"a": ItemCard(interactions=1)})
    context = StepContext(now=0, side=side, config=CONFIG)
    expected = (Neighbour("a", "ca", round(2 / math.sqrt(4 * 1), 9)),)
    refreshed = item_model.on_timer(state, "target", next_refresh(T0, ITEMS), context)
    assert refreshed.state.neighbours == expected
    assert refreshed.effects == (PublishNeighbours("target", expected),)
    final = item_model.on_timer(state, "target", END_OF_STREAM, context)
    assert final.effects == (PublishNeighbours("target", expected),)
    assert side.reads == [False, True]  # cached cards on an interval, every instance's latest at the end
    idle = item_model.on_timer(ItemModel(interactions=1), "lonely", END_OF_STREAM, context)
    assert idle.effects == () and idle.state == ItemModel(interactions=1) and side.reads == [False, True]


# ---------------------------------------------------------------------------------------------- watchers
DAY = 24 * HOUR_MS


def watched(state, user, behavior, ts):
    """The item model's step for one shopper's event on the item, as the job routes it."""
    upd = update(behavior=behavior, ts=ts, event_id=f"{user}-{behavior}-{ts}")
    upd = ItemUpdate(event=BehaviourEvent(event_id=upd.event.event_id, user_id=user, behavior=behavior, ts=ts,
                                          item_id="target", category_id="c1"), history=(), trigger=False)
    return item_model.step(state, upd, StepContextFor(CONFIG)).state


class StepContextFor:
    def __init__(self, config):
        self.config, self.now = config, T0
        self.side = type("Side", (), {"cards": staticmethod(lambda items, fresh=False: {})})()


def listing(price, stock, ts):
    return CatalogItem(item_id="target", title="Trail shoe", category_id="c1", price=price, stock=stock, ts=ts)


def told(state, item):
    done = item_model.join_catalog(state, item, (), CONFIG.journeys)
    return done.state, sorted((m.user_id, m.change, m.was_price) for m in emitted(done, WatchedItemChange))


def test_a_price_cut_tells_exactly_the_recent_watchers_with_the_old_price():
    state, _ = told(ItemModel(), listing(100.0, 5, T0))
    for user, behavior, ts in (("viewer", "view", T0 + 1), ("carter", "cart", T0 + 2), ("fan", "favourite", T0 + 3),
                               ("buyer", "cart", T0 + 4), ("buyer", "purchase", T0 + 5), ("stale", "view", T0 - DAY)):
        state = watched(state, user, behavior, ts)
    assert set(state.watchers) == {"viewer", "carter", "fan", "stale"}  # a purchase ends the watch
    assert state.watchers["carter"] == Watch("cart", T0 + 2, None)
    # 4% off is below the 5% threshold: nobody is told; then 10% off from the new price.
    state, nobody = told(state, listing(96.0, 5, T0 + 10))
    assert nobody == []
    far = T0 - DAY + CONFIG.journeys.watch_ms  # the stale view is 14 days old then
    _, cut = told(state, listing(86.4, 5, far))
    assert cut == [("carter", "price_drop", 96.0), ("fan", "price_drop", 96.0), ("viewer", "price_drop", 96.0)]


def test_a_restock_tells_only_those_who_carted_or_favourited_it():
    state, _ = told(ItemModel(), listing(10.0, 0, T0))
    for user, behavior in (("viewer", "view"), ("carter", "cart"), ("fan", "favourite")):
        state = watched(state, user, behavior, T0 + 1)
    state, back = told(state, listing(10.0, 3, T0 + 2))
    assert back == [("carter", "back_in_stock", None), ("fan", "back_in_stock", None)]
    _, again = told(state, listing(10.0, 7, T0 + 3))  # more stock is not news
    assert again == []


def test_the_first_listing_tells_nobody_and_the_fan_out_is_bounded():
    config = CONFIG.with_overrides({"journeys": {"watchers_per_item": 3}})
    state = ItemModel()
    for n in range(6):
        state = item_model.step(state, ItemUpdate(event=BehaviourEvent(event_id=f"e{n}", user_id=f"u{n}",
                                                                      behavior="view", ts=T0 + n, item_id="target"),
                                                  history=(), trigger=False), StepContextFor(config)).state
    assert sorted(state.watchers) == ["u3", "u4", "u5"]  # the newest three
    first = item_model.join_catalog(state, listing(10.0, 1, T0 + 10), (), config.journeys)
    assert emitted(first, WatchedItemChange) == []
    cut = item_model.join_catalog(first.state, listing(5.0, 1, T0 + 11), (), config.journeys)
    assert [m.user_id for m in emitted(cut, WatchedItemChange)] == ["u3", "u4", "u5"]
    assert all(m.routing_key == m.user_id and m.card.price == 5.0 for m in emitted(cut, WatchedItemChange))


def test_an_erased_shopper_is_forgotten_by_the_item():
    state = watched(ItemModel(), "gone", "cart", T0)
    state = watched(state, "kept", "cart", T0)
    forgotten = item_model.step(state, ForgetWatcher(user_id="gone", item_id="target", ts=T0 + 1),
                                StepContextFor(CONFIG)).state
    assert set(forgotten.watchers) == {"kept"}


# --- facts as of a time ---------------------------------------------------------------------------

def _facts_recorded(step) -> list:
    return [(effect.at, effect.facts) for effect in step.effects if isinstance(effect, RecordFacts)]


def test_an_items_facts_are_recorded_at_the_time_of_each_change_and_only_then():
    first = item_model.update_item(ItemModel(), update(category="c1", price=5.0), no_cards, ITEMS, PROFILE, TERMS)
    assert [(at, card.category_id, card.price) for at, card in _facts_recorded(first)] == [(T0, "c1", 5.0)]
    assert all(card.interactions == 0 and card.factors == () for _, card in _facts_recorded(first))
    again = item_model.update_item(first.state, update(category="c1", price=5.0, ts=T0 + 1, event_id="e2"),
                                   no_cards, ITEMS, PROFILE, TERMS)
    assert _facts_recorded(again) == []  # counts moved, facts did not
    listed = item_model.join_catalog(again.state, CatalogItem(item_id="target", title="Target", category_id="c2",
                                                              price=4.0, stock=0, ts=T0 + 2), (("w", 1.0),),
                                     CONFIG.journeys)
    [(at, facts)] = _facts_recorded(listed)
    assert at == T0 + 2 and (facts.title, facts.category_id, facts.price, facts.in_stock) == ("Target", "c2", 4.0,
                                                                                             False)
    older = item_model.join_catalog(listed.state, CatalogItem(item_id="target", title="Stale", category_id="c3",
                                                              price=1.0, ts=T0 + 1), (), CONFIG.journeys)
    assert _facts_recorded(older) == []  # an older record is ignored
