"""A TaskManager killed (SIGKILL) twice during a bounded run on the standalone cluster, with the
exactly-once sink and checkpoints on disk, against two clean runs of the same input: no id twice,
the transactional messages (checkpointed state only) the same ids, the marketing ones (which read
Redis side inputs, see notify_engine.chaos) within the clean runs' own disagreement.
`make chaos` does the same on the real data at more kills; this is its short version in the suite."""
from __future__ import annotations

import random
import time

import pytest
import yaml

from config import to_dict
from notify_engine import chaos, generator, producer
from tests.integration.conftest import job_config, make_topics, read_back

pytestmark = pytest.mark.slow

KILLS = 2


def _submit(cluster, broker, redis_server, events, tmp_path, name):
    topics = make_topics(broker)
    producer.publish(events, broker.bootstrap, topics.events)
    config = job_config(broker, redis_server, topics, flink={"parallelism": 2, "checkpoint_interval_ms": 1000,
                                                             "delivery_guarantee": "exactly-once"})
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


def test_killed_taskmanagers_lose_and_duplicate_nothing(cluster, broker, redis_server, tmp_path):
    shop = generator.GeneratorConfig(users=300, items=120, events=9000, seed=11, start_ms=1_790_000_000_000)
    events = list(generator.generate_events(shop))
    rng = random.Random(7)
    runs = {}
    for name in ("clean", "clean again"):
        job, topics = _submit(cluster, broker, redis_server, events, tmp_path, name.replace(" ", "-"))
        assert cluster.wait_for(job, {"FINISHED", "FAILED", "CANCELED"}, timeout=600) == "FINISHED"
        runs[name] = read_back(broker, topics)[0]

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
        assert cluster.wait_for(faulted_job, {"FINISHED", "FAILED", "CANCELED"}, timeout=900) == "FINISHED"
    faulted = read_back(broker, faulted_topics)[0]
    clean, again = runs["clean"], runs["clean again"]

    assert cluster.restarts(faulted_job) >= KILLS, "each kill should have restarted the job, or this checks nothing"
    assert len(_kinds(clean, "transactional")) > 20 and len(_kinds(clean, "marketing")) > 50, \
        "the clean run should send both kinds, or the comparison checks little"
    transactional = chaos.compare_deliveries(_kinds(clean, "transactional"), _kinds(faulted, "transactional"))
    noise = chaos.compare_deliveries(_kinds(clean, "marketing"), _kinds(again, "marketing"))
    marketing = chaos.compare_deliveries(_kinds(clean, "marketing"), _kinds(faulted, "marketing"))
    print(f"kills={KILLS} restarts={cluster.restarts(faulted_job)} taskmanagers_started={supervisor.started} "
          f"clean={len(clean)} transactional: {transactional.line()}; marketing: {marketing.line()} "
          f"(two clean runs: {noise.line()})")
    assert transactional == chaos.Delivery(lost=0, duplicated=0, extra=0)
    assert chaos.within_clean_noise(marketing, noise, len(_kinds(clean, "marketing")))
