"""A browse recommendation is ranked once, when it fires: events only update state (issue 9, cost)."""
from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators import push_policy, scorer
from state_schemas.state import Planned, PushState, Trigger
from tests.unit.operators.test_push_policy import (CONFIG, HOUR_MS, SENT, T0, config, fire, handle, item_signal,
                                                   recommendation, NO_SIDE, USER, CREATED)


@pytest.fixture
def rankings(monkeypatch):
    """Every call of the real scorer, counted (the scorer itself runs unchanged)."""
    calls = []

    def counted(*args, **kwargs):
        calls.append(args[0].event.event_id)
        return scorer.rank(*args, **kwargs)
    monkeypatch.setattr(push_policy, "rank", counted)
    return calls


def test_a_session_of_triggers_is_ranked_once_when_its_recommendation_fires(rankings):
    state, minute = PushState(), 60_000
    for n in range(6):  # six triggers a minute apart: one session
        state = handle(state, item_signal(event_id=f"t{n}", ts=T0 + n * minute), USER, CREATED, NO_SIDE,
                       CONFIG).state
    assert rankings == []
    sent = fire(state, T0 + 5 * minute + CONFIG.policy.session_gap_ms)
    assert rankings == ["t5"]  # the newest trigger, once
    assert sent.notification is not None and sent.notification.source_event_id == "t5"


def test_a_capped_recommendation_is_ranked_before_the_gate_and_serves_its_top_n(rankings):
    capped = fire(handle(PushState(), item_signal(event_id="t1"), USER, CREATED, NO_SIDE,
                         config(daily_marketing_cap=0)).state, SENT, config(daily_marketing_cap=0))
    assert capped.suppressed == "daily_cap" and rankings == ["t1"]
    assert len(capped.serving) == 2 and capped.state.agenda == ()  # recommendations are dropped when capped


def test_a_recommendation_ranked_when_fired_sees_what_the_shopper_was_sent_since_the_trigger(rankings):
    """Ranked at the trigger, it would name an item the shopper was sent in between; ranked when it fires
    it leaves out what the cooldown covers now."""
    cfg = config(min_marketing_gap_ms=0)
    first = fire(handle(PushState(), item_signal(event_id="t1"), USER, CREATED, NO_SIDE, cfg).state, SENT, cfg)
    assert first.notification.item_ids == ("a", "b", "c")
    later = T0 + 2 * HOUR_MS
    held = handle(first.state, item_signal(event_id="t2", ts=later), USER, CREATED, NO_SIDE, cfg).state
    again = fire(held, later + cfg.policy.session_gap_ms, cfg)
    assert again.notification.item_ids == ("d",)  # a, b and c are within the re-notify cooldown


def test_a_v4_entry_ranked_at_its_trigger_fires_with_its_own_items(rankings):
    v4 = orjson.loads(handle(PushState(), item_signal(event_id="t1"), USER, CREATED, NO_SIDE, CONFIG).state.encode())
    v4["v"], entry = 4, v4["plan"][0]
    del entry["t"]
    entry["c"] = [["z", 0.9, "cz", "picked for you", "Old Pick", 12.5]]
    state = PushState.decode(orjson.dumps(v4))
    sent = fire(state, SENT)
    assert sent.notification.item_ids == ("z",) and rankings == []


@settings(max_examples=60, deadline=None)
@given(gaps=st.lists(st.integers(min_value=1, max_value=3 * HOUR_MS), min_size=1, max_size=12))
def test_rankings_never_outnumber_the_recommendations_that_fire(gaps):
    """Whatever the spacing of the triggers, ranking happens only for a recommendation being decided."""
    calls = []
    real = push_policy.rank

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    push_policy.rank = counted
    try:
        state, ts, decided = PushState(), T0, 0
        for n, gap in enumerate(gaps):
            ts += gap
            result = handle(state, item_signal(event_id=f"t{n}", ts=ts), USER, CREATED, NO_SIDE, CONFIG)
            decided += len(result.notifications) + sum(1 for c in result.counts if c.startswith("suppressed_"))
            state = result.state
        waiting = [entry for entry in state.agenda if isinstance(entry, Planned) and entry.trigger is not None]
        assert all(isinstance(entry.trigger, Trigger) for entry in waiting)
        assert len(calls) == decided  # each decided recommendation ranked once; the one still waiting not yet
        assert len(waiting) <= 1
    finally:
        push_policy.rank = real


def test_the_waiting_trigger_keeps_no_content_vector():
    signal = item_signal(event_id="t1", vector=[("wool", 0.8), ("red", 0.6)], title="Red Wool Scarf")
    entry = recommendation(handle(PushState(), signal, USER, CREATED, NO_SIDE, CONFIG).state)
    assert entry.trigger.card.vector == () and entry.trigger.card.title == "Red Wool Scarf"
    assert [n.item_id for n in entry.trigger.neighbours] == ["a", "b", "c", "d"]
