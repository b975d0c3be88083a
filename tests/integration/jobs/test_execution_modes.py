"""Process mode is the fallback to thread mode: on the same single-partition input it must send
exactly the same notifications (ids are deterministic), in either delivery guarantee; and the
in-process pipeline the benchmarks use as the Python ceiling must decide exactly as the job does.

Trending windows and segments are off here: their results reach the scorer by other paths than
the events (windows fire on watermarks, the segmenter is its own operator), so when they arrive
depends on timing, not on the input. Everything else is deterministic at parallelism 1."""
from __future__ import annotations

import pytest

import time

from notify_engine import generator, producer
from operators.local_pipeline import DictStore, LocalPipeline, Outputs
from state_schemas.events import encode
from tests.integration.conftest import job_config, make_topics, read_back, run_bounded

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def events():
    return list(generator.generate_events(generator.GeneratorConfig(users=150, items=80, events=2500, seed=3,
                                                                    start_ms=1_790_000_000_000)))


DETERMINISTIC = {"trending": {"enabled": False}, "segments": {"enabled": False}}


def _run(broker, redis_server, jar, events, **sections):
    topics = make_topics(broker, partitions=1)
    producer.publish(events, broker.bootstrap, topics.events)
    run_bounded(job_config(broker, redis_server, topics, **DETERMINISTIC, **sections), jar)
    notifications, dead_letters = read_back(broker, topics)
    return notifications, dead_letters


def test_thread_and_process_mode_send_the_same_notifications(broker, redis_server, connector_jar, events):
    thread, _ = _run(broker, redis_server, connector_jar, events, flink={"execution_mode": "thread"})
    process, _ = _run(broker, redis_server, connector_jar, events,
                      flink={"execution_mode": "process", "delivery_guarantee": "at-least-once"})
    assert thread, "no notifications to compare"
    assert {n.kind for n in thread} == {"marketing", "transactional"}
    assert sorted(n.notification_id for n in process) == sorted(n.notification_id for n in thread)

    config = job_config(broker, redis_server, make_topics(broker, partitions=1), **DETERMINISTIC)
    local, out = LocalPipeline(config, DictStore()), Outputs()
    for event in events:
        local.process(encode(event), int(time.time() * 1000), out)
    assert sorted(n.notification_id for n in out.notifications) == sorted(n.notification_id for n in thread)
