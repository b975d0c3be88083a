"""Item-keyed hop: catalogue join, decayed popularity, co-occurrence row and top-K cosine neighbours.

On a first visit (u, i) with the user's recent distinct items H, the row of i counts C[i][j] += 1
for j in H and n[i] += 1. One record per event reaches this hop (no fan-out per pair), and work
per event is bounded by |H|, the row cap and K. Cosine sim(i, j) = C[i][j] / sqrt(n[i] n[j]) needs
n[j], which lives with item j: every item publishes a card with its counts, and the shell reads
other items' cards through a cache (`cards` below), so the core stays pure.

The item also keeps its watchers: shoppers who viewed, carted or favourited it within
`journeys.watch_ms`, at most `journeys.watchers_per_item` of them, newest first. A catalogue
record that cuts the price by `journeys.price_drop_min_pct` or more, or restocks the item, tells
each watcher's push policy, so one record costs at most that many messages. Only shoppers who
last looked before the record are told (a later look saw the new price). The item keeps its last
few changes for `watch_ms`, so a shopper whose earlier look is read after the record (a replay
reads the small catalogue first; a slow path) is told when that look arrives: what is told does
not hang on which path was read first.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

from msgspec.structs import replace

from config import ItemModelConfig, JourneysConfig, ProfileConfig
from config.learning import FactorsConfig
from state_schemas.events import CatalogItem
from state_schemas.hops import ForgetWatcher, ItemSignal, ItemUpdate, ListedItem, WatchedItemChange
from state_schemas.state import CatalogChange, CoCount, DecayedValue, ItemCard, ItemModel, Neighbour, Watch
from state_schemas.units import HOUR_MS

from . import factors
from .content import event_terms, tfidf_vector
from .decay import decayed_add
from .journeys import INTEREST
from .steps import END_OF_STREAM, ListNewArrival, PublishCard, PublishNeighbours, RecordFacts, Step, StepContext

CardLookup = Callable[..., Mapping[str, ItemCard]]  # (items, fresh=False) -> cards of those that have one
ARRIVALS_KEPT = 200  # newest listings kept per category
RESTOCK_WATCHERS = frozenset({"favourite", "cart"})  # told when the item is back in stock
CHANGES_KEPT = 4  # an item's latest price drops and restocks, for watchers read after them


def step(state: ItemModel, message: ItemUpdate | ListedItem | ForgetWatcher, context: StepContext) -> Step:
    config = context.config
    if isinstance(message, ListedItem):
        return join_catalog(state, message.item, message.vector, config.journeys)
    if isinstance(message, ForgetWatcher):
        if message.user_id not in state.watchers:
            return Step(state=state)
        return Step(state=replace(state, watchers={u: w for u, w in state.watchers.items() if u != message.user_id}))
    step = update_item(state, message, context.side.cards, config.item_model, config.profile,
                       config.catalog.terms_per_item, config.factors, input_ends=config.kafka.bounded)
    event = message.event
    watchers = watched_by(step.state.watchers, event.user_id, event.behavior, event.ts, event.price, config.journeys)
    if watchers is step.state.watchers:
        return step
    late = told_late(step.state, event.item_id, event.user_id, step.state.watchers.get(event.user_id),
                     watchers.get(event.user_id), config.journeys)
    return replace(step, state=replace(step.state, watchers=watchers), emit=step.emit + late,
                   counts=step.counts + ("watchers_told_late",) * len(late))


def told_late(state: ItemModel, item_id: str, user_id: str, was: Watch | None, now: Watch | None,
              journeys: JourneysConfig) -> tuple:
    """The changes already made that the shopper's watch tells them of now and did not before: their look
    came before a change but was read after it, or a restock reaches them once they favourite or cart."""
    if now is None:
        return ()
    return tuple(_telling(change, item_id, user_id) for change in state.changes
                 if _tells(change, now, journeys) and not (was is not None and _tells(change, was, journeys)))


def _tells(change: CatalogChange, watch: Watch, journeys: JourneysConfig) -> bool:
    """A change tells a watcher who last looked before it, within `watch_ms`; a restock, only one who carted
    or favourited the item. Once a later look passes the change, it never tells them again."""
    return (watch.at <= change.ts and change.ts - watch.at < journeys.watch_ms
            and (change.change == "price_drop" or watch.behavior in RESTOCK_WATCHERS))


def _telling(change: CatalogChange, item_id: str, user_id: str) -> WatchedItemChange:
    return WatchedItemChange(user_id=user_id, item_id=item_id, change=change.change, ts=change.ts, card=change.card,
                             was_price=change.was_price)


def watched_by(watchers: dict[str, Watch], user_id: str, behavior: str, ts: int, price: float | None,
               journeys: JourneysConfig) -> dict[str, Watch]:
    """The watchers after a behaviour event: the strongest interest kept (`journeys.INTEREST`), a purchase
    ends the watch, watches older than `watch_ms` go, and only the newest `watchers_per_item` stay."""
    known = watchers.get(user_id)
    if behavior == "purchase":
        return {u: w for u, w in watchers.items() if u != user_id} if known is not None else watchers
    if behavior not in INTEREST or (known is not None and known.at > ts):
        return watchers
    strongest = behavior if known is None or INTEREST[behavior] >= INTEREST.get(known.behavior, 0) else known.behavior
    kept = {u: w for u, w in watchers.items() if ts - w.at < journeys.watch_ms and u != user_id}
    kept[user_id] = Watch(strongest, ts, price)
    if len(kept) > journeys.watchers_per_item:
        kept = dict(sorted(kept.items(), key=lambda kv: (kv[1].at, kv[0]))[-journeys.watchers_per_item:])
    return kept


def catalog_change(state: ItemModel, item: CatalogItem, card: ItemCard,
                   journeys: JourneysConfig) -> CatalogChange | None:
    """What a catalogue record changed for the item's watchers: a price cut, or a restock after none in stock."""
    if state.listed_at is None:  # the first record: nothing it could have changed
        return None
    if (state.price is not None and item.price is not None
            and item.price <= state.price * (1 - journeys.price_drop_min_pct / 100)):
        return CatalogChange("price_drop", item.ts, replace(card, vector=()), was_price=state.price)
    if state.stock == 0 and item.stock is not None and item.stock > 0:
        return CatalogChange("back_in_stock", item.ts, replace(card, vector=()))
    return None


