import math

import numpy as np

from hypothesis import given, strategies as st

from evaluation.metrics import Tally, hit_at_k, ndcg_at_k


def test_hit_and_ndcg_by_rank():
    ranked = ["a", "b", "c"]
    assert hit_at_k(ranked, "c", 3) == 1.0 and hit_at_k(ranked, "c", 2) == 0.0
    assert ndcg_at_k(ranked, "a", 3) == 1.0  # 1 / log2(2)
    assert math.isclose(ndcg_at_k(ranked, "b", 3), 1 / math.log2(3))
    assert ndcg_at_k(ranked, "c", 2) == 0.0 and ndcg_at_k(ranked, "z", 3) == 0.0


def test_tally_averages_over_targets_and_counts_coverage():
    tally = Tally(k=2)
    tally.add(["a", "b", "x"], "a")  # hit at rank 0: gain 1
    tally.add(["c", "d"], "d")  # hit at rank 1: gain 1/log2(3)
    tally.add(["c", "a"], "q")  # miss
    assert tally.targets == 3
    assert math.isclose(tally.hit_rate, 2 / 3)
    assert math.isclose(tally.ndcg, (1 + 1 / math.log2(3)) / 3)
    assert tally.recommended == {"a", "b", "c", "d"}  # "x" was outside the top 2
    assert tally.coverage(8) == 0.5


@given(st.lists(st.text(min_size=1, max_size=3), unique=True, max_size=20), st.text(min_size=1, max_size=3),
       st.integers(1, 20))
def test_ndcg_is_between_zero_and_hit(ranked, target, k):
    assert 0.0 <= ndcg_at_k(ranked, target, k) <= hit_at_k(ranked, target, k)


def test_the_bootstrap_resamples_shoppers_not_targets():
    from evaluation.metrics import Bootstrap

    tally = Tally(k=1)
    tally.add(["a"], "a", user="hit")  # one shopper hits once,
    for _ in range(3):
        tally.add(["a"], "b", user="miss")  # the other misses three times: 1 hit in 4 targets
    draws = Bootstrap({"t": tally}, draws=4000, seed=1).draws("t")
    # A draw holds each shopper 0, 1 or 2 times: hit rates 1/4 (one of each), 0 or 1 (one shopper twice).
    assert set(np.round(draws, 6)) <= {0.0, 0.25, 1.0}
    assert abs(np.mean(draws == 0.25) - 0.5) < 0.05 and abs(np.mean(draws == 1.0) - 0.25) < 0.05
    assert Bootstrap({"t": tally}, draws=4000, seed=1).interval("t") == (0.0, 1.0)


@given(st.lists(st.tuples(st.sampled_from("uvwxyz"), st.booleans(), st.booleans()), min_size=1, max_size=40))
def test_a_paired_ratio_of_a_recommender_with_itself_is_exactly_one(targets):
    from evaluation.metrics import Bootstrap

    first, second = Tally(k=1), Tally(k=1)
    for user, hit, _ in targets:
        first.add(["a"], "a" if hit else "b", user)
        second.add(["a"], "a" if hit else "b", user)
    boot = Bootstrap({"first": first, "second": second}, draws=200)
    low, high = boot.interval("first")
    assert 0.0 <= low <= high <= 1.0
    ratio = boot.ratio_interval("first", "second")
    assert ratio == (1.0, 1.0) if first.hits else all(math.isnan(r) for r in ratio)
