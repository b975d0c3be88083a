"""jobs.side_inputs on a real Redis: item cards batched and cached, lists read in one round trip."""
from __future__ import annotations

import uuid

import pytest

from jobs.side_inputs import ItemCardStore, RedisSideInputs, arrivals_key, neighbours_key
from operators.trending import read_trending, trending_key
from state_schemas.state import ItemCard, Neighbour


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
    return ItemCardStore(client, prefix, clock=clock, **settings)


def test_cards_are_written_in_batches_and_read_back_by_another_instance(setup):
    client, clock, prefix = setup
    writer, reader = store(client, clock, prefix), store(client, clock, prefix)
    writer.publish("a", ItemCard(interactions=3))
    assert client.get(f"{prefix}:card:a") is None  # not yet: batched
    clock.now = 200
    writer.publish("b", ItemCard(interactions=5))  # the flush interval has passed: both go out
    assert reader.get_many(["a", "b", "missing"]) == {"a": ItemCard(interactions=3), "b": ItemCard(interactions=5)}
    assert 0 < client.ttl(f"{prefix}:card:a") <= 60


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
    client.set(f"{prefix}:card:x", b"{not json")
    assert store(client, clock, prefix).get_many(["x"]) == {}


def test_neighbours_replace_the_previous_list(setup):
    client, clock, prefix = setup
    cards = store(client, clock, prefix)
    cards.publish_neighbours("i", [Neighbour("a", None, 0.5), Neighbour("b", "c", 0.25)])
    cards.publish_neighbours("i", [Neighbour("c", None, 0.75)])
    assert client.zrange(neighbours_key(prefix, "i"), 0, -1, withscores=True) == [(b"c", 0.75)]


def test_lists_for_a_trigger_come_back_ranked_newest_listings_first_and_cached(setup):
    client, clock, prefix = setup
    cards = store(client, clock, prefix)
    client.zadd(trending_key(prefix, "global"), {"g1": 3.0, "g2": 3.0, "x": 1.0})
    client.zadd(trending_key(prefix, "cat:c"), {"x": 9.0})
    for n, item in enumerate(["old", "mid", "new"]):
        cards.list_item(item, "c", 1000 + n)
    side = RedisSideInputs(cards, top_n=10, cache_ms=500, clock=clock)
    assert side.trending("c") == [("x", 9.0), *[p for p in read_trending(client, prefix, "global", 10) if p[0] != "x"]]
    assert side.arrivals("c") == ["new", "mid", "old"]
    client.zadd(arrivals_key(prefix, "c"), {"newest": 2000})
    assert side.arrivals("c") == ["new", "mid", "old"]  # within the cache time
    clock.now = 501
    assert side.arrivals("c")[0] == "newest"
    assert side.arrivals(None) == [] and side.trending(None) == read_trending(client, prefix, "global", 10)
