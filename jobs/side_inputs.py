"""Redis as the job's shared read model, and the writer of every effect a step asks for.

Item cards (counts, popularity, factors) are published by each item's hop and read by other items
(cosine denominators) as they stand: writes are batched and absolute (idempotent on replay), reads go
through a bounded cache with a TTL. What decides a message is read as of the decision's event time
instead: an item's facts (versions by the time of each change, written at once), trending lists (one
key per window) and new listings (by listing time). The stages that write them are upstream of the push
policy, whose keyed input is in event-time order (`jobs/ordering.py`), so every version up to that time is
written when it is read: the same input reads the same values on every run. Nothing here imports pyflink.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable, Iterable, Mapping

import orjson

from operators import journeys, steps, trending
from operators.trending import last_window_end
from state_schemas.codec import SchemaError
from state_schemas.redis_keys import RedisKeys
from state_schemas.state import ItemCard
from state_schemas.trending import GLOBAL, USER_COUNTS_PREFIX

ARRIVALS_READ = 20
LISTS_CACHED = 4096  # trending lists kept read, by (scope, window end)


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


def read_trending(client, keys: RedisKeys, scope: str, n: int) -> list[tuple[str, float]]:
    """The scope's top n from Redis. The set holds at most `trending.top_n` items; it is read whole and
    ranked here because Redis orders equal scores by member descending, not as `top_items` does."""
    return trending.ranked_members(client.zrevrange(keys.trending(scope), 0, -1, withscores=True), n)


class ItemCardStore:
    def __init__(self, client, keys: RedisKeys, ttl_s: int, cache_ms: int, cache_size: int, flush_ms: int,
                 clock: Callable[[], int] = _now_ms):
        self.client, self.keys, self.ttl_s = client, keys, ttl_s
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
                pipe.set(self.keys.card(item), card.encode(), ex=self.ttl_s)
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
            for item, raw in zip(missing, self.client.mget([self.keys.card(i) for i in missing])):
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


class RedisSideInputs:
    """What a step reads of other keys (operators.steps.SideInputs), from Redis."""

    def __init__(self, cards: ItemCardStore, top_n: int, cache_ms: int, window_ms: int, slide_ms: int,
                 clock: Callable[[], int] = _now_ms):
        self.card_store, self.top_n, self.cache_ms, self.clock = cards, top_n, cache_ms, clock
        self.window_ms, self.slide_ms = window_ms, slide_ms
        self.lists: OrderedDict[tuple[str, int], list] = OrderedDict()  # (scope, window end) -> list: immutable
        self.hour_votes: tuple[int, list[int]] | None = None  # (read at, shoppers per local hour)

    def cards(self, items: Iterable[str], fresh: bool = False) -> Mapping[str, ItemCard]:
        return self.card_store.get_many(items, fresh=fresh)

    def facts(self, items: Iterable[str], at: int) -> Mapping[str, ItemCard]:
        """Each item's newest version of its facts from `at` or before, in one pipelined round trip."""
        items = list(dict.fromkeys(items))
        if not items:
            return {}
        store = self.card_store
        pipe = store.client.pipeline(transaction=False)
        for item in items:
            pipe.zrevrangebyscore(store.keys.facts(item), at, "-inf", start=0, num=1)
        found = {}
        for item, versions in zip(items, pipe.execute()):
            if versions:
                try:
                    found[item] = ItemCard.decode(_text(versions[0]).split(":", 1)[1])
                except SchemaError:
                    pass  # a damaged version reads as unknown
        return found

    def _list(self, scope: str, at: int) -> list[tuple[str, float]]:
        """A scope's list of the last window ended at or before `at`; complete once written, so kept."""
        name = (scope, last_window_end(at, self.window_ms, self.slide_ms))
        if name not in self.lists:
            store = self.card_store
            members = store.client.zrevrange(store.keys.trending_at(*name), 0, -1, withscores=True)
            self.lists[name] = trending.ranked_members(members, self.top_n)
            while len(self.lists) > LISTS_CACHED:
                self.lists.popitem(last=False)
        return self.lists[name]

    def trending(self, category: str | None, at: int) -> list[tuple[str, float]]:
        own = self._list(trending.category_scope(category), at) if category is not None else ()
        return trending.category_then_global(own, self._list(GLOBAL, at))

    def arrivals(self, category: str | None, at: int) -> list[str]:
        if category is None:
            return []
        store = self.card_store
        found = store.client.zrevrangebyscore(store.keys.arrivals(category), at, "-inf", start=0, num=ARRIVALS_READ)
        return [_text(member) for member in found]

    def population_best_hour(self, min_shoppers: int) -> int | None:
        """Counted from the 24 vote sets in one round trip, at most once per cache interval."""
        now = self.clock()
        if self.hour_votes is None or now - self.hour_votes[0] > self.cache_ms:
            store = self.card_store
            pipe = store.client.pipeline(transaction=False)
            for hour in range(24):
                pipe.zcard(store.keys.best_hour_votes(hour))
            self.hour_votes = (now, pipe.execute())
        return journeys.population_hour(self.hour_votes[1], min_shoppers)


