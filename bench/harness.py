"""Measurements for bench/run.py: the job on real Kafka, its Python ceiling, a naive baseline.

Every figure comes from one run on this machine; the report states ratios, not absolutes.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from msgspec.structs import replace
from tqdm import tqdm

from config import JobConfig, load_config
from jobs import notification_job
from notify_engine import consumer, datasets, services
from notify_engine.services import JobTopics as Topics
from operators.local_pipeline import DictStore, LocalPipeline, Outputs
from state_schemas.events import BehaviourEvent, OrderEvent, encode


# ---------------------------------------------------------------- workloads
def load_events(path: Path, limit: int | None) -> list[BehaviourEvent]:
    return datasets.sorted_by_time(datasets.read_events(path, limit=limit))


def scale_population(events: list[BehaviourEvent], factor: int) -> list[BehaviourEvent]:
    """`factor` disjoint copies of the log (users, items, ids suffixed), interleaved in time:
    `factor` times the users, items, state and events, at the same events per user."""
    if factor == 1:
        return list(events)
    copies = [replace(e, event_id=f"{e.event_id}~{k}", user_id=f"{e.user_id}~{k}", item_id=f"{e.item_id}~{k}")
              for e in events for k in range(factor)]
    return sorted(copies, key=lambda e: e.ts)


MARKER_EVERY = 500
CLOCK_EVENT = "bench-clock-start"
TOPIC_PARTITIONS = 2


def keyed_records(events: list) -> list[tuple[bytes, bytes]]:
    """(key, payload) records as a producer keyed by user sends them."""
    return [(event.user_id.encode(), encode(event)) for event in events]


def with_markers(events: list[BehaviourEvent], every: int = MARKER_EVERY) -> list[tuple[bytes | None, bytes]]:
    """(key, payload) records with a malformed marker after every `every` events. The job dead-letters
    each marker stamped with the admit operator's processing time: a progress clock inside the job."""
    records: list[tuple[bytes | None, bytes]] = []
    for index, event in enumerate(events, 1):
        records.append((event.user_id.encode(), encode(event)))
        if index % every == 0:
            records.append((None, b'{"bench_marker": %d}' % index))
    return records


def publish_records(bootstrap: str, topic: str, records: list[tuple], label: str) -> None:
    """(key, payload) records, or (key, payload, partition) to place one in a given partition."""
    from kafka import KafkaProducer

    sink = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024, acks="all")
    for key, value, *partition in tqdm(records, desc=f"publish {label}", unit="rec", leave=False, mininterval=1.0):
        sink.send(topic, value, key=key, partition=partition[0] if partition else None)
    sink.flush()
    sink.close()


def marker_times(env: "Services", topic: str) -> dict[int, int]:
    """Marker index -> processing time (ms) at which the job rejected it."""
    times = {}
    for letter in consumer.read_dead_letters(env.broker.bootstrap, topic, idle_timeout_s=2.0):
        raw = letter.get("raw", "")
        if raw.startswith('{"bench_marker"'):
            times[int(raw.split(":")[1].rstrip("}"))] = letter["rejected_at"]
    return times


def clocked(events: list, partitions: int) -> list[tuple]:
    """The workload behind a clock: first in every partition, an order shipped to a shopper of its own.
    The job notifies each at once (transactional), so the earliest of those notifications' decision
    times is when the job's first event crossed the pipeline: the run is timed from there, start-up
    left out, whatever the workload's own events send (a cold start notifies almost no one). One per
    partition, because the source may read thousands of records of one before the first of another."""
    clocks = [(f"bench-clock-{p}".encode(),
               encode(OrderEvent(event_id=f"{CLOCK_EVENT}-{p}", user_id=f"bench-clock-{p}", order_id="clock",
                                 status="shipped", ts=events[0].ts)), p) for p in range(partitions)]
    return clocks + keyed_records(events)


def run_rate(events: int, finished_at_ms: float, notifications: list, label: str) -> float:
    """events/s over a whole bounded run, from the clock's notification to the end of the run. (Reading
    progress where the job admits records would not do: admission runs far ahead of the last hop while
    buffers fill.) Should the clock's notification be missing, the run is timed from the first that
    came out, and the loss is said: a job that drops output must not pass unnoticed here."""
    started = sorted(n.created_at for n in notifications if n.source_event_id.startswith(CLOCK_EVENT))[:1]
    if not started:
        if not notifications:
            raise RuntimeError(f"{label}: the job sent nothing; the run cannot be timed")
        tqdm.write(f"  WARNING {label}: the clock's notification is missing ({len(notifications)} others came out); "
                   f"timed from the first output instead")
        started = [min(n.created_at for n in notifications)]
    return events / max((finished_at_ms - started[0]) / 1000, 1e-3)