def watched_changes(state: ItemModel, item_id: str, change: CatalogChange, journeys: JourneysConfig) -> tuple:
    """The watchers a change tells (`_tells`), each once."""
    return tuple(_telling(change, item_id, user) for user, watch in sorted(state.watchers.items())
                 if _tells(change, watch, journeys))


def on_timer(state: ItemModel, item_id: str, timestamp: int, context: StepContext) -> Step:
    """Recompute the top-K with newer denominators. When a bounded stream ends, the watermark jumps
    to the end of time: every item with a row refreshes once more, reading other items' latest counts."""
    if not state.row:
        return Step(state=state)
    final = timestamp == END_OF_STREAM
    refreshed = refresh_neighbours(state, lambda items: context.side.cards(items, fresh=final),
                                   context.config.item_model)
    return Step(state=refreshed, effects=(PublishNeighbours(item_id, refreshed.neighbours),))


def trim_row(row: dict[str, CoCount], cap: int) -> dict[str, CoCount]:
    # Trim with slack so the sort runs once per many inserts, not on every event.
    if len(row) <= cap + cap // 4:
        return row
    return dict(sorted(row.items(), key=lambda kv: (-kv[1].count, kv[0]))[:cap])


def cosine_neighbours(row: Mapping[str, CoCount], interactions: int, counts: Mapping[str, int],
                      k: int) -> tuple[Neighbour, ...]:
    """Top-k of the row by C[i][j] / sqrt(n_i n_j); ties by item id so replays agree."""
    scored = []
    for other, entry in row.items():
        n_other = max(counts.get(other, 0), 1)
        scored.append((entry.count / math.sqrt(max(interactions, 1) * n_other), other, entry.category_id))
    scored.sort(key=lambda entry: (-entry[0], entry[1]))
    return tuple(Neighbour(other, category, round(sim, 9)) for sim, other, category in scored[:k])