class RedisEffects:
    """Carries out the effects a step returns, in order; every write is idempotent on replay."""

    def __init__(self, client, cards: ItemCardStore):
        self.client, self.cards = client, cards
        self.keys = cards.keys

    def apply(self, effect) -> None:
        self.apply_all((effect,))

    def apply_all(self, effects) -> None:
        """A step's writes in one round trip, one MULTI/EXEC: a reader sees all of them or none (a profile and
        its top-N together). Item cards go to their write-behind store; an effect that reads Redis first (an
        erasure's scan, the inbox's trim) runs after what was queued before it."""
        pipe = None
        for effect in effects:
            if isinstance(effect, steps.PublishCard):
                self.cards.publish(effect.item_id, effect.card)
                continue
            if isinstance(effect, (steps.StoreInInbox, steps.DeleteKeys)) and pipe is not None:
                pipe.execute()
                pipe = None
            if isinstance(effect, steps.StoreInInbox):
                self._store_in_inbox(effect)
                continue
            pipe = pipe or self.client.pipeline(transaction=True)
            self._queue(pipe, effect)
        if pipe is not None:
            pipe.execute()

    def _queue(self, pipe, effect) -> None:
        if isinstance(effect, steps.ListNewArrival):
            key = self.keys.arrivals(effect.category_id)
            pipe.zadd(key, {effect.item_id: effect.listed_at})
            pipe.zremrangebyrank(key, 0, -(effect.keep + 1))
            pipe.expire(key, self.cards.ttl_s)
        elif isinstance(effect, steps.RecordFacts):
            key = self.keys.facts(effect.item_id)
            pipe.zadd(key, {f"{effect.at}:{effect.facts.encode()}": effect.at})
            pipe.zremrangebyrank(key, 0, -(steps.FACTS_KEPT + 1))
            pipe.expire(key, self.cards.ttl_s)
        elif isinstance(effect, steps.PublishNeighbours):
            key = self.keys.neighbours(effect.item_id)
            pipe.delete(key)
            if effect.neighbours:
                pipe.zadd(key, {n.item_id: n.similarity for n in effect.neighbours})
                pipe.expire(key, self.cards.ttl_s)
        elif isinstance(effect, steps.ReplaceValue):
            pipe.set(effect.key, orjson.dumps(effect.value), ex=effect.ttl_s)
        elif isinstance(effect, steps.ReplaceRanking):
            pipe.delete(effect.key, effect.reasons_key)
            if effect.entries:
                pipe.zadd(effect.key, {item: score for item, score, _ in effect.entries})
                pipe.hset(effect.reasons_key, mapping={item: reason for item, _, reason in effect.entries})
                pipe.expire(effect.key, effect.ttl_s)
                pipe.expire(effect.reasons_key, effect.ttl_s)
        elif isinstance(effect, steps.VoteBestHour):
            for hour in range(24):
                key = self.keys.best_hour_votes(hour)
                if hour == effect.hour:
                    pipe.zadd(key, {effect.user: effect.at})
                else:
                    pipe.zrem(key, effect.user)
                if effect.hour is not None:
                    pipe.zremrangebyscore(key, "-inf", f"({effect.at - effect.kept_ms}")
        elif isinstance(effect, steps.MarkErased):
            pipe.set(effect.key, str(effect.at), ex=effect.ttl_s)
        elif isinstance(effect, steps.DeleteKeys):
            found = [key for pattern in effect.patterns for key in self.client.scan_iter(pattern, count=1000)]
            pipe.delete(*effect.keys, *found)
        else:
            raise TypeError(f"no Redis writer for {type(effect).__name__}")

    def _store_in_inbox(self, effect: steps.StoreInInbox) -> None:
        notification = effect.notification
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(effect.body_key, notification.notification_id, notification.encode())
        pipe.zadd(effect.index_key, {notification.notification_id: float(notification.source_event_time)})
        # Keep the newest `keep` entries; bodies of dropped ids are removed with them.
        pipe.zrange(effect.index_key, 0, -(effect.keep + 1))
        pipe.zremrangebyrank(effect.index_key, 0, -(effect.keep + 1))
        pipe.expire(effect.index_key, effect.ttl_s)
        pipe.expire(effect.body_key, effect.ttl_s)
        dropped = pipe.execute()[2]
        if dropped:
            self.client.hdel(effect.body_key, *dropped)


# A shopper's window is not written once they were erased at or after its start: it holds events from
# before the erasure. In Redis, so the check and the write are one step an erasure cannot fall between.
_WRITE_UNLESS_ERASED = """
local erased = redis.call('GET', KEYS[2])
if erased and tonumber(erased) >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


def write_counts(client, keys: RedisKeys, counted, ttl_s: int) -> bool:
    """Replace a window's behaviour counts whole; a user's only if they were not erased since it opened.
    Whether it was written."""
    key = keys.counts(counted.scope, counted.window_start)
    if counted.scope.startswith(USER_COUNTS_PREFIX):
        fields = [part for pair in counted.counts.items() for part in pair]
        erased = keys.erased(counted.scope.removeprefix(USER_COUNTS_PREFIX))
        return bool(client.eval(_WRITE_UNLESS_ERASED, 2, key, erased, counted.window_start, ttl_s, *fields))
    pipe = client.pipeline(transaction=True)
    pipe.delete(key)
    pipe.hset(key, mapping=counted.counts)
    pipe.expire(key, ttl_s)
    pipe.execute()
    return True


def _text(member) -> str:
    return member.decode() if isinstance(member, bytes) else member
