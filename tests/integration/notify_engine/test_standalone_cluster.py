"""Submitting to a standalone Flink cluster started from the pip package's pyflink/bin:
`flink run -py jobs/notification_job.py -j <connector> -- --config FILE`, at parallelism 2 (both
TaskManagers), with the catalogue: the single-instance stages must fit a parallel job."""
from __future__ import annotations

import pytest
import yaml

from config import to_dict
from notify_engine import generator, producer
from state_schemas.redis_keys import RedisKeys
from tests.integration.conftest import job_config, make_topics, read_back

pytestmark = pytest.mark.slow


def test_job_submitted_with_flink_run_produces_notifications(cluster, broker, redis_server, tmp_path):
    topics = make_topics(broker)
    shop = generator.GeneratorConfig(users=120, items=60, events=1500, seed=5, start_ms=1_790_000_000_000)
    events = list(generator.generate_events(shop))
    producer.publish(generator.generate_catalog(shop), broker.bootstrap, topics.catalog, key_of=lambda i: i.item_id)
    producer.publish(events, broker.bootstrap, topics.events)
    producer.publish_raw([b"{not json"], broker.bootstrap, topics.events)
    config_file = tmp_path / "job.yaml"
    config = job_config(broker, redis_server, topics, flink={"parallelism": 2})
    config_file.write_text(yaml.safe_dump(to_dict(config)))

    job_id = cluster.submit(config_file, parallelism=2)
    assert cluster.wait_for(job_id, {"FINISHED", "FAILED", "CANCELED"}, timeout=300) == "FINISHED"

    notifications, dead_letters = read_back(broker, topics)
    assert any(n.kind == "marketing" for n in notifications)
    orders = {e.event_id for e in events if getattr(e, "status", None) == "shipped"}
    assert len(orders) >= 3, "the generated shop should ship orders, or this checks nothing"
    assert orders <= {n.source_event_id for n in notifications}
    assert [d["reason"].split(":")[0] for d in dead_letters] == ["malformed JSON in event"]
    client = redis_server.client()
    keys = RedisKeys(config.redis.key_prefix)
    assert list(client.scan_iter(keys.neighbours("*"), count=1000))
    assert list(client.scan_iter(keys.arrivals("*"), count=1000))  # the catalogue was joined
