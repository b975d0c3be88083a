"""The inbox writer: a consumer of the notifications topic (read_committed) that keeps each user's
inbox in Redis (`operators.inbox`). Redis is written only from what Kafka committed, so it never
shows a notification whose transaction a failure rolled back. Offsets are committed after the
Redis writes: a crash re-reads a few records, and the writes are idempotent.

    notify-engine inbox --config my.yaml          # runs until interrupted
    notify-engine inbox --config my.yaml --idle-timeout 5
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass

from kafka import ConsumerRebalanceListener

from operators.inbox import inbox_effects
from state_schemas.codec import SchemaError
from state_schemas.outputs import Notification, UserErased

GROUP_SUFFIX = "-inbox"
JOIN_TIMEOUT_S = 120  # with an idle timeout (a bounded run), no join this long is an error
REJOIN_AFTER_S = 30  # a consumer not in the group this long is closed and a new one joins


@dataclass
class InboxStats:
    stored: int = 0
    erased: int = 0
    unreadable: int = 0  # the job writes this topic, so one means a bug or a foreign producer; logged
    joins: int = 0  # completed group joins, each with the partitions it assigned (perhaps none: a standby writer)
    partitions: int = 0  # held after the latest join
    reconnects: int = 0  # consumers given up on for not joining within the rejoin time

    def line(self) -> str:
        return (f"stored={self.stored} erased={self.erased} unreadable={self.unreadable} joins={self.joins} "
                f"partitions={self.partitions} reconnects={self.reconnects}")


def decode_record(key: bytes | None, value: bytes | None) -> Notification | UserErased:
    """A committed record of the notifications topic: a notification, or a tombstone naming an erased user."""
    if value is None:
        if not key:
            raise SchemaError("notifications topic: a tombstone without a key")
        return UserErased(user=key.decode("utf-8", errors="replace"))
    return Notification.decode(value)


class InboxWriter:
    def __init__(self, config, client=None, poll_ms: int = 200, rejoin_after_s: float = REJOIN_AFTER_S):
        import redis

        from jobs.side_inputs import ItemCardStore, RedisEffects
        from state_schemas.redis_keys import RedisKeys

        self.config, self.poll_ms, self.rejoin_after_s = config, poll_ms, rejoin_after_s
        self.client = client or redis.Redis.from_url(config.redis.url, socket_timeout=10)
        # The writer publishes no item cards: an empty store only names the keys.
        cards = ItemCardStore(self.client, RedisKeys(config.redis.key_prefix), ttl_s=0, cache_ms=0, cache_size=1,
                              flush_ms=0)
        self.effects = RedisEffects(self.client, cards)
        self.stats = InboxStats()

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        try:
            record = decode_record(key, value)
        except SchemaError as error:
            self.stats.unreadable += 1
            print(f"inbox writer: skipped an unreadable record: {error}", file=sys.stderr)
            return
        for effect in inbox_effects(record, self.config.redis):
            self.effects.apply(effect)
        if isinstance(record, UserErased):
            self.stats.erased += 1
        else:
            self.stats.stored += 1

    def run(self, idle_timeout_s: float | None = None, stop: threading.Event | None = None) -> InboxStats:
        """Until `stop` is set, or `idle_timeout_s` passes without a record once in the group (None: no such
        limit). A consumer that joins no group, or leaves one and does not rejoin, within `rejoin_after_s` is
        closed and a new one joins: under load kafka-python 3.0.12 has been seen to revoke its partitions for
        a second rebalance and never finish it, fetching nothing for minutes; a fresh client is what a
        supervisor's restart would give. Without an idle timeout the writer, a service, keeps trying; with one
        it gives up after JOIN_TIMEOUT_S."""
        stop = stop or threading.Event()
        started = time.monotonic()
        while not stop.is_set():
            consumer = self._consumer()
            try:
                if self._consume(consumer, idle_timeout_s, stop):
                    break
            finally:
                consumer.close()
            self.stats.reconnects += 1
            waited = time.monotonic() - started
            if idle_timeout_s is not None and waited > JOIN_TIMEOUT_S:
                raise RuntimeError(f"the inbox writer was not in a group on {self.config.kafka.bootstrap_servers} "
                                   f"after {waited:.0f} s ({self.stats.line()})")
            print(f"inbox writer: out of the group for {self.rejoin_after_s:.0f} s; a new consumer joins "
                  f"({self.stats.line()})", file=sys.stderr)
        return self.stats

    def _consumer(self):
        from kafka import KafkaConsumer

        kafka = self.config.kafka
        return KafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=kafka.group_id + GROUP_SUFFIX,
                             enable_auto_commit=False, auto_offset_reset="earliest", isolation_level="read_committed",
                             client_id="notify-engine-inbox")

    def _consume(self, consumer, idle_timeout_s: float | None, stop: threading.Event) -> bool:
        """True once stopped or idle; False if the consumer was out of the group for the rejoin time."""
        topic = self.config.kafka.notifications_topic
        if not self._subscribe(consumer, topic, time.monotonic() + self.rejoin_after_s):
            return False
        membership, last_record = _Membership(self.stats), None
        consumer.subscribe([topic], listener=membership)
        while not stop.is_set():
            batches = consumer.poll(timeout_ms=self.poll_ms)
            now = time.monotonic()
            if membership.out_since is not None:
                if now - membership.out_since > self.rejoin_after_s:
                    return False
                last_record = None  # not idle while out of the group
                continue
            for records in batches.values():
                for record in records:
                    self.apply(record.key, record.value)
            if batches:
                consumer.commit()  # after the writes: a crash before this re-applies them, which changes nothing
            if batches or last_record is None:
                last_record = now
            elif idle_timeout_s is not None and now - last_record >= idle_timeout_s:
                return True
        return True

    @staticmethod
    def _subscribe(consumer, topic: str, deadline: float) -> bool:
        """The group's leader assigns partitions from its own view of the topic: one that had none yet (the
        topic just made) assigned nothing, and kafka-python asked again only when its metadata next aged out,
        minutes later (the dashboard test, make chaos once: "No partition metadata for topic"). So the topic's
        partitions are known first. False if they are not by the deadline."""
        while not consumer.partitions_for_topic(topic):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True


class _Membership(ConsumerRebalanceListener):
    """Whether the consumer is in the group: out from its start and from each revocation (a rebalance begins)
    until kafka-python reports the partitions the rebalance assigned it (perhaps none: a standby writer)."""

    def __init__(self, stats: InboxStats):
        self.stats, self.out_since = stats, time.monotonic()

    def on_partitions_revoked(self, revoked) -> None:
        self.out_since = time.monotonic()

    def on_partitions_assigned(self, assigned) -> None:
        self.out_since = None
        self.stats.joins += 1
        self.stats.partitions = len(assigned)


def main(argv: list[str] | None = None) -> int:
    from config import load_config

    parser = argparse.ArgumentParser(prog="notify-engine inbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="job config: the broker, notifications topic, group id and Redis")
    parser.add_argument("--idle-timeout", type=float, help="stop after this many seconds without a record")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if not config.redis.enabled:
        print("redis.enabled is false in this config: inboxes are not kept", file=sys.stderr)
        return 1
    writer = InboxWriter(config)
    try:
        writer.run(idle_timeout_s=args.idle_timeout)
    except KeyboardInterrupt:
        pass
    print(f"# {writer.stats.line()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
