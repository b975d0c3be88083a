"""Item-keyed hop: catalogue join, decayed popularity, co-occurrence row and top-K cosine neighbours.

On a first visit (u, i) with the user's recent distinct items H, the row of i counts C[i][j] += 1
for j in H and n[i] += 1. One record per event reaches this hop (no fan-out per pair), and work
per event is bounded by |H|, the row cap and K. Cosine sim(i, j) = C[i][j] / sqrt(n[i] n[j]) needs
n[j], which lives with item j: every item publishes a card with its counts, and the shell reads
other items' cards through a cache (`cards` below), so the core stays pure.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from state_schemas.events import CatalogItem
from state_schemas.state import ItemCard, ItemModel, ItemSignal, ItemUpdate, Neighbour

from .content import event_terms, tfidf_vector
from .decay import decayed_add

if TYPE_CHECKING:
    from jobs.config import ItemModelConfig, ProfileConfig

HOUR_MS = 3_600_000

CardLookup = Callable[[Iterable[str]], Mapping[str, ItemCard]]


@dataclass(frozen=True, slots=True)
class ItemStep:
    state: ItemModel
    card: ItemCard  # publish for other keys' cosine denominators and the scorer
    signal: ItemSignal | None = None  # to the user's scorer
    refresh_at: int | None = None  # event-time timer for recomputing the neighbours


def trim_row(row: dict[str, list], cap: int) -> dict[str, list]:
    # Trim with slack so the sort runs once per many inserts, not on every event.
    if len(row) <= cap + cap // 4:
        return row
    return dict(sorted(row.items(), key=lambda kv: (-kv[1][0], kv[0]))[:cap])


def cosine_neighbours(row: Mapping[str, list], interactions: int, counts: Mapping[str, int],
                      k: int) -> tuple[Neighbour, ...]:
    """Top-k of the row by C[i][j] / sqrt(n_i n_j); ties by item id so replays agree."""
    scored = []
    for other, (co_count, category) in row.items():
        n_other = max(counts.get(other, 0), 1)
        scored.append((co_count / math.sqrt(max(interactions, 1) * n_other), other, category))
    scored.sort(key=lambda entry: (-entry[0], entry[1]))
    return tuple(Neighbour(other, category, round(sim, 9)) for sim, other, category in scored[:k])


def next_refresh(ts: int, config: "ItemModelConfig") -> int:
    """Coalesced: at most one refresh timer per item per interval."""
    return (ts // config.neighbour_refresh_ms + 1) * config.neighbour_refresh_ms


def refresh_neighbours(state: ItemModel, cards: CardLookup, config: "ItemModelConfig") -> ItemModel:
    counts = {item: card.interactions for item, card in cards(state.row).items()}
    return replace(state, neighbours=cosine_neighbours(state.row, state.interactions, counts, config.neighbours))


def update_item(state: ItemModel, update: ItemUpdate, cards: CardLookup, config: "ItemModelConfig",
                profile: "ProfileConfig", terms_per_item: int) -> ItemStep:
    event = update.event
    ts = event["ts"]
    weight = profile.event_weights.get(event["behavior"], 0.0)
    popularity, popularity_at = decayed_add(state.popularity, state.popularity_at, weight, ts,
                                            config.popularity_half_life_hours * HOUR_MS)
    row, interactions = state.row, state.interactions
    if not update.repeat:
        interactions += 1
        if update.history:
            row = dict(row)
            for other, category in update.history:
                entry = row.get(other)
                row[other] = [entry[0] + 1, category or entry[1]] if entry else [1, category]
            row = trim_row(row, config.row_cap)
    new_state = replace(
        state,
        # The catalogue is the authority on an item's facts; events fill in for items it has not listed.
        category_id=state.category_id if state.listed_at is not None else event.get("category_id") or state.category_id,
        price=state.price if state.listed_at is not None else event.get("price", state.price),
        brand=state.brand if state.listed_at is not None else event.get("brand") or state.brand,
        interactions=interactions,
        popularity=popularity,
        popularity_at=popularity_at,
        row=row,
    )
    facts = (new_state.category_id, new_state.brand, new_state.price)
    if new_state.listed_at is None and (facts != (state.category_id, state.brand, state.price) or not state.vector):
        # Not in the catalogue (yet): a content vector from the facts events carry, so content
        # scoring still works; no IDF, since document frequencies come with catalogue records.
        new_state = replace(new_state, vector=tfidf_vector(event_terms(*facts), {}, 0, terms_per_item))
    if update.trigger and new_state.row:
        new_state = refresh_neighbours(new_state, cards, config)
    enriched = dict(event)
    for name, value in (("category_id", new_state.category_id), ("brand", new_state.brand),
                        ("price", new_state.price)):
        if value is not None:
            enriched[name] = value
    card = new_state.card()
    signal = ItemSignal(event=enriched, card=card, trigger=update.trigger,
                        neighbours=new_state.neighbours if update.trigger else (), summary=update.summary)
    refresh = next_refresh(ts, config) if row is not state.row else None
    return ItemStep(state=new_state, card=card, signal=signal, refresh_at=refresh)


def join_catalog(state: ItemModel, item: CatalogItem, vector: tuple[tuple[str, float], ...]) -> ItemStep:
    """A catalogue record replaces the item's facts; an older record than the one held is ignored."""
    if state.listed_at is not None and item.ts < state.listed_at:
        return ItemStep(state=state, card=state.card())
    new_state = replace(state, category_id=item.category_id, price=item.price, brand=item.brand, title=item.title,
                        stock=item.stock, listed_at=item.ts, vector=vector)
    return ItemStep(state=new_state, card=new_state.card())
