"""An upgrade: the previous release runs the replay on a standalone cluster of its own code and stops with a
savepoint mid-replay; this release's cluster restores it and drains. State changed encoding in between (UserContext
v3 -> v4 and PushState v8 -> v9: purchase intent), and this release has a stage the previous one had not (the
intent model), so every shopper's state is written by the old encoding and read by the new one. The notifications
equal an uninterrupted run of this release: the same ids, none twice, each the same decision.

The previous release is a commit of this repository, unpacked with `git archive`; its own `notify-engine cluster`
starts the cluster (its TaskManagers import its code) and submits its job."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from jobs.runtime import PROJECT_ROOT
from notify_engine import chaos, generator, producer
from notify_engine.cluster import StandaloneCluster
from tests.integration.conftest import SIDE_INPUTS_FIXED, job_overrides, make_topics, read_back

pytestmark = pytest.mark.slow

# The last commit before the newest state-record versions (UserContext v4, PushState v9). Move it forward when a
# state record's VERSION changes again, so this test always restores the encoding before the newest one.
PREVIOUS_RELEASE = "b410e42"


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("previous-release")
    archive = subprocess.run(["git", "-C", str(PROJECT_ROOT), "archive", PREVIOUS_RELEASE], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    assert archive.returncode == 0, f"release {PREVIOUS_RELEASE} not in this clone's history: {archive.stderr!r}"
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    return root


def _cluster_command(root: Path, *arguments: str) -> str:
    """`notify-engine cluster ...` of the project at `root`: its modules first on the path, for it and its cluster."""
    env = dict(os.environ, PYTHONPATH=str(root))
    result = subprocess.run([sys.executable, "-m", "notify_engine.cluster", *arguments], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert result.returncode == 0, f"cluster {' '.join(arguments)} at {root}:\n{result.stdout[-3000:]}"
    return result.stdout


def _python_path_of_taskmanagers() -> list[str]:
    found = []
    for pid in chaos.java_processes(chaos.TASK_MANAGER_MAIN):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        found += [entry.decode().split("=", 1)[1] for entry in environ if entry.startswith(b"PYTHONPATH=")]
    return found


def _prepare(broker, redis_server, events, tmp_path, name):
    topics = make_topics(broker)
    producer.publish(events, broker.bootstrap, topics.events)
    # Only what differs from the defaults, so both releases read the same file
    overrides = job_overrides(broker, redis_server, topics, kafka={"bounded": False},
                              flink={"checkpoint_interval_ms": 1000}, **SIDE_INPUTS_FIXED)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(overrides))
    return path, topics


def _decisions(notifications):
    return [n.notification_id for n in notifications]


def test_a_savepoint_of_the_previous_release_restores_into_this_one(
        previous_release, broker, redis_server, tmp_path):
    current = StandaloneCluster()
    if current.running():
        pytest.fail("a Flink cluster already answers on 127.0.0.1:8081; stop it first (notify-engine cluster down)")
    shop = generator.GeneratorConfig(users=300, items=120, events=9000, seed=21, start_ms=1_790_000_000_000)
    events = list(generator.generate_events(shop))
    try:
        _cluster_command(previous_release, "up")
        assert all(path.split(os.pathsep)[0] == str(previous_release) for path in _python_path_of_taskmanagers())
        path, topics = _prepare(broker, redis_server, events, tmp_path, "upgraded")
        job = _cluster_command(previous_release, "submit", "--config", str(path), "--parallelism", "1").split()[-1]
        deadline = time.monotonic() + 300
        # Well into the replay: checkpoints taken and notifications committed (a cold cluster once took two
        # checkpoints before its first commit, and the savepoint then came before anything was sent)
        while current.completed_checkpoints(job) < 2 or not read_back(broker, topics)[0]:
            assert current.job_state(job) == "RUNNING" and time.monotonic() < deadline, "the job ended too soon"
            time.sleep(0.5)
        savepoint = _cluster_command(previous_release, "savepoint", "--job", job, "--stop").strip().splitlines()[-1]
        assert current.job_state(job) == "FINISHED" and savepoint.startswith("file:")
        before_upgrade = read_back(broker, topics)[0]
        _cluster_command(previous_release, "down")

        current.start()
        assert all(path.split(os.pathsep)[0] == str(PROJECT_ROOT) for path in _python_path_of_taskmanagers())
        # The previous release's SQL window operators had ids hashed from their place in the graph, which the intent
        # stage moved: their state (the counts of the windows open at the savepoint) is left behind. From this
        # release on they are named (test_operator_ids.py), so the next upgrade restores without this.
        restored = current.submit(path, parallelism=1, restore_from=savepoint, drop_unmatched_state=True)
        assert current.drain_when_read(restored) == "FINISHED"
        upgraded = read_back(broker, topics)[0]

        clean_path, clean_topics = _prepare(broker, redis_server, events, tmp_path, "clean")
        clean_job = current.submit(clean_path, parallelism=1)
        assert current.drain_when_read(clean_job) == "FINISHED"
        clean = read_back(broker, clean_topics)[0]
    finally:
        current.stop()
        for pid in chaos.java_processes(chaos.TASK_MANAGER_MAIN):
            chaos.kill_hard(pid)

    delivery = chaos.compare_deliveries(_decisions(clean), _decisions(upgraded))
    print(f"clean={len(clean)} before_upgrade={len(before_upgrade)} {delivery.line()} "
          f"decisions_changed={chaos.decisions_changed(clean, upgraded)}")
    assert 0 < len(before_upgrade) < len(upgraded), "the savepoint was not taken mid-replay"
    assert len(clean) > 100
    assert delivery == chaos.Delivery(lost=0, duplicated=0, extra=0), chaos.described_changes(clean, upgraded)
    assert chaos.decisions_changed(clean, upgraded) == 0, chaos.described_changes(clean, upgraded)
