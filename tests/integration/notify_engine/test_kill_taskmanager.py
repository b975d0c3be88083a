"""A TaskManager killed (SIGKILL) twice during a bounded run on the standalone cluster, with the
exactly-once sink and checkpoints on disk, against a clean run of the same input: the same notification
ids, none twice, none lost, each the same decision (kind, journey, channel, source event, send time).
Both replay the input in an unbounded job, drained once it has read everything: a bounded source ends as
soon as it has read its topic, which the ordering stages let it do within seconds, and a job whose sources
have ended declines checkpoints, so the kills would come after the last one.
`make chaos` does the same on the real data at more kills; this is its short version in the suite."""
from __future__ import annotations

import random
import time

import pytest
import yaml

from config import to_dict
from notify_engine import chaos, generator, producer
from tests.integration.conftest import SIDE_INPUTS_FIXED, job_config, make_topics, read_back

pytestmark = pytest.mark.slow

KILLS = 2


def _submit(cluster, broker, redis_server, events, tmp_path, name):
    topics = make_topics(broker)
    producer.publish(events, broker.bootstrap, topics.events)
    config = job_config(broker, redis_server, topics, kafka={"bounded": False}, **SIDE_INPUTS_FIXED,
                        flink={"parallelism": 2, "checkpoint_interval_ms": 1000, "delivery_guarantee": "exactly-once"})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(to_dict(config)))
    return cluster.submit(path, parallelism=2), topics


def _wait_until(cluster, job_id, ready, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = cluster.job_state(job_id)
        if state in {"FINISHED", "FAILED", "CANCELED"}:
            raise AssertionError(f"the job ended ({state}) before the planned kills: the input is too small")
        if state == "RUNNING" and ready():
            return
        time.sleep(0.5)
    raise TimeoutError(f"no {what} within {timeout}s")


def _kinds(notifications, kind: str) -> list[str]:
    return [n.notification_id for n in notifications if n.kind == kind]


def _ids(notifications) -> list[str]:
    return [n.notification_id for n in notifications]


def test_killed_taskmanagers_lose_duplicate_and_change_nothing(cluster, broker, redis_server, tmp_path):
    shop = generator.GeneratorConfig(users=300, items=120, events=9000, seed=11, start_ms=1_790_000_000_000)
    events = list(generator.generate_events(shop))
    rng = random.Random(7)
    job, topics = _submit(cluster, broker, redis_server, events, tmp_path, "clean")
    assert cluster.drain_when_read(job) == "FINISHED"
    clean = read_back(broker, topics)[0]

    faulted_job, faulted_topics = _submit(cluster, broker, redis_server, events, tmp_path, "faulted")
    with chaos.TaskManagerSupervisor(cluster.start_taskmanager, count=2) as supervisor:
        # The first kill once a checkpoint holds some progress; each next one while the job replays from it,
        # once it runs again (waiting for another checkpoint let a fast replay finish first).
        _wait_until(cluster, faulted_job, lambda: cluster.completed_checkpoints(faulted_job) > 0, "checkpoint")
        for kill in range(KILLS):
            if kill:
                _wait_until(cluster, faulted_job, lambda: cluster.restarts(faulted_job) > restarted, "restart")
                time.sleep(rng.uniform(1, 4))
            restarted = cluster.restarts(faulted_job)
            chaos.kill_hard(rng.choice(chaos.java_processes(chaos.TASK_MANAGER_MAIN)))
        assert cluster.drain_when_read(faulted_job) == "FINISHED"
    faulted = read_back(broker, faulted_topics)[0]

    assert cluster.restarts(faulted_job) >= KILLS, "each kill should have restarted the job, or this checks nothing"
    assert len(_kinds(clean, "transactional")) > 20 and len(_kinds(clean, "marketing")) > 50, \
        "the clean run should send both kinds, or the comparison checks little"
    delivery = chaos.compare_deliveries(_ids(clean), _ids(faulted))
    print(f"kills={KILLS} restarts={cluster.restarts(faulted_job)} taskmanagers_started={supervisor.started} "
          f"clean={len(clean)} {delivery.line()} decisions_changed={chaos.decisions_changed(clean, faulted)} "
          f"items_changed={chaos.items_changed(clean, faulted)}")
    assert delivery == chaos.Delivery(lost=0, duplicated=0, extra=0), chaos.described_changes(clean, faulted)
    assert chaos.decisions_changed(clean, faulted) == 0, chaos.described_changes(clean, faulted)
