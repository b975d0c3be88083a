"""The inbox writer against a real broker and a real Redis: a notification whose transaction was
aborted never reaches the inbox, an erasure's tombstone empties it at its place in the topic, and
reading the topic again from any earlier point ends in the same inbox. A second writer on the group stands by;
a writer kept out of its group replaces its consumer."""
from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, KafkaProducer

from config import load_config
from notify_engine.inbox import GROUP_SUFFIX, InboxWriter
from state_schemas.outputs import Notification
from state_schemas.redis_keys import RedisKeys
from tests.integration.conftest import InboxWriterBeside, job_config, make_topics

INBOX_SIZE = 3
REJOIN_S = 4.0  # the writers' rejoin time here, kept short


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


def wait_until(condition, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def publish(broker, topic: str, notifications: list[Notification]) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for sent in notifications:
        producer.send(topic, key=sent.user.encode(), value=sent.encode())
    producer.close()


def test_a_second_writer_on_a_one_partition_topic_stands_by_without_reconnecting(broker, redis_server):
    topics = make_topics(broker, partitions=1)
    config = job_config(broker, redis_server, topics, redis={"inbox_size": 20})
    first = InboxWriterBeside(config, rejoin_after_s=REJOIN_S).start()
    wait_until(lambda: first.writer.stats.joins, "the first writer's join")
    second = InboxWriterBeside(config, rejoin_after_s=REJOIN_S).start()
    try:
        wait_until(lambda: second.writer.stats.joins, "the second writer's join")
        sent = [notification(n, "u") for n in range(10)]
        publish(broker, topics.notifications, sent)
        both = (first.writer.stats, second.writer.stats)
        wait_until(lambda: sum(stats.stored for stats in both) == len(sent), "the notifications stored")
        time.sleep(3 * REJOIN_S)  # a standby writer is in the group: it is not replaced
        assert sorted(stats.partitions for stats in both) == [0, 1]
        assert [stats.reconnects for stats in both] == [0, 0], (first.state(), second.state())
        assert sum(stats.stored for stats in both) == len(sent)  # each once: offsets committed as they went
        client, keys = redis_server.client(), RedisKeys(config.redis.key_prefix)
        assert client.zrange(keys.inbox("u"), 0, -1) == [n.notification_id.encode() for n in sent]
    finally:
        first.close()
        second.close()
    assert (first.error, second.error) == (None, None)


def test_a_writer_held_out_of_its_group_is_replaced_by_a_new_consumer_and_then_writes(broker, redis_server):
    """A member that stopped polling holds a rebalance open until its own rebalance timeout: the writer that
    joins meanwhile is out of the group, as kafka-python has left it under load, and replaces its consumer."""
    topics = make_topics(broker, partitions=1)
    config = job_config(broker, redis_server, topics)
    stuck = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=config.kafka.group_id + GROUP_SUFFIX,
                          session_timeout_ms=30_000, max_poll_interval_ms=30_000, enable_auto_commit=False)
    stuck.subscribe([topics.notifications])
    wait_until(lambda: stuck.poll(timeout_ms=200) is not None and stuck.assignment(), "the stuck member's join")
    sent = [notification(n, "u") for n in range(3)]
    publish(broker, topics.notifications, sent)
    writer = InboxWriterBeside(config, rejoin_after_s=REJOIN_S).start()
    try:
        wait_until(lambda: writer.writer.stats.stored == len(sent), "the notifications stored", timeout=120.0)
        assert writer.writer.stats.reconnects >= 1, writer.state()
    finally:
        writer.close()
        stuck.close()
    assert writer.error is None
