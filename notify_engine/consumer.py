"""Sink consumer: reads the notifications topic from a chosen position and prints or yields them.

Reads with isolation.level=read_committed, so with the exactly-once sink it sees only
notifications of completed checkpoints, never those of a transaction a failure rolled back.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator

from operators.privacy import pseudonym
from state_schemas.codec import SchemaError
from state_schemas.outputs import DeadLetter, Exposure, Notification, Outcome


@dataclass(frozen=True)
class StartPosition:
    """earliest | latest | an offset per partition | the first record at or after a time."""

    kind: str
    value: int = 0

    @classmethod
    def parse(cls, text: str) -> "StartPosition":
        if text in ("earliest", "latest"):
            return cls(text)
        if text.startswith("@"):
            return cls("timestamp", _parse_time(text[1:]))
        if text.isdigit():
            return cls("offset", int(text))
        raise argparse.ArgumentTypeError(
            f"--from must be earliest, latest, an offset, or @TIME (epoch ms or ISO 8601), got {text!r}")


def _parse_time(text: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"cannot read time {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


@dataclass
class ReadStats:
    read: int = 0
    matched: int = 0
    unreadable: int = 0
    erasures: int = 0  # tombstones: a user erased after what was sent to them before


def read_values(bootstrap_servers: str, topic: str, start: StartPosition = StartPosition("earliest"),
                idle_timeout_s: float = 5.0) -> Iterator[bytes]:
    """Committed record values of every partition, from `start` until `idle_timeout_s` without data."""
    return (record.value for record in read_records(bootstrap_servers, topic, start, idle_timeout_s))


def read_records(bootstrap_servers: str, topic: str, start: StartPosition = StartPosition("earliest"),
                 idle_timeout_s: float = 5.0):
    """Committed records (key, value, partition...) of every partition, from `start` until
    `idle_timeout_s` without data."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False,
                             isolation_level="read_committed", client_id="notify-engine-consumer")
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        if not partitions:
            raise SystemExit(f"topic {topic!r} does not exist on {bootstrap_servers}")
        assigned = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assigned)
        _seek(consumer, assigned, start)
        last_record = time.monotonic()
        while True:
            batches = consumer.poll(timeout_ms=200)
            if not batches:
                if time.monotonic() - last_record >= idle_timeout_s:
                    return
                continue
            last_record = time.monotonic()
            for records in batches.values():
                yield from records
    finally:
        consumer.close()


def read_notifications(bootstrap_servers: str, topic: str, start: StartPosition = StartPosition("earliest"),
                       user: str | None = None, max_messages: int | None = None, idle_timeout_s: float = 5.0,
                       stats: ReadStats | None = None) -> Iterator[Notification]:
    """Yields notifications (optionally of one pseudonymised user) until `max_messages` or an idle gap;
    erasure tombstones are counted, not yielded."""
    stats = stats if stats is not None else ReadStats()
    if max_messages is not None and max_messages <= 0:
        return
    for value in read_values(bootstrap_servers, topic, start, idle_timeout_s):
        stats.read += 1
        if value is None:
            stats.erasures += 1
            continue
        try:
            notification = Notification.decode(value)
        except SchemaError:
            stats.unreadable += 1
            continue
        if user is not None and notification.user != user:
            continue
        stats.matched += 1
        yield notification
        if max_messages is not None and stats.matched >= max_messages:
            return


def read_exposures(bootstrap_servers: str, topic: str, start: StartPosition = StartPosition("earliest"),
                   idle_timeout_s: float = 5.0) -> Iterator[Exposure]:
    """The holdout's would-be sends (`kafka.exposures_topic`); erasure tombstones are skipped."""
    for value in read_values(bootstrap_servers, topic, start, idle_timeout_s):
        if value is not None:
            yield Exposure.decode(value)


def read_outcomes(bootstrap_servers: str, topic: str, start: StartPosition = StartPosition("earliest"),
                  idle_timeout_s: float = 5.0) -> Iterator[Outcome]:
    """Carts and purchases attributed to a message (`kafka.outcomes_topic`); erasure tombstones are skipped."""
    for value in read_values(bootstrap_servers, topic, start, idle_timeout_s):
        if value is not None:
            yield Outcome.decode(value)


def read_dead_letters(bootstrap_servers: str, topic: str, start: StartPosition = StartPosition("earliest"),
                      idle_timeout_s: float = 5.0) -> Iterator[dict]:
    for value in read_values(bootstrap_servers, topic, start, idle_timeout_s):
        yield DeadLetter.decode(value)


def _seek(consumer, assigned, start: StartPosition) -> None:
    if start.kind == "earliest":
        consumer.seek_to_beginning(*assigned)
    elif start.kind == "latest":
        consumer.seek_to_end(*assigned)
    elif start.kind == "offset":
        for partition in assigned:
            consumer.seek(partition, start.value)
    else:
        found = consumer.offsets_for_times({partition: start.value for partition in assigned})
        ends = consumer.end_offsets(assigned)
        for partition in assigned:
            position = found.get(partition)
            consumer.seek(partition, position.offset if position is not None else ends[partition])


def format_line(notification: Notification) -> str:
    created = datetime.fromtimestamp(notification.created_at / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    items = ", ".join(notification.item_ids)
    return (f"{created}  {notification.kind:<13} {notification.channel:<5} user={notification.user}  "
            f"{notification.title + ': ' if notification.title else ''}{notification.body}  [{items}]  "
            f"({notification.reason})")


def main(argv: list[str] | None = None) -> int:
    from config import load_config

    parser = argparse.ArgumentParser(prog="notify-engine consume",
                                     description="Read notifications from the notifications topic.")
    parser.add_argument("--config", help="job config; gives the broker, topic and pseudonym key")
    parser.add_argument("--bootstrap-servers", help="overrides kafka.bootstrap_servers")
    parser.add_argument("--topic", help="overrides kafka.notifications_topic")
    parser.add_argument("--from", dest="start", type=StartPosition.parse, default=StartPosition("earliest"),
                        help="earliest (default), latest, an offset, or @TIME (epoch ms or ISO 8601)")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--user", help="a raw user id; it is pseudonymised with the config's key before matching")
    who.add_argument("--pseudonym", help="a user pseudonym as it appears in notifications")
    parser.add_argument("--format", choices=["text", "json"], default="text")
    parser.add_argument("--max", type=int, dest="max_messages", help="stop after this many notifications")
    parser.add_argument("--idle-timeout", type=float, default=5.0, help="stop after this many seconds without data")
    args = parser.parse_args(argv)

    config = load_config(args.config)
    bootstrap = args.bootstrap_servers or config.kafka.bootstrap_servers
    topic = args.topic or config.kafka.notifications_topic
    user = pseudonym(args.user, config.privacy.pseudonym_key) if args.user else args.pseudonym
    stats = ReadStats()
    try:
        for notification in read_notifications(bootstrap, topic, args.start, user, args.max_messages,
                                               args.idle_timeout, stats):
            line = notification.encode().decode() if args.format == "json" else format_line(notification)
            print(line, flush=True)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:  # e.g. piped into `head`
        return 0
    print(f"# read {stats.read} records, printed {stats.matched}, unreadable {stats.unreadable}, "
          f"erasures {stats.erasures}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
