"""Purchase intent: the activity record, the features and the FTRL-Proximal model."""
import math
import random

import pytest
from hypothesis import given, settings, strategies as st

from config import JobConfig
from operators import ftrl, intent
from state_schemas.events import BehaviourEvent
from state_schemas.state import FtrlModel, HistoryEntry, IntentActivity
from state_schemas.units import HOUR_MS

T0 = 1_700_000_000_000
GAP = 30 * 60_000
CONFIG = JobConfig().intent


def view(ts, behavior="view", item="i1", category="c1"):
    return BehaviourEvent(event_id=f"e{ts}", user_id="u", behavior=behavior, ts=ts, item_id=item, category_id=category)


def test_counts_decay_with_their_half_lives_and_sessions_end_after_the_gap():
    a = intent.observe(IntentActivity(), view(T0), GAP)
    a = intent.observe(a, view(T0 + HOUR_MS, "cart"), GAP)  # an hour later: a new session
    assert a.session_events == 1 and a.session_start == T0 + HOUR_MS
    assert a.short == pytest.approx((0.5, 0.0, 1.0, 0.0))  # the view is one short half-life old
    assert a.long == pytest.approx((2 ** (-1 / 24), 0.0, 1.0, 0.0))
    b = intent.observe(a, view(T0 + HOUR_MS + 60_000), GAP)
    assert b.session_events == 2 and b.session_start == T0 + HOUR_MS


def test_a_late_event_counts_without_moving_time_back():
    a = intent.observe(IntentActivity(), view(T0 + HOUR_MS), GAP)
    late = intent.observe(a, view(T0), GAP)
    assert late.at == T0 + HOUR_MS and late.last_ts == T0 + HOUR_MS and late.short[0] == pytest.approx(2.0)


def test_the_features_of_a_worked_example():
    before = intent.observe(IntentActivity(), view(T0, item="a", category="c1"), GAP)
    event = view(T0 + 2 * HOUR_MS, "cart", item="a", category="c1")
    after = intent.observe(before, event, GAP)
    history = (HistoryEntry("a", "c1", "view", T0), HistoryEntry("b", "c2", "view", T0))
    x = dict(zip(intent.FEATURES, intent.features(before, after, event, history, history_size=10)))
    assert x["hours_since_previous"] == pytest.approx(math.log1p(2) / math.log1p(24 * 7))
    assert x["carts_24h"] == pytest.approx(math.log1p(1.0)) and x["is_cart"] == 1.0 and x["is_view"] == 0.0
    assert x["category_focus"] == pytest.approx(2 / 3)  # c1, c2 and this event's c1
    assert x["repeat_item"] == 1.0 and x["distinct_recent"] == pytest.approx(0.2)


def test_ftrl_learns_a_planted_logistic_model_on_a_stationary_stream():
    rng = random.Random(3)
    truth = (-1.0, 2.5, -2.0)
    fast = CONFIG.__class__(ftrl_alpha=1.0)  # the default rate is gentler: it converges, only later
    model = FtrlModel()
    for _ in range(20000):
        x = (1.0, rng.random(), rng.random())
        p = 1 / (1 + math.exp(-sum(w * v for w, v in zip(truth, x))))
        model = ftrl.learn(model, x, rng.random() < p, fast)
    learned = ftrl.weights(model, fast)
    # L2 shrinks a little; the signs and the sizes are the planted ones.
    assert learned == pytest.approx(truth, abs=0.35)
    assert model.examples == 20000


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.lists(st.floats(-3, 3), min_size=3, max_size=3), st.booleans()), max_size=30))
def test_predictions_are_probabilities_and_an_untrained_model_says_one_half(examples):
    model = FtrlModel()
    assert ftrl.predict(model, (1.0, 0.0, 0.0), CONFIG) == 0.5
    for x, label in examples:
        model = ftrl.learn(model, tuple(x), label, CONFIG)
        assert 0.0 < ftrl.predict(model, tuple(x), CONFIG) < 1.0


def test_l1_keeps_a_useless_feature_at_exactly_zero():
    rng = random.Random(5)
    sparse = CONFIG.__class__(ftrl_l1=30.0)  # about four standard deviations of the noise's random walk in z
    model = FtrlModel()
    for _ in range(3000):
        x = (1.0, rng.random() - 0.5)  # the second feature is noise
        model = ftrl.learn(model, x, rng.random() < 0.3, sparse)
    assert ftrl.weights(model, sparse)[1] == 0.0
    assert ftrl.weights(model, CONFIG.__class__(ftrl_l1=0.0))[1] != 0.0  # without L1 the noise gets a weight
