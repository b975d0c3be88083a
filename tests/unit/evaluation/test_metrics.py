import math

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
