"""jobs.side_inputs on a real Redis: item cards batched and cached, lists read in one round trip, and every
effect a step can ask for written as the key layout says."""
from __future__ import annotations

import uuid

import pytest

from jobs.side_inputs import ItemCardStore, RedisEffects, RedisSideInputs, write_counts
from operators.steps import (FACTS_KEPT, DeleteKeys, ListNewArrival, MarkErased, PublishNeighbours, RecordFacts,
                             ReplaceRanking, ReplaceValue, StoreInInbox, VoteBestHour)
from state_schemas.outputs import Notification
from state_schemas.redis_keys import RedisKeys
from state_schemas.state import ItemCard, Neighbour
from state_schemas.trending import BehaviourCounts


class Clock:
    def __init__(self):
        self.now = 0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def setup(redis_server):
    client, clock, prefix = redis_server.client(), Clock(), f"side-{uuid.uuid4().hex[:8]}"
    return client, clock, prefix


def store(client, clock, prefix, **kw) -> ItemCardStore:
    settings = {"ttl_s": 60, "cache_ms": 1000, "cache_size": 100, "flush_ms": 200} | kw
    return ItemCardStore(client, RedisKeys(prefix), clock=clock, **settings)


def test_cards_are_written_in_batches_and_read_back_by_another_instance(setup):
    client, clock, prefix = setup
    writer, reader = store(client, clock, prefix), store(client, clock, prefix)
    writer.publish("a", ItemCard(interactions=3))
    assert client.get(RedisKeys(prefix).card("a")) is None  # not yet: batched
    clock.now = 200
    writer.publish("b", ItemCard(interactions=5))  # the flush interval has passed: both go out
    assert reader.get_many(["a", "b", "missing"]) == {"a": ItemCard(interactions=3), "b": ItemCard(interactions=5)}
    assert 0 < client.ttl(RedisKeys(prefix).card("a")) <= 60


def test_a_reader_reuses_cached_cards_until_they_age_unless_asked_for_fresh_ones(setup):
    client, clock, prefix = setup
    writer, reader = store(client, clock, prefix, flush_ms=0), store(client, clock, prefix)
    writer.publish("a", ItemCard(interactions=1))
    assert reader.get_many(["a"])["a"].interactions == 1
    writer.publish("a", ItemCard(interactions=2))
    assert reader.get_many(["a"])["a"].interactions == 1  # cached
    assert reader.get_many(["a"], fresh=True)["a"].interactions == 2
    writer.publish("a", ItemCard(interactions=3))
    clock.now = 1001
    assert reader.get_many(["a"])["a"].interactions == 3  # aged out of the cache


def test_a_damaged_card_reads_as_unknown(setup):
    client, clock, prefix = setup
    client.set(RedisKeys(prefix).card("x"), b"{not json")
    assert store(client, clock, prefix).get_many(["x"]) == {}


def test_neighbours_replace_the_previous_list(setup):
    client, clock, prefix = setup
    effects = RedisEffects(client, store(client, clock, prefix))
    effects.apply(PublishNeighbours("i", (Neighbour("a", None, 0.5), Neighbour("b", "c", 0.25))))
    effects.apply(PublishNeighbours("i", (Neighbour("c", None, 0.75),)))
    assert client.zrange(RedisKeys(prefix).neighbours("i"), 0, -1, withscores=True) == [(b"c", 0.75)]
    assert 0 < client.ttl(RedisKeys(prefix).neighbours("i")) <= 60


def test_lists_are_read_as_of_a_time_ranked_newest_listings_first(setup):
    client, clock, prefix = setup
    cards = store(client, clock, prefix)
    effects = RedisEffects(client, cards)
    keys = RedisKeys(prefix)
    # Windows of an hour sliding by 5 minutes: a decision at 10:07 reads the window that ended at 10:05.
    slide = 300_000
    client.zadd(keys.trending_at("global", 20 * slide), {"g1": 3.0, "g2": 3.0, "x": 1.0})
    client.zadd(keys.trending_at("cat:c", 20 * slide), {"x": 9.0})
    client.zadd(keys.trending_at("global", 21 * slide), {"later": 5.0})
    client.zadd(keys.trending("global"), {"latest": 7.0})  # what a dashboard reads; no decision does
    for n, item in enumerate(["old", "mid", "new"]):
        effects.apply(ListNewArrival(item, "c", 1000 + n, keep=200))
    side = RedisSideInputs(cards, top_n=10, cache_ms=500, window_ms=12 * slide, slide_ms=slide, clock=clock)
    # The category's list first; then the global one's other items, equal scores by item id (not Redis's order).
    assert side.trending("c", 20 * slide + 7) == [("x", 9.0), ("g1", 3.0), ("g2", 3.0)]
    assert side.trending(None, 21 * slide) == [("later", 5.0)]
    assert side.trending(None, 19 * slide) == []  # no list of that window: nothing trended
    assert side.arrivals("c", 5000) == ["new", "mid", "old"]
    assert side.arrivals("c", 1001) == ["mid", "old"]  # listed by then
    client.zadd(keys.arrivals("c"), {"newest": 2000})
    assert side.arrivals("c", 5000)[0] == "newest"
    assert side.arrivals(None, 5000) == []


