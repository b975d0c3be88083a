"""The personalization core end to end on real Kafka, Redis and Flink, over a real Taobao slice.

- after the bounded stream drains, every item's top-K neighbours in Redis equal a numpy batch
  recompute over the same events (the row cap is set so that it does not bind);
- the catalogue topic: bad records are dead-lettered with their reason; a listed item with no
  interactions reaches a shopper through content (cold start); an out-of-stock item never does;
- profiles and top-N lists are in Redis under pseudonyms, with a TTL.

(An erasure's effect on Redis is shown by `test_erasure.py`, which watches the keys appear first.)
"""
from __future__ import annotations

import json

import pytest

from config import load_config
from notify_engine import datasets, producer
from operators.intake import admit
from operators.privacy import pseudonym
from operators import factors
from state_schemas.events import BehaviourEvent, CatalogItem, encode
from state_schemas.state import ItemCard
from state_schemas.redis_keys import RedisKeys
from state_schemas.units import HOUR_MS
from tests.integration.conftest import job_config, make_topics, read_back, run_bounded
from tests.unit.operators.test_item_model import batch_neighbours

pytestmark = pytest.mark.slow

EVENTS = 4000
HISTORY, K = 10, 5
BAG_CATEGORY = "bags"
LISTED = 1_511_000_000_000  # a week before the slice

CATALOG = [
    CatalogItem(item_id="bag-seen", title="Red leather handbag", category_id=BAG_CATEGORY, price=120.0, ts=LISTED + 1,
                brand="Acme", stock=4),
    CatalogItem(item_id="bag-new", title="Red leather handbag with strap", category_id=BAG_CATEGORY, price=130.0,
                ts=LISTED + 2, brand="Acme", stock=9),
    CatalogItem(item_id="bag-gone", title="Red leather handbag classic", category_id=BAG_CATEGORY, price=125.0,
                ts=LISTED + 3, brand="Acme", stock=0),
    CatalogItem(item_id="tent", title="Four person camping tent", category_id="outdoor", price=300.0, ts=LISTED + 4,
                brand="Peak", stock=3),
]
BAD_CATALOG = {
    "missing required field 'title'": b'{"type":"catalog","item_id":"x1","category_id":"bags","price":1.0,'
                                      b'"ts":1511000000000}',
    "field 'price' must be >= 0": b'{"type":"catalog","item_id":"x2","title":"t","category_id":"bags","price":-3,'
                                  b'"ts":1511000000000}',
    "unknown category": b'{"type":"catalog","item_id":"x3","title":"t","category_id":"spaceships","price":3,'
                        b'"ts":1511000000000}',
    "absurd price": b'{"type":"catalog","item_id":"x4","title":"t","category_id":"bags","price":1e12,'
                    b'"ts":1511000000000}',
    "malformed JSON": b'{"type":"catalog", "item_id": ',
}


@pytest.fixture(scope="module")
def run(broker, redis_server, connector_jar, dataset_dir):
    taobao = datasets.sorted_by_time(datasets.read_events(dataset_dir / "taobao_userbehavior_stream.csv",
                                                          limit=EVENTS))
    end = taobao[-1].ts
    cold = [BehaviourEvent(event_id="cold-1", user_id="cold-shopper", behavior="view", ts=end + 1000,
                           item_id="bag-seen", category_id=BAG_CATEGORY)]
    events = taobao + cold
    topics = make_topics(broker, partitions=1)  # one partition: the batch sees the job's order
    producer.publish(CATALOG, broker.bootstrap, topics.catalog, key_of=lambda item: item.item_id)
    producer.publish_raw(BAD_CATALOG.values(), broker.bootstrap, topics.catalog)
    producer.publish(events, broker.bootstrap, topics.events)
    config = job_config(broker, redis_server, topics,
                        profile={"history_size": HISTORY},
                        item_model={"row_cap": 100_000, "neighbours": K},
                        catalog={"known_categories": sorted({BAG_CATEGORY, "outdoor"})},
                        factors={"enabled": True})
    run_bounded(config, connector_jar)
    notifications, dead_letters = read_back(broker, topics)
    return config, events, notifications, dead_letters


