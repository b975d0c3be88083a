"""scorer.rank and scorer.diversify: exclusions, the documented weighted sum, diversity, cold start, reasons.

Expected scores are computed here from the formula in the scorer's docstring:
    score = w_cf*cf + w_content*content + w_segment*segment + w_popularity*popularity + w_affinity*affinity
with cf = similarity / the strongest neighbour's similarity, content = cosine(user content vector,
item vector), segment = the segment trend's score, popularity = trending score / the strongest
trending score, affinity = the user's (normalised) affinity for the item's category; then
score * (1 - p) per recent send (within the cooldown) in the item's category, and greedily
score * (1 - p) per item already placed in the same category.
"""
from __future__ import annotations

import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import JobConfig, load_config
from operators.local_pipeline import MemorySideInputs
from operators.steps import ListNewArrival, RecordFacts
from operators.scorer import Scored, diversify, rank
from state_schemas.events import BehaviourEvent
from state_schemas.hops import ItemSignal, UserSummary
from state_schemas.state import DecayedScores, ItemCard, Neighbour, PushState, RecentSend
from tests.unit.fakes import FakeSide

HOUR_MS = 3_600_000
T0 = 1_700_000_000_000
CONFIG = JobConfig()
POLICY = CONFIG.policy
COOLDOWN = POLICY.renotify_cooldown_ms
TRIGGER = "TRIG"  # an id no reason copy, term or category contains by accident
PROPERTY = settings(max_examples=200, deadline=None)


def scoring(**overrides):
    return load_config(overrides={"scoring": overrides}).scoring


CF_ONLY = dict(weight_cf=1.0, weight_content=0.0, weight_segment=0.0, weight_popularity=0.0, weight_affinity=0.0,
               weight_recency=0.0)


def signal(neighbours=(), behavior="view", ts=T0, category="ct", title=None, summary=None, item=TRIGGER,
           vector=()) -> ItemSignal:
    event = BehaviourEvent(event_id="e1", user_id="u1", behavior=behavior, ts=ts, item_id=item, category_id=category)
    return ItemSignal(event=event, card=ItemCard(category_id=category, title=title, vector=tuple(vector)),
                      trigger=True, neighbours=tuple(Neighbour(*n) for n in neighbours),
                      summary=summary if summary is not None else UserSummary())


def ids(ranked) -> list[str]:
    return [entry.item_id for entry in ranked]


def by_id(ranked) -> dict[str, Scored]:
    return {entry.item_id: entry for entry in ranked}


# --- an independent reference of the documented signals ------------------------------------------

def reference_cosine(a: dict, b: dict) -> float:
    dot = sum(a[t] * b[t] for t in a if t in b)
    na, nb = math.sqrt(sum(v * v for v in a.values())), math.sqrt(sum(v * v for v in b.values()))
    return dot / (na * nb) if na and nb else 0.0


def reference(sig: ItemSignal, state: PushState, side: FakeSide, weights: tuple, now: int = T0,
              with_trigger: bool = False) -> dict:
    """item -> (signal values, weighted sum) for every admissible candidate, before any diversity penalty."""
    category = sig.card.category_id
    summary = sig.summary
    top_sim = max((n.similarity for n in sig.neighbours), default=0.0)
    cf = {n.item_id: n.similarity / top_sim for n in sig.neighbours}
    trending = list(side.trending(category, 0))
    top_trend = max((s for _, s in trending), default=0.0)
    popularity = {item: s / top_trend for item, s in trending}
    segment = dict(state.segment_trend)
    affinity = dict(summary.categories)
    # Recency: the trigger is the newest (position 0), then the summary's recent items from the newest back.
    newest_first = [sig.event.item_id] + [i for i in reversed(summary.recent) if i != sig.event.item_id]
    recency = {}
    for position, item in enumerate(newest_first):
        recency.setdefault(item, 1.0 / (1 + position))
    candidates = set(cf) | set(segment) | set(popularity) | set(side.arrivals(category, 0)) | set(recency)
    # MF: the user's factors . each candidate's (from its card), clipped at 0, over the best of the candidates.
    dots = {item: max(sum(a * b for a, b in zip(summary.factors, side.card_map[item].factors)), 0.0)
            for item in candidates if item in side.card_map and side.card_map[item].factors and summary.factors}
    top_dot = max(dots.values(), default=0.0) or 1.0
    recent = {item for item, sent in state.recent_items.items() if now - sent.at < COOLDOWN}
    out = {}
    excluded = set(summary.purchased) | recent | (set() if with_trigger else {sig.event.item_id})
    for item in candidates - excluded:
        card = side.card_map.get(item, ItemCard())
        if not card.in_stock:
            continue
        item_category = card.category_id or next((n.category_id for n in sig.neighbours if n.item_id == item), None)
        values = (cf.get(item, 0.0), reference_cosine(state.content.scores, dict(card.vector)),
                  segment.get(item, 0.0), popularity.get(item, 0.0), affinity.get(item_category, 0.0),
                  recency.get(item, 0.0), dots.get(item, 0.0) / top_dot)
        score = sum(w * v for w, v in zip(weights, values))
        if score > 0:
            out[item] = (values, score)
    return out


