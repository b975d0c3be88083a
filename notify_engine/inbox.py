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

from operators.inbox import inbox_effects
from state_schemas.codec import SchemaError
from state_schemas.outputs import Notification, UserErased

GROUP_SUFFIX = "-inbox"
JOIN_TIMEOUT_S = 120
REJOIN_AFTER_S = 30  # a join that assigned nothing this long is asked again


@dataclass
class InboxStats:
    stored: int = 0
    erased: int = 0
    unreadable: int = 0  # the job writes this topic, so one means a bug or a foreign producer; logged

    def line(self) -> str:
        return f"stored={self.stored} erased={self.erased} unreadable={self.unreadable}"


def decode_record(key: bytes | None, value: bytes | None) -> Notification | UserErased:
    """A committed record of the notifications topic: a notification, or a tombstone naming an erased user."""
    if value is None:
        if not key:
            raise SchemaError("notifications topic: a tombstone without a key")
        return UserErased(user=key.decode("utf-8", errors="replace"))
    return Notification.decode(value)


class InboxWriter:
    def __init__(self, config, client=None, poll_ms: int = 200):
        import redis

        from jobs.side_inputs import ItemCardStore, RedisEffects
        from state_schemas.redis_keys import RedisKeys

        self.config, self.poll_ms = config, poll_ms
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
        """Until `stop` is set, or `idle_timeout_s` passes without a record (None: no such limit)."""
        from kafka import KafkaConsumer

        kafka = self.config.kafka
        consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap_servers,
                                 group_id=kafka.group_id + GROUP_SUFFIX, enable_auto_commit=False,
                                 auto_offset_reset="earliest", isolation_level="read_committed",
                                 client_id="notify-engine-inbox")
        try:
            started = joined_at = last_record = time.monotonic()
            self._subscribe(consumer, kafka.notifications_topic, started + JOIN_TIMEOUT_S)
            while stop is None or not stop.is_set():
                batches = consumer.poll(timeout_ms=self.poll_ms)
                if not batches:
                    if not consumer.assignment():  # still joining the group (a fresh broker makes its offsets
                        last_record = time.monotonic()  # topic first): not idle yet
                        if last_record - started > JOIN_TIMEOUT_S:
                            raise RuntimeError(f"the inbox writer joined no group on {kafka.bootstrap_servers} "
                                               f"within {JOIN_TIMEOUT_S} s")
                        if last_record - joined_at > REJOIN_AFTER_S:  # assigned nothing: ask again
                            consumer.unsubscribe()
                            consumer.subscribe([kafka.notifications_topic])
                            joined_at = last_record
                    elif idle_timeout_s is not None and time.monotonic() - last_record >= idle_timeout_s:
                        break
                    continue
                for records in batches.values():
                    for record in records:
                        self.apply(record.key, record.value)
                consumer.commit()  # after the writes: a crash before this re-applies them, which changes nothing
                last_record = time.monotonic()
        finally:
            consumer.close()
        return self.stats

    @staticmethod
    def _subscribe(consumer, topic: str, deadline: float) -> None:
        """The group's leader assigns partitions from its own view of the topic: one that had none yet (the
        topic just made) assigned nothing, and kafka-python asked again only when its metadata next aged out,
        minutes later (the dashboard test, make chaos once: "No partition metadata for topic"). So the topic's
        partitions are known first."""
        while not consumer.partitions_for_topic(topic):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the notifications topic {topic} has no partitions the inbox writer can see")
            time.sleep(0.5)
        consumer.subscribe([topic])


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