def next_refresh(ts: int, config: ItemModelConfig) -> int:
    """Coalesced: at most one refresh timer per item per interval."""
    return (ts // config.neighbour_refresh_ms + 1) * config.neighbour_refresh_ms


def refresh_neighbours(state: ItemModel, cards: CardLookup, config: ItemModelConfig) -> ItemModel:
    counts = {item: card.interactions for item, card in cards(state.row).items()}
    return replace(state, neighbours=cosine_neighbours(state.row, state.interactions, counts, config.neighbours))


def update_item(state: ItemModel, update: ItemUpdate, cards: CardLookup, config: ItemModelConfig,
                profile: ProfileConfig, terms_per_item: int, factor_config: FactorsConfig = FactorsConfig(),
                input_ends: bool = True) -> Step:
    event = update.event
    ts = event.ts
    weight = profile.event_weights.get(event.behavior, 0.0)
    popularity, popularity_at = decayed_add(state.popularity.value, state.popularity.at, weight, ts,
                                            config.popularity_half_life_hours * HOUR_MS)
    row, interactions = state.row, state.interactions
    if not update.repeat:
        interactions += 1
        if update.history:
            row = dict(row)
            for other, category in update.history:
                entry = row.get(other)
                row[other] = CoCount(entry.count + 1, category or entry.category_id) if entry else CoCount(1, category)
            row = trim_row(row, config.row_cap)
    listed = state.listed_at is not None
    item_factors = state.factors
    if update.user_factors:  # the item's ISGD step (operators.factors)
        item_factors = factors.item_step(state.factors or factors.initial(event.item_id, factor_config),
                                         update.user_factors, factor_config)
    new_state = replace(
        state,
        factors=item_factors,
        # The catalogue is the authority on an item's facts; events fill in for items it has not listed.
        category_id=state.category_id if listed else event.category_id or state.category_id,
        price=state.price if listed or event.price is None else event.price,
        brand=state.brand if listed else event.brand or state.brand,
        interactions=interactions,
        popularity=DecayedValue(popularity, popularity_at),
        row=row,
    )
    facts = (new_state.category_id, new_state.brand, new_state.price)
    if not listed and (facts != (state.category_id, state.brand, state.price) or not state.vector):
        # Not in the catalogue (yet): a content vector from the facts events carry, so content
        # scoring still works; no IDF, since document frequencies come with catalogue records.
        new_state = replace(new_state, vector=tfidf_vector(event_terms(*facts), {}, 0, terms_per_item))
    if update.trigger and new_state.row:
        new_state = refresh_neighbours(new_state, cards, config)
    enriched = replace(event, **{name: value for name, value in (
        ("category_id", new_state.category_id), ("brand", new_state.brand), ("price", new_state.price))
        if value is not None})
    card = new_state.card()
    signal = ItemSignal(event=enriched, card=card, trigger=update.trigger,
                        neighbours=new_state.neighbours if update.trigger else (), summary=update.summary)
    # Coalesced: at most one refresh per item per interval, and one more when a bounded stream ends (only then:
    # timers outlive the state TTL, so an unbounded job would keep one for every item it ever saw).
    timers = ((next_refresh(ts, config),) + ((END_OF_STREAM,) if input_ends else ())) if row is not state.row else ()
    facts = new_state.facts()
    recorded = (RecordFacts(event.item_id, facts, ts),) if facts != state.facts() else ()
    return Step(state=new_state, emit=(signal,), effects=(PublishCard(event.item_id, card), *recorded), timers=timers,
                counts=() if listed else ("events_for_unlisted_items",))


def join_catalog(state: ItemModel, item: CatalogItem, vector: tuple[tuple[str, float], ...],
                 journeys: JourneysConfig) -> Step:
    """A catalogue record replaces the item's facts and lists it among its category's arrivals, and
    tells the watchers of a price drop or restock; an older record than the one held is ignored."""
    if state.listed_at is not None and item.ts < state.listed_at:
        return Step(state=state)
    new_state = replace(state, category_id=item.category_id, price=item.price, brand=item.brand, title=item.title,
                        stock=item.stock, listed_at=item.ts, vector=vector)
    card = new_state.card()
    change = catalog_change(state, item, card, journeys)
    told = watched_changes(state, item.item_id, change, journeys) if change else ()
    if change:
        kept = tuple(c for c in state.changes if item.ts - c.ts < journeys.watch_ms)
        new_state = replace(new_state, changes=(kept + (change,))[-CHANGES_KEPT:])
    facts = new_state.facts()
    recorded = (RecordFacts(item.item_id, facts, item.ts),) if facts != state.facts() else ()
    return Step(state=new_state, emit=told, counts=("watchers_told",) * len(told),
                effects=(PublishCard(item.item_id, card), *recorded,
                         ListNewArrival(item.item_id, item.category_id, item.ts, ARRIVALS_KEPT)))
