"""user_context.observe: dedup by event id, recent distinct items, decayed affinity, marketing triggers."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.config import JobConfig, load_config
from operators.user_context import PURCHASES_KEPT, observe
from state_schemas.events import BehaviourEvent, ErasureRequest, FeedbackEvent, OrderEvent
from state_schemas.state import DecayedScores, HistoryEntry, UserContext

HOUR_MS = 3_600_000
T0 = 1_700_000_000_000
CONFIG = JobConfig()
INTAKE, PROFILE = CONFIG.intake, CONFIG.profile
GAP = PROFILE.min_trigger_gap_ms

PROPERTY = settings(max_examples=150, deadline=None)


def behaviour(event_id: str, item: str | None = "i1", behavior: str = "view", ts: int = T0,
              category: str | None = "c1", user: str = "u1") -> BehaviourEvent:
    return BehaviourEvent(event_id=event_id, user_id=user, behavior=behavior, ts=ts, item_id=item,
                          category_id=category)


def run(events, intake=INTAKE, profile=PROFILE, state=None):
    state = state or UserContext()
    steps = []
    for event in events:
        step = observe(state, event, intake, profile)
        steps.append(step)
        state = step.state if step.state is not None else UserContext()
    return state, steps


# --- erasure -------------------------------------------------------------------------------------

def test_erasure_clears_the_state_and_is_passed_on_to_the_push_hop():
    state, _ = run([behaviour("e1"), behaviour("e2", item="i2", ts=T0 + GAP, behavior="purchase")])
    assert state.history and state.seen and state.purchased
    erase = ErasureRequest(event_id="x1", user_id="u1", ts=T0 + 2 * GAP)
    step = observe(state, erase, INTAKE, PROFILE)
    assert step.state is None
    assert step.to_push_hop == erase
    assert step.to_item_hop is None and not step.duplicate


def test_erasure_clears_even_an_empty_state_and_a_repeated_erasure():
    assert observe(UserContext(), ErasureRequest("x", "u", T0), INTAKE, PROFILE).state is None
    seen = UserContext(seen={"x": T0})
    assert observe(seen, ErasureRequest("x", "u", T0), INTAKE, PROFILE).state is None


# --- dedup ---------------------------------------------------------------------------------------

def test_a_repeated_event_id_is_a_duplicate_and_changes_nothing():
    state, _ = run([behaviour("e1")])
    step = observe(state, behaviour("e1", item="other", ts=T0 + 5), INTAKE, PROFILE)
    assert step.duplicate
    assert step.state == state
    assert step.to_item_hop is None and step.to_push_hop is None


def test_order_and_feedback_events_are_deduplicated_too():
    order = OrderEvent("o-e", "u1", "o1", "shipped", T0)
    feedback = FeedbackEvent("f-e", "u1", "unsubscribe", T0)
    state, steps = run([order, feedback, order, feedback])
    assert [s.duplicate for s in steps] == [False, False, True, True]
    assert [s.to_push_hop for s in steps] == [order, feedback, None, None]
    assert all(s.to_item_hop is None for s in steps)
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
        step = observe(state, event, intake, PROFILE)
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
    step = observe(UserContext(), event, INTAKE, PROFILE)
    assert step.state.history == (HistoryEntry("i1", "c1", "view", T0),)
    assert step.state.category_affinity == DecayedScores(at=T0, scores={"c1": PROFILE.event_weights["view"]})
    assert step.state.seen == {"e1": T0}
    update = step.to_item_hop
    assert update.event == event.to_dict()
    assert update.history == ()  # nothing was seen before
    assert step.to_push_hop is None and not step.duplicate


def test_history_sent_is_the_previous_distinct_items_without_the_current_one():
    events = [behaviour("e1", "a", category="ca"), behaviour("e2", "b", category=None, ts=T0 + 1),
              behaviour("e3", "a", category="ca", ts=T0 + 2), behaviour("e4", "c", category="cc", ts=T0 + 3)]
    state, steps = run(events)
    assert steps[2].to_item_hop.history == (("b", None),)
    assert steps[3].to_item_hop.history == (("b", None), ("a", "ca"))
    # Re-visiting an item moves it to the end: history is ordered oldest -> newest, distinct.
    assert [e.item_id for e in state.history] == ["b", "a", "c"]


def test_affinity_decays_by_half_life_and_adds_weights():
    half_life = PROFILE.half_life_hours * HOUR_MS
    events = [behaviour("e1", "i1", "view", ts=T0, category="shoes"),
              behaviour("e2", "i2", "click", ts=T0 + int(half_life), category="shoes"),
              behaviour("e3", "i3", "cart", ts=T0 + int(half_life), category="hats")]
    state, _ = run(events)
    view, click, cart = (PROFILE.event_weights[b] for b in ("view", "click", "cart"))
    assert state.category_affinity.at == T0 + int(half_life)
    assert state.category_affinity.scores["shoes"] == pytest.approx(view / 2 + click, rel=1e-12)
    assert state.category_affinity.scores["hats"] == pytest.approx(cart, rel=1e-12)


def test_a_search_without_item_shapes_affinity_but_reaches_no_item_hop():
    search = BehaviourEvent(event_id="s1", user_id="u1", behavior="search", ts=T0, category_id="c9",
                            query="red shoes")
    step = observe(UserContext(), search, INTAKE, PROFILE)
    assert step.to_item_hop is None and step.to_push_hop is None
    assert step.state.history == ()
    assert step.state.category_affinity.scores == {"c9": PROFILE.event_weights["search"]}
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


@PROPERTY
@given(events=st.lists(st.tuples(st.integers(0, 15), st.sampled_from(["view", "click", "cart", "purchase",
                                                                     "favourite", "search"]),
                                 st.integers(0, 5), st.integers(-HOUR_MS, 3 * HOUR_MS)), max_size=60),
       history_size=st.integers(1, 6))
def test_history_is_bounded_distinct_and_ends_with_the_latest_item(events, history_size):
    profile = load_config(overrides={"profile": {"history_size": history_size}}).profile
    state = UserContext()
    for n, (item, behavior, category, delta) in enumerate(events):
        event = behaviour(f"e{n}", item=f"i{item}", behavior=behavior, category=f"c{category}", ts=T0 + delta)
        step = observe(state, event, INTAKE, profile)
        state = step.state
        items = [entry.item_id for entry in state.history]
        assert len(items) <= history_size
        assert len(set(items)) == len(items)
        assert items[-1] == event.item_id
        sent = [item for item, _ in step.to_item_hop.history]
        assert event.item_id not in sent
        assert len(set(sent)) == len(sent) <= history_size
        assert len(state.purchased) == len(set(state.purchased)) <= PURCHASES_KEPT
        assert len(state.category_affinity.scores) <= profile.max_categories


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
    step = observe(UserContext(), search_with_item, INTAKE, PROFILE)
    assert "search" not in PROFILE.trigger_behaviors
    assert step.to_item_hop is not None and not step.to_item_hop.trigger
    assert step.state.last_trigger_ts is None


def test_a_trigger_carries_normalised_affinity_and_purchases_a_non_trigger_does_not():
    events = [behaviour("e1", "i1", "purchase", ts=T0, category="c1"),
              behaviour("e2", "i2", "view", ts=T0 + 1, category="c2"),
              behaviour("e3", "i3", "view", ts=T0 + GAP, category="c2")]
    _, steps = run(events)
    first, skipped, trigger = (s.to_item_hop for s in steps)
    assert first.trigger and first.exclude == ("i1",)
    assert not skipped.trigger and skipped.affinity == () and skipped.exclude == ()
    assert trigger.trigger and trigger.exclude == ("i1",)
    purchase, view = PROFILE.event_weights["purchase"], PROFILE.event_weights["view"]
    half_life = PROFILE.half_life_hours * HOUR_MS
    c2 = view * 0.5 ** ((GAP - 1) / half_life) + view
    c1 = purchase * 0.5 ** (GAP / half_life)
    assert dict(trigger.affinity) == pytest.approx({"c1": 1.0, "c2": round(c2 / c1, 4)})
