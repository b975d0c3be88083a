"""The journeys through the real broker, live: a cart abandoned and then bought sends nothing, a cart
left alone is reminded twice, and a price cut or restock on the catalogue topic reaches exactly the
item's watchers. Reminder delays and the session gap are seconds here, so the live job's wall-clock
timers fire them while the test waits."""
from __future__ import annotations

import time

import pytest

from jobs import notification_job
from notify_engine import consumer, producer
from operators.privacy import pseudonym
from state_schemas.events import BehaviourEvent, CatalogItem, QuietHours, UserRecord
from tests.integration.conftest import job_config, make_topics

pytestmark = pytest.mark.slow

SHOPPERS = ("abandoner", "carter", "viewer", "fan", "waiting", "elsewhere")


def act(n: str, user: str, behavior: str, item: str, ts: int) -> BehaviourEvent:
    return BehaviourEvent(event_id=f"j-{n}", user_id=user, behavior=behavior, ts=ts, item_id=item, category_id="c")


def listing(item: str, price: float, stock: int, ts: int) -> CatalogItem:
    return CatalogItem(item_id=item, title=f"Item {item}", category_id="c", price=price, stock=stock, ts=ts)


def read_until(broker, topics, wanted, timeout_s: float):
    """Notifications read back until `wanted(notifications)` holds or the time is up."""
    found, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = list(consumer.read_notifications(broker.bootstrap, topics.notifications, idle_timeout_s=2.0))
        if wanted(found):
            break
    return found


def test_carts_and_watched_items_reach_exactly_the_shoppers_they_concern(broker, redis_server, connector_jar):
    topics = make_topics(broker, partitions=1)
    config = job_config(broker, redis_server, topics, kafka={"bounded": False},
                        flink={"delivery_guarantee": "at-least-once"},
                        policy={"session_gap_ms": 2_000, "min_marketing_gap_ms": 0},
                        # no best hour: a restock would otherwise wait for the platform's hour at some times of day
                        journeys={"cart_reminders_ms": [3_000, 6_000], "best_hour_journeys": []})
    key = config.privacy.pseudonym_key
    users = {pseudonym(user, key): user for user in SHOPPERS}
    now = int(time.time() * 1000)
    producer.publish([listing("P", 100.0, 5, now - 60_000), listing("Q", 30.0, 0, now - 60_000),
                      listing("X", 10.0, 9, now - 60_000)], broker.bootstrap, topics.catalog,
                     key_of=lambda item: item.item_id)
    producer.publish([UserRecord(user_id=user, ts=now - 60_000, time_zone="UTC", channels=("push",),
                                 consent={"marketing": ("push",), "transactional": ("push",)},
                                 quiet_hours=QuietHours("00:00", "00:00")) for user in SHOPPERS],
                     broker.bootstrap, topics.users, key_of=lambda record: record.user_id)
    job = notification_job.run(config, [connector_jar], job_name="journeys-test", wait=False,
                               extra_flink={"restart-strategy.type": "none"})
    try:
        # Events are timed when they are sent, once the job reads: a time already past on the wall clock
        # when its timer is set belongs to a replay and waits for the watermark, which would not come.
        producer.publish_raw([b"ready?"], broker.bootstrap, topics.events)
        deadline = time.monotonic() + 120
        while not list(consumer.read_dead_letters(broker.bootstrap, topics.dead_letters, idle_timeout_s=1.0)):
            assert time.monotonic() < deadline, "the job did not start reading within 2 minutes"
        now = int(time.time() * 1000)
        events = [act("1", "abandoner", "cart", "X", now), act("2", "carter", "cart", "X", now),
                  act("3", "carter", "purchase", "X", now + 1_000), act("4", "viewer", "view", "P", now),
                  act("5", "fan", "favourite", "P", now), act("6", "waiting", "cart", "Q", now),
                  act("7", "elsewhere", "view", "R", now)]
        producer.publish(events, broker.bootstrap, topics.events)
        # The abandoner's reminders prove every event before them went through the item model.
        reminded = read_until(broker, topics, lambda found: sum(users.get(n.user) == "abandoner" for n in found) >= 2,
                              180)
        changed_at = int(time.time() * 1000)
        producer.publish([listing("P", 80.0, 5, changed_at), listing("Q", 30.0, 4, changed_at)], broker.bootstrap,
                         topics.catalog, key_of=lambda item: item.item_id)
        found = read_until(broker, topics,
                           lambda found: {users.get(n.user) for n in found} >= {"viewer", "fan", "waiting"}, 120)
        time.sleep(5)  # anything else that was coming
        found = list(consumer.read_notifications(broker.bootstrap, topics.notifications, idle_timeout_s=2.0))
    finally:
        job.cancel().result()
    assert [n.journey for n in reminded if users.get(n.user) == "abandoner"] == ["cart_abandonment"] * 2
    assert not [n for n in found if users.get(n.user) == "carter"]  # carted, then bought: nothing at all
    by_user = {}
    for n in found:
        if n.journey != "recommendation":  # views and favourites also end in a recommendation, as ever
            by_user.setdefault(users.get(n.user), []).append(n)
    assert [n.journey for n in by_user["abandoner"]] == ["cart_abandonment"] * 2
    assert [n.intended_at for n in by_user["abandoner"]] == [now + 3_000, now + 6_000]
    assert "elsewhere" not in by_user  # watches another item
    for watcher in ("viewer", "fan"):
        [n] = by_user[watcher]
        assert (n.journey, n.item_ids) == ("price_drop", ("P",))
        assert n.body == "Item P is now ($80.00), down from ($100.00)."
    seen = [(users.get(n.user), n.journey, n.item_ids) for n in found]
    if not by_user.get("waiting"):
        pytest.fail(f"nothing for waiting: {seen}")
    [restock] = by_user["waiting"]
    assert (restock.journey, restock.item_ids, restock.body) == ("back_in_stock", ("Q",),
                                                                 "Item Q ($30.00) is back in stock.")
    assert set(by_user) == {"abandoner", "viewer", "fan", "waiting"}
