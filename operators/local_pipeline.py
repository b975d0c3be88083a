"""The job's dataflow without Flink: admit -> user context -> (segmenter) -> item model -> scorer.

It calls the same core functions and stores the same versioned state encodings as the Flink
shells, one event at a time, over any key-value store. Side inputs that the job reads from Redis
(item cards, trending, new listings) come from memory here and are always fresh, so at
parallelism 1 the job and this pipeline agree whenever the job's caches are fresh too. Benchmarks
use it as the Python ceiling; `make eval` replays real logs through it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Mapping, Protocol, Sequence

from state_schemas import codec
from state_schemas.events import CatalogItem, decode_event
from state_schemas.outputs import DeadLetter, Notification, ServingRecord
from state_schemas.segments import SegmentAssignment, SegmentModel, SegmentUpdate
from state_schemas.state import ItemCard, ItemModel, ItemSignal, ItemUpdate, ListedItem, PushState, UserContext

from . import catalog_intake, intake, item_model, push_policy, segments, user_context
from .content import Vocabulary, item_terms, tfidf_vector
from .trending import TrendingWindows, category_then_global, last_window_end

if TYPE_CHECKING:
    from jobs.config import JobConfig

ARRIVALS_READ = 20


class StateStore(Protocol):
    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...

    def delete(self, key: str) -> None: ...


class DictStore(dict):
    def set(self, key: str, value: str) -> None:
        self[key] = value

    def delete(self, key: str) -> None:
        self.pop(key, None)


@dataclass
class Outputs:
    notifications: list[Notification] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    serving: list[ServingRecord] = field(default_factory=list)


class MemorySideInputs:
    """Item cards, trending and new listings as the job's Redis side inputs hold them, kept in memory."""

    def __init__(self, config: "JobConfig"):
        self.top_n = config.trending.top_n
        self.item_cards: dict[str, ItemCard] = {}
        self.windows = TrendingWindows(config.trending.window_ms, config.trending.slide_ms,
                                       config.profile.event_weights)
        self.listings: dict[str, dict[str, int]] = {}
        self.now = 0
        self.window_ms, self.slide_ms = config.trending.window_ms, config.trending.slide_ms
        self.trending_end, self.trending_lists = None, {}
        self.trending_enabled = config.trending.enabled and config.redis.enabled

    def cards(self, items: Iterable[str]) -> Mapping[str, ItemCard]:
        return {item: self.item_cards[item] for item in items if item in self.item_cards}

    def trending(self, category: str | None) -> Sequence[tuple[str, float]]:
        if not self.trending_enabled:  # the job writes no lists then, so its scorer reads none
            return []
        # Lists change only when a window ends, as the job's Redis lists do: computed once per window.
        end = last_window_end(self.now, self.window_ms, self.slide_ms)
        if end != self.trending_end:
            self.trending_end, self.trending_lists = end, self.windows.tops(self.now, self.top_n)
        own = self.trending_lists.get(category, ()) if category is not None else ()
        return category_then_global(own, self.trending_lists.get(None, ()))

    def arrivals(self, category: str | None) -> Sequence[str]:
        listed = self.listings.get(category or "", {})
        return [item for item, _ in sorted(listed.items(), key=lambda kv: (-kv[1], kv[0]))[:ARRIVALS_READ]]


