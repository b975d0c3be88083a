"""Redis as the job's shared read model: what one key's operator needs to know of other keys.

Item cards (counts, popularity, vector, stock) are published by each item's hop and read by
other items (cosine denominators) and by the scorer (candidate vectors, stock). Writes are
batched and absolute (idempotent on replay); reads go through a bounded cache with a TTL, so a
trigger costs at most one pipelined round trip. Nothing here imports pyflink.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable, Iterable, Mapping, Sequence

from operators import trending as trending_keys
from state_schemas.codec import SchemaError
from state_schemas.state import ItemCard, Neighbour

ARRIVALS_KEPT = 200
ARRIVALS_READ = 20


def card_key(prefix: str, item: str) -> str:
    return f"{prefix}:card:{item}"


def arrivals_key(prefix: str, category: str) -> str:
    return f"{prefix}:arrivals:{category}"


def neighbours_key(prefix: str, item: str) -> str:
    return f"{prefix}:neighbours:{item}"


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


class ItemCardStore:
    def __init__(self, client, prefix: str, ttl_s: int, cache_ms: int, cache_size: int, flush_ms: int,
                 clock: Callable[[], int] = _now_ms):
        self.client, self.prefix, self.ttl_s = client, prefix, ttl_s
        self.cache_ms, self.cache_size, self.flush_ms = cache_ms, cache_size, flush_ms
        self.clock = clock
        self.pending: dict[str, ItemCard] = {}
        self.cache: OrderedDict[str, tuple[int, ItemCard | None]] = OrderedDict()
        self.last_flush = clock()

    def publish(self, item: str, card: ItemCard) -> None:
        self.pending[item] = card
        self._remember(item, card)
        if self.clock() - self.last_flush >= self.flush_ms:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            pipe = self.client.pipeline(transaction=False)
            for item, card in self.pending.items():
                pipe.set(card_key(self.prefix, item), card.encode(), ex=self.ttl_s)
            pipe.execute()
            self.pending.clear()
        self.last_flush = self.clock()

    def _remember(self, item: str, card: ItemCard | None) -> None:
        self.cache[item] = (self.clock(), card)
        self.cache.move_to_end(item)
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)

    def get_many(self, items: Iterable[str], fresh: bool = False) -> dict[str, ItemCard]:
        """Cards of `items` that exist; `fresh` bypasses the cache (other instances' latest counts)."""
        now, found, missing = self.clock(), {}, []
        for item in dict.fromkeys(items):
            cached = self.cache.get(item)
            if not fresh and cached is not None and now - cached[0] <= self.cache_ms:
                if cached[1] is not None:
                    found[item] = cached[1]
            else:
                missing.append(item)
        if missing:
            self.flush()  # this instance's own latest counts first
            for item, raw in zip(missing, self.client.mget([card_key(self.prefix, i) for i in missing])):
                card = None
                if raw is not None:
                    try:
                        card = ItemCard.decode(raw)
                    except SchemaError:
                        card = None  # a damaged card reads as unknown; the item's hop rewrites it
                self._remember(item, card)
                if card is not None:
                    found[item] = card
        return found

    def list_item(self, item: str, category: str, listed_at: int) -> None:
        key = arrivals_key(self.prefix, category)
        pipe = self.client.pipeline(transaction=True)
        pipe.zadd(key, {item: listed_at})
        pipe.zremrangebyrank(key, 0, -(ARRIVALS_KEPT + 1))
        pipe.expire(key, self.ttl_s)
        pipe.execute()

    def publish_neighbours(self, item: str, neighbours: Sequence[Neighbour]) -> None:
        key = neighbours_key(self.prefix, item)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(key)
        if neighbours:
            pipe.zadd(key, {n.item_id: n.similarity for n in neighbours})
            pipe.expire(key, self.ttl_s)
        pipe.execute()


class RedisSideInputs:
    """The scorer's side inputs (operators.scorer.SideInputs) read from Redis through caches."""

    def __init__(self, cards: ItemCardStore, top_n: int, cache_ms: int, clock: Callable[[], int] = _now_ms):
        self.card_store, self.top_n, self.cache_ms, self.clock = cards, top_n, cache_ms, clock
        self.lists: dict[str, tuple[int, list]] = {}

    def cards(self, items: Iterable[str]) -> Mapping[str, ItemCard]:
        return self.card_store.get_many(items)

    def _lists(self, category: str | None) -> dict[str, list]:
        """Trending (category and global) and new listings for a trigger, in one pipelined round
        trip for whichever of them the cache holds no fresh copy of."""
        store, now = self.card_store, self.clock()
        keys = {"t:global": trending_keys.trending_key(store.prefix, "global")}
        if category is not None:
            keys["t:cat:" + category] = trending_keys.trending_key(store.prefix, f"cat:{category}")
            keys["a:" + category] = arrivals_key(store.prefix, category)
        stale = [name for name in keys if name not in self.lists or now - self.lists[name][0] > self.cache_ms]
        if stale:
            pipe = store.client.pipeline(transaction=False)
            for name in stale:
                if name.startswith("t:"):  # small sets, read whole: Redis breaks ties unlike top_items
                    pipe.zrevrange(keys[name], 0, -1, withscores=True)
                else:
                    pipe.zrevrange(keys[name], 0, ARRIVALS_READ - 1)
            for name, found in zip(stale, pipe.execute()):
                if name.startswith("t:"):
                    value = trending_keys.ranked_members(found, self.top_n)
                else:
                    value = [_text(m) for m in found]
                self.lists[name] = (now, value)
        return {name: self.lists[name][1] for name in keys}

    def trending(self, category: str | None) -> Sequence[tuple[str, float]]:
        lists = self._lists(category)
        own = lists[f"t:cat:{category}"] if category is not None else ()
        return trending_keys.category_then_global(own, lists["t:global"])

    def arrivals(self, category: str | None) -> Sequence[str]:
        return [] if category is None else self._lists(category)["a:" + category]


def _text(member) -> str:
    return member.decode() if isinstance(member, bytes) else member