def job_output(env: "Services", topic: str) -> list:
    return list(consumer.read_notifications(env.broker.bootstrap, topic, idle_timeout_s=2.0))


def repeat_in_time(events: list[BehaviourEvent], factor: int, gap_ms: int = 0) -> list[BehaviourEvent]:
    """The log replayed `factor` times (fresh event ids, later times), each pass `gap_ms` after the last
    ended: as many events as `scale_population(events, factor)` over the same population."""
    span = events[-1].ts - events[0].ts + 1 + gap_ms
    return [replace(e, event_id=f"{e.event_id}~{k}", ts=e.ts + k * span) for k in range(factor) for e in events]


# The scale phase compares workloads that make as many decisions. Replayed back to back, the control's passes
# were one session per shopper (2 000 Taobao events span 3 minutes) and sent a tenth of the 10x copies'
# notifications (1 805 against 18 013), so cost per event mixed state size with decisions. A day between passes
# is a new session and a new local day for every shopper, and with caps, gaps, cooldowns and fatigue out of the
# way the control's shoppers hear again on each pass (17 186 against 18 011 in the Python ceiling).
SCALE_PASS_GAP_MS = 24 * 3_600_000
UNCAPPED = {
    "policy": {"daily_marketing_cap": 1_000_000, "weekly_marketing_cap": 1_000_000, "min_marketing_gap_ms": 0,
               "renotify_cooldown_ms": 0,
               "channel_caps": {channel: [1_000_000, 1_000_000] for channel in JobConfig().policy.channel_caps}},
    "feedback": {"fatigue_after": 1_000_000},
}


def scale_workloads(events: list[BehaviourEvent], factor: int) -> tuple[list[BehaviourEvent], list[BehaviourEvent]]:
    """(control, scaled): the log's population replayed `factor` times a day apart, and `factor` disjoint copies
    of it interleaved; both as many events, and under `UNCAPPED` about as many notifications."""
    return repeat_in_time(events, factor, SCALE_PASS_GAP_MS), scale_population(events, factor)


# ---------------------------------------------------------------- environment
@dataclass
class Services:
    broker: services.KafkaBroker
    redis: services.RedisServer
    jar: Path


def start_services(workdir: Path) -> Services:
    broker = services.KafkaBroker(port=services.free_port(), controller_port=services.free_port(),
                                  data_dir=workdir / "kafka", heap="1g").start()
    redis_server = services.RedisServer(port=services.free_port(), data_dir=workdir / "redis").start()
    services.use_metrics_plugin()
    return Services(broker, redis_server, services.ensure_connector_jar())


def new_topics(env: Services, partitions: int = 2) -> Topics:
    return env.broker.fresh_topics("bench-", partitions)


def job_config(env: Services, topics: Topics, **job) -> JobConfig:
    return load_config(overrides=job_overrides(env, topics, **job))


def job_overrides(env: Services, topics: Topics, *, bounded: bool, mode: str, guarantee: str,
                  parallelism: int = 1, checkpoint_ms: int = 2000) -> dict:
    run = topics.events
    return {
        "kafka": {"bootstrap_servers": env.broker.bootstrap, **topics.kafka(),
                  "bounded": bounded, "starting_offsets": "earliest", "group_id": f"{run}-{mode}-{guarantee}",
                  "transactional_id_prefix": f"{run}-{mode}-{guarantee}"},
        "flink": {"execution_mode": mode, "delivery_guarantee": guarantee, "parallelism": parallelism,
                  "checkpoint_interval_ms": checkpoint_ms},
        "redis": {"url": env.redis.url, "key_prefix": run},
        "catalog": {"topic": topics.catalog},
        "directory": {"topic": topics.users},
    }


DRAIN_S = 3
QUIET_S = 5.0  # no new notification for this long: the job has worked through its backlog
ORDER_EVERY = 4  # paced events per injected order


def topic_end(env: "Services", topic: str) -> int:
    """Sum of the topic's end offsets over its partitions."""
    from kafka import KafkaConsumer, TopicPartition

    reader = KafkaConsumer(bootstrap_servers=env.broker.bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())]
        return sum(reader.end_offsets(partitions).values())
    finally:
        reader.close()


def wait_until_quiet(env: "Services", topic: str, quiet_s: float, deadline: float) -> float:
    """Blocks until no record has been added to `topic` for `quiet_s`; returns the seconds waited."""
    started = last_change = time.monotonic()
    last = topic_end(env, topic)
    while time.monotonic() - last_change < quiet_s:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{topic} was still growing at the deadline")
        time.sleep(0.5)
        end = topic_end(env, topic)
        if end != last:
            last, last_change = end, time.monotonic()
    return last_change - started