class LocalPipeline:
    def __init__(self, config: "JobConfig", store: StateStore):
        self.config = config
        self.store = store
        self.side = MemorySideInputs(config)
        self.vocabulary = Vocabulary()

    def process(self, raw: bytes, now_ms: int, out: Outputs) -> None:
        try:
            event = intake.admit(raw, now_ms, self.config.intake)
        except intake.Rejected as rejection:
            out.dead_letters.append(DeadLetter(reason=rejection.reason, stage="admit", raw=raw, rejected_at=now_ms))
            return
        if getattr(event, "item_id", None) is not None:
            self.side.windows.observe(event.item_id, event.category_id, event.behavior, event.ts)
        self.side.now = max(self.side.now, event.ts)
        # Hops exchange encoded records, as they do across Flink's keyed shuffles.
        user_key = "u:" + event.user_id
        step = user_context.observe(UserContext.decode(self.store.get(user_key)),
                                    decode_event(codec.dumps_str(event.to_dict())),
                                    self.config.intake, self.config.profile, self.config.segments)
        self._store(user_key, step.state)
        if step.to_segmenter is not None:
            self._segmenter(step.to_segmenter.encode(), now_ms, out)
        if step.to_item_hop is not None:
            self._item_hop(step.to_item_hop.encode(), now_ms, out)
        if step.to_push_hop is not None:
            self._push_hop(event.user_id, decode_event(codec.dumps_str(step.to_push_hop.to_dict())), now_ms, out)

    def process_catalog(self, raw: bytes, now_ms: int, out: Outputs) -> None:
        try:
            item = catalog_intake.admit_catalog(raw, now_ms, self.config.catalog, self.config.intake)
        except intake.Rejected as rejection:
            out.dead_letters.append(DeadLetter(reason=rejection.reason, stage="admit-catalog", raw=raw,
                                               rejected_at=now_ms))
            return
        terms = item_terms(item)
        self.vocabulary.observe(item.item_id, terms)
        vector = tfidf_vector(terms, self.vocabulary.document_frequency, self.vocabulary.documents,
                              self.config.catalog.terms_per_item)
        listed = ListedItem.decode(ListedItem(item=item.to_dict(), vector=vector).encode())
        item_key = "i:" + item.item_id
        step = item_model.join_catalog(ItemModel.decode(self.store.get(item_key)),
                                       CatalogItem.from_dict(listed.item), listed.vector)
        self.store.set(item_key, step.state.encode())
        self.side.item_cards[item.item_id] = step.card
        self.side.listings.setdefault(item.category_id, {})[item.item_id] = item.ts

    def _segmenter(self, payload: str, now_ms: int, out: Outputs) -> None:
        raw = self.store.get("segments")
        model = SegmentModel.decode(raw) if raw is not None else SegmentModel()
        model, assignment = segments.update_segments(model, SegmentUpdate.decode(payload), self.config.segments)
        self.store.set("segments", model.encode())
        self._push_hop(assignment.user_id, SegmentAssignment.decode(assignment.encode()), now_ms, out)

    def _item_hop(self, payload: str, now_ms: int, out: Outputs) -> None:
        update = ItemUpdate.decode(payload)
        item_key = "i:" + update.event["item_id"]
        step = item_model.update_item(ItemModel.decode(self.store.get(item_key)), update, self.side.cards,
                                      self.config.item_model, self.config.profile, self.config.catalog.terms_per_item)
        self.store.set(item_key, step.state.encode())
        self.side.item_cards[update.event["item_id"]] = step.card
        if step.signal is not None:
            self._push_hop(update.event["user_id"], ItemSignal.decode(step.signal.encode()), now_ms, out)

    def neighbours(self, item_id: str):
        """An item's top-K with the denominators as they are now (what the job's final refresh computes)."""
        state = ItemModel.decode(self.store.get("i:" + item_id))
        return item_model.refresh_neighbours(state, self.side.cards, self.config.item_model).neighbours

    def _push_hop(self, user_id: str, message, now_ms: int, out: Outputs) -> None:
        push_key = "p:" + user_id
        step = push_policy.handle(PushState.decode(self.store.get(push_key)), message, user_id, now_ms,
                                  self.side, self.config)
        self._store(push_key, step.state)
        out.serving.extend(step.serving)
        if step.notification is not None:
            out.notifications.append(step.notification)

    def _store(self, key: str, state) -> None:
        if state is None:
            self.store.delete(key)
        else:
            self.store.set(key, state.encode())