def _in_job_order(events: list) -> list:
    """The events as the job's user context sees each shopper's: by time, events of one time by the bytes of the
    admitted record (`jobs/ordering.py`); the Taobao log has one-second times, so ties are common."""
    intake = load_config().intake
    return sorted(events, key=lambda e: (e.ts, admit(encode(e), e.ts, intake).encode()))


def test_neighbours_in_redis_equal_a_batch_recompute_after_the_stream_drains(run, redis_server):
    config, events, _, _ = run
    expected = batch_neighbours([(e.user_id, e.item_id) for e in _in_job_order(events)
                                 if isinstance(e, BehaviourEvent)], HISTORY, K)
    client = redis_server.client()
    with_rows = {item: top for item, top in expected.items() if top}
    assert len(with_rows) > 200, "the slice should give many items a co-occurrence row"
    for item, top in with_rows.items():
        stored = client.zrevrange(RedisKeys(config.redis.key_prefix).neighbours(item), 0, -1, withscores=True)
        streamed = sorted(((member.decode(), score) for member, score in stored), key=lambda p: (-p[1], p[0]))
        assert streamed == top, item


def test_bad_catalogue_records_are_dead_lettered_with_their_reason(run):
    _, _, _, dead_letters = run
    catalogue = [d for d in dead_letters if d["stage"] == "admit-catalog"]
    assert len(catalogue) == len(BAD_CATALOG)
    for reason in BAD_CATALOG:
        assert any(reason in d["reason"] for d in catalogue), reason


def test_a_listed_item_without_interactions_reaches_a_shopper_through_content_and_stock_is_respected(
        run, redis_server):
    config, _, notifications, _ = run
    user = pseudonym("cold-shopper", config.privacy.pseudonym_key)
    client = redis_server.client()
    keys = RedisKeys(config.redis.key_prefix)
    top = [member.decode() for member in client.zrevrange(keys.top_n(user), 0, -1)]
    assert "bag-new" in top
    assert "bag-gone" not in top
    assert top[0] == "bag-seen"  # the item looked at leads: a browse recommendation re-engages (the default)
    reasons = client.hgetall(keys.top_n_reasons(user))
    assert reasons[b"bag-new"].startswith(b"matches what you like")
    sent = [n for n in notifications if n.user == user]
    assert sent and "bag-new" in sent[0].item_ids and "bag-gone" not in sent[0].item_ids


def test_profiles_and_top_n_are_served_from_redis_under_pseudonyms_with_a_ttl(run, redis_server):
    config, events, _, _ = run
    client = redis_server.client()
    prefix = config.redis.key_prefix
    profiles = list(client.scan_iter(RedisKeys(prefix).profile("*")))
    assert profiles
    raw_users = {e.user_id for e in events}
    for key in profiles[:50]:
        assert key.decode().rsplit(":", 1)[1] not in raw_users
        assert 0 < client.ttl(key) <= config.redis.ttl_hours * 3600
    assert list(client.scan_iter(RedisKeys(prefix).top_n("*")))
    intents = list(client.scan_iter(RedisKeys(prefix).intent("*")))  # scored online by the intent model
    latest = {}
    for event in events:
        user = pseudonym(event.user_id, config.privacy.pseudonym_key)
        latest[user] = max(latest.get(user, 0), event.ts)
    assert len(intents) == len(latest)  # every shopper with behaviour has one
    slot = int(config.intent.horizon_hours * HOUR_MS) // 24  # scored at the first event of each slot (an hour)
    for key in intents[:50]:
        served, last = json.loads(client.get(key)), latest[key.decode().rsplit(":", 1)[1]]
        assert 0 < served["p"] < 1 and last - last % slot <= served["at"] <= last


def test_the_streamed_factors_reach_the_item_cards_in_redis(run, redis_server):
    config, events, _, _ = run
    client = redis_server.client()
    keys = RedisKeys(config.redis.key_prefix)
    interacted = sorted({e.item_id for e in events if isinstance(e, BehaviourEvent) and e.item_id})[:200]
    cards = [ItemCard.decode(raw) for raw in client.mget([keys.card(item) for item in interacted]) if raw]
    assert len(cards) == len(interacted)
    assert all(len(card.factors) == config.factors.factors for card in cards)
    learned = [item for item, card in zip(interacted, cards) if card.factors != factors.initial(item, config.factors)]
    assert learned == interacted  # each moved from its seeded start by the events it had
