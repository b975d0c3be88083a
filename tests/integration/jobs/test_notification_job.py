"""The job end to end through the real broker: one bounded run over an input that mixes
realistic generated traffic, hand-made cases (duplicates, erasure, opt-out) and bad records.
Expectations are derived from the input, never from an earlier output of the job."""
from __future__ import annotations

import base64

import collections
import time

import orjson
import pytest

from notify_engine import generator, producer
from notify_engine.inbox import InboxWriter
from operators.privacy import pseudonym
from state_schemas.events import BehaviourEvent, ErasureRequest, FeedbackEvent, OrderEvent, UserRecord
from state_schemas.outputs import Notification
from state_schemas.redis_keys import RedisKeys
from tests.integration.conftest import job_config, make_topics, read_back, read_raw_notifications, run_bounded

pytestmark = pytest.mark.slow

NOTIFIED_STATUSES = {"shipped", "out_for_delivery", "delivered", "cancelled", "refunded", "price_drop"}
MINUTE = 60_000
BASE = (int(time.time() * 1000) // MINUTE) * MINUTE - 6 * 3_600_000


NIGHT_VIEW = BASE + 93 * MINUTE  # inside the quiet hours the night owl set for themselves


def _clock(ts: int) -> str:
    return time.strftime("%H:%M", time.gmtime(ts / 1000))


def _view(event_id, user, item, ts, category="cat-hand"):
    return BehaviourEvent(event_id=event_id, user_id=user, behavior="view", ts=ts, item_id=item, category_id=category)


def _order(event_id, user, order, status, ts):
    return OrderEvent(event_id=event_id, user_id=user, order_id=order, status=status, ts=ts, item_ids=("hand-A",))


# Sent before the generated traffic: items A, B, C viewed in that order by six shoppers, so the
# co-occurrence row of C holds A and B; plus the unsubscribe, duplicates and erasure cases.
BEFORE = (
    [_view(f"warm-{u}-{i}", f"warm-{u}", item, BASE + u * 10 * MINUTE + i * MINUTE)
     for u in range(6) for i, item in enumerate(("hand-A", "hand-B", "hand-C"))]
    + [FeedbackEvent(event_id="optout-fb", user_id="optout", action="unsubscribe", ts=BASE)]
    + [_order("dup-o-1", "dup", "dup-order", "shipped", BASE),
       _order("dup-o-1", "dup", "dup-order", "shipped", BASE),  # the same event delivered twice
       _order("dup-o-2", "dup", "dup-order", "shipped", BASE + MINUTE)]  # same status, new event id
    + [_order("erase-o-1", "erase", "erase-order", "shipped", BASE),
       ErasureRequest(event_id="erase-req", user_id="erase", ts=BASE + MINUTE),
       _order("erase-o-2", "erase", "erase-order", "shipped", BASE + 2 * MINUTE)]
)
# Sent after the generated traffic, so the unsubscribe has long reached the push policy.
AFTER = [
    _view("optout-view", "optout", "hand-C", BASE + 90 * MINUTE),
    _order("optout-order", "optout", "optout-order", "delivered", BASE + 91 * MINUTE),
    _view("control-view", "control", "hand-C", BASE + 90 * MINUTE),
    # Shoppers of the user directory: each order goes out on the channel their record allows, or not at all.
    _order("sms-order", "dir-sms", "sms-order", "shipped", BASE + 92 * MINUTE),
    _order("email-order", "dir-email", "email-order", "shipped", BASE + 92 * MINUTE),
    _order("silent-order", "dir-silent", "silent-order", "shipped", BASE + 92 * MINUTE),
    _view("night-view", "night-owl", "hand-C", NIGHT_VIEW),
    _view("deleted-view", "dir-deleted", "hand-C", BASE + 90 * MINUTE),
    _order("deleted-order", "dir-deleted", "deleted-order", "shipped", BASE + 92 * MINUTE),
    # After everything else, so no earlier-read record has moved the watermark past them: one cart
    # left alone, one bought twenty minutes later.
    BehaviourEvent(event_id="left-cart", user_id="cart-left", behavior="cart", ts=BASE + 95 * MINUTE,
                   item_id="hand-B", category_id="cat-hand"),
    BehaviourEvent(event_id="bought-cart", user_id="cart-bought", behavior="cart", ts=BASE + 95 * MINUTE,
                   item_id="hand-B", category_id="cat-hand"),
    BehaviourEvent(event_id="bought-it", user_id="cart-bought", behavior="purchase", ts=BASE + 115 * MINUTE,
                   item_id="hand-B", category_id="cat-hand"),
]
# The user directory, on its own topic: push is preferred for transactional messages, then sms, then email.
DIRECTORY = [
    {"type": "user", "user_id": "night-owl", "ts": BASE, "time_zone": "UTC", "channels": ["push"],
     "consent": {"marketing": ["push"]},
     "quiet_hours": {"start": _clock(NIGHT_VIEW - 60 * MINUTE), "end": _clock(NIGHT_VIEW + 120 * MINUTE)}},
    {"type": "user", "user_id": "dir-sms", "ts": BASE, "channels": ["sms"], "time_zone": "Asia/Shanghai"},
    {"type": "user", "user_id": "dir-email", "ts": BASE, "channels": ["push", "email"],
     "consent": {"transactional": ["email"]}, "locale": "zh-CN"},
    {"type": "user", "user_id": "dir-silent", "ts": BASE, "channels": ["push"], "consent": {"transactional": []}},
    # Deleted by a tombstone that follows it: none of its consent survives.
    {"type": "user", "user_id": "dir-deleted", "ts": BASE, "channels": ["push"], "consent": {"marketing": ["push"]}},
]
BAD_DIRECTORY = {
    "not an IANA time zone": b'{"type":"user","user_id":"dir-bad1","ts":1700000000000,"time_zone":"Mars/Base"}',
    "must be a BCP 47 tag": b'{"type":"user","user_id":"dir-bad2","ts":1700000000000,"locale":"klingon"}',
    "field 'channels' must be a list": b'{"type":"user","user_id":"dir-bad3","ts":1700000000000,"channels":"push"}',
    "malformed JSON": b'{"type":"user","user_id":',
}

BAD_RECORDS = {
    "malformed JSON": b'{"type": "behaviour", "event_id": "x1"',
    "must be a JSON object": b"[1, 2, 3]",
    "missing required field 'user_id'": b'{"type":"behaviour","event_id":"x2","behavior":"view","item_id":"i",'
                                        b'"ts":1700000000000}',
    "field 'ts' must be an integer": b'{"type":"behaviour","event_id":"x3","user_id":"u","behavior":"view",'
                                     b'"item_id":"i","ts":"yesterday"}',
    "unknown or missing 'type'": b'{"type":"teleport","event_id":"x4","user_id":"u","ts":1700000000000}',
    "field 'behavior' has unknown value": b'{"type":"behaviour","event_id":"x5","user_id":"u","behavior":"stare",'
                                          b'"item_id":"i","ts":1700000000000}',
    "is before": b'{"type":"behaviour","event_id":"x6","user_id":"u","behavior":"view","item_id":"i","ts":12}',
    "ahead of the clock": b'{"type":"behaviour","event_id":"x7","user_id":"u","behavior":"view","item_id":"i",'
                          b'"ts":99999999999999}',
    "oversized payload": b'{"type":"behaviour","event_id":"x8","user_id":"u","behavior":"view","item_id":"i",'
                         b'"ts":1700000000000,"query":"' + b"z" * 20000 + b'"}',
    # Not UTF-8 (Latin-1 "é"): the stock string schema would have kept replacement characters, not these bytes.
    "Invalid UTF-8": b'{"type":"behaviour","event_id":"x9","user_id":"caf\xe9","behavior":"view","item_id":"i",'
                     b'"ts":1700000000000}',
    # Under the size limit, nested 8 000 deep: msgspec's recursion guard raised past every admission step.
    "nested too deeply": b'{"type":"behaviour","event_id":"x10","x":' + b"[" * 8000 + b"]" * 8000 + b"}",
}


def _tombstones(bootstrap: str, topic: str, *keys: bytes, at: int | None = None) -> None:
    """Records with a key and no value, as a compacted topic's deletions are written (at `at`, else now)."""
    from kafka import KafkaProducer

    sink = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for key in keys:
        sink.send(topic, key=key, value=None, timestamp_ms=at)
    sink.flush()
    sink.close()


@pytest.fixture(scope="module")
def generated():
    config = generator.GeneratorConfig(users=250, items=120, events=4000, seed=11, start_ms=BASE - 2 * 86_400_000)
    return list(generator.generate_events(config))


@pytest.fixture(scope="module")
def outcome(broker, redis_server, connector_jar, generated):
    topics = make_topics(broker)
    producer.publish(BEFORE, broker.bootstrap, topics.events)
    producer.publish_raw(BAD_RECORDS.values(), broker.bootstrap, topics.events)
    producer.publish(generated, broker.bootstrap, topics.events)
    producer.publish(AFTER, broker.bootstrap, topics.events)
    producer.publish([UserRecord.from_dict(record) for record in DIRECTORY], broker.bootstrap, topics.users)
    producer.publish_raw(BAD_DIRECTORY.values(), broker.bootstrap, topics.users)
    # The shop deletes the record after the shopper's view and before their order: the job applies it at that time
    _tombstones(broker.bootstrap, topics.users, b"dir-deleted", at=BASE + 91 * MINUTE)
    _tombstones(broker.bootstrap, topics.events, b"no-such-delete")  # a tombstone where none belongs
    # No best hour: the input is placed relative to now, and from 13:00 to 19:00 UTC a shopper with little history
    # would wait for the platform's hour (19:00), which moves when the night owl's recommendation goes out.
    config = job_config(broker, redis_server, topics, journeys={"best_hour_journeys": []})
    run_bounded(config, connector_jar)
    InboxWriter(config).run(idle_timeout_s=3.0)  # as `notify-engine inbox` does beside a running job
    notifications, dead_letters = read_back(broker, topics)
    return config, notifications, dead_letters, read_raw_notifications(broker, topics)


def _for(notifications, user, key):
    return [n for n in notifications if n.user == pseudonym(user, key)]


def test_every_bad_record_reaches_the_dead_letter_topic_with_its_reason(outcome):
    _, _, all_dead_letters, _ = outcome
    dead_letters = [letter for letter in all_dead_letters if letter["stage"] == "admit"]
    tombstone = [letter for letter in dead_letters if "a record with no value (a tombstone)" in letter["reason"]]
    assert len(tombstone) == 1 and "'no-such-delete'" in tombstone[0]["reason"]  # the job lives on
    dead_letters = [letter for letter in dead_letters if letter not in tombstone]
    assert len(dead_letters) == len(BAD_RECORDS)
    reasons = [letter["reason"] for letter in dead_letters]
    for expected in BAD_RECORDS:
        assert any(expected in reason for reason in reasons), f"no dead letter says {expected!r}: {reasons}"
    oversized = next(letter for letter in dead_letters if "oversized" in letter["reason"])
    assert oversized["size"] == len(BAD_RECORDS["oversized payload"])
    malformed = next(letter for letter in dead_letters if "truncated" in letter["reason"])
    assert malformed["raw"].encode() == BAD_RECORDS["malformed JSON"]
    undecodable = next(letter for letter in dead_letters if "Invalid UTF-8" in letter["reason"])
    assert base64.b64decode(undecodable["raw_base64"]) == BAD_RECORDS["Invalid UTF-8"]


def test_bad_directory_records_reach_the_dead_letter_topic_and_good_ones_choose_the_channel(outcome):
    config, notifications, dead_letters, _ = outcome
    rejected = [letter for letter in dead_letters if letter["stage"] == "admit-users"]
    assert len(rejected) == len(BAD_DIRECTORY)
    for expected, raw in BAD_DIRECTORY.items():
        letter = next(letter for letter in rejected if letter["raw"].encode() == raw)
        assert expected in letter["reason"], letter
    key = config.privacy.pseudonym_key
    texted = _for(notifications, "dir-sms", key)
    assert [(n.channel, n.title, n.locale) for n in texted] == [("sms", "", "en")]  # push unreachable: fallback
    assert texted[0].body == "Order sms-order has shipped with our courier."
    mailed = _for(notifications, "dir-email", key)
    assert [(n.channel, n.title, n.locale) for n in mailed] == [("email", "订单已发货", "zh-CN")]  # push not agreed
    assert mailed[0].links == (f"https://shop.example.com/orders/email-order?nid={mailed[0].notification_id}",)
    assert _for(notifications, "dir-silent", key) == []


def test_a_tombstone_on_the_users_topic_deletes_the_record_and_its_consent(outcome):
    config, notifications, _, _ = outcome
    told = _for(notifications, "dir-deleted", config.privacy.pseudonym_key)
    assert [(n.kind, n.source_event_id) for n in told] == [("transactional", "deleted-order")]
    control = _for(notifications, "control", config.privacy.pseudonym_key)  # the same view, no record at all
    assert any(n.kind == "marketing" for n in control)


def test_a_recommendation_inside_quiet_hours_arrives_when_they_end(outcome):
    config, notifications, _, _ = outcome
    sent = _for(notifications, "night-owl", config.privacy.pseudonym_key)
    assert [(n.kind, n.source_event_id) for n in sent] == [("marketing", "night-view")]
    assert sent[0].scheduled_at == NIGHT_VIEW + 120 * MINUTE  # not at the end of the session, 30 minutes in


def test_valid_traffic_in_the_same_stream_still_produces_marketing(outcome, generated):
    config, notifications, _, _ = outcome
    users = {e.user_id for e in generated}
    marketing = [n for n in notifications if n.kind == "marketing"]
    generated_pseudonyms = {pseudonym(u, config.privacy.pseudonym_key) for u in users}
    assert sum(n.user in generated_pseudonyms for n in marketing) >= 10


def test_transactional_notifications_match_the_order_events_exactly_once(outcome, generated):
    _, notifications, _, _ = outcome
    expected = {e.event_id for e in generated if isinstance(e, OrderEvent) and e.status in NOTIFIED_STATUSES}
    assert expected, "the generator made no order lifecycle to check against"
    sent = [n.source_event_id for n in notifications if n.kind == "transactional" and n.source_event_id in expected]
    assert sorted(sent) == sorted(expected)


def test_marketing_respects_daily_cap_and_gap(outcome):
    config, notifications, _, _ = outcome
    policy = config.policy
    by_user = collections.defaultdict(list)
    for n in notifications:
        if n.kind == "marketing":
            by_user[n.user].append(n.scheduled_at)  # caps and gaps count when a message goes out
    assert by_user
    for times in by_user.values():
        times.sort()
        per_day = collections.Counter(t // 86_400_000 for t in times)  # generated shoppers: the default zone, UTC
        assert max(per_day.values()) <= policy.daily_marketing_cap
        assert all(b - a >= policy.min_marketing_gap_ms for a, b in zip(times, times[1:]))


def test_recommendations_never_name_what_the_user_bought(outcome, generated):
    """The item looked at may be named (re-engagement, the default); whether it is, is unit-tested."""
    config, notifications, _, _ = outcome
    key = config.privacy.pseudonym_key
    by_id = {e.event_id: e for e in generated if isinstance(e, BehaviourEvent)}
    bought = collections.defaultdict(list)
    for e in generated:
        if isinstance(e, BehaviourEvent) and e.behavior == "purchase":
            bought[e.user_id].append((e.ts, e.item_id))
    checked = 0
    for n in notifications:
        trigger = by_id.get(n.source_event_id)
        if n.journey != "recommendation" or trigger is None:
            continue
        assert n.user == pseudonym(trigger.user_id, key)
        earlier_purchases = {item for ts, item in bought[trigger.user_id] if ts < trigger.ts}
        assert not earlier_purchases & set(n.item_ids)
        checked += 1
    assert checked > 0


def test_a_cart_reminder_names_the_carted_item_and_stops_once_it_is_bought(outcome, generated):
    config, notifications, _, _ = outcome
    by_id = {e.event_id: e for e in generated if isinstance(e, BehaviourEvent)}
    key = config.privacy.pseudonym_key
    reminders = [n for n in notifications if n.journey == "cart_abandonment"]
    assert reminders, "the generated shoppers abandon some carts"
    # The generated traffic is read after BEFORE, whose times are later: the watermark is past its
    # reminders' times when they are set, so they go at once, before a purchase after the cart is
    # read (late data). What must hold for them is what they name; AFTER shows the purchase exit.
    for n in reminders:
        cart = by_id.get(n.source_event_id) or next(e for e in AFTER if e.event_id == n.source_event_id)
        assert cart.behavior == "cart" and n.item_ids == (cart.item_id,)
        assert n.user == pseudonym(cart.user_id, key)
        assert n.intended_at in (cart.ts + delay for delay in config.journeys.cart_reminders_ms)
        assert n.scheduled_at >= n.intended_at
    left = _for(notifications, "cart-left", key)  # one shopper's records share a partition: in the order sent
    assert [(n.journey, n.intended_at) for n in left] == [
        ("cart_abandonment", BASE + 95 * MINUTE + delay) for delay in config.journeys.cart_reminders_ms]
    assert _for(notifications, "cart-bought", key) == []


def test_outputs_carry_pseudonyms_not_user_ids(outcome, generated):
    config, notifications, _, all_raw = outcome
    raw_ids = {e.user_id for e in [*BEFORE, *generated, *AFTER]}
    key = config.privacy.pseudonym_key
    raw = [record for record in all_raw if record.value is not None]  # tombstones are erasures
    assert len(raw) == len(notifications) > 0
    assert [r.key for r in all_raw if r.value is None] == [pseudonym("erase", key).encode()]
    partitions = {}
    for record in raw:  # the bytes on the topic, as a consumer receives them
        user = orjson.loads(record.value)["user"]
        assert user not in raw_ids and any(user == pseudonym(u, key) for u in raw_ids)
        assert not any(f'"{u}"'.encode() in record.value for u in raw_ids)
        assert record.key == user.encode()  # keyed by the pseudonym: one user's records keep their order
        partitions.setdefault(user, set()).add(record.partition)
    assert all(len(found) == 1 for found in partitions.values()), partitions
    assert len({next(iter(found)) for found in partitions.values()}) == 2, "both partitions hold some users"


def test_a_duplicate_event_and_a_repeated_status_notify_once(outcome):
    config, notifications, _, _ = outcome
    dup = _for(notifications, "dup", config.privacy.pseudonym_key)
    assert [n.source_event_id for n in dup] == ["dup-o-1"]


def test_erasure_forgets_what_was_sent(outcome):
    config, notifications, _, _ = outcome
    erased = _for(notifications, "erase", config.privacy.pseudonym_key)
    # Without erasure the second "shipped" would be suppressed as a repeat of the first.
    assert sorted(n.source_event_id for n in erased) == ["erase-o-1", "erase-o-2"]


def test_unsubscribed_users_get_transactional_but_no_marketing(outcome):
    config, notifications, _, _ = outcome
    key = config.privacy.pseudonym_key
    control = _for(notifications, "control", key)
    assert [n.kind for n in control] == ["marketing"], "the control shopper should be recommended A or B"
    # The item looked at first ("still thinking about it?"), then A and B, C's only co-occurring items.
    assert control[0].item_ids[0] == "hand-C" and set(control[0].item_ids[1:3]) == {"hand-A", "hand-B"}
    assert "hand-C" in control[0].reason
    assert [n.kind for n in _for(notifications, "optout", key)] == ["transactional"]


def test_the_erasure_follows_what_was_sent_before_it_in_the_users_partition(outcome):
    config, _, _, raw = outcome
    erased = pseudonym("erase", config.privacy.pseudonym_key).encode()
    theirs = [record for record in raw if record.key == erased]
    assert len({record.partition for record in theirs}) == 1
    order = ["erased" if r.value is None else Notification.decode(r.value).source_event_id for r in theirs]
    assert order == ["erase-o-1", "erased", "erase-o-2"]


def test_notifications_are_in_the_redis_inbox(outcome, redis_server):
    config, _, _, raw = outcome
    client, keys = redis_server.client(), RedisKeys(config.redis.key_prefix)
    by_user = collections.defaultdict(list)
    for record in raw:  # each notification as committed to the topic: the inbox must hold those very bytes
        if record.value is None:  # the erasure: the inbox writer emptied the inbox here
            by_user[record.key.decode()].clear()
            continue
        by_user[Notification.decode(record.value).user].append(record.value)
    assert by_user
    erased = pseudonym("erase", config.privacy.pseudonym_key)
    assert [Notification.decode(r).source_event_id for r in by_user[erased]] == ["erase-o-2"]
    for user, sent in by_user.items():
        newest = sorted(sent, key=lambda r: Notification.decode(r).source_event_time)[-config.redis.inbox_size:]
        assert client.zcard(keys.inbox(user)) == len(newest)
        assert client.hgetall(keys.inbox_bodies(user)) == {Notification.decode(r).notification_id.encode(): r
                                                            for r in newest}
        assert 0 < client.ttl(keys.inbox(user)) <= config.redis.ttl_hours * 3600