# --- exclusions ----------------------------------------------------------------------------------

def test_the_trigger_purchased_out_of_stock_and_recently_notified_items_are_never_ranked():
    everything = ["bought", "sold_out", "recent", "cooled", "fine", TRIGGER]
    side = FakeSide(cards={"sold_out": ItemCard(category_id="ct", in_stock=False), "fine": ItemCard(category_id="ct")},
                    trending={"ct": [(item, 1.0) for item in everything]}, arrivals={"ct": everything})
    state = PushState(recent_items={"recent": RecentSend(T0 - COOLDOWN + 1, "ct"),
                                    "cooled": RecentSend(T0 - COOLDOWN, "ct")},
                      segment_trend=tuple((item, 1.0) for item in everything))
    sig = signal(neighbours=[(item, "ct", 0.5) for item in everything],
                 summary=UserSummary(categories=(("ct", 1.0),), purchased=("bought",)))
    ranked = rank(sig, state, side, T0, CONFIG.scoring, POLICY)
    # The cooldown is strict: an item notified exactly one cooldown ago is eligible again.
    assert sorted(ids(ranked)) == ["cooled", "fine"]


@st.composite
def exclusion_scenes(draw):
    items = [f"i{n}" for n in range(10)]
    pool = draw(st.lists(st.sampled_from(items), unique=True, min_size=1, max_size=10))
    where = draw(st.lists(st.sampled_from(["cf", "segment", "trending", "arrivals"]), min_size=1, unique=True))
    purchased = draw(st.lists(st.sampled_from(items), unique=True, max_size=4))
    sold_out = draw(st.lists(st.sampled_from(items), unique=True, max_size=4))
    ages = draw(st.dictionaries(st.sampled_from(items), st.integers(0, 2 * COOLDOWN), max_size=5))
    return pool, where, purchased, sold_out, ages


@PROPERTY
@given(scene=exclusion_scenes(), with_trigger=st.booleans())
def test_exactly_the_admissible_candidates_are_ranked(scene, with_trigger):
    pool, where, purchased, sold_out, ages = scene
    listed = pool + [TRIGGER] if with_trigger else pool
    side = FakeSide(cards={item: ItemCard(category_id="c1", in_stock=False) for item in sold_out},
                    trending={"ct": [(item, 1.0) for item in listed]} if "trending" in where else {},
                    arrivals={"ct": listed} if "arrivals" in where else {})
    state = PushState(recent_items={item: RecentSend(T0 - age, "c1") for item, age in ages.items()},
                      segment_trend=tuple((item, 0.5) for item in listed) if "segment" in where else ())
    sig = signal(neighbours=[(item, "c1", 0.5) for item in listed] if "cf" in where else (),
                 summary=UserSummary(purchased=tuple(purchased)))
    ranked = rank(sig, state, side, T0, CONFIG.scoring, POLICY)
    expected = {item for item in pool if item not in purchased and item not in sold_out
                and not (item in ages and ages[item] < COOLDOWN)}
    if where == ["arrivals"]:  # a new listing with no vector, CF, segment or trend: no signal supports it
        expected = set()
    assert set(ids(ranked)) == expected
    assert len(ranked) == len(expected)  # each candidate once, however many sources name it


# --- the weighted sum ----------------------------------------------------------------------------

