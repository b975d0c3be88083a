"""The prequential intent evaluation: AUC by hand, and labels only from what came after."""
import numpy as np
import pytest

from config import JobConfig, load_config
from evaluation.intent import evaluate_intent, weighted_auc
from notify_engine.generator import GeneratorConfig, generate_events
from operators.intent import TARGETS
from operators.local_pipeline import DictStore, LocalPipeline, Outputs
from operators.topology import PUSH_POLICY
from state_schemas.events import BehaviourEvent, encode
from state_schemas.units import HOUR_MS

T0 = 1_700_000_000_000


def test_auc_counts_pairs_and_half_for_ties():
    labels = np.array([True, False, True, False])
    # positives 0.9, 0.4; negatives 0.4, 0.1: pairs (0.9>0.4) (0.9>0.1) (0.4=0.4: half) (0.4>0.1) = 3.5 / 4
    assert weighted_auc(labels, np.array([0.9, 0.4, 0.4, 0.1])) == pytest.approx(3.5 / 4)
    assert weighted_auc(labels, np.array([0.0, 1.0, 0.0, 1.0])) == 0.0
    # weights are repetitions: the second negative twice
    assert weighted_auc(labels, np.array([0.9, 0.4, 0.4, 0.1]), np.array([1, 1, 1, 2.0])) == pytest.approx(5.5 / 6)
    assert np.isnan(weighted_auc(np.array([True]), np.array([0.3])))


def test_an_event_is_labelled_by_carts_within_the_horizon_after_it_and_censored_at_the_end():
    def event(user, hours, behavior="view"):
        return BehaviourEvent(event_id=f"{user}{hours}", user_id=user, behavior=behavior, ts=T0 + int(hours * HOUR_MS),
                              item_id="i")
    log = [event("a", 0), event("b", 0), event("a", 1, "cart"), event("b", 30), event("c", 100), event("c", 120)]
    report = evaluate_intent(log, JobConfig())
    assert report.horizon_ms == 24 * HOUR_MS  # the log spans 120 h, at least four horizons
    # a's view: a cart an hour later; b's view: nothing for 24 h; a's cart: nothing after it; b at 30 h: over
    # by the end (120 h); c at 100 h and 120 h: censored, their horizons run past the end.
    assert [(str(u), bool(label)) for u, label in zip(report.users, report.labels)] == [
        ("a", True), ("b", False), ("a", False), ("b", False)]


def test_the_evaluated_model_learns_as_the_jobs_does_and_serves_every_event_alike():
    """The job's steps (`LocalPipeline`: the user context keeps and scores one example per shopper-hour and each
    cart or purchase, its timers settle them, the one model learns then scores) and the evaluation, on one
    generated log: the same intent served after each event."""
    config = load_config(overrides={"intent": {"horizon_hours": 2.0}})
    events = [e for e in generate_events(GeneratorConfig(users=40, items=30, events=1500, seed=11, start_ms=T0))
              if isinstance(e, BehaviourEvent)]
    pipeline, out, scores, rescored = LocalPipeline(config, DictStore()), Outputs(), [], []
    for event in events:
        pipeline.process(encode(event), event.ts, out)
        state = pipeline.state(PUSH_POLICY, event.user_id)
        assert state.intent_at <= event.ts and (state.intent_at == event.ts or event.behavior not in TARGETS)
        rescored.append(state.intent_at == event.ts)
        scores.append(state.intent)
    assert 0.2 < np.mean(rescored) < 0.9  # within a slot only carts and purchases are scored again
    report = evaluate_intent(events, config)
    assert report.horizon_ms == 2 * HOUR_MS and len(report.model) > 1000
    assert pipeline.counters["intent_examples_learned"] > 200
    # the job's scores are rounded to 6 places; the evaluation's are not
    assert np.allclose(report.model, scores[:len(report.model)], atol=1e-6)
    assert len(set(np.round(report.model, 3))) > 50  # the model moved
