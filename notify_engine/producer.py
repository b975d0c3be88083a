"""Publish input records to Kafka, optionally paced to a target rate.

Records are keyed by user id, so one user's events share a partition and keep their order
(the idempotent producer keeps order across retries too). The Kafka record timestamp is left
to the producer's clock: event time travels inside the record, and stamping old event times
on the log would make the broker's time-based retention delete it at once.
"""
from __future__ import annotations

import itertools
import time
from typing import Any, Callable, Iterable

from state_schemas.events import encode

PROGRESS_EVERY = 1_000  # records between progress callbacks


def _user_key(record: Any) -> str:
    return record.user_id


def publish(events: Iterable[Any], bootstrap_servers: str, topic: str, rate_per_s: float | None = None,
            progress: Callable[[int], None] | None = None, key_of: Callable[[Any], str] = _user_key) -> int:
    """Send each record (anything with `to_dict`) encoded as JSON, keyed by `key_of(record)`:
    the user id by default; pass `lambda item: item.item_id` for catalogue items. `progress` is
    called with the running count every PROGRESS_EVERY records and at the end. Returns how many
    were sent; raises after flushing if any was not delivered."""
    keyed = ((key_of(event).encode(), encode(event)) for event in events)
    return _send_all(keyed, bootstrap_servers, topic, rate_per_s, progress)


def publish_raw(payloads: Iterable[bytes], bootstrap_servers: str, topic: str, rate_per_s: float | None = None,
                progress: Callable[[int], None] | None = None, key_prefix: str | None = None) -> int:
    """Send payloads as they are, for malformed input the job must survive: without a key, or keyed
    `<key_prefix><n>` (a compacted topic refuses records without a key)."""
    keys = (None if key_prefix is None else f"{key_prefix}{n}".encode() for n in itertools.count())
    return _send_all(zip(keys, payloads), bootstrap_servers, topic, rate_per_s, progress)


def _send_all(records: Iterable[tuple[bytes | None, bytes]], bootstrap_servers: str, topic: str,
              rate_per_s: float | None, progress: Callable[[int], None] | None) -> int:
    from kafka import KafkaProducer  # imported here so readers and tests need no Kafka client

    if rate_per_s is not None and rate_per_s <= 0:
        raise ValueError(f"rate_per_s must be > 0, got {rate_per_s}")
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True,
                             linger_ms=5, batch_size=64 * 1024)
    errors: list[Exception] = []
    sent = 0
    started = time.monotonic()
    try:
        for key, value in records:
            if rate_per_s is not None:
                # Scheduled from the start, not from the last send, so sleep overshoot does not
                # add up and the average rate holds.
                ahead = started + sent / rate_per_s - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            producer.send(topic, key=key, value=value).add_errback(errors.append)
            sent += 1
            if progress is not None and sent % PROGRESS_EVERY == 0:
                progress(sent)
        producer.flush()
    finally:
        producer.close()
    if errors:
        raise RuntimeError(f"{len(errors)} of {sent} records to {topic} were not delivered") from errors[0]
    if progress is not None and sent % PROGRESS_EVERY:
        progress(sent)
    return sent