ITEMS = [f"i{n}" for n in range(8)]
TERMS = ["red", "shoe", "wool", "brand:acme", "cat:c1", "price:p2"]
unit = st.floats(0.01, 1.0)
vectors = st.dictionaries(st.sampled_from(TERMS), unit, max_size=4).map(lambda d: tuple(sorted(d.items())))
factor_values = st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3).map(tuple)
cards = st.builds(ItemCard, category_id=st.sampled_from(["c1", "c2", "ct", None]), vector=vectors,
                  factors=st.one_of(st.just(()), factor_values))


@st.composite
def scenes(draw):
    def pairs(values):
        return draw(st.lists(st.tuples(st.sampled_from(ITEMS + [TRIGGER]), values), unique_by=lambda p: p[0],
                             max_size=6))
    neighbours = [(item, draw(st.sampled_from(["c1", "c2", None])), sim) for item, sim in pairs(unit)]
    side = FakeSide(cards=draw(st.dictionaries(st.sampled_from(ITEMS), cards, max_size=8)),
                    trending={"ct": pairs(st.floats(0.1, 100.0))},
                    arrivals={"ct": draw(st.lists(st.sampled_from(ITEMS), unique=True, max_size=3))})
    state = PushState(content=DecayedScores(at=T0, scores=dict(draw(vectors))), segment_trend=tuple(pairs(unit)))
    summary = UserSummary(categories=tuple(draw(st.lists(st.tuples(st.sampled_from(["c1", "c2", "ct"]), unit),
                                                         unique_by=lambda p: p[0], max_size=3))),
                          recent=tuple(draw(st.lists(st.sampled_from(ITEMS), unique=True, max_size=5))),
                          factors=draw(st.one_of(st.just(()), factor_values)))
    weights = draw(st.tuples(*[st.floats(0.0, 1.0)] * 7))
    return signal(neighbours=neighbours, summary=summary), state, side, weights


WEIGHTS = ("weight_cf", "weight_content", "weight_segment", "weight_popularity", "weight_affinity", "weight_recency",
           "weight_mf")


@PROPERTY
@given(scene=scenes(), with_trigger=st.booleans())
def test_scores_are_the_weighted_sum_of_the_documented_signals(scene, with_trigger):
    sig, state, side, weights = scene
    config = scoring(diversity_penalty=0.0, recent_first=False, **dict(zip(WEIGHTS, weights)))
    ranked = rank(sig, state, side, T0, config, POLICY, with_trigger=with_trigger)
    expected = reference(sig, state, side, weights, with_trigger=with_trigger)
    assert set(ids(ranked)) == set(expected)  # a candidate no signal supports is not ranked
    for entry in ranked:
        values, score = expected[entry.item_id]
        assert entry.signals == pytest.approx(values, rel=1e-9, abs=1e-12)
        assert entry.score == pytest.approx(score, rel=1e-9, abs=1e-12)
        assert all(0.0 <= v <= 1.0 + 1e-12 for v in entry.signals)
    # With no penalty the order is plain score order, ties by item id.
    for a, b in zip(ranked, ranked[1:]):
        assert (-a.score, a.item_id) < (-b.score, b.item_id)


@PROPERTY
@given(scene=scenes(), with_trigger=st.booleans(), penalty=st.sampled_from([0.0, 0.3]), limit=st.integers(1, 6))
def test_recent_first_puts_the_newest_own_items_ahead_and_keeps_the_blends_order_within_each_group(
        scene, with_trigger, penalty, limit):
    sig, state, side, weights = scene
    blended = rank(sig, state, side, T0, scoring(diversity_penalty=penalty, recent_first=False,
                                                 **dict(zip(WEIGHTS, weights))), POLICY, with_trigger=with_trigger)
    ranked = rank(sig, state, side, T0, scoring(diversity_penalty=penalty, recent_first=True, recent_items=limit,
                                                **dict(zip(WEIGHTS, weights))), POLICY, with_trigger=with_trigger)
    assert sorted(ids(ranked)) == sorted(ids(blended))
    newest_first = [*dict.fromkeys(reversed([*sig.summary.recent, TRIGGER]))]
    admissible = [item for item in newest_first if item in ids(blended)]  # bought, notified, unsupported: out
    own = set(admissible[:limit]) if weights[WEIGHTS.index("weight_recency")] else set()
    mine = [item for item in ids(blended) if item in own]
    assert ids(ranked) == mine + [item for item in ids(blended) if item not in own]


