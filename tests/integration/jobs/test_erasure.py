"""An erasure request on a running job, watched in a real Redis: the shopper's profile, top-N, inbox and
windowed counts are there first, and are gone once the request has passed through; nobody else's are;
signals of their last views, still on the way when it arrives, and their open window write nothing again."""
from __future__ import annotations

import time

import pytest

from jobs import notification_job
from notify_engine import producer
from operators.privacy import pseudonym
from state_schemas.events import BehaviourEvent, ErasureRequest
from state_schemas.redis_keys import RedisKeys
from tests.integration.conftest import InboxWriterBeside, job_config, make_topics, read_back

pytestmark = pytest.mark.slow

HOUR = 3_600_000
BASE = (int(time.time() * 1000) // HOUR) * HOUR - 6 * HOUR


def view(n: int, user: str, item: str, ts: int) -> BehaviourEvent:
    return BehaviourEvent(event_id=f"v{n}", user_id=user, behavior="view", ts=ts, item_id=item, category_id="c")


# Six shoppers view A, B, C in turn, so C's co-occurrence row holds A and B; then the shopper to be
# forgotten views C (a trigger with candidates) and a bystander does the same.
SHOPPING = [view(n * 3 + i, f"warm-{n}", item, BASE + n * 60_000 + i * 1000)
            for n in range(6) for i, item in enumerate("ABC")]
SHOPPING += [view(100, "forget-me", "C", BASE + HOUR // 2), view(101, "bystander", "C", BASE + HOUR // 2 + 1000)]
# Event time moves two hours on, so the hour's tumbling window of behaviour counts closes and is written.
LATER = [view(200, "warm-0", "A", BASE + 2 * HOUR + 10_000)]
IN_FLIGHT = [view(300, "forget-me", "A", BASE + 2 * HOUR + 15_000),
             view(301, "forget-me", "B", BASE + 2 * HOUR + 16_000),
             view(302, "bystander", "D", BASE + 2 * HOUR + 17_000)]  # new to them: their top-N stays non-empty
ERASURE = ErasureRequest(event_id="erase-1", user_id="forget-me", ts=BASE + 2 * HOUR + 20_000)
CLOSE_THE_HOUR = [view(400, "warm-1", "C", BASE + 4 * HOUR)]


def wait_for(condition, what: str, timeout: float = 90.0, seen=None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f"; seen: {seen()}" if seen else ""))
        time.sleep(0.5)


def test_an_erasure_removes_what_redis_held_of_the_shopper(broker, redis_server, connector_jar):
    topics = make_topics(broker, partitions=1)
    # No quiet hours and no best hour: at some times of day they would hold the shopper's recommendation past
    # the test.
    config = job_config(broker, redis_server, topics, kafka={"bounded": False},
                        flink={"delivery_guarantee": "at-least-once"}, policy={"quiet_hours": ["00:00", "00:00"]},
                        journeys={"best_hour_journeys": []})
    producer.publish(SHOPPING + LATER, broker.bootstrap, topics.events)
    client, keys = redis_server.client(), RedisKeys(config.redis.key_prefix)
    forgotten, bystander = (pseudonym(user, config.privacy.pseudonym_key) for user in ("forget-me", "bystander"))

    def held(user: str) -> set[str]:
        return {key.decode() for key in client.scan_iter(f"{config.redis.key_prefix}:*{user}*", count=1000)}

    expected = {keys.profile(forgotten), keys.top_n(forgotten), keys.top_n_reasons(forgotten),
                keys.inbox(forgotten), keys.inbox_bodies(forgotten), keys.counts(f"user:{forgotten}", BASE),
                keys.intent(forgotten)}
    job = notification_job.run(config, [connector_jar], job_name="erasure-test", wait=False,
                               extra_flink={"restart-strategy.type": "none"})
    writer = InboxWriterBeside(config).start()
    try:
        # Usually ~14 s; the writer replaces a consumer that a rebalance left out of its group for 30 s
        theirs = {keys.profile(bystander), keys.inbox(bystander)}  # the bystander's, sent a second later
        wait_for(lambda: held(forgotten) >= expected and held(bystander) >= theirs,
                 f"the shopper's keys {sorted(expected)} and the bystander's {sorted(theirs)}", timeout=240.0,
                 seen=lambda: sorted(held(forgotten) | held(bystander)) + [writer.state()])
        assert held(forgotten) == expected  # nothing of theirs is kept under a name the erasure does not know
        kept = held(bystander)

        # The shopper views two items just before the erasure: their signals are still on the way through the
        # item model, and their hour's window is open, when the erasure arrives by its shorter path.
        producer.publish(IN_FLIGHT + [ERASURE] + CLOSE_THE_HOUR, broker.bootstrap, topics.events)
        marked = {keys.erased(forgotten)}
        wait_for(lambda: held(forgotten) == marked, "the erasure to delete the shopper's keys")
        assert client.get(keys.erased(forgotten)) == str(ERASURE.ts).encode()  # the time, nothing else
        wait_for(lambda: keys.counts(f"user:{bystander}", BASE + 2 * HOUR) in held(bystander), "the hour to close")
        assert held(forgotten) == marked  # the window that held their views was not written again
        assert held(bystander) - {keys.counts(f"user:{bystander}", BASE + 2 * HOUR)} == kept  # the delete is targeted
    finally:
        job.cancel().result()
        writer.close()
    assert held(forgotten) == marked  # once the writer has read all: the tombstone came after their inbox entry
    notifications, _ = read_back(broker, topics)
    # sent before the erasure; nothing after it from the views in flight
    assert [n.kind for n in notifications if n.user == forgotten] == ["marketing"]
