"""Content signal: TF-IDF item vectors from catalogue text and facts, and a decayed user vector.

Terms: lowercased title words as they are ("wireless"); in Chinese, Japanese and Korean, which write
no spaces between words, each run of those characters as its overlapping character bigrams ("蓝牙耳机":
"蓝牙", "牙耳", "耳机"; a lone character as itself), so two titles that share a word share terms
without a dictionary; and structured facts with a prefix that
a title word cannot carry (words have no ':'): "tag:<tag>", "brand:<brand>", "cat:<category_id>",
"price:<band>" (tags and brands lowercased, inner spaces collapsed; category ids verbatim).
Items known only from events (no catalogue record) get the structured terms alone, spelt the
same, so their vectors meet catalogue items' vectors on brand, category and price.
"""
from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections import Counter
from typing import Callable, Iterable, Mapping, Union

from state_schemas.events import CatalogItem
from state_schemas.state import DecayedScores

from .decay import decay_factor

# Upper bounds of the price bands p0..p6; p7 is everything from the last bound up. Log-spaced so
# a band means "about this expensive" at every price level.
PRICE_BAND_BOUNDS = (10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)

STOPWORDS = frozenset({
    "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is", "it", "its", "of",
    "on", "or", "our", "the", "this", "that", "to", "with", "your", "you",
})

# Han (with its extensions and compatibility block), kana and Hangul: scripts written without spaces.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\U00020000-\U0002ffff"
_TOKEN = re.compile(f"([{_CJK}]+)|[^\\W{_CJK}]+")

SparseVector = Union[Mapping[str, float], Iterable[tuple[str, float]]]


def price_band(price: float | None) -> str | None:
    if price is None or not math.isfinite(price):
        return None
    return f"p{bisect_right(PRICE_BAND_BOUNDS, price)}"


def _fact(value: str) -> str:
    # Catalogue feeds and event logs disagree on case and spacing ("Apple" vs "apple").
    return " ".join(value.lower().split())


def normalised_brand(brand: str | None) -> str | None:
    """The brand as content terms spell it, so profile and content vectors agree."""
    return _fact(brand) or None if brand else None


def title_words(title: str) -> list[str]:
    words = []
    for match in _TOKEN.finditer(title.lower()):
        run = match.group(1)
        if run is not None:
            words += [run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)]
            continue
        word = match.group(0)
        if len(word) >= 2 and word not in STOPWORDS and not word.isdigit():
            words.append(word)
    return words


def event_terms(category_id: str | None, brand: str | None, price: float | None) -> dict[str, int]:
    terms = {}
    if category_id:
        terms[f"cat:{category_id}"] = 1  # an id: kept verbatim
    if brand and _fact(brand):
        terms[f"brand:{_fact(brand)}"] = 1
    band = price_band(price)
    if band is not None:
        terms[f"price:{band}"] = 1
    return terms


def item_terms(item: CatalogItem) -> dict[str, int]:
    counts = Counter(title_words(item.title))
    # Tags are a set: a feed repeating a tag does not make it weigh more.
    counts.update({f"tag:{tag}": 1 for tag in {_fact(t) for t in item.tags} if tag})
    counts.update(event_terms(item.category_id, item.brand, item.price))
    return dict(counts)


def tfidf_vector(term_counts: Mapping[str, int], document_frequency: Mapping[str, int] | Callable[[str], int],
                 documents: int, max_terms: int) -> tuple[tuple[str, float], ...]:
    """The `max_terms` strongest tf * idf weights, L2-normalised, ranked by weight then term.

    tf = count / total count, idf = ln((1 + N) / (1 + df)) + 1 (smoothed: never zero, defined for df = 0).
    `document_frequency` is a mapping or a lookup such as `dict.get`; an unseen term has df 0.
    """
    counts = {term: count for term, count in term_counts.items() if count > 0}
    total = sum(counts.values())
    if not total:
        return ()
    lookup = document_frequency if callable(document_frequency) else document_frequency.get
    documents = max(documents, 0)
    weights = {}
    for term, count in counts.items():
        # df and N may be read from state updated at different moments; df > N would push idf below 1.
        df = min(max(lookup(term) or 0, 0), documents)
        weights[term] = count / total * (math.log((1 + documents) / (1 + df)) + 1.0)
    kept = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:max_terms]
    norm = math.sqrt(sum(w * w for _, w in kept))
    if not norm:
        return ()
    return tuple((term, w / norm) for term, w in kept)


def _as_dict(vector: SparseVector) -> Mapping[str, float]:
    return vector if isinstance(vector, Mapping) else dict(vector)


def cosine(a: SparseVector, b: SparseVector) -> float:
    a, b = _as_dict(a), _as_dict(b)
    if not a or not b:
        return 0.0
    # fsum is exactly rounded, so the result does not depend on argument or iteration order.
    dot = math.fsum(a[term] * b[term] for term in a.keys() & b.keys())
    norms = math.sqrt(math.fsum(w * w for w in a.values())) * math.sqrt(math.fsum(w * w for w in b.values()))
    if not norms:
        return 0.0
    # Rounding can put identical vectors a hair above 1.
    return max(-1.0, min(1.0, dot / norms))


def add_vector(user: DecayedScores, item_vector: SparseVector, weight: float, now: int, half_life_ms: float,
               max_terms: int) -> DecayedScores:
    """Decay the user's content vector to a common time, add weight x item vector, keep the strongest terms."""
    if now >= user.at:
        factor = decay_factor(now - user.at, half_life_ms)
        updated = {term: value * factor for term, value in user.scores.items()}
        scale, at = weight, now
    else:
        updated = dict(user.scores)
        scale, at = weight * decay_factor(user.at - now, half_life_ms), user.at  # late: never move time back
    for term, value in _as_dict(item_vector).items():
        updated[term] = updated.get(term, 0.0) + scale * value
    if len(updated) > max_terms:
        updated = dict(sorted(updated.items(), key=lambda kv: (-kv[1], kv[0]))[:max_terms])
    return DecayedScores(at=at, scores=updated)