def test_recent_first_ranks_a_faint_recent_item_above_a_strong_neighbour():
    side = FakeSide(cards={"old": ItemCard(category_id="c1"), "near": ItemCard(category_id="c2"),
                           TRIGGER: ItemCard(category_id="c1")})
    sig = signal(neighbours=[("near", "c2", 0.9)], summary=UserSummary(recent=("old", TRIGGER)))
    weights = dict(weight_cf=1.0, weight_content=0.0, weight_segment=0.0, weight_popularity=0.0,
                   weight_affinity=0.0, weight_recency=0.1, diversity_penalty=0.0)
    # The blend alone: near 1.0 (its neighbour score normalised) against old 0.1 x 1/2.
    assert ids(rank(sig, PushState(), side, T0, scoring(recent_first=False, **weights), POLICY)) == ["near", "old"]
    assert ids(rank(sig, PushState(), side, T0, scoring(recent_first=True, **weights), POLICY)) == ["old", "near"]


def test_recent_first_reaches_past_a_bought_item_for_the_newest_own_items_that_may_be_named():
    own = ["o1", "o2", "o3", "o4"]  # oldest first, then the trigger
    side = FakeSide(cards={item: ItemCard(category_id="ct") for item in (*own, TRIGGER, "near")})
    sig = signal(neighbours=[("near", "ct", 0.9)], summary=UserSummary(recent=(*own, TRIGGER), purchased=("o4",)))
    weights = dict(weight_cf=1.0, weight_content=0.0, weight_segment=0.0, weight_popularity=0.0,
                   weight_affinity=0.0, weight_recency=0.1, diversity_penalty=0.0, recent_first=True, recent_items=2)
    # The trigger may not be named and o4 was bought: the two newest own items left are o3 and o2; o1 competes
    # with the neighbour on its blended score (0.1 x 1/5 against 1.0).
    assert ids(rank(sig, PushState(), side, T0, scoring(**weights), POLICY)) == ["o3", "o2", "near", "o1"]
    assert ids(rank(sig, PushState(), side, T0, scoring(**weights), POLICY, with_trigger=True)) == \
        [TRIGGER, "o3", "near", "o2", "o1"]


def test_a_worked_example_of_the_blend():
    w = scoring(weight_cf=0.5, weight_content=0.2, weight_segment=0.1, weight_popularity=0.1, weight_affinity=0.1,
                diversity_penalty=0.0)
    side = FakeSide(cards={"a": ItemCard(category_id="c1", vector=(("red", 0.6), ("shoe", 0.8))),
                           "b": ItemCard(category_id="c2")},
                    trending={"ct": [("b", 8.0), ("z", 2.0)]})
    state = PushState(content=DecayedScores(at=T0, scores={"red": 3.0, "wool": 4.0}), segment_trend=(("a", 0.25),))
    sig = signal(neighbours=[("a", "c1", 0.2), ("b", "c2", 0.8)],
                 summary=UserSummary(categories=(("c2", 1.0), ("c1", 0.5))))
    got = by_id(rank(sig, state, side, T0, w, POLICY))
    # a: cf 0.2/0.8; content (3*0.6)/(5*1); segment 0.25; not trending; affinity of c1 0.5
    assert got["a"].score == pytest.approx(0.5 * 0.25 + 0.2 * 0.36 + 0.1 * 0.25 + 0.1 * 0.0 + 0.1 * 0.5)
    # b: cf 1; no vector; trending 8/8; affinity of c2 1.0
    assert got["b"].score == pytest.approx(0.5 * 1.0 + 0.1 * 1.0 + 0.1 * 1.0)
    # z: only trending, 2/8; no card, no category
    assert got["z"].score == pytest.approx(0.1 * 0.25)


# --- diversity -----------------------------------------------------------------------------------

X_AND_Y = [("x1", "cx", 1.0), ("x2", "cx", 0.9), ("x3", "cx", 0.8), ("y", "cy", 0.5)]


