"""The replay on a log built so that the right answers are known in advance."""
import math

import pytest

from evaluation.prequential import evaluate
from config import JobConfig
from state_schemas.events import BehaviourEvent

T0 = 1_700_000_000_000
MINUTE = 60_000
BASELINES = {"popularity", "recent", "itemknn", "mf_batch", "own_oracle"}
DISCOVERY = {"hybrid", "cf", "content", "segment", "trending", "affinity", "recency", "mf", "learned"} | BASELINES
REENGAGE = {"hybrid", "learned"} | BASELINES


def _event(n, user, item, behavior="view"):
    return BehaviourEvent(event_id=f"e{n}", user_id=user, behavior=behavior, ts=T0 + n * MINUTE, item_id=item,
                          category_id="c")


def co_viewed_and_popular_log(target_item="B"):
    """Five shoppers view B then A (A's row holds B); thirty view C, by far the most popular item; then the
    target views A and, later, puts `target_item` in the cart."""
    log = []
    for u in range(5):
        log += [_event(len(log), f"w{u}", "B"), _event(len(log) + 1, f"w{u}", "A")]
    for u in range(30):
        log.append(_event(len(log), f"p{u}", "C"))
    log += [_event(len(log), "target", "A"), _event(len(log) + 1, "target", target_item, behavior="cart")]
    return log


def test_every_recommender_is_tallied_on_every_target_in_both_rankings():
    report = evaluate(co_viewed_and_popular_log(), JobConfig(), k=1)
    assert set(report.tallies["discovery"]) == DISCOVERY and set(report.tallies["reengage"]) == REENGAGE
    assert report.catalogue == 3
    # one cart event: one target
    assert all(t.targets == 1 for ranking in report.tallies.values() for t in ranking.values())


def test_hybrid_recalls_the_co_viewed_item_and_popularity_the_popular_one():
    discovery = evaluate(co_viewed_and_popular_log(), JobConfig(), k=1).tallies["discovery"]
    assert discovery["hybrid"].hit_rate == 1.0  # top-1 after viewing A: B, its co-viewed item
    assert discovery["itemknn"].hit_rate == 1.0  # A's only co-occurring item
    assert discovery["popularity"].hit_rate == 0.0  # top-1 by popularity: C
    assert discovery["popularity"].recommended == {"C"}
    assert discovery["recent"].recommended == set()  # A, the only item seen, is the latest: not allowed


def test_the_latest_item_counts_only_in_the_reengagement_ranking():
    report = evaluate(co_viewed_and_popular_log(target_item="A"), JobConfig(), k=1)
    assert report.tallies["reengage"]["hybrid"].hit_rate == 1.0  # "still thinking about A?"
    assert report.tallies["reengage"]["recent"].hit_rate == 1.0
    assert report.tallies["discovery"]["hybrid"].hit_rate == 0.0
    assert report.tallies["discovery"]["recent"].hit_rate == 0.0


def test_each_signal_alone_ranks_by_that_signal():
    tallies = evaluate(co_viewed_and_popular_log(), JobConfig(), k=1).tallies["discovery"]
    assert tallies["cf"].hit_rate == 1.0 and tallies["cf"].recommended == {"B"}  # A's only neighbour
    assert tallies["trending"].hit_rate == 0.0 and tallies["trending"].recommended == {"C"}  # most viewed


def test_a_hit_lower_in_the_list_counts_for_hit_rate_at_k_with_a_smaller_gain():
    # After A, with k = 2: the co-viewed B first, so a cart of C is a hit at rank 2 for the hybrid.
    tallies = evaluate(co_viewed_and_popular_log(target_item="C"), JobConfig(), k=2).tallies["discovery"]
    assert tallies["hybrid"].hit_rate == 1.0
    assert tallies["hybrid"].ndcg == pytest.approx(1 / math.log2(3))  # one relevant item at 0-based rank 1


def test_a_shopper_without_history_gets_the_trending_items():
    log = [_event(n, f"p{n}", "C") for n in range(30)] + [_event(30 + n, f"q{n}", "D") for n in range(5)]
    log.append(_event(40, "newbie", "C", behavior="cart"))
    report = evaluate(log, JobConfig(), k=1)
    hybrid = report.tallies["discovery"]["hybrid"]
    assert report.catalogue == 2
    assert hybrid.targets == 1
    assert hybrid.hit_rate == 1.0 and hybrid.recommended == {"C"}


@pytest.mark.parametrize("history, target, discovery_hit, reengage_hit", [
    ([("X", "view"), ("Y", "view")], "X", 1.0, 1.0),  # an earlier own item: the ceiling counts it in both
    ([("X", "view"), ("Y", "view")], "Y", 0.0, 1.0),  # the latest: only re-engagement may name it
    ([("X", "view"), ("Y", "view")], "Z", 0.0, 0.0),  # never touched: beyond any ranking of own items
    ([("X", "purchase"), ("Y", "view")], "X", 0.0, 0.0),  # bought: no ranking names it
])
def test_the_own_items_ceiling_counts_targets_a_ranking_of_own_items_could_name(history, target, discovery_hit,
                                                                                 reengage_hit):
    log = [_event(n, "s", item, behavior) for n, (item, behavior) in enumerate(history)]
    log.append(_event(len(log), "s", target, behavior="cart"))
    report = evaluate(log, JobConfig(), k=10)
    assert report.tallies["discovery"]["own_oracle"].hit_rate == discovery_hit
    assert report.tallies["reengage"]["own_oracle"].hit_rate == reengage_hit
