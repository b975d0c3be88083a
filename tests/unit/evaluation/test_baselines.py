"""The baselines of `make eval`, on logs whose right answers are worked out by hand."""
import math

import pytest

from config import JobConfig
from evaluation.baselines import BatchMF, ItemKNN, Popularity, RecentlyViewed
from state_schemas.events import BehaviourEvent
from state_schemas.units import DAY_MS, HOUR_MS

T0 = 1_700_000_000_000


def event(user, item, ts=T0, behavior="view"):
    return BehaviourEvent(event_id=f"{user}-{item}-{ts}", user_id=user, behavior=behavior, ts=ts, item_id=item)


def learn(models, events):
    for e in events:
        for model in models:
            model.learn(e)


def test_recently_viewed_is_the_shoppers_distinct_items_newest_first():
    recent = RecentlyViewed()
    learn([recent], [event("u", "a", T0), event("u", "b", T0 + 1), event("u", "a", T0 + 2), event("v", "z", T0 + 3)])
    assert recent.top("u", 10, T0 + 3, set()) == ["a", "b"]  # seeing a again makes it the newest
    assert recent.latest("u") == "a" and recent.latest("new") is None
    assert recent.top("u", 10, T0 + 3, {"a"}) == ["b"] and recent.top("u", 1, T0 + 3, set()) == ["a"]


def test_item_knn_sums_cosines_over_the_binary_user_item_matrix():
    recent = RecentlyViewed()
    knn = ItemKNN(recent, history=10)
    # u1 {a, b}, u2 {a, b, c} (b twice: binary), probe {a}. Shoppers per item: a 3, b 2, c 1.
    learn([recent, knn], [event("u1", "a"), event("u1", "b"), event("u2", "a"), event("u2", "b", T0 + 1),
                          event("u2", "b", T0 + 2), event("u2", "c"), event("probe", "a")])
    assert knn.together["a"] == {"b": 2, "c": 1}
    # cos(a, b) = 2 / sqrt(3 * 2) = 0.816 > cos(a, c) = 1 / sqrt(3 * 1) = 0.577
    assert knn.top("probe", 10, T0, set()) == ["b", "c"]
    assert knn.top("probe", 10, T0, {"b"}) == ["c"]
    # u1 has a and b: c scores cos(a, c) + cos(b, c) = 1/sqrt(3) + 1/sqrt(2); u1's own items score each other.
    scores = {"c": 1 / math.sqrt(3) + 1 / math.sqrt(2), "a": 2 / math.sqrt(6), "b": 2 / math.sqrt(6)}
    assert knn.top("u1", 10, T0, set()) == sorted(scores, key=lambda i: (-scores[i], i))


def test_popularity_decays_so_a_recent_burst_beats_an_old_one():
    config = JobConfig()
    popularity = Popularity(config)
    half_life = config.item_model.popularity_half_life_hours * HOUR_MS
    learn([popularity], [event(f"u{n}", "old", T0) for n in range(3)]
          + [event(f"v{n}", "new", T0 + 2 * half_life) for n in range(2)])
    # old: 3 views two half-lives ago = 0.75; new: 2 views now
    assert popularity.top("anyone", 2, T0 + 2 * half_life, set()) == ["new", "old"]
    assert popularity.top("anyone", 2, T0 + 2 * half_life, {"new"}) == ["old"]


def planted_groups(ts):
    """Twenty shoppers who each touch four of the five x items, twenty who each touch four of the y items."""
    log = []
    for group in ("x", "y"):
        items = [f"{group}{n}" for n in range(5)]
        for user in range(20):
            log += [event(f"{group}-u{user}", item, ts) for n, item in enumerate(items) if n != user % 5]
    return log


def test_batch_mf_fits_only_on_what_came_before_each_period_and_recommends_within_the_shoppers_group():
    mf = BatchMF(JobConfig(), period_ms=DAY_MS, factors=4, iterations=20)
    learn([mf], planted_groups(T0))
    assert mf.fits == 0 and mf.model is None  # the first period: nothing before it to fit on
    assert mf.top("x-u0", 3, T0, set()) == []
    learn([mf], [event("newcomer", "x0", T0 + DAY_MS), event("newcomer", "x1", T0 + DAY_MS)])
    assert mf.fits == 1 and mf.model is not None  # the next day's first event refits on the day before
    # A shopper the fit never saw is folded in from their items; new items since the fit are unknown.
    ranked = mf.top("newcomer", 3, T0 + DAY_MS, {"x0", "x1"})
    assert set(ranked) == {"x2", "x3", "x4"}
    assert all(item.startswith("y") for item in mf.top("y-u0", 10, T0 + DAY_MS, set())[:5])
    assert mf.top("nobody", 3, T0 + DAY_MS, set()) == []


@pytest.mark.parametrize("k", [1, 5])
def test_every_baseline_leaves_out_what_it_is_told_to(k):
    recent = RecentlyViewed()
    models = [Popularity(JobConfig()), recent, ItemKNN(recent, 10)]
    learn(models, planted_groups(T0))
    for model in models:
        assert not set(model.top("x-u0", k, T0, {"x1", "x2"})) & {"x1", "x2"}