def test_without_a_penalty_same_category_items_keep_their_order():
    ranked = rank(signal(neighbours=X_AND_Y), PushState(), FakeSide(), T0, scoring(diversity_penalty=0.0, **CF_ONLY),
                  POLICY)
    assert [(e.item_id, e.score) for e in ranked] == [("x1", 1.0), ("x2", 0.9), ("x3", 0.8), ("y", 0.5)]


def test_after_a_pick_candidates_of_its_category_lose_the_penalty_per_pick():
    p = 0.3
    ranked = rank(signal(neighbours=X_AND_Y), PushState(), FakeSide(), T0, scoring(diversity_penalty=p, **CF_ONLY),
                  POLICY)
    # x1 first; then x2 at 0.9(1-p) = 0.63 beats y 0.5; then y 0.5 beats x3 at 0.8(1-p)^2 = 0.392.
    assert ids(ranked) == ["x1", "x2", "y", "x3"]
    assert [e.score for e in ranked] == pytest.approx([1.0, 0.9 * (1 - p), 0.5, 0.8 * (1 - p) ** 2])
    assert [e.signals[0] for e in ranked] == pytest.approx([1.0, 0.9, 0.5, 0.8])  # the raw signals stay


def test_recent_sends_within_the_cooldown_penalise_their_category():
    p = 0.3
    state = PushState(recent_items={"old": RecentSend(T0 - HOUR_MS, "cx"), "older": RecentSend(T0 - 2 * HOUR_MS, "cx"),
                                    "stale": RecentSend(T0 - COOLDOWN, "cy")})
    ranked = rank(signal(neighbours=X_AND_Y), state, FakeSide(), T0, scoring(diversity_penalty=p, **CF_ONLY), POLICY)
    before = {"x1": 1.0 * (1 - p) ** 2, "x2": 0.9 * (1 - p) ** 2, "x3": 0.8 * (1 - p) ** 2, "y": 0.5}
    # y (0.5) now leads; then the x items, each further lowered per x already placed.
    assert ids(ranked) == ["y", "x1", "x2", "x3"]
    assert [e.score for e in ranked] == pytest.approx([before["y"], before["x1"], before["x2"] * (1 - p),
                                                       before["x3"] * (1 - p) ** 2])


scored_lists = st.lists(
    st.builds(lambda n, score, category: Scored(f"i{n}", score, category, f"reason {n}", (score,)),
              st.integers(0, 30), st.floats(0.0, 10.0), st.sampled_from(["c1", "c2", "c3", None])),
    unique_by=lambda s: s.item_id, max_size=15)


@PROPERTY
@given(scored=scored_lists)
def test_with_penalty_zero_diversify_is_plain_score_order(scored):
    assert diversify(scored, 0.0) == sorted(scored, key=lambda s: (-s.score, s.item_id))


@PROPERTY
@given(scored=scored_lists, penalty=st.floats(0.01, 1.0))
def test_no_candidate_is_placed_above_one_of_higher_adjusted_score(scored, penalty):
    out = diversify(scored, penalty)
    raw = {s.item_id: s for s in scored}
    assert sorted(ids(out)) == sorted(raw)
    placed = Counter()

    def adjusted(item):
        s = raw[item]
        return s.score * (1 - penalty) ** placed[s.category_id] if s.category_id else s.score

    for i, entry in enumerate(out):
        assert entry.score == pytest.approx(adjusted(entry.item_id), rel=1e-12, abs=1e-15)
        assert all(adjusted(entry.item_id) >= adjusted(later.item_id) for later in out[i + 1:])
        original = raw[entry.item_id]
        assert (entry.category_id, entry.reason, entry.signals) == (original.category_id, original.reason,
                                                                     original.signals)
        if entry.category_id:
            placed[entry.category_id] += 1
    assert all(a.score >= b.score for a, b in zip(out, out[1:]))


# --- cold start ----------------------------------------------------------------------------------

def cold_start_side():
    return FakeSide(cards={"hot": ItemCard(category_id="ct", interactions=40), "warm": ItemCard(category_id="ct"),
                           "fresh": ItemCard(category_id="ct", listed_at=T0 - 1)},
                    trending={"ct": [("hot", 4.0), ("warm", 2.0)]}, arrivals={"ct": ["fresh"]})


