"""Exponential decay: s <- s * exp(-ln2 * dt / half_life) + w, kept in O(1) state per score."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.decay import add_to_scores, decay_factor, decayed_add, decayed_value, top_scores
from state_schemas.state import DecayedScores

HOUR_MS = 3_600_000
T0 = 1_700_000_000_000

PROPERTY = settings(max_examples=150, deadline=None)

half_lives = st.integers(min_value=60_000, max_value=200 * HOUR_MS)
weights = st.floats(min_value=0.0, max_value=100.0, allow_nan=False, allow_infinity=False)
offsets = st.integers(min_value=0, max_value=30 * 24 * HOUR_MS)
observations = st.lists(st.tuples(weights, offsets), min_size=1, max_size=25)


def closed_form(observations: list[tuple[float, int]], at: int, half_life_ms: float) -> float:
    """The value every observation contributes at `at`, summed directly (no incremental state)."""
    return sum(w * 0.5 ** ((at - t) / half_life_ms) for w, t in observations)


def test_factor_is_one_half_after_one_half_life_and_one_quarter_after_two():
    assert decay_factor(HOUR_MS, HOUR_MS) == pytest.approx(0.5, rel=1e-12)
    assert decay_factor(2 * HOUR_MS, HOUR_MS) == pytest.approx(0.25, rel=1e-12)


def test_factor_is_one_without_elapsed_time_or_backwards_in_time():
    assert decay_factor(0, HOUR_MS) == 1.0
    assert decay_factor(-5 * HOUR_MS, HOUR_MS) == 1.0


def test_a_score_halves_after_one_half_life():
    assert decayed_value(8.0, T0, T0 + 6 * HOUR_MS, 6 * HOUR_MS) == pytest.approx(4.0, rel=1e-12)
    assert decayed_value(8.0, T0, T0 + 18 * HOUR_MS, 6 * HOUR_MS) == pytest.approx(1.0, rel=1e-12)


def test_decayed_add_in_order_decays_then_adds_and_moves_time_forward():
    value, at = decayed_add(4.0, T0, 1.0, T0 + HOUR_MS, HOUR_MS)
    assert value == pytest.approx(4.0 * 0.5 + 1.0, rel=1e-12)
    assert at == T0 + HOUR_MS


def test_decayed_add_of_a_late_event_decays_the_weight_and_keeps_the_time():
    value, at = decayed_add(4.0, T0 + 2 * HOUR_MS, 8.0, T0, HOUR_MS)
    assert value == pytest.approx(4.0 + 8.0 * 0.25, rel=1e-12)
    assert at == T0 + 2 * HOUR_MS


@PROPERTY
@given(value=weights, elapsed=st.lists(st.integers(0, 10 * 24 * HOUR_MS), min_size=1, max_size=10),
       half_life=half_lives)
def test_decay_never_increases_a_score_without_additions(value, elapsed, half_life):
    previous = value
    for now in sorted(T0 + e for e in elapsed):
        current = decayed_value(value, T0, now, half_life)
        assert 0.0 <= current <= previous
        previous = current


@PROPERTY
@given(observations=observations, order=st.randoms(use_true_random=False), half_life=half_lives,
       after=st.integers(0, 5 * 24 * HOUR_MS))
def test_adding_out_of_order_equals_adding_in_order_and_the_closed_form(observations, order, half_life, after):
    shuffled = list(observations)
    order.shuffle(shuffled)
    results = []
    for sequence in (sorted(observations, key=lambda o: o[1]), shuffled):
        value, at = 0.0, T0
        for weight, offset in sequence:
            value, at = decayed_add(value, at, weight, T0 + offset, half_life)
        assert at == T0 + max(offset for _, offset in observations)  # time never moves back
        results.append(decayed_value(value, at, at + after, half_life))
    expected = closed_form([(w, T0 + o) for w, o in observations], T0 + max(o for _, o in observations) + after,
                           half_life)
    total = sum(w for w, _ in observations)
    assert results[0] == pytest.approx(expected, rel=1e-9, abs=1e-12 * (1 + total))
    assert results[1] == pytest.approx(expected, rel=1e-9, abs=1e-12 * (1 + total))


@PROPERTY
@given(observations=st.lists(st.tuples(st.sampled_from("abcde"), weights, offsets), min_size=1, max_size=30),
       order=st.randoms(use_true_random=False), half_life=half_lives)
def test_add_to_scores_matches_the_closed_form_per_key_in_any_order(observations, order, half_life):
    shuffled = list(observations)
    order.shuffle(shuffled)
    end = T0 + max(o for _, _, o in observations)
    for sequence in (observations, shuffled):
        scores = DecayedScores(at=T0)
        for key, weight, offset in sequence:
            scores = add_to_scores(scores, key, weight, T0 + offset, half_life, max_keys=10)
        assert scores.at == end
        assert set(scores.scores) == {k for k, _, _ in observations}
        for key, value in scores.scores.items():
            expected = closed_form([(w, T0 + o) for k, w, o in observations if k == key], end, half_life)
            assert value == pytest.approx(expected, rel=1e-9, abs=1e-9)


@PROPERTY
@given(start=st.dictionaries(st.sampled_from("abcdef"), weights, min_size=1), key=st.sampled_from("abcdefgh"),
       weight=weights, dt=st.integers(0, 20 * 24 * HOUR_MS), half_life=half_lives)
def test_add_to_scores_never_raises_the_other_keys(start, key, weight, dt, half_life):
    before = DecayedScores(at=T0, scores=dict(start))
    after = add_to_scores(before, key, weight, T0 + dt, half_life, max_keys=100)
    for other, value in before.scores.items():
        if other != key:
            assert after.scores[other] <= value
    assert after.scores[key] >= weight * (1 - 1e-12)


def test_add_to_scores_keeps_only_the_strongest_keys():
    scores = DecayedScores(at=T0, scores={"a": 5.0, "b": 1.0, "c": 3.0})
    after = add_to_scores(scores, "d", 2.0, T0, HOUR_MS, max_keys=3)
    assert after.scores == {"a": 5.0, "c": 3.0, "d": 2.0}
    # A new key weaker than every kept one is dropped at once.
    after = add_to_scores(after, "e", 0.5, T0, HOUR_MS, max_keys=3)
    assert set(after.scores) == {"a", "c", "d"}


@PROPERTY
@given(observations=st.lists(st.tuples(st.text("abcdefghij", min_size=1, max_size=2), weights, offsets),
                             max_size=40),
       max_keys=st.integers(1, 8))
def test_add_to_scores_never_keeps_more_than_max_keys(observations, max_keys):
    scores = DecayedScores()
    for key, weight, offset in observations:
        scores = add_to_scores(scores, key, weight, T0 + offset, HOUR_MS, max_keys)
        assert len(scores.scores) <= max_keys


def test_add_to_scores_does_not_mutate_its_input():
    scores = DecayedScores(at=T0, scores={"a": 1.0})
    add_to_scores(scores, "a", 1.0, T0 + HOUR_MS, HOUR_MS, 4)
    add_to_scores(scores, "b", 1.0, T0 - HOUR_MS, HOUR_MS, 4)
    assert scores == DecayedScores(at=T0, scores={"a": 1.0})


def test_top_scores_normalises_to_the_strongest_and_ranks():
    scores = DecayedScores(at=T0, scores={"a": 2.0, "b": 8.0, "c": 4.0, "d": 1.0})
    assert top_scores(scores, 3) == (("b", 1.0), ("c", 0.5), ("a", 0.25))


def test_top_scores_of_nothing_is_empty():
    assert top_scores(DecayedScores(), 5) == ()


def test_top_scores_are_unchanged_by_a_common_decay():
    scores = DecayedScores(at=T0, scores={"a": 2.0, "b": 8.0})
    later = DecayedScores(at=T0 + HOUR_MS, scores={k: decayed_value(v, T0, T0 + HOUR_MS, 3 * HOUR_MS)
                                                   for k, v in scores.scores.items()})
    assert top_scores(later, 2) == top_scores(scores, 2) == (("b", 1.0), ("a", 0.25))


@PROPERTY
@given(scores=st.dictionaries(st.text("abcdefgh", min_size=1, max_size=3), weights, max_size=20),
       n=st.integers(1, 10))
def test_top_scores_are_at_most_n_ranked_and_in_unit_range(scores, n):
    top = top_scores(DecayedScores(at=T0, scores=scores), n)
    assert len(top) == min(n, len(scores))
    values = [v for _, v in top]
    assert values == sorted(values, reverse=True)
    assert all(0.0 <= v <= 1.0 for v in values)
    if top and max(scores.values()) > 0:
        assert values[0] == 1.0
    assert all(math.isfinite(v) for v in values)