def test_an_items_facts_are_read_as_they_were_at_a_time(setup):
    client, clock, prefix = setup
    effects = RedisEffects(client, store(client, clock, prefix))
    side = RedisSideInputs(store(client, clock, prefix), top_n=10, cache_ms=500, window_ms=60_000, slide_ms=60_000,
                           clock=clock)
    effects.apply(RecordFacts("i", ItemCard(title="Old", price=10.0), at=1000))
    effects.apply(RecordFacts("i", ItemCard(title="New", price=8.0, in_stock=False), at=2000))
    effects.apply(RecordFacts("j", ItemCard(title="J"), at=3000))
    assert side.facts(["i", "j"], 999) == {}
    assert side.facts(["i", "j"], 1500) == {"i": ItemCard(title="Old", price=10.0)}
    assert side.facts(["i", "j", "k"], 5000) == {"i": ItemCard(title="New", price=8.0, in_stock=False),
                                                 "j": ItemCard(title="J")}
    effects.apply(RecordFacts("i", ItemCard(title="Old", price=10.0), at=1000))  # a replay writes the same again
    assert side.facts(["i"], 1500) == {"i": ItemCard(title="Old", price=10.0)}
    for at in range(3000, 3000 + FACTS_KEPT):
        effects.apply(RecordFacts("i", ItemCard(title=f"v{at}"), at=at))
    assert side.facts(["i"], 2500) == {}  # older than the versions kept: unknown, as the test of its age says
    assert client.zcard(RedisKeys(prefix).facts("i")) == FACTS_KEPT


def test_new_arrivals_keep_the_newest_listings_of_their_category(setup):
    client, clock, prefix = setup
    effects = RedisEffects(client, store(client, clock, prefix))
    for n in range(5):
        effects.apply(ListNewArrival(f"i{n}", "c", 1000 + n, keep=3))
    assert client.zrange(RedisKeys(prefix).arrivals("c"), 0, -1) == [b"i2", b"i3", b"i4"]


def _notification(n: int, user: str = "p1") -> Notification:
    return Notification(notification_id=f"n{n}", user=user, channel="push", kind="marketing", title="t", body="b",
                        item_ids=("i",), reason="r", created_at=n, source_event_time=1000 + n, source_event_id=f"e{n}")


def test_the_inbox_keeps_the_newest_notifications_and_their_bodies_only(setup):
    client, clock, prefix = setup
    effects, keys = RedisEffects(client, store(client, clock, prefix)), RedisKeys(prefix)
    for n in [3, 1, 4, 2, 4]:  # out of order, and one written twice (a replay)
        effects.apply(StoreInInbox(keys.inbox("p1"), keys.inbox_bodies("p1"), _notification(n), keep=3, ttl_s=60))
    assert client.zrange(keys.inbox("p1"), 0, -1) == [b"n2", b"n3", b"n4"]
    assert client.hgetall(keys.inbox_bodies("p1")) == {f"n{n}".encode(): _notification(n).encode() for n in (2, 3, 4)}
    assert 0 < client.ttl(keys.inbox("p1")) <= 60 and 0 < client.ttl(keys.inbox_bodies("p1")) <= 60


def test_a_profile_and_a_ranking_are_replaced_whole(setup):
    client, clock, prefix = setup
    effects, keys = RedisEffects(client, store(client, clock, prefix)), RedisKeys(prefix)
    effects.apply(ReplaceValue(keys.profile("p1"), {"categories": [["c", 1.0]]}, ttl_s=60))
    effects.apply(ReplaceRanking(keys.top_n("p1"), keys.top_n_reasons("p1"),
                                 (("a", 0.5, "why a"), ("b", 0.25, "why b")), ttl_s=60))
    effects.apply(ReplaceRanking(keys.top_n("p1"), keys.top_n_reasons("p1"), (("c", 0.75, "why c"),), ttl_s=60))
    assert client.get(keys.profile("p1")) == b'{"categories":[["c",1.0]]}'
    assert client.zrange(keys.top_n("p1"), 0, -1, withscores=True) == [(b"c", 0.75)]
    assert client.hgetall(keys.top_n_reasons("p1")) == {b"c": b"why c"}
    effects.apply(ReplaceRanking(keys.top_n("p1"), keys.top_n_reasons("p1"), (), ttl_s=60))
    assert not client.exists(keys.top_n("p1"), keys.top_n_reasons("p1"))


def test_an_erasure_deletes_the_named_keys_and_the_matching_ones_and_nothing_else(setup):
    client, clock, prefix = setup
    effects, keys = RedisEffects(client, store(client, clock, prefix)), RedisKeys(prefix)
    for user in ("p1", "p2"):
        client.set(keys.profile(user), b"{}")
        client.hset(keys.counts(f"user:{user}", 0), "view", 1)
        client.hset(keys.counts(f"user:{user}", 3_600_000), "cart", 2)
    assert len(list(client.scan_iter(f"{prefix}:*p1*"))) == 3  # the user had keys to lose
    effects.apply(DeleteKeys(keys.user_keys("p1"), keys.user_key_patterns("p1")))
    assert list(client.scan_iter(f"{prefix}:*p1*")) == []
    assert len(list(client.scan_iter(f"{prefix}:*p2*"))) == 3


