"""Hostile records at volume through the real job (the short version of `make chaos`'s hostile run):
every one on the dead-letter topic with a reason and its bytes exactly, a payload near the broker's
largest record among them, and the valid events' notifications as without them: the same ids, each the same
decision."""
from __future__ import annotations

import base64
import hashlib
import random
import time
from collections import Counter

import pytest

from config import load_config
from notify_engine import chaos, generator, producer
from notify_engine.hostile import BROKER_MAX_RECORD_BYTES, hostile_records
from state_schemas.events import encode
from tests.integration.conftest import SIDE_INPUTS_FIXED, job_config, make_topics, read_back, run_bounded

pytestmark = pytest.mark.slow

NOW_OFFSET_MS = 3 * 86_400_000


def _kept_bytes(letter: dict) -> bytes:
    return letter["raw"].encode() if "raw" in letter else base64.b64decode(letter["raw_base64"])


def test_hostile_records_are_dead_lettered_byte_for_byte_and_valid_orders_tell_the_same(
        broker, redis_server, connector_jar):
    now = int(time.time() * 1000)
    shop = generator.GeneratorConfig(users=100, items=60, events=1500, seed=3, start_ms=now - NOW_OFFSET_MS)
    valid = [encode(event) for event in generator.generate_events(shop)]
    # Plausible times from the replay's start: a record stamped ahead of the events around it moves event time
    # (notify_engine/hostile.py says why)
    hostile = [payload for _, payload in hostile_records(600, 9, now, load_config().intake, shop.start_ms)]
    # near the broker's largest record, and not UTF-8: its dead letter carries it as base64
    hostile.append(b'{"type": "behaviour", "query": "' + b"\xff" * 4 + b"z" * (BROKER_MAX_RECORD_BYTES - 40) + b'"}')
    mixed, rng = list(valid), random.Random(2)
    for payload in hostile:
        mixed.insert(rng.randrange(len(mixed) + 1), payload)

    runs = {}
    for name, records in (("clean", valid), ("hostile", mixed)):
        topics = make_topics(broker)
        producer.publish_raw(records, broker.bootstrap, topics.events)
        # no best hour either: the input is placed relative to now (see test_notification_job.py)
        fixed = dict(SIDE_INPUTS_FIXED, journeys={"best_hour_journeys": [], "population_min_shoppers": 0})
        run_bounded(job_config(broker, redis_server, topics, **fixed), connector_jar)
        runs[name] = read_back(broker, topics)

    (clean, clean_letters), (dirty, letters) = runs["clean"], runs["hostile"]
    assert not clean_letters
    assert Counter(letter["sha256"] for letter in letters) == Counter(hashlib.sha256(p).hexdigest() for p in hostile)
    by_hash = {hashlib.sha256(p).hexdigest(): p for p in hostile}
    for letter in letters:
        assert letter["reason"] and not letter["truncated"] and _kept_bytes(letter) == by_hash[letter["sha256"]]
    assert max(letter["size"] for letter in letters) > BROKER_MAX_RECORD_BYTES - 100

    assert {n.kind for n in clean} == {"marketing", "transactional"}
    assert chaos.compare_deliveries([n.notification_id for n in clean], [n.notification_id for n in dirty]) == \
        chaos.Delivery(lost=0, duplicated=0, extra=0), chaos.described_changes(clean, dirty)
    assert chaos.decisions_changed(clean, dirty) == 0, chaos.described_changes(clean, dirty)
