"""user_context.observe: dedup by event id, recent distinct items, the decayed profile (category, brand,
price band, active hours, last purchase), repeats, marketing triggers and rate-limited segment updates."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import JobConfig, load_config
from operators import user_context
from operators.segments import profile_vector
from operators.steps import emitted
from operators.user_context import PURCHASES_KEPT
from state_schemas.events import BehaviourEvent, ErasureRequest, FeedbackEvent, OrderEvent
from state_schemas.hops import AcceptedBehaviour, AccountEvent, ItemUpdate, SegmentUpdate
from state_schemas.state import DecayedScores, HistoryEntry, UserContext

HOUR_MS = 3_600_000
T0 = 1_700_000_000_000
CONFIG = JobConfig()
INTAKE, PROFILE = CONFIG.intake, CONFIG.profile
SEGMENTS = load_config(overrides={"segments": {"min_history": 1}}).segments  # the gap alone, unless said
GAP = PROFILE.min_trigger_gap_ms
SEGMENT_GAP = SEGMENTS.min_update_gap_ms
HALF_LIFE = int(PROFILE.half_life_hours * HOUR_MS)
WEIGHTS = PROFILE.event_weights
# The price bands' upper bounds as content.py documents them: band pN has N bounds at or below the price.
PRICE_BOUNDS = (10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)

PROPERTY = settings(max_examples=150, deadline=None)


def band(price: float) -> str:
    return f"p{sum(price >= bound for bound in PRICE_BOUNDS)}"


def utc_hour(ts: int) -> str:
    return str(datetime.fromtimestamp(ts / 1000, tz=timezone.utc).hour)


def behaviour(event_id: str, item: str | None = "i1", behavior: str = "view", ts: int = T0,
              category: str | None = "c1", user: str = "u1", brand: str | None = None,
              price: float | None = None) -> BehaviourEvent:
    return BehaviourEvent(event_id=event_id, user_id=user, behavior=behavior, ts=ts, item_id=item,
                          category_id=category, brand=brand, price=price)


@dataclass(frozen=True)
class Routed:
    """What one event became, by where each part goes."""

    state: UserContext | None
    to_item_hop: ItemUpdate | None
    to_push_hop: object  # the order, feedback or erasure passed on to the push policy
    to_segmenter: SegmentUpdate | None
    duplicate: bool


def _only(step, kind):
    sent = emitted(step, kind)
    assert len(sent) <= 1, sent
    return sent[0] if sent else None


def observe(state, event, intake, profile, segments) -> Routed:
    step = user_context.observe(state, event, intake, profile, segments)
    account = _only(step, AccountEvent)
    return Routed(step.state, _only(step, ItemUpdate), account.event if account else None,
                  _only(step, SegmentUpdate), "events_duplicate" in step.counts)


def run(events, intake=INTAKE, profile=PROFILE, state=None, segments=SEGMENTS):
    state = state or UserContext()
    steps = []
    for event in events:
        step = observe(state, event, intake, profile, segments)
        steps.append(step)
        state = step.state if step.state is not None else UserContext()
    return state, steps


# --- erasure -------------------------------------------------------------------------------------

def test_erasure_clears_the_state_and_is_passed_on_to_the_push_hop():
    state, _ = run([behaviour("e1", brand="acme", price=30.0),
                    behaviour("e2", item="i2", ts=T0 + GAP, behavior="purchase")])
    assert state.history and state.seen and state.purchased and state.last_purchase
    assert state.brand_affinity.scores and state.price_affinity.scores and state.active_hours.scores
    assert state.last_segment_ts is not None
    erase = ErasureRequest(event_id="x1", user_id="u1", ts=T0 + 2 * GAP)
    step = observe(state, erase, INTAKE, PROFILE, SEGMENTS)
    assert step.state is None
    assert step.to_push_hop == erase
    assert step.to_item_hop is None and step.to_segmenter is None and not step.duplicate


def test_erasure_clears_even_an_empty_state_and_a_repeated_erasure():
    assert observe(UserContext(), ErasureRequest("x", "u", T0), INTAKE, PROFILE, SEGMENTS).state is None
    seen = UserContext(seen={"x": T0})
    assert observe(seen, ErasureRequest("x", "u", T0), INTAKE, PROFILE, SEGMENTS).state is None


# --- dedup ---------------------------------------------------------------------------------------

def test_a_repeated_event_id_is_a_duplicate_and_changes_nothing():
    state, _ = run([behaviour("e1")])
    step = observe(state, behaviour("e1", item="other", ts=T0 + 5), INTAKE, PROFILE, SEGMENTS)
    assert step.duplicate
    assert step.state == state
    assert step.to_item_hop is None and step.to_push_hop is None and step.to_segmenter is None


def test_order_and_feedback_events_are_deduplicated_too():
    order = OrderEvent("o-e", "u1", "o1", "shipped", T0)
    feedback = FeedbackEvent("f-e", "u1", "unsubscribe", T0)
    state, steps = run([order, feedback, order, feedback])
    assert [s.duplicate for s in steps] == [False, False, True, True]
    assert [s.to_push_hop for s in steps] == [order, feedback, None, None]
    assert all(s.to_item_hop is None and s.to_segmenter is None for s in steps)
    assert set(state.seen) == {"o-e", "f-e"}


def test_an_event_id_is_forgotten_once_the_window_has_passed():
    window = INTAKE.dedup_window_ms
    state, steps = run([behaviour("old", ts=T0), behaviour("new", item="i2", ts=T0 + window + 1),
                        behaviour("old", item="i3", ts=T0 + window + 2)])
    assert [s.duplicate for s in steps] == [False, False, False]
    assert set(state.seen) == {"new", "old"}


def test_an_event_id_at_the_edge_of_the_window_is_still_remembered():
    window = INTAKE.dedup_window_ms
    _, steps = run([behaviour("old", ts=T0), behaviour("new", item="i2", ts=T0 + window),
                    behaviour("old", ts=T0 + window)])
    assert [s.duplicate for s in steps] == [False, False, True]


def test_only_the_newest_ids_are_kept_when_the_count_limit_is_hit():
    intake = load_config(overrides={"intake": {"dedup_max_ids": 3}}).intake
    state, _ = run([behaviour(f"e{n}", ts=T0 + n) for n in range(5)], intake=intake)
    assert state.seen == {"e2": T0 + 2, "e3": T0 + 3, "e4": T0 + 4}


def event_ids(draw_ids):
    return st.lists(st.tuples(st.sampled_from([f"e{n}" for n in range(draw_ids)]), st.integers(0, 3000),
                              st.sampled_from(["behaviour", "order", "feedback"])), max_size=60)


@PROPERTY
@given(steps=event_ids(12), max_ids=st.integers(1, 8), window=st.integers(1, 5000),
       monotone=st.booleans())
def test_seen_is_bounded_and_an_id_repeated_within_window_and_count_is_a_duplicate(steps, max_ids, window,
                                                                                   monotone):
    intake = load_config(overrides={"intake": {"dedup_max_ids": max_ids, "dedup_window_ms": window}}).intake
    if monotone:  # event time never goes back: the window and count guarantees are exact
        clock, timed = T0, []
        for event_id, delta, kind in steps:
            clock += delta
            timed.append((event_id, clock, kind))
    else:
        timed = [(event_id, T0 + delta, kind) for event_id, delta, kind in steps]
    state = UserContext()
    admitted: list[tuple[str, int]] = []  # (event id, ts) in the order they were stored
    for event_id, ts, kind in timed:
        if kind == "order":
            event = OrderEvent(event_id, "u1", "o1", "shipped", ts)
        elif kind == "feedback":
            event = FeedbackEvent(event_id, "u1", "open", ts, notification_id="n1")
        else:
            event = behaviour(event_id, ts=ts)
        step = observe(state, event, intake, PROFILE, SEGMENTS)
        earlier = [i for i, (seen_id, _) in enumerate(admitted) if seen_id == event_id]
        if not earlier:
            assert not step.duplicate  # an id never seen is never a duplicate
        elif monotone:
            first = earlier[-1]
            newer_ids = len(admitted) - first  # this id and everything stored after it
            if newer_ids <= max_ids and ts - admitted[first][1] <= window:
                assert step.duplicate
        if not step.duplicate:
            admitted.append((event_id, ts))
            if monotone:  # a late event may be the oldest id and be evicted by the count limit at once
                assert step.state.seen[event_id] == ts
        assert len(step.state.seen) <= max_ids
        state = step.state


# --- behaviour: history, affinity, purchases -----------------------------------------------------

def test_a_view_is_recorded_in_history_and_affinity_and_sent_to_the_item_hop():
    event = behaviour("e1", item="i1", category="c1")
    step = observe(UserContext(), event, INTAKE, PROFILE, SEGMENTS)
    assert step.state.history == (HistoryEntry("i1", "c1", "view", T0),)
    assert step.state.category_affinity == DecayedScores(at=T0, scores={"c1": WEIGHTS["view"]})
    assert step.state.seen == {"e1": T0}
    update = step.to_item_hop
    assert update.event == event
    assert update.history == () and not update.repeat  # nothing was seen before
    assert step.to_push_hop is None and not step.duplicate


def test_history_sent_is_the_previous_distinct_items_without_the_current_one():
    events = [behaviour("e1", "a", category="ca"), behaviour("e2", "b", category=None, ts=T0 + 1),
              behaviour("e3", "a", category="ca", ts=T0 + 2), behaviour("e4", "c", category="cc", ts=T0 + 3)]
    state, steps = run(events)
    assert steps[1].to_item_hop.history == (("a", "ca"),)
    assert steps[2].to_item_hop.history == ()  # a repeat: no new co-occurrence
    assert steps[3].to_item_hop.history == (("b", None), ("a", "ca"))
    # Re-visiting an item moves it to the end: history is ordered oldest -> newest, distinct.
    assert [e.item_id for e in state.history] == ["b", "a", "c"]


def test_affinity_decays_by_half_life_and_adds_weights():
    events = [behaviour("e1", "i1", "view", ts=T0, category="shoes"),
              behaviour("e2", "i2", "click", ts=T0 + HALF_LIFE, category="shoes"),
              behaviour("e3", "i3", "cart", ts=T0 + HALF_LIFE, category="hats")]
    state, _ = run(events)
    view, click, cart = (WEIGHTS[b] for b in ("view", "click", "cart"))
    assert state.category_affinity.at == T0 + HALF_LIFE
    assert state.category_affinity.scores["shoes"] == pytest.approx(view / 2 + click, rel=1e-12)
    assert state.category_affinity.scores["hats"] == pytest.approx(cart, rel=1e-12)


def test_brand_and_price_band_affinities_decay_and_add_the_behaviour_weights():
    events = [behaviour("e1", "i1", "view", ts=T0, brand="acme", price=30.0),
              behaviour("e2", "i2", "cart", ts=T0 + HALF_LIFE, brand="acme", price=45.0),
              behaviour("e3", "i3", "click", ts=T0 + HALF_LIFE, brand="zeta", price=600.0)]
    state, _ = run(events)
    view, cart, click = (WEIGHTS[b] for b in ("view", "cart", "click"))
    assert band(30.0) == band(45.0) != band(600.0)
    assert state.brand_affinity.at == state.price_affinity.at == T0 + HALF_LIFE
    assert state.brand_affinity.scores == pytest.approx({"acme": view / 2 + cart, "zeta": click}, rel=1e-12)
    assert state.price_affinity.scores == pytest.approx({band(30.0): view / 2 + cart, band(600.0): click},
                                                       rel=1e-12)


def test_brand_and_price_follow_the_configured_weights():
    profile = load_config(overrides={"profile": {"event_weights": {"view": 0.0, "cart": 3.0}}}).profile
    state, _ = run([behaviour("e1", "i1", "view", brand="acme", price=5.0),
                    behaviour("e2", "i2", "cart", ts=T0, brand="acme", price=5.0)], profile=profile)
    assert state.brand_affinity.scores == {"acme": 3.0}
    assert state.price_affinity.scores == {band(5.0): 3.0}


def test_events_without_brand_or_price_leave_those_affinities_alone():
    state, _ = run([behaviour("e1"), behaviour("e2", "i2", ts=T0 + 1)])
    assert state.brand_affinity == DecayedScores() and state.price_affinity == DecayedScores()


def test_the_active_hour_histogram_counts_each_event_in_its_utc_hour_with_decay():
    two_hours = 2 * HOUR_MS
    events = [behaviour("e1", ts=T0), behaviour("e2", "i2", "purchase", ts=T0 + two_hours),
              BehaviourEvent(event_id="s1", user_id="u1", behavior="search", ts=T0 + two_hours, query="hat")]
    state, _ = run(events)
    first, later = utc_hour(T0), utc_hour(T0 + two_hours)
    assert first != later
    decay = 0.5 ** (two_hours / HALF_LIFE)
    # An hour counts activity, not intent: every event adds one, whatever its behaviour weight.
    assert state.active_hours.at == T0 + two_hours
    assert state.active_hours.scores == pytest.approx({first: decay, later: 2.0}, rel=1e-12)


def test_a_zero_weight_behaviour_still_counts_an_active_hour_and_a_duplicate_does_not():
    profile = load_config(overrides={"profile": {"event_weights": {"cart": 4.0}}}).profile
    state, steps = run([behaviour("e1"), behaviour("e1")], profile=profile)
    assert state.active_hours.scores == {utc_hour(T0): 1.0}
    assert state.category_affinity == DecayedScores()
    assert steps[1].duplicate


def test_a_search_without_item_shapes_affinity_but_reaches_no_item_hop():
    search = BehaviourEvent(event_id="s1", user_id="u1", behavior="search", ts=T0, category_id="c9",
                            query="red shoes")
    step = observe(UserContext(), search, INTAKE, PROFILE, SEGMENTS)
    assert step.to_item_hop is None and step.to_push_hop is None and step.to_segmenter is None
    assert step.state.history == ()
    assert step.state.category_affinity.scores == {"c9": WEIGHTS["search"]}
    assert step.state.seen == {"s1": T0}


def test_an_event_without_category_or_with_zero_weight_leaves_affinity_alone():
    profile = load_config(overrides={"profile": {"event_weights": {"click": 2.0}}}).profile
    state, _ = run([behaviour("e1", category=None), behaviour("e2", item="i2", ts=T0 + 1, category="c1")],
                   profile=profile)  # view weighs 0 here
    assert state.category_affinity == DecayedScores()
    assert len(state.history) == 2


def test_purchases_are_remembered_once_and_bounded():
    events = [behaviour(f"e{n}", item=f"i{n % (PURCHASES_KEPT + 5)}", behavior="purchase", ts=T0 + n)
              for n in range(2 * PURCHASES_KEPT + 10)]
    state, _ = run(events)
    assert len(state.purchased) == PURCHASES_KEPT
    assert len(set(state.purchased)) == PURCHASES_KEPT


def test_the_last_purchase_per_category_is_the_newest_purchase_there():
    events = [behaviour("e1", "i1", "purchase", ts=T0, category="shoes"),
              behaviour("e2", "i2", "purchase", ts=T0 + 1, category="hats"),
              behaviour("e3", "i3", "purchase", ts=T0 + 2, category="shoes"),
              behaviour("e4", "i4", "cart", ts=T0 + 3, category="shoes"),  # not a purchase
              behaviour("e5", "i5", "purchase", ts=T0 + 4, category=None)]  # no category to file it under
    state, _ = run(events)
    assert state.last_purchase == {"shoes": ("i3", T0 + 2), "hats": ("i2", T0 + 1)}
    assert "i5" in state.purchased


def test_the_last_purchase_keeps_the_most_recent_categories_when_bounded():
    profile = load_config(overrides={"profile": {"max_categories": 2}}).profile
    events = [behaviour(f"e{n}", f"i{n}", "purchase", ts=T0 + n, category=f"c{n}") for n in range(4)]
    state, _ = run(events, profile=profile)
    assert state.last_purchase == {"c2": ("i2", T0 + 2), "c3": ("i3", T0 + 3)}


def test_a_late_purchase_does_not_replace_a_newer_last_purchase():
    state, _ = run([behaviour("e1", "new", "purchase", ts=T0 + HOUR_MS, category="shoes"),
                    behaviour("e2", "old", "purchase", ts=T0, category="shoes")])
    assert state.last_purchase == {"shoes": ("new", T0 + HOUR_MS)}


@PROPERTY
@given(events=st.lists(st.tuples(st.integers(0, 15), st.sampled_from(["view", "click", "cart", "purchase",
                                                                     "favourite", "search"]),
                                 st.integers(0, 5), st.integers(-HOUR_MS, 3 * HOUR_MS)), max_size=60),
       history_size=st.integers(1, 6))
def test_history_is_bounded_distinct_and_ends_with_the_latest_item(events, history_size):
    profile = load_config(overrides={"profile": {"history_size": history_size}}).profile
    state = UserContext()
    for n, (item, behavior, category, delta) in enumerate(events):
        event = behaviour(f"e{n}", item=f"i{item}", behavior=behavior, category=f"c{category}", ts=T0 + delta,
                          brand=f"b{item % 3}", price=float(item * 40))
        step = observe(state, event, INTAKE, profile, SEGMENTS)
        state = step.state
        items = [entry.item_id for entry in state.history]
        assert len(items) <= history_size
        assert len(set(items)) == len(items)
        assert items[-1] == event.item_id
        sent = [item for item, _ in step.to_item_hop.history]
        assert event.item_id not in sent
        assert len(set(sent)) == len(sent) <= history_size
        assert len(state.purchased) == len(set(state.purchased)) <= PURCHASES_KEPT
        for scores in (state.category_affinity, state.brand_affinity, state.price_affinity):
            assert len(scores.scores) <= profile.max_categories
        assert len(state.last_purchase) <= profile.max_categories
        assert set(state.active_hours.scores) <= {str(h) for h in range(24)}


# --- repeats -------------------------------------------------------------------------------------

def test_a_repeat_sends_no_history_and_an_item_that_left_the_history_is_new_again():
    profile = load_config(overrides={"profile": {"history_size": 2}}).profile
    events = [behaviour("e1", "a"), behaviour("e2", "b", ts=T0 + 1), behaviour("e3", "a", "cart", ts=T0 + 2),
              behaviour("e4", "c", ts=T0 + 3), behaviour("e5", "b", ts=T0 + 4)]
    state, steps = run(events, profile=profile)
    updates = [s.to_item_hop for s in steps]
    assert [u.repeat for u in updates] == [False, False, True, False, False]
    assert updates[2].history == ()
    # after c, the history holds (a, c): b has left it, so b is a first visit again
    assert updates[4].history == (("a", "c1"), ("c", "c1"))
    assert [e.item_id for e in state.history] == ["c", "b"]
    assert state.history[-1] == HistoryEntry("b", "c1", "view", T0 + 4)


def test_a_repeat_still_updates_the_profile_and_may_trigger():
    state, steps = run([behaviour("e1", "a", ts=T0), behaviour("e2", "a", "purchase", ts=T0 + GAP)])
    repeat = steps[1].to_item_hop
    assert repeat.repeat and repeat.trigger and repeat.summary.purchased == ("a",)
    assert state.category_affinity.scores["c1"] == pytest.approx(
        WEIGHTS["view"] * 0.5 ** (GAP / HALF_LIFE) + WEIGHTS["purchase"], rel=1e-12)


@PROPERTY
@given(visits=st.lists(st.integers(0, 6), max_size=40), history_size=st.integers(1, 5))
def test_repeat_means_the_item_is_among_the_recent_items_and_then_no_history_is_sent(visits, history_size):
    profile = load_config(overrides={"profile": {"history_size": history_size}}).profile
    recent: list[str] = []  # model: recent distinct items, oldest first, at most history_size
    state = UserContext()
    for n, item in enumerate(visits):
        step = observe(state, behaviour(f"e{n}", f"i{item}", ts=T0 + n), INTAKE, profile, SEGMENTS)
        update = step.to_item_hop
        assert update.repeat == (f"i{item}" in recent)
        assert [i for i, _ in update.history] == ([] if update.repeat else recent)
        recent = ([i for i in recent if i != f"i{item}"] + [f"i{item}"])[-history_size:]
        state = step.state
        assert [e.item_id for e in state.history] == recent


# --- triggers ------------------------------------------------------------------------------------

def test_at_most_one_trigger_per_gap_and_exactly_at_the_gap_again():
    state, steps = run([behaviour("e1", ts=T0), behaviour("e2", "i2", ts=T0 + GAP - 1),
                        behaviour("e3", "i3", ts=T0 + GAP)])
    assert [s.to_item_hop.trigger for s in steps] == [True, False, True]
    assert state.last_trigger_ts == T0 + GAP


def test_a_late_event_does_not_trigger():
    _, steps = run([behaviour("e1", ts=T0 + GAP), behaviour("e2", "i2", ts=T0)])
    assert [s.to_item_hop.trigger for s in steps] == [True, False]


def test_a_non_trigger_behaviour_never_triggers_but_still_reaches_the_item_hop():
    search_with_item = BehaviourEvent(event_id="e1", user_id="u1", behavior="search", ts=T0, item_id="i1")
    step = observe(UserContext(), search_with_item, INTAKE, PROFILE, SEGMENTS)
    assert "search" not in PROFILE.trigger_behaviors
    assert step.to_item_hop is not None and not step.to_item_hop.trigger
    assert step.to_item_hop.summary is None
    assert step.state.last_trigger_ts is None


def test_a_trigger_carries_the_normalised_profile_a_non_trigger_does_not():
    events = [behaviour("e1", "i1", "purchase", ts=T0, category="c1", brand="acme", price=30.0),
              behaviour("e2", "i2", "view", ts=T0 + 1, category="c2", brand="zeta", price=600.0),
              behaviour("e3", "i3", "view", ts=T0 + GAP, category="c2", brand="zeta", price=600.0)]
    _, steps = run(events)
    first, skipped, trigger = (s.to_item_hop for s in steps)
    assert first.trigger and first.summary.purchased == ("i1",)
    assert first.summary.last_purchase == {"c1": ("i1", T0)}
    assert not skipped.trigger and skipped.summary is None
    assert trigger.trigger and trigger.summary.purchased == ("i1",)
    assert trigger.summary.recent == ("i1", "i2", "i3")
    purchase, view = WEIGHTS["purchase"], WEIGHTS["view"]
    c2 = view * 0.5 ** ((GAP - 1) / HALF_LIFE) + view
    c1 = purchase * 0.5 ** (GAP / HALF_LIFE)
    expected = {"c1": 1.0, "c2": round(c2 / c1, 4)}  # scaled so the strongest is 1.0
    assert dict(trigger.summary.categories) == pytest.approx(expected)
    assert dict(trigger.summary.brands) == pytest.approx({"acme": 1.0, "zeta": round(c2 / c1, 4)})
    assert dict(trigger.summary.price_bands) == pytest.approx({band(30.0): 1.0, band(600.0): round(c2 / c1, 4)})
    hours = dict(trigger.summary.active_hours)
    assert max(hours.values()) == 1.0 and set(hours) == {utc_hour(T0), utc_hour(T0 + GAP)}
    # the summary is what the item hop receives: it survives the record's encoding
    assert ItemUpdate.decode(trigger.encode()) == trigger


# --- segment updates -----------------------------------------------------------------------------

def test_the_first_item_event_sends_the_profile_vector_to_the_segmenter():
    step = observe(UserContext(), behaviour("e1", "i1", category="c1", brand="acme", price=30.0), INTAKE, PROFILE,
                   SEGMENTS)
    update = step.to_segmenter
    assert isinstance(update, SegmentUpdate)
    assert (update.user_id, update.ts, update.items) == ("u1", T0, ("i1",))
    features = [("cat:c1", 1.0), ("brand:acme", 1.0), (f"price:{band(30.0)}", 1.0)]
    assert update.vector == pytest.approx(profile_vector(features, SEGMENTS.dimensions))
    assert len(update.vector) == SEGMENTS.dimensions
    assert math.fsum(v * v for v in update.vector) == pytest.approx(1.0)
    assert step.state.last_segment_ts == T0
    assert SegmentUpdate.decode(update.encode()) == update


def test_segment_updates_are_sent_at_most_once_per_gap_and_exactly_at_the_gap_again():
    state, steps = run([behaviour("e1", "a", ts=T0), behaviour("e2", "b", ts=T0 + SEGMENT_GAP - 1),
                        behaviour("e3", "c", ts=T0 + SEGMENT_GAP), behaviour("e4", "d", ts=T0 + SEGMENT_GAP + 1)])
    assert [s.to_segmenter is not None for s in steps] == [True, False, True, False]
    assert steps[2].to_segmenter.items == ("a", "b", "c")  # the recent items as of then
    assert state.last_segment_ts == T0 + SEGMENT_GAP


def test_a_late_event_sends_no_segment_update():
    _, steps = run([behaviour("e1", "a", ts=T0 + SEGMENT_GAP), behaviour("e2", "b", ts=T0)])
    assert [s.to_segmenter is not None for s in steps] == [True, False]


def test_disabled_segments_send_nothing_and_a_zero_gap_sends_on_every_item_event():
    off = load_config(overrides={"segments": {"enabled": False}}).segments
    state, steps = run([behaviour("e1", "a"), behaviour("e2", "b", ts=T0 + SEGMENT_GAP)], segments=off)
    assert all(s.to_segmenter is None for s in steps) and state.last_segment_ts is None
    every = load_config(overrides={"segments": {"min_history": 1, "min_update_gap_ms": 0}}).segments
    _, steps = run([behaviour("e1", "a"), behaviour("e2", "b"), behaviour("e3", "c", ts=T0 + 1)], segments=every)
    assert all(s.to_segmenter is not None for s in steps)


@PROPERTY
@given(deltas=st.lists(st.tuples(st.integers(0, 2 * HOUR_MS), st.booleans()), max_size=40),
       gap=st.sampled_from([0, 1, 60_000, HOUR_MS]))
def test_segment_updates_follow_the_gap_exactly(deltas, gap):
    """Model, for event time that never goes back: send when nothing was sent yet or the gap has passed."""
    segments = load_config(overrides={"segments": {"min_history": 1, "min_update_gap_ms": gap}}).segments
    state, clock, last_sent = UserContext(), T0, None
    for n, (delta, search) in enumerate(deltas):
        clock += delta
        event = (BehaviourEvent(event_id=f"e{n}", user_id="u1", behavior="search", ts=clock, query="q") if search
                 else behaviour(f"e{n}", f"i{n % 4}", ts=clock))
        step = observe(state, event, INTAKE, PROFILE, segments)
        expected = not search and (last_sent is None or clock - last_sent >= gap)
        assert (step.to_segmenter is not None) == expected
        if expected:
            last_sent = clock
            assert step.to_segmenter.ts == clock
        assert step.state.last_segment_ts == last_sent
        state = step.state


def test_a_user_is_segmented_only_once_the_history_reaches_min_history():
    segments = load_config(overrides={"segments": {"min_history": 3, "min_update_gap_ms": 0}}).segments
    _, steps = run([behaviour("e1", "a"), behaviour("e2", "b", ts=T0 + 1), behaviour("e3", "a", ts=T0 + 2),
                    behaviour("e4", "c", ts=T0 + 3)], segments=segments)
    # a, b, a again (still two distinct items), then c: the third distinct item
    assert [step.to_segmenter is not None for step in steps] == [False, False, False, True]
    assert steps[-1].to_segmenter.items == ("b", "a", "c")


def test_behaviour_that_passes_dedup_feeds_the_windows_only_when_they_run():
    event = behaviour("e1")
    windows_on = user_context.observe(UserContext(), event, INTAKE, PROFILE, SEGMENTS, windows=True)
    assert emitted(windows_on, AcceptedBehaviour) == [AcceptedBehaviour(event=event)]
    assert emitted(user_context.observe(UserContext(), event, INTAKE, PROFILE, SEGMENTS), AcceptedBehaviour) == []
    duplicate = user_context.observe(windows_on.state, event, INTAKE, PROFILE, SEGMENTS, windows=True)
    assert duplicate.emit == () and duplicate.counts == ("events_duplicate",)
    order = OrderEvent(event_id="o1", user_id="u1", order_id="o", status="shipped", ts=T0)
    assert emitted(user_context.observe(UserContext(), order, INTAKE, PROFILE, SEGMENTS, windows=True),
                   AcceptedBehaviour) == []


def test_an_open_counts_towards_the_hour_it_was_opened_in_and_reaches_the_push_policy():
    opened = FeedbackEvent(event_id="open-1", user_id="u1", action="open", ts=T0, notification_id="n1")
    step = user_context.observe(UserContext(), opened, INTAKE, PROFILE, SEGMENTS, open_weight=3.0)
    hour = str((T0 // HOUR_MS) % 24)  # 22:13 UTC
    assert step.state.active_hours == DecayedScores(T0, {hour: 3.0})
    assert [type(m) for m in step.emit] == [AccountEvent]
    clicked = FeedbackEvent(event_id="click-1", user_id="u1", action="click", ts=T0, notification_id="n1")
    assert user_context.observe(UserContext(), clicked, INTAKE, PROFILE, SEGMENTS,
                                open_weight=3.0).state.active_hours == DecayedScores()
