"""operators.trending: weights, ranking, window arithmetic, Redis keys and the in-memory trending windows,
checked against brute-force recounts written here."""
from __future__ import annotations

import math
import random
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import JobConfig
from operators import trending
from operators.privacy import pseudonym
from operators.trending import TrendingWindows, top_items

PROPERTY = settings(max_examples=150, deadline=None)
CONFIG = JobConfig()
WEIGHTS = CONFIG.profile.event_weights
T0 = 1_700_000_000_000
BEHAVIOURS = ["view", "click", "search", "cart", "favourite", "purchase"]

# Weights that are sums of powers of two add up exactly in any order, so recounts compare with ==.
exact_weights = st.dictionaries(st.sampled_from(BEHAVIOURS), st.sampled_from([0.0, 0.5, 1.0, 2.0, 4.0, 5.0, 8.0]))
scored_pairs = st.dictionaries(st.text(min_size=1, max_size=4), st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.5]),
                               max_size=30).map(lambda d: list(d.items()))


def ranked_by_brute_force(scored, n):
    """Pick the best remaining pair n times: highest score, then smallest item id."""
    remaining, out = list(scored), []
    while remaining and len(out) < n:
        best = remaining[0]
        for pair in remaining[1:]:
            if pair[1] > best[1] or (pair[1] == best[1] and pair[0] < best[0]):
                best = pair
        out.append(best)
        remaining.remove(best)
    return out


@PROPERTY
@given(scored=scored_pairs, n=st.integers(0, 12))
def test_top_items_is_the_brute_force_ranking_at_most_n_long(scored, n):
    top = top_items(scored, n)
    assert len(top) == min(n, len(scored))
    assert top == ranked_by_brute_force(scored, n)
    assert top_items(reversed(scored), n) == top  # input order never matters


def test_searches_and_unweighted_behaviours_weigh_nothing():
    assert trending.weight("search", None, WEIGHTS) == 0.0
    assert trending.weight("view", None, WEIGHTS) == 0.0
    assert trending.weight("cart", "i1", WEIGHTS) == WEIGHTS["cart"]
    assert trending.weight("cart", "i1", {"view": 1.0}) == 0.0


@PROPERTY
@given(categories=st.lists(st.none() | st.sampled_from(["b", "a", "c"]), max_size=8))
def test_an_items_category_is_the_smallest_named_in_any_order(categories):
    named = [c for c in categories if c]
    expected = min(named) if named else None
    for order in (categories, list(reversed(categories)), sorted(categories, key=str)):
        merged = None
        for category in order:
            merged = trending.merge_category(merged, category)
        assert merged == expected


@PROPERTY
@given(now=st.integers(-10 ** 7, 10 ** 7), slide=st.integers(1, 5000), extra=st.integers(0, 5000))
def test_last_window_end_is_the_latest_flink_window_end_not_after_now(now, slide, extra):
    window = slide + extra
    end = trending.last_window_end(now, window, slide)
    assert (end - window) % slide == 0  # starts are multiples of the slide
    assert end <= now < end + slide


def test_scopes_carry_pseudonyms_not_user_ids():
    key = CONFIG.privacy.pseudonym_key
    scope = trending.user_counts_scope("user-1", key)
    assert scope == "user:" + pseudonym("user-1", key) and "user-1" not in scope
    assert trending.category_counts_scope("42") == "category:42"
    assert trending.category_scope("42") == "cat:42"
    assert trending.category_scope(None) == trending.category_scope("") == "uncategorised"


# --- TrendingWindows against a recount of every observed event -------------------------------------------

def recount(observed, now, n, category, window, slide, weights):
    """The last window [start, start + window) with start % slide == 0 that ends at or before now."""
    end = max(e for e in range(now - slide, now + 1) if (e - window) % slide == 0)
    scores, categories = defaultdict(float), defaultdict(set)
    for item, item_category, behavior, ts in observed:
        if item is not None and end - window <= ts < end and weights.get(behavior, 0.0) > 0:
            scores[item] += weights[behavior]
            if item_category:
                categories[item].add(item_category)
    resolved = {item: min(categories[item]) if categories[item] else None for item in scores}
    return ranked_by_brute_force([(i, s) for i, s in scores.items() if category is None or resolved[i] == category],
                                 n)