def test_a_user_without_neighbours_content_or_segment_still_gets_trending_and_new_listings():
    summary = UserSummary(categories=(("ct", 1.0),))  # all a first event tells: its category
    ranked = rank(signal(summary=summary), PushState(), cold_start_side(), T0, scoring(diversity_penalty=0.0), POLICY)
    w = CONFIG.scoring
    got = by_id(ranked)
    assert set(got) == {"hot", "warm", "fresh"}
    assert got["hot"].score == pytest.approx(w.weight_popularity * 1.0 + w.weight_affinity * 1.0)
    assert got["warm"].score == pytest.approx(w.weight_popularity * 0.5 + w.weight_affinity * 1.0)
    assert got["fresh"].score == pytest.approx(w.weight_affinity * 1.0)
    assert ids(ranked)[0] == "hot"
    assert max(e.score for e in ranked) >= POLICY.min_score  # enough to be sent


def test_a_new_listing_without_interactions_is_scored_by_content():
    side = FakeSide(cards={"fresh": ItemCard(category_id="cz", vector=(("red", 0.6), ("shoe", 0.8)), listed_at=T0)},
                    arrivals={"ct": ["fresh"]})
    state = PushState(content=DecayedScores(at=T0, scores={"red": 1.0, "shoe": 1.0}))
    ranked = rank(signal(), state, side, T0, CONFIG.scoring, POLICY)
    assert ids(ranked) == ["fresh"]
    assert ranked[0].score == pytest.approx(CONFIG.scoring.weight_content * (0.6 + 0.8) / math.sqrt(2))
    assert "red" in ranked[0].reason and TRIGGER not in ranked[0].reason


def test_cold_start_through_the_memory_side_inputs_of_the_local_pipeline():
    side = MemorySideInputs(CONFIG)
    for n in range(3):
        side.windows.observe("hot", "ct", "cart", T0 - HOUR_MS + n)
    side.windows.observe("warm", "ct", "view", T0 - HOUR_MS)
    side.listings["ct"] = {"fresh": T0 - 5}
    side.item_facts["fresh"] = [(T0 - 5, ItemCard(category_id="ct", listed_at=T0 - 5))]
    side.item_facts["hot"] = [(T0 - HOUR_MS, ItemCard(category_id="ct"))]
    ranked = rank(signal(summary=UserSummary(categories=(("ct", 1.0),))), PushState(), side, T0, CONFIG.scoring,
                  POLICY)
    assert {"hot", "warm", "fresh"} <= set(ids(ranked))
    assert ids(ranked)[0] == "hot"


# --- reasons -------------------------------------------------------------------------------------

@pytest.mark.parametrize("behavior", ["view", "click", "cart", "favourite", "purchase"])
def test_a_cf_dominated_pick_names_the_trigger(behavior):
    titled = rank(signal(neighbours=[("a", "ca", 0.9)], behavior=behavior, title="Red Wool Scarf"), PushState(),
                  FakeSide(), T0, CONFIG.scoring, POLICY)
    assert titled[0].reason.startswith("because you") and "Red Wool Scarf" in titled[0].reason
    untitled = rank(signal(neighbours=[("a", "ca", 0.9)], behavior=behavior), PushState(), FakeSide(), T0,
                    CONFIG.scoring, POLICY)
    assert TRIGGER in untitled[0].reason


def test_the_verb_follows_the_trigger_behaviour():
    reasons = {behavior: rank(signal(neighbours=[("a", "ca", 0.9)], behavior=behavior), PushState(), FakeSide(), T0,
                              CONFIG.scoring, POLICY)[0].reason
               for behavior in ["view", "cart", "favourite", "purchase"]}
    assert len(set(reasons.values())) == 4


def test_picks_led_by_other_signals_do_not_claim_the_trigger():
    side = FakeSide(trending={"ct": [("hot", 1.0)]})
    state = PushState(segment_trend=(("peer", 1.0),))
    got = by_id(rank(signal(neighbours=[("a", "ca", 0.9)], title="Red Wool Scarf"), state, side, T0,
                     CONFIG.scoring, POLICY))
    assert "Red Wool Scarf" in got["a"].reason
    assert "Red Wool Scarf" not in got["hot"].reason and "Red Wool Scarf" not in got["peer"].reason
    assert got["hot"].reason != got["peer"].reason


