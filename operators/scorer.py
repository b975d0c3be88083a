"""Hybrid scorer: one score per candidate from CF, content, segment trend, popularity, affinity, recency and MF.

score = w_cf*cf + w_content*content + w_segment*segment + w_popularity*popularity + w_affinity*affinity
+ w_recency*recency + w_mf*mf, each signal in [0, 1] (mf: the user's streamed factors . the candidate's,
clipped at 0, over the pool's best; operators.factors); then a diversity penalty score*(1 - p) per recent send (and
per item already chosen) in the same category. Recency is 1/(1 + i) for the shopper's i-th newest
distinct item (the trigger is i = 0): shoppers come back to what they looked at, so "still thinking
about X?" is the strongest simple recommendation there is. With `recent_first` the shopper's newest
`recent_items` admissible own items rank ahead of all others (in blend order among themselves) and the other
signals fill the places left: on both shared logs every hit of every method is a re-find (README,
Recommendation quality), and in a weighted sum a strong neighbour displaced a faint recent item. Excluded:
what the user bought, items out of stock, items notified within the cooldown, and the trigger item itself
unless `with_trigger` (a re-engagement message may name it, a discovery message may not). Candidates come
from the trigger's neighbours, the shopper's recent items, the user's segment trend, trending items and the
newest listings of the trigger's category; the last two are the cold-start paths for new users and for new items.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Iterable

from config import PolicyConfig, ScoringConfig
from state_schemas.events import BehaviourEvent
from state_schemas.hops import ItemSignal
from state_schemas.state import ItemCard, PushState

from .content import cosine
from .factors import dot
from .steps import SideInputs

SIGNALS = ("cf", "content", "segment", "popularity", "affinity", "recency", "mf")
VERBS = {"cart": "added to your cart", "favourite": "saved", "purchase": "bought", "click": "looked at"}


@dataclass(frozen=True, slots=True)
class Scored:
    item_id: str
    score: float
    category_id: str | None
    reason: str
    signals: tuple[float, ...]  # in the order of SIGNALS
    title: str | None = None  # from the item's card, for the copy
    price: float | None = None


def _normalised(pairs: Iterable[tuple[str, float]]) -> dict[str, float]:
    pairs = list(pairs)
    top = max((score for _, score in pairs), default=0.0) or 1.0
    return {item: score / top for item, score in pairs}


def _reason(signal: str, event: BehaviourEvent, trigger_title: str | None, item: str, card: ItemCard,
            content_terms) -> str:
    if signal == "cf":
        return f"because you {VERBS.get(event.behavior, 'viewed')} {trigger_title or 'item ' + event.item_id}"
    if signal == "content":
        shared = [term for term, _ in card.vector if term in content_terms and not term.startswith("price:")]
        return f"matches what you like ({shared[0].split(':')[-1]})" if shared else "matches what you like"
    if signal == "segment":
        return "popular with shoppers like you"
    if signal == "popularity":
        return "trending now"
    if signal == "mf":
        return "picked for you"
    if signal == "recency":
        return f"still thinking about {card.title or 'item ' + item}?"
    return "from a category you shop often"


def rank(signal: ItemSignal, state: PushState, side: SideInputs, now: int, scoring: ScoringConfig,
         policy: PolicyConfig, with_trigger: bool = False) -> list[Scored]:
    """All admissible candidates for a trigger, best first, with the diversity penalty applied greedily."""
    event = signal.event
    trigger, category = event.item_id, signal.card.category_id
    summary = signal.summary
    seen = [*(summary.recent if summary else ()), trigger]
    recency = {item: 1.0 / (1 + i) for i, item in enumerate(dict.fromkeys(reversed(seen)))}
    excluded = {*(summary.purchased if summary else ()), *(() if with_trigger else (trigger,))}
    recent = {item: entry for item, entry in state.recent_items.items() if now - entry.at < policy.renotify_cooldown_ms}
    cf = _normalised((n.item_id, n.similarity) for n in signal.neighbours)
    segment = dict(state.segment_trend)
    trending = _normalised(side.trending(category, now))
    pool = [*cf, *recency, *segment, *trending, *side.arrivals(category, now)]
    pool = [item for item in dict.fromkeys(pool) if item not in excluded and item not in recent]
    cards = side.facts(pool, now)  # as they were at `now`, whenever and wherever this runs
    affinity = dict(summary.categories) if summary else {}
    content = state.content.scores
    weights = (scoring.weight_cf, scoring.weight_content, scoring.weight_segment, scoring.weight_popularity,
               scoring.weight_affinity, scoring.weight_recency, scoring.weight_mf)
    sent_categories = [entry.category_id for entry in recent.values() if entry.category_id is not None]
    user_factors = summary.factors if summary else ()
    # Factors move with every event, so they are read as they stand (streamed factors are off by default).
    learned = side.cards(pool) if user_factors else {}
    mf = _normalised((item, max(dot(user_factors, card.factors), 0.0)) for item in pool
                     if (card := learned.get(item)) is not None and card.factors) if user_factors else {}
    scored = []
    for item in pool:
        card = cards.get(item) or ItemCard()
        if not card.in_stock:
            continue
        item_category = card.category_id or next((n.category_id for n in signal.neighbours if n.item_id == item), None)
        values = (cf.get(item, 0.0), cosine(content, card.vector) if content and card.vector else 0.0,
                  segment.get(item, 0.0), trending.get(item, 0.0),
                  affinity.get(item_category, 0.0) if item_category else 0.0, recency.get(item, 0.0), mf.get(item, 0.0))
        parts = [w * v for w, v in zip(weights, values)]
        score = sum(parts)
        if score <= 0:  # no signal supports it: nothing honest to say about it
            continue
        for sent in sent_categories:
            if sent == item_category:
                score *= 1.0 - scoring.diversity_penalty
        strongest = SIGNALS[max(range(len(parts)), key=lambda i: parts[i])]
        reason = _reason(strongest, event, signal.card.title, item, card, content)
        scored.append(Scored(item, score, item_category, reason, values, card.title, card.price))
    ranked = diversify(scored, scoring.diversity_penalty)
    if scoring.recent_first and scoring.weight_recency > 0:  # recency's weight 0 says own items earn no place
        named = {entry.item_id for entry in ranked}  # admissible, in stock and supported by some signal
        first = set([item for item in recency if item in named][:scoring.recent_items])  # newest first
        return [s for s in ranked if s.item_id in first] + [s for s in ranked if s.item_id not in first]
    return ranked


def diversify(scored: list[Scored], penalty: float) -> list[Scored]:
    """Greedy: after each pick, candidates of the picked category lose `penalty` of their score.

    Lazy evaluation (scores only ever go down): a popped candidate whose score is still current is
    the best; a stale one is re-pushed with its adjusted score. O(n log n), not O(n^2)."""
    if not penalty:
        return sorted(scored, key=lambda s: (-s.score, s.item_id))
    heap = [(-s.score, s.item_id, 0, s) for s in scored]
    heapq.heapify(heap)
    picked, seen = [], {}
    while heap:
        negative, item_id, counted, entry = heapq.heappop(heap)
        times = seen.get(entry.category_id, 0) if entry.category_id else 0
        if times != counted:
            heapq.heappush(heap, (-entry.score * (1.0 - penalty) ** times, item_id, times, entry))
            continue
        picked.append(Scored(entry.item_id, -negative, entry.category_id, entry.reason, entry.signals, entry.title,
                             entry.price))
        if entry.category_id:
            seen[entry.category_id] = times + 1
    return picked