events = st.lists(st.tuples(st.none() | st.sampled_from(["i1", "i2", "i3", "i4", "i5"]),
                            st.none() | st.sampled_from(["c1", "c2"]),
                            st.sampled_from(BEHAVIOURS),
                            st.integers(0, 4000)),
                  max_size=60)


@PROPERTY
@given(events=events, weights=exact_weights, slide=st.integers(1, 400), extra=st.integers(0, 900),
       n=st.integers(1, 6), seed=st.integers(0, 2 ** 32))
def test_top_equals_a_recount_of_the_last_ended_window_for_any_arrival_order(events, weights, slide, extra, n, seed):
    window = slide + extra  # not always a multiple of the slide: panes are then finer than the slide
    rng = random.Random(seed)
    windows = TrendingWindows(window, slide, weights)
    observed, latest = [], None
    for event in events:
        windows.observe(*event)
        observed.append(event)
        latest = event[3] if latest is None else max(latest, event[3])
        if rng.random() < 0.3:
            now = latest + rng.randrange(0, 2 * window)
            for category in (None, "c1", "c2"):
                assert windows.top(now, n, category) == recount(observed, now, n, category, window, slide, weights)


@PROPERTY
@given(events=events, slide=st.integers(1, 400), extra=st.integers(0, 900))
def test_memory_is_bounded_by_one_window_and_a_slide(events, slide, extra):
    window = slide + extra
    windows = TrendingWindows(window, slide, WEIGHTS)
    pane = math.gcd(window, slide)
    newest = None
    for event in sorted(events, key=lambda e: e[3]):
        windows.observe(*event)
        item, _, behavior, ts = event
        if item is not None and WEIGHTS.get(behavior, 0) > 0:  # only counted events move the windows on
            newest = ts
        if newest is None:
            assert not windows._panes
            continue
        newest_start = newest - newest % pane
        # Private on purpose: the bound is the point of this test.
        assert all(newest_start - (window + slide) < index * pane <= newest_start for index in windows._panes)
        assert len(windows._panes) <= (window + slide) // pane + 1


def test_a_window_already_dropped_cannot_be_asked_for():
    windows = TrendingWindows(1000, 100, WEIGHTS)
    windows.observe("i1", "c1", "view", T0 + 5000)
    assert windows.top(T0 + 5000, 5) == []  # the last ended window [T0 + 4000, T0 + 5000) is empty
    assert windows.top(T0 + 6000, 5) == [("i1", WEIGHTS["view"])]
    with pytest.raises(ValueError, match="older than the windows kept"):
        windows.top(T0 + 4999, 5)


def test_a_late_event_counts_while_its_window_can_still_be_asked_for():
    windows = TrendingWindows(1000, 100, WEIGHTS)
    windows.observe("i1", "c1", "view", T0 + 5000)
    windows.observe("i3", "c1", "cart", T0 + 4000)  # late, but [T0 + 4000, T0 + 5000) is still kept
    windows.observe("i2", "c1", "purchase", T0 + 3999)  # only in windows that end before the kept ones
    assert windows.top(T0 + 5000, 5) == windows.top(T0 + 5000, 5, "c1") == [("i3", WEIGHTS["cart"])]
    assert windows.top(T0 + 5000, 5, "c2") == []
    assert windows.top(T0 + 5100, 5) == [("i1", WEIGHTS["view"])]


def test_windows_need_a_slide_no_longer_than_the_window():
    with pytest.raises(ValueError):
        TrendingWindows(100, 200, WEIGHTS)


@settings(max_examples=100, deadline=None)
@given(events=st.lists(st.tuples(st.integers(0, 9), st.sampled_from(["c1", "c2", None]),
                                 st.sampled_from(["view", "cart", "purchase"]), st.integers(0, 7_200_000)),
                       max_size=60),
       n=st.integers(1, 5))
def test_all_tops_at_once_equal_each_top_asked_alone(events, n):
    windows = TrendingWindows(3_600_000, 600_000, {"view": 1.0, "cart": 4.0, "purchase": 8.0})
    for item, category, behavior, ts in sorted(events, key=lambda e: e[3]):
        windows.observe(f"i{item}", category, behavior, ts)
    now = max((e[3] for e in events), default=0)
    tops = windows.tops(now, n)
    assert tops[None] == windows.top(now, n)
    for category in ("c1", "c2"):
        assert tops.get(category, []) == windows.top(now, n, category=category)