@PROPERTY
@given(scene=scenes())
def test_the_reason_names_the_trigger_exactly_when_cf_contributes_most(scene):
    sig, state, side, weights = scene
    ranked = rank(sig, state, side, T0, scoring(diversity_penalty=0.0, **dict(zip(WEIGHTS, weights))), POLICY)
    for entry in ranked:
        parts = [w * v for w, v in zip(weights, entry.signals)]
        if parts[0] > max(parts[1:]) * (1 + 1e-9):
            assert TRIGGER in entry.reason
        elif max(parts[1:]) > parts[0] * (1 + 1e-9):
            assert TRIGGER not in entry.reason


def test_an_item_no_signal_supports_is_not_ranked_nor_explained_by_the_trigger():
    side = FakeSide(cards={"fresh": ItemCard(category_id="cz")}, arrivals={"ct": ["fresh"]})
    assert rank(signal(title="Red Wool Scarf"), PushState(), side, T0, CONFIG.scoring, POLICY) == []


RECENCY_ONLY = dict(weight_cf=0.0, weight_content=0.0, weight_segment=0.0, weight_popularity=0.0, weight_affinity=0.0,
                    weight_recency=1.0, diversity_penalty=0.0)


def test_recency_ranks_the_shoppers_own_items_newest_first_and_names_the_trigger_only_when_allowed():
    side = FakeSide(cards={"a": ItemCard(category_id="ct", title="Wool Scarf"), "b": ItemCard(category_id="ct"),
                           TRIGGER: ItemCard(category_id="ct")})
    sig = signal(summary=UserSummary(recent=("a", "b", TRIGGER)))  # newest last, the trigger is the newest
    reengage = rank(sig, PushState(), side, T0, scoring(**RECENCY_ONLY), POLICY, with_trigger=True)
    assert ids(reengage) == [TRIGGER, "b", "a"]
    assert [e.score for e in reengage] == pytest.approx([1.0, 1 / 2, 1 / 3])
    assert [e.reason for e in reengage] == [f"still thinking about item {TRIGGER}?", "still thinking about item b?",
                                            "still thinking about Wool Scarf?"]
    discovery = rank(sig, PushState(), side, T0, scoring(**RECENCY_ONLY), POLICY)
    assert ids(discovery) == ["b", "a"]
    assert [e.score for e in discovery] == pytest.approx([1 / 2, 1 / 3])  # positions count from the trigger


def test_a_recent_item_already_bought_or_notified_is_not_shown_again():
    side = FakeSide(cards={item: ItemCard(category_id="ct") for item in ("a", "b", "c", TRIGGER)})
    sig = signal(summary=UserSummary(recent=("a", "b", "c", TRIGGER), purchased=("b",)))
    state = PushState(recent_items={"c": RecentSend(T0 - 1, "ct")})
    assert ids(rank(sig, state, side, T0, scoring(**RECENCY_ONLY), POLICY, with_trigger=True)) == [TRIGGER, "a"]


def test_a_ranking_reads_item_facts_as_they_were_at_its_time_and_later_changes_do_not_reach_it():
    side = MemorySideInputs(CONFIG)
    side.windows.observe("hot", "ct", "cart", T0 - HOUR_MS)
    side.apply(RecordFacts("hot", ItemCard(category_id="ct", title="Hot"), T0 - HOUR_MS))
    side.apply(RecordFacts("hot", ItemCard(category_id="ct", title="Gone", in_stock=False), T0 + HOUR_MS))
    side.apply(ListNewArrival("fresh", "ct", T0 + 10, keep=200))  # listed after the decision
    side.apply(RecordFacts("fresh", ItemCard(category_id="ct", listed_at=T0 + 10), T0 + 10))
    ranked = rank(signal(summary=UserSummary(categories=(("ct", 1.0),))), PushState(), side, T0, CONFIG.scoring,
                  POLICY)
    assert "fresh" not in ids(ranked)
    assert [entry.title for entry in ranked if entry.item_id == "hot"] == ["Hot"]
    later = rank(signal(summary=UserSummary(categories=(("ct", 1.0),))), PushState(), side, T0 + 2 * HOUR_MS,
                 CONFIG.scoring, POLICY)
    assert "hot" not in ids(later) and "fresh" in ids(later)  # out of stock by then; listed by then
