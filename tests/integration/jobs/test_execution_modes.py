"""Process mode is the fallback to thread mode: on the same single-partition input it must send
exactly the same notifications (ids are deterministic), in either delivery guarantee; and the
in-process pipeline the benchmarks use as the Python ceiling must decide exactly as the job does,
catalogue path included.

Trending windows and segments are off here: their results reach the scorer by other paths than
the events (windows fire on watermarks, the segmenter is its own operator), so when they arrive
depends on timing, not on the input; item cards go to Redis and back uncached. Everything else is
deterministic at parallelism 1, once the
catalogue has been read: its records reach the item model by a path of their own, so the catalogue
here lists only items whose first event comes well into the stream, each under a category no event
names (a category's new listings are candidates for every trigger in it)."""
from __future__ import annotations

import time

import pytest
from msgspec.structs import replace

from notify_engine import generator, producer
from operators.local_pipeline import DictStore, LocalPipeline, Outputs
from state_schemas.events import encode
from tests.integration.conftest import job_config, make_topics, read_back, run_bounded

pytestmark = pytest.mark.slow

SHOP = generator.GeneratorConfig(users=150, items=80, events=2500, seed=3, start_ms=1_790_000_000_000)
LISTED_AFTER = 1000  # events before an item's first event, at the least, for it to be listed


@pytest.fixture(scope="module")
def events():
    return list(generator.generate_events(SHOP))


@pytest.fixture(scope="module")
def catalog(events):
    first_seen = {}
    for index, event in enumerate(events):
        if getattr(event, "item_id", None) is not None:
            first_seen.setdefault(event.item_id, index)
    late = [item for item in generator.generate_catalog(SHOP) if first_seen.get(item.item_id, 0) >= LISTED_AFTER]
    assert len(late) >= 5, "the generated shop should have items first seen late in the stream"
    return [replace(item, category_id="listed-" + item.category_id, ts=SHOP.start_ms - 86_400_000) for item in late]


# Item cards written and read through at once, as the local pipeline's are: what the job then sends
# equals what its twin sends, item for item and score for score, not just by notification id.
# The population's best hour is off for the same reason as trending: it is read from Redis as other users'
# votes stand, whenever that is.
DETERMINISTIC = {"trending": {"enabled": False}, "segments": {"enabled": False},
                 "item_model": {"card_cache_ms": 0, "card_flush_ms": 0}, "journeys": {"population_min_shoppers": 0}}


def _run(broker, redis_server, jar, events, catalog, **sections):
    topics = make_topics(broker, partitions=1)
    producer.publish(catalog, broker.bootstrap, topics.catalog, key_of=lambda item: item.item_id)
    producer.publish(events, broker.bootstrap, topics.events)
    run_bounded(job_config(broker, redis_server, topics, **DETERMINISTIC, **sections), jar)
    notifications, dead_letters = read_back(broker, topics)
    return notifications, dead_letters


def test_thread_and_process_mode_and_the_local_pipeline_send_the_same_notifications(broker, redis_server,
                                                                                      connector_jar, events,
                                                                                      catalog):
    thread, _ = _run(broker, redis_server, connector_jar, events, catalog, flink={"execution_mode": "thread"})
    process, _ = _run(broker, redis_server, connector_jar, events, catalog,
                      flink={"execution_mode": "process", "delivery_guarantee": "at-least-once"})
    assert thread, "no notifications to compare"
    assert {n.kind for n in thread} == {"marketing", "transactional"}
    only = {n.notification_id for n in process} ^ {n.notification_id for n in thread}
    assert sorted(n.notification_id for n in process) == sorted(n.notification_id for n in thread), [
        ("process" if n in process else "thread", n.journey, n.source_event_id, n.scheduled_at, n.intended_at,
         n.item_ids) for n in process + thread if n.notification_id in only]

    config = job_config(broker, redis_server, make_topics(broker, partitions=1), **DETERMINISTIC)
    local, out = LocalPipeline(config, DictStore()), Outputs()
    now = int(time.time() * 1000)
    for item in catalog:
        local.process_catalog(encode(item), now, out)
    for event in events:
        local.process(encode(event), now, out)
    local.finish(now, out)  # the end of input fires every timer left, as the bounded job's last watermark does
    listed = {item.item_id for item in catalog}
    # The catalogue decided something: a listed item was recommended, with its catalogue facts.
    assert any(set(n.item_ids) & listed for n in out.notifications)
    as_sent = {n.notification_id: (n.item_ids, n.reason, n.score) for n in thread}
    assert {n.notification_id: (n.item_ids, n.reason, n.score) for n in out.notifications} == as_sent
