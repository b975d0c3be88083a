"""Live operation: a recommendation goes out when the shopper's session ends even if no event comes after
theirs. The watermark of a live partition that falls quiet follows the wall clock (`jobs/ordering.py`),
`intake.idleness_ms` behind its last record's time; without that it would stay 5 s behind that record and
the timer would never fire."""
from __future__ import annotations

import time

import pytest

from jobs import notification_job
from notify_engine import consumer, producer
from operators.privacy import pseudonym
from state_schemas.events import BehaviourEvent
from tests.integration.conftest import job_config, make_topics

pytestmark = pytest.mark.slow

GAP_MS = 2_000


def view(n: int, user: str, item: str, ts: int) -> BehaviourEvent:
    return BehaviourEvent(event_id=f"live-{n}", user_id=user, behavior="view", ts=ts, item_id=item, category_id="c")


def test_a_recommendation_is_sent_when_the_session_ends_though_no_later_event_arrives(broker, redis_server,
                                                                                     connector_jar):
    topics = make_topics(broker, partitions=1)
    # No quiet hours and no best hour: at some times of day they would hold the recommendation past the test
    # (a shopper with little history waits for the platform's hour when it is under 6 hours away).
    config = job_config(broker, redis_server, topics, kafka={"bounded": False},
                        flink={"delivery_guarantee": "at-least-once"},
                        policy={"session_gap_ms": GAP_MS, "quiet_hours": ["00:00", "00:00"]},
                        journeys={"best_hour_journeys": []})
    now = int(time.time() * 1000)
    # Six shoppers view A, B, C in turn, minutes ago, so C's neighbours are A and B.
    warm = [view(n * 3 + i, f"warm-{n}", item, now - 600_000 + n * 60_000 + i * 1000)
            for n in range(6) for i, item in enumerate("ABC")]
    job = notification_job.run(config, [connector_jar], job_name="live-timers-test", wait=False,
                               extra_flink={"restart-strategy.type": "none"})
    try:
        producer.publish(warm, broker.bootstrap, topics.events)
        producer.publish_raw([b"ready?"], broker.bootstrap, topics.events)
        deadline = time.monotonic() + 120
        while not list(consumer.read_dead_letters(broker.bootstrap, topics.dead_letters, idle_timeout_s=1.0)):
            assert time.monotonic() < deadline, "the job did not start reading within 2 minutes"
        viewed_at = int(time.time() * 1000)
        producer.publish([view(99, "last-shopper", "C", viewed_at)], broker.bootstrap, topics.events)
        user = pseudonym("last-shopper", config.privacy.pseudonym_key)
        found, deadline = [], time.monotonic() + 120
        while not found and time.monotonic() < deadline:
            found = [n for n in consumer.read_notifications(broker.bootstrap, topics.notifications,
                                                            idle_timeout_s=2.0) if n.user == user]
        arrived = int(time.time() * 1000)
    finally:
        job.cancel().result()
    assert [(n.kind, n.source_event_id, n.scheduled_at) for n in found] == \
        [("marketing", "live-99", viewed_at + GAP_MS)]
    # Event time reaches the due time `idleness_ms` after it on the wall clock, not before.
    lag = config.intake.idleness_ms
    assert found[0].created_at >= viewed_at + GAP_MS + lag
    assert arrived - (viewed_at + GAP_MS) < lag + 60_000
