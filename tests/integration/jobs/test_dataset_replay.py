"""A real event log (REES46, from --dataset-dir) replayed through the job end to end."""
from __future__ import annotations

import collections

import pytest

from notify_engine import datasets, producer
from operators.privacy import pseudonym
from tests.integration.conftest import job_config, make_topics, read_back, run_bounded

pytestmark = pytest.mark.slow


def test_rees46_replay_sends_once_per_source_event_and_rejects_nothing(broker, redis_server, connector_jar,
                                                                       dataset_dir):
    path = dataset_dir / "rees46_2019oct_head.csv"
    events = list(datasets.read_events(path))
    ids = collections.Counter(e.event_id for e in events)
    assert sum(n - 1 for n in ids.values()) > 0, "the file's duplicate rows should reach the job"
    topics = make_topics(broker)
    producer.publish(events, broker.bootstrap, topics.events)
    config = job_config(broker, redis_server, topics)
    run_bounded(config, connector_jar)
    notifications, dead_letters = read_back(broker, topics)

    assert dead_letters == []
    assert notifications, "a real log of 17k events should lead to some notifications"
    # A cart is reminded more than once, each reminder with its own intended time; nothing else repeats.
    sources = [(n.source_event_id, n.journey, n.intended_at) for n in notifications]
    assert len(sources) == len(set(sources)), "a duplicated event must not notify twice"
    assert len({n.notification_id for n in notifications}) == len(notifications)
    by_id = {e.event_id: e for e in events}
    key = config.privacy.pseudonym_key
    for n in notifications:
        source = by_id[n.source_event_id]
        assert n.user == pseudonym(source.user_id, key)
        # A browse recommendation may name the item looked at (re-engagement, the default); each item once.
        assert set(n.item_ids) <= {e.item_id for e in events} and len(set(n.item_ids)) == len(n.item_ids)
