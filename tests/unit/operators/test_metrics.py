import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config import load_config
from notify_engine.hostile import hostile_records
from operators import intake
from operators.metrics import LATENCY_BOUNDS_MS, dead_letter_counter, latency_counters, quantile

INF = float("inf")


@pytest.mark.parametrize("reason, name", [
    ("oversized payload: 20000 bytes > 16384", "dead_lettered_oversized_payload"),
    ("a record with no value (a tombstone) for key 'u-42': only the users topic",
     "dead_lettered_a_record_with_no_value_a_tombstone_for_key"),
    ("behaviour event: field 'ts' must be an integer, got str", "dead_lettered_behaviour_event"),
    ("user-context failed: ValueError('x')", "dead_lettered_user_context_failed"),
    ("'quoted first", "dead_lettered_other"),
])
def test_a_dead_letter_counts_under_the_leading_words_of_its_reason(reason, name):
    assert dead_letter_counter(reason) == name


def test_hostile_records_fall_into_few_counters_that_carry_no_value_from_the_record():
    config = load_config()
    names = set()
    for _, payload in hostile_records(900, 4, 1_800_000_000_000, config.intake):
        with pytest.raises(intake.Rejected) as rejection:
            intake.admit(payload, 1_800_000_000_000, config.intake)
        names.add(dead_letter_counter(rejection.value.reason))
    assert 3 <= len(names) <= 12, names
    assert all("hostile" not in name and len(name) <= 74 for name in names)


def test_an_observation_counts_in_every_bucket_at_or_above_it():
    assert latency_counters(80) == ("event_to_decision_ms_le_100", "event_to_decision_ms_le_250",
                                    "event_to_decision_ms_le_500", "event_to_decision_ms_le_1000",
                                    "event_to_decision_ms_le_2500", "event_to_decision_ms_le_5000",
                                    "event_to_decision_ms_le_10000", "event_to_decision_ms_le_30000",
                                    "event_to_decision_ms_le_60000", "event_to_decision_ms_le_inf")
    assert latency_counters(10 ** 9) == ("event_to_decision_ms_le_inf",)


def test_quantiles_interpolate_within_the_bucket_as_prometheus_does():
    # 100 observations: 50 at or below 100 ms, 90 at or below 200 ms, all at or below 400 ms
    buckets = {100.0: 50, 200.0: 90, 400.0: 100, INF: 100}
    assert quantile(buckets, 0.5) == 100.0
    assert quantile(buckets, 0.7) == pytest.approx(150.0)
    assert quantile(buckets, 0.95) == pytest.approx(300.0)
    assert quantile({100.0: 0, INF: 0}, 0.5) is None
    assert quantile({100.0: 1, INF: 3}, 0.9) == 100.0  # beyond the largest bound


@given(st.lists(st.integers(0, 100_000), min_size=1, max_size=200), st.floats(0.01, 0.99))
def test_the_quantile_is_within_the_bucket_that_holds_the_true_one(latencies, q):
    buckets = {float(bound): 0 for bound in LATENCY_BOUNDS_MS} | {INF: 0}
    for latency in latencies:
        for bound in buckets:
            buckets[bound] += latency <= bound
    true = sorted(latencies)[max(math.ceil(q * len(latencies)), 1) - 1]  # the ceil(q n)-th smallest
    estimate = quantile(buckets, q)
    bounds = [0.0] + [float(b) for b in LATENCY_BOUNDS_MS]
    upper = next((b for b in bounds[1:] if true <= b), None)
    if upper is None:
        assert estimate == bounds[-1]
    else:
        assert bounds[bounds.index(upper) - 1] <= estimate <= upper
