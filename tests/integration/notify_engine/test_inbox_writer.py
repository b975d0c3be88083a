"""The inbox writer against a real broker and a real Redis: a notification whose transaction was
aborted never reaches the inbox, an erasure's tombstone empties it at its place in the topic, and
reading the topic again from any earlier point ends in the same inbox."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaProducer

from config import load_config
from notify_engine.inbox import InboxWriter
from state_schemas.outputs import Notification
from state_schemas.redis_keys import RedisKeys
from tests.integration.conftest import job_config, make_topics

INBOX_SIZE = 3


def notification(n: int, user: str) -> Notification:
    return Notification(notification_id=f"n{n}", user=user, channel="push", kind="marketing", title="t",
                        body=f"body {n}", item_ids=("i",), reason="r", created_at=n, source_event_time=1000 + n,
                        source_event_id=f"e{n}", score=0.5)


def inbox(client, keys: RedisKeys, user: str) -> dict:
    return {"index": client.zrange(keys.inbox(user), 0, -1, withscores=True),
            "bodies": client.hgetall(keys.inbox_bodies(user))}


def test_only_committed_notifications_reach_the_inbox_and_an_erasure_empties_it(broker, redis_server):
    topics = make_topics(broker, partitions=1)
    config = job_config(broker, redis_server, topics, redis={"inbox_size": INBOX_SIZE})
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=f"tx-{topics.notifications}")
    producer.init_transactions()

    def transaction(records, commit: bool) -> None:
        producer.begin_transaction()
        for key, value in records:
            producer.send(topics.notifications, key=key.encode(), value=value)
        producer.flush()
        producer.commit_transaction() if commit else producer.abort_transaction()

    transaction([("gone", notification(1, "gone").encode()), ("kept", notification(2, "kept").encode())], True)
    transaction([("kept", notification(3, "kept").encode())], False)  # rolled back, as after a failure
    transaction([("gone", None), ("gone", notification(4, "gone").encode())], True)  # erased, then sent again
    producer.close()

    stats = InboxWriter(config).run(idle_timeout_s=3.0)
    client, keys = redis_server.client(), RedisKeys(config.redis.key_prefix)
    assert inbox(client, keys, "kept") == {"index": [(b"n2", 1002.0)],
                                           "bodies": {b"n2": notification(2, "kept").encode()}}
    assert inbox(client, keys, "gone") == {"index": [(b"n4", 1004.0)],
                                           "bodies": {b"n4": notification(4, "gone").encode()}}
    assert (stats.stored, stats.erased, stats.unreadable) == (3, 1, 0)
    # The group's offsets were committed: a restarted writer starts after what it wrote.
    assert InboxWriter(config).run(idle_timeout_s=2.0).stored == 0


records = st.lists(st.tuples(st.sampled_from(["u1", "u2"]), st.booleans()), max_size=25)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=records, crash=st.floats(0, 1), committed=st.floats(0, 1))
def test_reading_again_from_any_earlier_record_ends_in_the_same_inbox(redis_server, plan, crash, committed):
    config = load_config(overrides={"redis": {"url": redis_server.url, "key_prefix": "prop", "inbox_size": INBOX_SIZE}})
    client, keys = redis_server.client(), RedisKeys("prop")
    for key in client.scan_iter("prop:*"):
        client.delete(key)
    topic = [(user, None if erase else notification(n, user)) for n, (user, erase) in enumerate(plan)]
    crashed_at = int(crash * len(topic))
    restart_at = int(committed * crashed_at)  # the last committed offset is at or before the crash
    writer = InboxWriter(config, client)
    for user, record in topic[:crashed_at] + topic[restart_at:]:
        writer.apply(user.encode(), None if record is None else record.encode())
    for user in ("u1", "u2"):  # what the topic says: the newest few sent since the user's last erasure
        since = []
        for who, record in topic:
            if who == user:
                since = [] if record is None else since + [record]
        newest = since[-INBOX_SIZE:]
        assert inbox(client, keys, user) == {
            "index": [(n.notification_id.encode(), float(n.source_event_time)) for n in newest],
            "bodies": {n.notification_id.encode(): n.encode() for n in newest}}
