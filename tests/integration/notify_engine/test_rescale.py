"""Stop-with-savepoint at parallelism 1 mid-replay, restore at 2, then drain (the short version of `make chaos`'s
rescaled run), with `notify-engine cluster savepoint|restore`: the same notification ids as an uninterrupted run
at parallelism 1, none twice, each the same decision (kind, journey, channel, source event, send time)."""
from __future__ import annotations

import time

import pytest
import yaml

from config import to_dict
from notify_engine import chaos, cluster as cluster_cli, generator, producer
from tests.integration.conftest import SIDE_INPUTS_FIXED, job_config, make_topics, read_back

pytestmark = pytest.mark.slow


def _prepare(broker, redis_server, events, tmp_path, name):
    topics = make_topics(broker)
    producer.publish(events, broker.bootstrap, topics.events)
    # Unbounded, drained once read (a bounded source ends within seconds, and a savepoint needs it running)
    config = job_config(broker, redis_server, topics, kafka={"bounded": False}, flink={"checkpoint_interval_ms": 1000},
                        **SIDE_INPUTS_FIXED)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(to_dict(config)))
    return config, path, topics


def _kinds(notifications, kind):
    return [n.notification_id for n in notifications if n.kind == kind]


def _ids(notifications):
    return [n.notification_id for n in notifications]


def test_a_savepoint_at_one_restored_at_two_sends_what_an_uninterrupted_run_sends(
        cluster, broker, redis_server, tmp_path, capsys):
    shop = generator.GeneratorConfig(users=300, items=120, events=9000, seed=12, start_ms=1_790_000_000_000)
    events = list(generator.generate_events(shop))
    _, path, topics = _prepare(broker, redis_server, events, tmp_path, "clean")
    job = cluster.submit(path, parallelism=1)
    assert cluster.drain_when_read(job) == "FINISHED"
    clean = read_back(broker, topics)[0]

    _, path, topics = _prepare(broker, redis_server, events, tmp_path, "rescaled")
    job = cluster.submit(path, parallelism=1)
    deadline = time.monotonic() + 300
    while cluster.completed_checkpoints(job) < 2:  # well into the replay
        assert cluster.job_state(job) == "RUNNING" and time.monotonic() < deadline, "the job ended too soon"
        time.sleep(0.5)
    capsys.readouterr()
    assert cluster_cli.main(["savepoint", "--job", job, "--stop"]) == 0  # the user command
    savepoint = capsys.readouterr().out.strip().splitlines()[-1]
    assert cluster.job_state(job) == "FINISHED" and savepoint.startswith("file:")
    assert cluster_cli.main(["restore", "--config", str(path), "--from", savepoint, "--parallelism", "2"]) == 0
    restored = capsys.readouterr().out.split()[-1]
    assert cluster.rest(f"/jobs/{restored}")["vertices"][0]["parallelism"] == 2
    assert cluster.drain_when_read(restored) == "FINISHED"
    rescaled = read_back(broker, topics)[0]

    delivery = chaos.compare_deliveries(_ids(clean), _ids(rescaled))
    print(f"clean={len(clean)} {delivery.line()} decisions_changed={chaos.decisions_changed(clean, rescaled)} "
          f"items_changed={chaos.items_changed(clean, rescaled)}")
    assert len(_kinds(clean, "transactional")) > 20 and len(_kinds(clean, "marketing")) > 50
    assert delivery == chaos.Delivery(lost=0, duplicated=0, extra=0), chaos.described_changes(clean, rescaled)
    assert chaos.decisions_changed(clean, rescaled) == 0, chaos.described_changes(clean, rescaled)
