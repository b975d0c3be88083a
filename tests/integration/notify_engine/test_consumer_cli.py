"""The sink consumer CLI against the real broker: positions, user filter, formats, clean exit."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest
from kafka import KafkaProducer

from config import JobConfig
from operators.privacy import pseudonym
from state_schemas.outputs import Notification

KEY = JobConfig().privacy.pseudonym_key
STAMPED = (int(time.time()) - 3600) * 1000  # the first record's Kafka timestamp


def _notification(number: int, user: str) -> Notification:
    return Notification(notification_id=f"n-{number}", user=pseudonym(user, KEY), channel="push", kind="marketing",
                        title="Picked for you", body=f"body {number}", item_ids=(f"item-{number}",),
                        reason="because", created_at=1_700_000_000_000 + number, source_event_time=1_700_000_000_000,
                        source_event_id=f"e-{number}")


@pytest.fixture(scope="module")
def topic(broker):
    name = f"consumer-{uuid.uuid4().hex[:8]}"
    broker.create_topics({name: 1})
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for number in range(10):
        user = "alice" if number % 2 == 0 else "bob"
        # Record timestamps let --from @TIME seek: record n is stamped STAMPED + n * 1000. They are recent:
        # the test broker deletes records older than its retention (24 h) at its next check.
        producer.send(name, _notification(number, user).encode(), timestamp_ms=STAMPED + number * 1000)
    producer.send(name, b"not a notification", timestamp_ms=STAMPED + 100_000)
    producer.flush()
    producer.close()
    return name


def _consume(broker, topic, *args) -> tuple[list[str], str]:
    result = subprocess.run(
        [sys.executable, "-m", "notify_engine.cli", "consume", "--bootstrap-servers", broker.bootstrap,
         "--topic", topic, "--idle-timeout", "3", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines(), result.stderr


def test_reads_everything_as_json_and_counts_unreadable(broker, topic):
    lines, summary = _consume(broker, topic, "--format", "json")
    assert [json.loads(line)["notification_id"] for line in lines] == [f"n-{n}" for n in range(10)]
    assert "read 11 records, printed 10, unreadable 1" in summary


def test_filters_by_raw_user_id_through_the_pseudonym(broker, topic):
    lines, _ = _consume(broker, topic, "--format", "json", "--user", "bob")
    assert [json.loads(line)["notification_id"] for line in lines] == ["n-1", "n-3", "n-5", "n-7", "n-9"]
    assert all("bob" not in line for line in lines)


def test_starts_at_an_offset_or_a_time_and_stops_at_max(broker, topic):
    lines, _ = _consume(broker, topic, "--format", "json", "--from", "7")
    assert [json.loads(line)["notification_id"] for line in lines] == ["n-7", "n-8", "n-9"]
    lines, _ = _consume(broker, topic, "--format", "json", "--from", f"@{STAMPED + 4000}", "--max", "2")
    assert [json.loads(line)["notification_id"] for line in lines] == ["n-4", "n-5"]
    lines, _ = _consume(broker, topic, "--from", "latest")
    assert lines == []


def test_text_lines_are_readable(broker, topic):
    lines, _ = _consume(broker, topic, "--max", "1")
    assert len(lines) == 1
    assert "Picked for you: body 0" in lines[0] and "[item-0]" in lines[0] and "marketing" in lines[0]
