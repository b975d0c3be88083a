"""`make chaos`: the job on a standalone cluster from `pyflink/bin`, on a bounded replay of the Taobao
stream slice, killed and fed hostile records, against clean runs of the same input.

Runs, each on fresh topics with its own Redis prefix, parallelism 2, exactly-once, 1 s checkpoints, each an
unbounded job drained once it has read its input (a bounded source ends within seconds, after which the job
declines checkpoints and savepoints):
  clean, clean again   the reference, and a second to show that clean runs agree (see notify_engine.chaos)
  killed               TaskManagers SIGKILLed at random checkpoints (a supervisor restarts them), and
                       the JobManager once: a new one is started and the job resubmitted from its
                       newest retained checkpoint (`flink run -s`), as an operator without HA would
  rescaled             stopped with a savepoint at parallelism 1, restored at 2, stopped again, restored at 1
  hostile              10 000 hostile records mixed into the same input
After each run the inbox writer fills Redis from the committed topic, and the inbox is compared with it.
The Taobao slice has no orders: a generated shop (its own users and items) adds orders and logistics.
Each run must commit the clean run's notification ids, none twice, each the same decision; the items a
recommendation names read side inputs as they stand and are counted apart.

The last line:
kills=<k> lost=<l> duplicated=<d> inbox_mismatch=<m> rescale_identical=<b> hostile=<h> hostile_dead_lettered=<n>
valid_output_identical=<b>
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config import load_config, to_dict  # noqa: E402
from notify_engine import chaos, consumer, datasets, generator, hostile, producer, services  # noqa: E402
from notify_engine.cluster import StandaloneCluster, retained_checkpoint  # noqa: E402
from notify_engine.inbox import InboxWriter  # noqa: E402
from state_schemas.outputs import Notification  # noqa: E402
from state_schemas.redis_keys import RedisKeys  # noqa: E402

JOBMANAGER_MAIN = "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint"
ENDED = {"FINISHED", "FAILED", "CANCELED"}


class Bench:
    def __init__(self, broker, redis_server, cluster: StandaloneCluster, workdir: Path, payloads: list[bytes]):
        self.broker, self.redis_server, self.cluster, self.workdir = broker, redis_server, cluster, workdir
        self.payloads = payloads

    def prepare(self, name: str, extra: list[bytes] = ()):
        topics = self.broker.fresh_topics(f"chaos-{name}-", partitions=2)
        mixed = list(self.payloads)
        for n, payload in enumerate(extra):  # spread evenly through the valid input
            mixed.insert((n * len(mixed)) // max(len(extra), 1) + n, payload)
        producer.publish_raw(mixed, self.broker.bootstrap, topics.events)
        config = load_config(overrides={
            "kafka": {"bootstrap_servers": self.broker.bootstrap, **topics.kafka(),
                      "bounded": False, "starting_offsets": "earliest", "group_id": f"chaos-{topics.events}",
                      "transactional_id_prefix": f"chaos-{topics.events}"},
            "redis": {"url": self.redis_server.url, "key_prefix": f"chaos-{topics.events}"},
            "flink": {"parallelism": 2, "checkpoint_interval_ms": 1000, "delivery_guarantee": "exactly-once"},
            "catalog": {"enabled": False}, "directory": {"enabled": False},
            # No best hour: the input is years old, and a platform hour would only move sends later.
            "journeys": {"best_hour_journeys": []},
        })
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(to_dict(config)))
        return config, path

    def outcome(self, config) -> dict:
        records = list(consumer.read_records(self.broker.bootstrap, config.kafka.notifications_topic,
                                             idle_timeout_s=5.0))
        InboxWriter(config).run(idle_timeout_s=5.0)
        client, keys = self.redis_server.client(), RedisKeys(config.redis.key_prefix)
        expected = chaos.expected_inboxes([(r.key, r.value) for r in records], config.redis.inbox_size)
        held = {}
        for key in client.scan_iter(keys.inbox_bodies("*"), count=1000):
            user = key.decode().removeprefix(keys.inbox("")).removesuffix(":body")
            held[user] = {nid.decode(): body for nid, body in client.hgetall(key).items()}
        notifications = [Notification.decode(r.value) for r in records if r.value is not None]
        dead = list(consumer.read_dead_letters(self.broker.bootstrap, config.kafka.dead_letter_topic,
                                               idle_timeout_s=5.0))
        return {"notifications": notifications, "dead_letters": dead,
                "inbox_mismatch": chaos.inbox_mismatches(expected, held)}

    def clean(self, name: str, extra: list[bytes] = ()) -> dict:
        config, path = self.prepare(name, extra)
        started = time.monotonic()
        job = self.cluster.submit(path, parallelism=2)
        state = self.cluster.drain_when_read(job, timeout=3600)
        if state != "FINISHED":
            raise RuntimeError(f"the {name} run ended {state}")
        print(f"  {name}: {time.monotonic() - started:.0f} s", flush=True)
        return self.outcome(config)

    def killed(self, kills: list[str], rng: random.Random) -> dict:
        config, path = self.prepare("killed")
        started = time.monotonic()
        job, seen, restarts = self.cluster.submit(path, parallelism=2), 0, 0
        done = []
        with chaos.TaskManagerSupervisor(self.cluster.start_taskmanager, count=2):
            for kill in kills:
                seen = self._checkpoint_after(job, seen)
                if seen is None:
                    print(f"  the job finished before the kills {kills[len(done):]}: use more --events", flush=True)
                    break
                done.append(kill)
                if kill == "taskmanager":
                    chaos.kill_hard(rng.choice(chaos.java_processes(chaos.TASK_MANAGER_MAIN)))
                    print(f"  killed a TaskManager after checkpoint {seen}", flush=True)
                    continue
                restarts += self.cluster.restarts(job)
                for pid in chaos.java_processes(JOBMANAGER_MAIN):
                    chaos.kill_hard(pid)
                checkpoint = retained_checkpoint(config.flink.checkpoint_dir, job)
                print(f"  killed the JobManager after checkpoint {seen}; resubmitting from {checkpoint}", flush=True)
                self.cluster.start_jobmanager()
                self._wait_for_cluster()
                job, seen = self.cluster.submit(path, parallelism=2, restore_from=checkpoint), 0
            state = self.cluster.drain_when_read(job, timeout=3600)
        restarts += self.cluster.restarts(job)
        if state != "FINISHED":
            raise RuntimeError(f"the killed run ended {state}")
        print(f"  killed: {time.monotonic() - started:.0f} s, {restarts} restarts", flush=True)
        return dict(self.outcome(config), kills=done)

    def rescaled(self, plan: tuple[int, ...] = (1, 2, 1)) -> dict:
        """Stop-with-savepoint mid-replay at each parallelism of `plan` but the last, restoring at the next."""
        config, path = self.prepare("rescaled")
        started, savepoint = time.monotonic(), None
        for step, parallelism in enumerate(plan):
            job = self.cluster.submit(path, parallelism=parallelism, restore_from=savepoint)
            if step == len(plan) - 1:
                break
            if self._checkpoint_after(job, 1) is None:  # well into the replay
                raise RuntimeError("the rescaled run ended before its savepoint: use more --events")
            savepoint = self.cluster.savepoint(job, stop=True)
            print(f"  stopped at parallelism {parallelism} with savepoint {savepoint}", flush=True)
        state = self.cluster.drain_when_read(job, timeout=3600)
        if state != "FINISHED":
            raise RuntimeError(f"the rescaled run ended {state}")
        print(f"  rescaled {' -> '.join(map(str, plan))}: {time.monotonic() - started:.0f} s", flush=True)
        return self.outcome(config)

    def _checkpoint_after(self, job: str, seen: int, timeout: float = 600.0) -> int | None:
        """The count of completed checkpoints once it passes `seen` with the job running; None if it ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                state, completed = self.cluster.job_state(job), self.cluster.completed_checkpoints(job)
            except OSError:  # the REST endpoint is briefly away while the job restarts
                time.sleep(0.5)
                continue
            if state in ENDED:
                return None
            if state == "RUNNING" and completed > seen:
                return completed
            time.sleep(0.5)
        raise TimeoutError(f"no checkpoint after {seen} within {timeout}s")

    def _wait_for_cluster(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.cluster.running():
            if time.monotonic() > deadline:
                raise TimeoutError("the new JobManager did not come up")
            time.sleep(1)


def _ids(run: dict) -> list[str]:
    return [n.notification_id for n in run["notifications"]]


def judge(name: str, clean: dict, other: dict) -> tuple[chaos.Delivery, int]:
    """(How the run's ids differ from the clean run's, how many of the same ids differ in what was decided)."""
    delivery = chaos.compare_deliveries(_ids(clean), _ids(other))
    changed = chaos.decisions_changed(clean["notifications"], other["notifications"])
    print(f"{name} vs clean: {delivery.line()} decisions_changed={changed} "
          f"items_changed={chaos.items_changed(clean['notifications'], other['notifications'])}")
    return delivery, changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared" / "data" /
                        "taobao_userbehavior_stream.csv")
    parser.add_argument("--events", type=int, default=45000, help="events of the Taobao slice replayed")
    parser.add_argument("--shop-events", type=int, default=4000, help="generated events with orders")
    parser.add_argument("--taskmanager-kills", type=int, default=3)
    parser.add_argument("--hostile", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    taobao = datasets.sorted_by_time(datasets.read_events(args.dataset, limit=args.events))
    shop = generator.GeneratorConfig(users=200, items=80, events=args.shop_events, seed=args.seed,
                                     start_ms=taobao[0].ts)
    valid = sorted(taobao + list(generator.generate_events(shop)), key=lambda event: event.ts)
    from state_schemas.events import encode

    payloads = [encode(event) for event in valid]
    kills = ["taskmanager"] * args.taskmanager_kills
    kills.insert(rng.randrange(1, len(kills) + 1), "jobmanager")
    # Plausible times from the replay's start (a record stamped ahead of its neighbours moves event time)
    bad = [payload for _, payload in hostile.hostile_records(args.hostile, args.seed, int(time.time() * 1000),
                                                            load_config().intake, valid[0].ts)]
    print(f"input: {len(taobao)} Taobao events + {args.shop_events} generated shop events; "
          f"kills in order: {', '.join(kills)}; {len(bad)} hostile records for the hostile run", flush=True)

    with tempfile.TemporaryDirectory(prefix="notify-chaos-") as tmp, services.local_services(Path(tmp)) as (
            broker, redis_server):
        cluster = StandaloneCluster()
        if cluster.running():
            raise SystemExit("a Flink cluster already answers on 127.0.0.1:8081; stop it first (notify-engine "
                             "cluster down)")
        cluster.start()
        try:
            bench = Bench(broker, redis_server, cluster, Path(tmp), payloads)
            clean, again = bench.clean("clean"), bench.clean("clean-again")
            killed = bench.killed(kills, rng)
            rescaled = bench.rescaled()
            with_hostile = bench.clean("hostile", bad)
        finally:
            cluster.stop()
            for main_class in (chaos.TASK_MANAGER_MAIN, JOBMANAGER_MAIN):
                for pid in chaos.java_processes(main_class):
                    chaos.kill_hard(pid)

    transactional = sum(n.kind == "transactional" for n in clean["notifications"])
    print(f"clean: {len(clean['notifications'])} notifications ({transactional} transactional)")
    judge("clean again", clean, again)
    killed_delivery, _ = judge("killed", clean, killed)
    hostile_delivery, hostile_changed = judge("hostile", clean, with_hostile)
    dead_lettered = len(with_hostile["dead_letters"]) - len(clean["dead_letters"])
    kept = {letter.get("sha256") for letter in with_hostile["dead_letters"]}
    bad_missing = sum(1 for payload in bad if chaos.sha256(payload) not in kept)
    print(f"hostile: {dead_lettered} more dead letters than the clean run; hostile payloads without their own "
          f"dead letter (by sha256 of the raw bytes): {bad_missing}")
    rescaled_delivery, rescaled_changed = judge("rescaled", clean, rescaled)
    inbox_mismatch = sum(run["inbox_mismatch"] for run in (clean, again, killed, rescaled, with_hostile))
    nothing = chaos.Delivery(lost=0, duplicated=0, extra=0)
    print(f"kills={len(killed['kills'])} lost={killed_delivery.lost} duplicated={killed_delivery.duplicated} "
          f"inbox_mismatch={inbox_mismatch} "
          f"rescale_identical={str(rescaled_delivery == nothing and rescaled_changed == 0).lower()} "
          f"hostile={len(bad)} hostile_dead_lettered={len(bad) - bad_missing} "
          f"valid_output_identical={str(hostile_delivery == nothing and hostile_changed == 0).lower()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