LOW_LATENCY_FLINK = {"restart-strategy.type": "none", "execution.buffer-timeout.interval": "5 ms"}
BATCH_FLINK = {"restart-strategy.type": "none"}


@contextmanager
def ticker(label: str):
    """A progress line while a blocking call (a Flink job) runs."""
    done = threading.Event()
    started = time.monotonic()

    def tick():
        with tqdm(desc=label, bar_format="{desc}: {elapsed}", leave=False) as bar:
            while not done.wait(5.0):
                bar.update(0)
                bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        tqdm.write(f"  {label}: {time.monotonic() - started:.1f} s")


# ---------------------------------------------------------------- measurements
def python_ceiling(events: list[BehaviourEvent], config: JobConfig, label: str) -> float:
    """The same operator logic in a plain in-process loop over a dict: events/s."""
    raws = [encode(e) for e in events]
    pipeline, out = LocalPipeline(config, DictStore()), Outputs()
    now = int(time.time() * 1000)
    started = time.perf_counter()
    for raw in tqdm(raws, desc=label, unit="ev", leave=False, mininterval=0.5):
        pipeline.process(raw, now, out)
    pipeline.finish(now, out)  # as the bounded job's last watermark, every timer left fires
    return len(raws) / (time.perf_counter() - started)


class RedisStore:
    """Naive: every state access is its own Redis round trip."""

    def __init__(self, client):
        self.client = client

    def get(self, key: str) -> str | None:
        return self.client.get(key)

    def set(self, key: str, value: str) -> None:
        self.client.set(key, value)

    def delete(self, key: str) -> None:
        self.client.delete(key)


def naive_baseline(env: Services, topics: Topics, config: JobConfig, limit: int) -> float:
    """What a team might write instead: a kafka-python loop with its state in Redis. events/s."""
    import redis
    from kafka import KafkaConsumer, KafkaProducer

    client = redis.Redis.from_url(env.redis.url, decode_responses=True)
    client.flushdb()
    pipeline, out = LocalPipeline(config, RedisStore(client)), Outputs()
    source = KafkaConsumer(topics.events, bootstrap_servers=env.broker.bootstrap, group_id=f"naive-{topics.events}",
                           auto_offset_reset="earliest", enable_auto_commit=True, max_poll_records=1000)
    sink = KafkaProducer(bootstrap_servers=env.broker.bootstrap, linger_ms=5, acks="all")
    processed = 0
    with tqdm(total=limit, desc="naive consumer + Redis", unit="ev", leave=False, mininterval=0.5) as bar:
        started = time.perf_counter()
        while processed < limit:
            for records in source.poll(timeout_ms=1000).values():
                for record in records:
                    pipeline.process(record.value, int(time.time() * 1000), out)
                    for notification in out.notifications:
                        sink.send(topics.notifications, notification.encode())
                    out.notifications.clear()
                    processed += 1
                bar.update(len(records))
        sink.flush()
        elapsed = time.perf_counter() - started
    source.close()
    sink.close()
    return processed / elapsed


def job_throughput(env: Services, events: list[BehaviourEvent], label: str, overrides: dict | None = None,
                   tree: Path | None = None, **job) -> float:
    """events/s of a bounded job draining a preloaded topic, from its clock's notification to its end; the
    job of another source tree (bench/run_job_in_tree.py) if `tree` is given."""
    topics = new_topics(env, partitions=TOPIC_PARTITIONS)
    publish_records(env.broker.bootstrap, topics.events, clocked(events, TOPIC_PARTITIONS), label)
    settings = job_overrides(env, topics, bounded=True, **job)
    for section, values in (overrides or {}).items():
        settings[section] = settings.get(section, {}) | values
    with ticker(label):
        if tree is None:
            notification_job.run(load_config(overrides=settings), [env.jar], job_name=label, extra_flink=BATCH_FLINK)
        else:
            subprocess.run([sys.executable, str(Path(__file__).with_name("run_job_in_tree.py")), str(tree),
                            json.dumps(settings), str(env.jar), label], check=True, stdout=subprocess.DEVNULL)
    finished = time.time() * 1000
    output = job_output(env, topics.notifications)
    tqdm.write(f"  {label}: {len(output)} notifications")
    return run_rate(len(events), finished, output, label)


@dataclass
class LatencyResult:
    samples: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    rate: float