def test_best_hour_votes_count_each_shopper_once_age_out_and_are_withdrawn(setup):
    client, clock, prefix = setup
    cards = store(client, clock, prefix)
    effects, reader = RedisEffects(client, cards), RedisSideInputs(cards, top_n=5, cache_ms=1000, window_ms=60_000,
                                                                   slide_ms=60_000, clock=clock)
    keys, day = RedisKeys(prefix), 86_400_000

    def voters(hour):
        return {m.decode() for m in client.zrange(keys.best_hour_votes(hour), 0, -1)}

    for user, hour, at in (("a", 20, 0), ("b", 20, 0), ("c", 9, 0), ("a", 9, day)):
        effects.apply(VoteBestHour(user, hour, at, 30 * day))
    assert voters(9) == {"a", "c"} and voters(20) == {"b"}  # a moved: counted once
    assert reader.population_best_hour(3) == 9 and reader.population_best_hour(4) is None
    effects.apply(VoteBestHour("d", 20, 40 * day, 30 * day))  # every vote older than day 10 is dropped
    assert voters(9) == set() and voters(20) == {"d"}
    assert reader.population_best_hour(1) == 9  # what was read stays for the cache interval...
    clock.now = 1001
    assert reader.population_best_hour(1) == 20 and reader.population_best_hour(2) is None  # ...then read again
    effects.apply(VoteBestHour("d", None, 0, 0))  # d is erased
    clock.now = 2002
    assert reader.population_best_hour(1) is None and voters(20) == set()


def test_a_window_of_an_erased_shopper_is_not_written_again_and_others_are(setup):
    client, clock, prefix = setup
    effects, keys = RedisEffects(client, store(client, clock, prefix)), RedisKeys(prefix)
    effects.apply(MarkErased(keys.erased("p1"), at=5_000, ttl_s=60))
    assert client.get(keys.erased("p1")) == b"5000" and 0 < client.ttl(keys.erased("p1")) <= 60

    def window(scope: str, start: int) -> BehaviourCounts:
        return BehaviourCounts(scope=scope, window_start=start, window_end=start + 3_600, counts={"view": 2})

    assert not write_counts(client, keys, window("user:p1", 5_000), ttl_s=60)  # opened before the erasure
    assert not write_counts(client, keys, window("user:p1", 0), ttl_s=60)
    assert write_counts(client, keys, window("user:p1", 5_001), ttl_s=60)  # they came back after it
    assert write_counts(client, keys, window("user:p2", 0), ttl_s=60)
    assert write_counts(client, keys, window("category:c", 0), ttl_s=60)
    assert not client.exists(keys.counts("user:p1", 5_000), keys.counts("user:p1", 0))
    for scope, start in (("user:p1", 5_001), ("user:p2", 0), ("category:c", 0)):
        assert client.hgetall(keys.counts(scope, start)) == {b"view": b"2"}
        assert 0 < client.ttl(keys.counts(scope, start)) <= 60


def transactions(client) -> int:
    return client.info("commandstats").get("cmdstat_exec", {}).get("calls", 0)


def test_a_steps_writes_go_in_one_transaction_and_a_scan_sees_what_came_before_it(setup):
    client, clock, prefix = setup
    effects, keys = RedisEffects(client, store(client, clock, prefix)), RedisKeys(prefix)
    before = transactions(client)
    effects.apply_all((ReplaceValue(keys.profile("u"), {"v": 1}, 60),
                       ReplaceRanking(keys.top_n("u"), keys.top_n_reasons("u"), (("a", 0.5, "r"),), 60),
                       RecordFacts("i", ItemCard(title="T"), at=1000)))
    assert transactions(client) - before == 1  # one MULTI/EXEC for the three, one round trip
    assert client.get(keys.profile("u")) == b'{"v":1}' and client.zrange(keys.top_n("u"), 0, -1) == [b"a"]
    assert client.zcard(keys.facts("i")) == 1
    # An erasure's scan runs after the writes queued before it in the same step, so it finds and deletes them.
    before = transactions(client)
    effects.apply_all((ReplaceValue(keys.intent("u"), {"p": 0.5}, 60),
                       DeleteKeys((keys.profile("u"),), (f"{prefix}:*:u", f"{prefix}:*:u:*")),
                       MarkErased(keys.erased("u"), at=2000, ttl_s=60)))
    assert transactions(client) - before == 2
    assert client.get(keys.intent("u")) is None and client.get(keys.profile("u")) is None
    assert client.exists(keys.top_n("u"), keys.top_n_reasons("u")) == 0
    assert client.get(keys.erased("u")) == b"2000"
