"""Purchase intent: the activity record, the features and the FTRL-Proximal model."""
import math
import random

import pytest
from hypothesis import given, settings, strategies as st

from config import JobConfig, load_config
from operators import ftrl, intent
from operators.local_pipeline import DictStore, LocalPipeline, Outputs
from operators.privacy import pseudonym
from operators.steps import ReplaceValue, StepContext, emitted
from state_schemas.events import BehaviourEvent, encode
from state_schemas.hops import PUSH_POLICY, IntentExample, IntentScore
from state_schemas.redis_keys import RedisKeys
from state_schemas.state import FtrlModel, HistoryEntry, IntentActivity, IntentModel, PendingIntent
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


# --- in the job: labels, examples, the one model, the pipeline ------------------------------------------------

JOB = load_config()
HORIZON = int(JOB.intent.horizon_hours * HOUR_MS)


def pending(*times):
    return tuple(PendingIntent(ts, (float(ts),)) for ts in times)


def test_a_horizon_passed_is_negative_and_a_cart_within_it_is_positive():
    waiting = pending(T0, T0 + HOUR_MS, T0 + 2 * HOUR_MS)
    still, known = intent.labelled(waiting, T0 + HORIZON, target=False, config=JOB.intent)
    assert still == waiting[1:] and known == (((float(T0),), False),)
    still, known = intent.labelled(waiting, T0 + HOUR_MS + HORIZON, target=True, config=JOB.intent)
    # the first two expired (negative: the cart came at or after their horizon); the third is positive
    assert still == () and known == (((float(T0),), False), ((float(T0 + HOUR_MS),), False),
                                     ((float(T0 + 2 * HOUR_MS),), True))
    still, known = intent.labelled(pending(T0), T0, target=True, config=JOB.intent)
    assert still == pending(T0) and known == ()  # an event does not label itself


def test_the_first_event_of_each_hour_waits_for_its_label_and_is_scored_as_is_each_cart():
    activity, waiting = IntentActivity(), ()
    sent, hour = [], T0 - T0 % HOUR_MS  # clock hours
    for minutes in (0, 10, 50, 61, 62, 125):
        activity, waiting, example = intent.track(activity, waiting, view(hour + minutes * 60_000), (), 20, GAP,
                                                  JOB.intent)
        sent.append(example)
    assert [p.ts for p in waiting] == [hour, hour + 61 * 60_000, hour + 125 * 60_000]
    # the other views of an hour send nothing: no score, no label settled
    assert [m is not None for m in sent] == [True, False, False, True, False, True]
    assert all(len(m.x) == len(intent.FEATURES) and m.learned == () for m in sent if m is not None)
    cart = view(hour + 126 * 60_000, behavior="cart")
    _, after_cart, scored = intent.track(activity, waiting, cart, (), 20, GAP, JOB.intent)
    # a cart in an hour that has an example: it settles the three waiting as positive, is scored and waits itself
    assert len(scored.x) == len(intent.FEATURES) and [label for _, label in scored.learned] == [True, True, True]
    assert after_cart == (PendingIntent(cart.ts, scored.x),)
    capped = load_config(overrides={"intent": {"pending_per_user": 2}}).intent
    _, waiting, _ = intent.track(activity, pending(T0, T0 + HOUR_MS), view(T0 + 2 * HOUR_MS), (), 20, GAP, capped)
    assert [p.ts for p in waiting] == [T0 + HOUR_MS, T0 + 2 * HOUR_MS]
    assert intent.next_expiry(pending(T0 + 1), JOB.intent) == T0 + HORIZON + HOUR_MS - T0 % HOUR_MS
    assert intent.next_expiry((), JOB.intent) is None


def test_the_model_learns_what_an_event_settles_before_it_scores_the_event():
    context = StepContext(0, None, JOB)
    x = (1.0,) + (0.0,) * (len(intent.FEATURES) - 1)
    untrained = intent.learn_and_score(IntentModel(), IntentExample(user_id="u", ts=T0, x=x), context)
    assert emitted(untrained, IntentScore)[0].probability == 0.5 and untrained.state == IntentModel()
    taught = intent.learn_and_score(IntentModel(), IntentExample(user_id="u", ts=T0, x=x, learned=((x, True),) * 5),
                                    context)
    score = emitted(taught, IntentScore)[0]
    assert score.user_id == "u" and score.probability > 0.5 and taught.state.model.examples == 5
    only_labels = intent.learn_and_score(taught.state, IntentExample(user_id="u", ts=T0, learned=((x, False),)),
                                         context)
    assert only_labels.emit == () and only_labels.state.model.examples == 6


def test_through_the_jobs_steps_carts_raise_the_intent_the_push_policy_keeps_and_serves():
    """Shoppers who cart go on to buy within the day; shoppers who only view never do. The model learns it online,
    and a fresh cart then scores above a fresh view."""
    store, out = DictStore(), Outputs()
    pipeline = LocalPipeline(JOB, store)
    rng = random.Random(3)
    for n in range(400):
        start, user = T0 + n * 10 * 60_000, f"u{n}"
        behaviours = ["view", "cart", "purchase"] if rng.random() < 0.5 else ["view", "view", "view"]
        for k, behavior in enumerate(behaviours):
            event = BehaviourEvent(event_id=f"{user}-{k}", user_id=user, behavior=behavior, ts=start + k * 60_000,
                                   item_id=f"i{rng.randrange(30)}", category_id="c1")
            pipeline.process(encode(event), start, out)
    assert pipeline.counters["intent_examples_learned"] > 300
    probe = T0 + 400 * 10 * 60_000
    for user, behavior in (("viewer", "view"), ("carter", "cart")):
        pipeline.process(encode(BehaviourEvent(event_id=user, user_id=user, behavior=behavior, ts=probe,
                                               item_id="i1", category_id="c1")), probe, out)
    viewer, carter = pipeline.state(PUSH_POLICY, "viewer"), pipeline.state(PUSH_POLICY, "carter")
    assert carter.intent > viewer.intent + 0.1 and viewer.intent_at == probe
    served = [e for e in out.serving if isinstance(e, ReplaceValue)
              and e.key == RedisKeys(JOB.redis.key_prefix).intent(pseudonym("carter", JOB.privacy.pseudonym_key))]
    assert served and served[-1].value == {"p": carter.intent, "at": probe}