def with_orders(events: list[BehaviourEvent], every: int = ORDER_EVERY) -> list:
    """The events with a shipped order of a shopper of its own after every `every`-th: transactional
    messages go out at once, and their latency is the one the goal is about."""
    out = []
    for index, event in enumerate(events):
        out.append(event)
        if index % every == every - 1:
            out.append(OrderEvent(event_id=f"latency-order-{index}", user_id=f"latency-shopper-{index}",
                                  order_id=f"latency-{index}", status="shipped", ts=event.ts,
                                  item_ids=(event.item_id,)))
    return out


def at_rate(events: list, rate: float, label: str):
    """The events one by one, each when `rate` per second says it is due (from the first one's start)."""
    started = time.monotonic()
    for index, event in enumerate(tqdm(events, desc=label, unit="ev", leave=False, mininterval=1.0)):
        pause = started + index / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        yield event


def latency(env: Services, events: list[BehaviourEvent], warm_events: int, rate: float, seconds: float,
            mode: str, guarantee: str, checkpoint_ms: int) -> LatencyResult:
    """Paced events, with an order now and then, into a running, warmed-up job; latency = a transactional
    notification's arrival on the sink topic minus its order's send time, both read from this
    process's clock. Recommendations wait for the session to end by design, so they are not timed here."""
    from kafka import KafkaProducer

    topics = new_topics(env)
    warm, paced = events[:warm_events], with_orders(events[warm_events:warm_events + int(rate * seconds)])
    warm_records = with_markers(warm)
    last_marker = max(int(v.split(b":")[1].rstrip(b"}")) for k, v in warm_records if k is None)
    publish_records(env.broker.bootstrap, topics.events, warm_records, f"warm-up ({guarantee})")
    config = job_config(env, topics, bounded=False, mode=mode, guarantee=guarantee, checkpoint_ms=checkpoint_ms)
    flink_env = notification_job.create_environment(config, [env.jar], LOW_LATENCY_FLINK)
    sinks = notification_job.JobSinks(
        notification_job.kafka_sink(config, topics.notifications, "notifications", keyed=True),
        notification_job.kafka_sink(config, topics.dead_letters, "dead-letters"))
    sources = notification_job.JobSources(notification_job.kafka_source(config, config.kafka.events_topic),
                                          notification_job.kafka_source(config, config.catalog.topic, "-catalog"),
                                          notification_job.kafka_source(config, config.directory.topic, "-users"))
    notification_job.build_pipeline(flink_env, sources, sinks, config)
    client = flink_env.execute_async(f"latency-{mode}-{guarantee}")
    try:
        with ticker(f"job catching up on {len(warm)} warm-up events ({guarantee})"):
            deadline = time.monotonic() + 600
            while last_marker not in marker_times(env, topics.dead_letters):
                if time.monotonic() > deadline:
                    raise TimeoutError("the job did not catch up with the warm-up events in 10 minutes")
            # The last marker only says the admit step has read the warm-up: the hops behind it may
            # still hold thousands of buffered records, and paced events would queue behind them.
            drained_after = wait_until_quiet(env, topics.notifications, QUIET_S, deadline)
        tqdm.write(f"  the notifications topic went quiet {drained_after:.1f} s after the last warm-up marker")

        arrivals: dict[str, float] = {}
        stop = threading.Event()

        def read():
            for notification in consumer.read_notifications(env.broker.bootstrap, topics.notifications,
                                                            start=consumer.StartPosition("latest"),
                                                            idle_timeout_s=3600):
                arrivals.setdefault(notification.source_event_id, time.monotonic())
                if stop.is_set():
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        time.sleep(2)  # the reader is assigned and positioned
        sink = KafkaProducer(bootstrap_servers=env.broker.bootstrap, linger_ms=0, acks=1)
        sent: dict[str, float] = {}
        started = time.monotonic()
        for event in at_rate(paced, rate, f"paced at {rate:.0f} ev/s ({guarantee})"):
            sink.send(topics.events, encode(event), key=event.user_id.encode())
            if isinstance(event, OrderEvent):  # marketing waits for the session to end: not a latency
                sent[event.event_id] = time.monotonic()
        sink.flush()
        achieved = len(paced) / (time.monotonic() - started)
        time.sleep(DRAIN_S + (2 * checkpoint_ms / 1000 if guarantee == "exactly-once" else 0))
        stop.set()
    finally:
        client.cancel().result()
    latencies = sorted((arrivals[eid] - sent[eid]) * 1000 for eid in sent if eid in arrivals)
    if len(latencies) < 20:
        raise RuntimeError(f"only {len(latencies)} notifications arrived for {len(sent)} paced orders")
    cut = statistics.quantiles(latencies, n=100, method="inclusive")
    return LatencyResult(samples=len(latencies), p50_ms=cut[49], p95_ms=cut[94], p99_ms=cut[98], rate=achieved)
